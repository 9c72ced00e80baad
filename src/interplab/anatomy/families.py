"""One table per architecture family, in one standard vocabulary.

Every instrument reaches a module through these names, never through a module path.
Model-level names: ``layers`` (the ModuleList of decoder blocks), ``embed``, ``final_norm``,
``unembed``. Block-level names (paths relative to one decoder block; a name missing from a
given block, such as ``router`` in a dense layer, simply does not resolve there):

=================  ==============================================================
``attn``           the attention module; its output's first element is the attention output
``attn_out``       the attention output projection; its *input* holds the per-head outputs
``ln_attn``        the norm before attention
``ln_mlp``         the norm before the MLP
``ln_attn_post``   a norm applied to the attention output (Gemma 2)
``ln_mlp_post``    a norm applied to the MLP output (Gemma 2)
``mlp``            the MLP, or the MoE block
``act``            the MLP's elementwise activation module (dense MLPs)
``mlp_in``         the up projection (plain MLP) / ``up_proj`` (gated MLP)
``mlp_gate``       the gate projection of a gated MLP
``mlp_out``        the down projection
``router``         the MoE router (returns logits, top-k weights, top-k indices)
``experts``        the fused experts module
``shared``         shared expert(s) that every token uses
``shared_gate``    the sigmoid gate of the shared expert (Qwen2-MoE)
=================  ==============================================================

To support a new family, add a ``Family`` to ``FAMILIES`` (or call ``register``) with the
``config.model_type`` values it covers and its paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .routing import GroupedSigmoidTopK, RoutingRule, SoftmaxTopK, TopKSoftmax

NormKind = Literal["layernorm", "rmsnorm", "rmsnorm_offset"]
MlpKind = Literal["plain", "gated"]


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layers: str
    embed: str
    final_norm: str
    unembed: str
    block: Mapping[str, str]
    norm: NormKind
    mlp: MlpKind
    routing: RoutingRule | None = None
    notes: str = field(default="", compare=False)

    @property
    def is_moe(self) -> bool:
        return self.routing is not None


_LLAMA_BLOCK = {
    "attn": "self_attn",
    "attn_out": "self_attn.o_proj",
    "ln_attn": "input_layernorm",
    "ln_mlp": "post_attention_layernorm",
    "mlp": "mlp",
    "act": "mlp.act_fn",
    "mlp_in": "mlp.up_proj",
    "mlp_gate": "mlp.gate_proj",
    "mlp_out": "mlp.down_proj",
}
_LLAMA_MODEL = {"layers": "model.layers", "embed": "model.embed_tokens", "final_norm": "model.norm",
                "unembed": "lm_head"}
_ATTN_BLOCK = {k: _LLAMA_BLOCK[k] for k in ("attn", "attn_out", "ln_attn", "ln_mlp", "mlp")}
# MoE blocks; families that also have dense layers keep the dense MLP names for those layers.
_MOE_BLOCK = {**_ATTN_BLOCK, "router": "mlp.gate", "experts": "mlp.experts"}
_MOE_OR_DENSE_BLOCK = {**_LLAMA_BLOCK, **_MOE_BLOCK}

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add (or replace) a family table."""
    FAMILIES[family.name] = family
    return family


register(Family(
    name="gpt2", model_types=("gpt2",),
    layers="transformer.h", embed="transformer.wte", final_norm="transformer.ln_f", unembed="lm_head",
    block={"attn": "attn", "attn_out": "attn.c_proj", "ln_attn": "ln_1", "ln_mlp": "ln_2", "mlp": "mlp",
           "act": "mlp.act", "mlp_in": "mlp.c_fc", "mlp_out": "mlp.c_proj"},
    norm="layernorm", mlp="plain",
))
register(Family(
    name="gpt_neox", model_types=("gpt_neox",),
    layers="gpt_neox.layers", embed="gpt_neox.embed_in", final_norm="gpt_neox.final_layer_norm",
    unembed="lm_head",
    block={"attn": "attention", "attn_out": "attention.dense", "ln_attn": "input_layernorm",
           "ln_mlp": "post_attention_layernorm", "mlp": "mlp", "act": "mlp.act",
           "mlp_in": "mlp.dense_h_to_4h", "mlp_out": "mlp.dense_4h_to_h"},
    norm="layernorm", mlp="plain",
    notes="Pythia; parallel attention and MLP when config.use_parallel_residual.",
))
register(Family(name="llama", model_types=("llama", "mistral"), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated"))
register(Family(name="qwen2", model_types=("qwen2", "qwen3"), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated"))
register(Family(
    name="gemma2", model_types=("gemma2",), **_LLAMA_MODEL,
    block={**_LLAMA_BLOCK, "ln_mlp": "pre_feedforward_layernorm", "ln_attn_post": "post_attention_layernorm",
           "ln_mlp_post": "post_feedforward_layernorm"},
    norm="rmsnorm_offset", mlp="gated",
    notes="RMSNorm scales by (1 + weight); attention and MLP outputs are normed before the residual add.",
))
register(Family(
    name="gemma3", model_types=("gemma3_text",), **_LLAMA_MODEL, block=FAMILIES["gemma2"].block,
    norm="rmsnorm_offset", mlp="gated",
    notes="Gemma 2's layout plus q/k norms; sliding-window and global attention layers (config.layer_types); "
          "the embedding module scales by sqrt(d_model) itself.",
))
register(Family(name="mixtral", model_types=("mixtral",), **_LLAMA_MODEL, block=_MOE_BLOCK,
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK(renormalise=True)))
register(Family(name="olmoe", model_types=("olmoe",), **_LLAMA_MODEL, block=_MOE_BLOCK,
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK()))
register(Family(name="qwen2_moe", model_types=("qwen2_moe",), **_LLAMA_MODEL,
                block={**_MOE_OR_DENSE_BLOCK, "shared": "mlp.shared_expert", "shared_gate": "mlp.shared_expert_gate"},
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK()))
register(Family(name="qwen3_moe", model_types=("qwen3_moe",), **_LLAMA_MODEL, block=_MOE_OR_DENSE_BLOCK,
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK()))
register(Family(name="deepseek_v3", model_types=("deepseek_v3",), **_LLAMA_MODEL,
                block={**_MOE_OR_DENSE_BLOCK, "shared": "mlp.shared_experts"},
                norm="rmsnorm", mlp="gated", routing=GroupedSigmoidTopK(),
                notes="The first config.first_k_dense_replace layers are dense."))
register(Family(name="gpt_oss", model_types=("gpt_oss",), **_LLAMA_MODEL,
                block={**_ATTN_BLOCK, "router": "mlp.router", "experts": "mlp.experts"},
                norm="rmsnorm", mlp="gated", routing=TopKSoftmax(),
                notes="The MLP returns (hidden, router_scores); attention has sinks."))
