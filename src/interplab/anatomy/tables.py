"""The built-in family tables: one ``register(Family(...))`` per family (see ``families.py``).

Each ``tiny`` factory makes a tiny random config that exercises the family's quirks (head_dim
different from d_model / heads, sliding windows shorter than the test prompts, Granite's
multipliers away from 1, MoE layers next to dense ones), so the family tests see them.
"""

from __future__ import annotations

import transformers as T

from .families import Family, TinySize, register
from .routing import GroupedSigmoidTopK, SoftmaxTopK, TopKSoftmax

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
_QK_NORMS = {"q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm"}
_LLAMA_MODEL = {"layers": "model.layers", "embed": "model.embed_tokens", "final_norm": "model.norm",
                "unembed": "lm_head"}
_ATTN_BLOCK = {k: _LLAMA_BLOCK[k] for k in ("attn", "attn_out", "ln_attn", "ln_mlp", "mlp")}
# MoE blocks; families that also have dense layers keep the dense MLP names for those layers.
_MOE_BLOCK = {**_ATTN_BLOCK, "router": "mlp.gate", "experts": "mlp.experts"}
_MOE_OR_DENSE_BLOCK = {**_LLAMA_BLOCK, **_MOE_BLOCK}
# Gemma 2/3: a norm before and after each sublayer
_SANDWICH_BLOCK = {**_LLAMA_BLOCK, "ln_mlp": "pre_feedforward_layernorm", "ln_attn_post": "post_attention_layernorm",
                   "ln_mlp_post": "post_feedforward_layernorm"}
# Granite's multipliers in the tiny configs: away from 1 (and attention's from 1/sqrt(head_dim)) so
# that a missed one shows, yet mild enough that tiny random models keep measurable effects (real
# Granite 3: 12, 0.22, 1/64, 8)
_GRANITE_SCALES = dict(embedding_multiplier=0.5, residual_multiplier=0.5, attention_multiplier=0.25,
                       logits_scaling=2.0)
_GRANITE = dict(residual_scale="residual_multiplier", logit_scale="logits_scaling")


def _moe(t: TinySize) -> dict:
    return dict(num_experts_per_tok=t.top_k)


def _dense_first(t: TinySize) -> dict:
    """One extra, dense first layer, so that both kinds of layer are covered (Qwen-MoE)."""
    return {**t.dims, "num_hidden_layers": t.n_layers + 1, "mlp_only_layers": [0]}


def _alternating(t: TinySize) -> list[str]:
    """Sliding-window and global attention layers in turn (Gemma 3 is 5:1; two kinds are what matter)."""
    return [("sliding_attention", "full_attention")[i % 2] for i in range(t.n_layers)]


register(Family(
    name="gpt2", model_types=("gpt2",),
    layers="transformer.h", embed="transformer.wte", final_norm="transformer.ln_f", unembed="lm_head",
    block={"attn": "attn", "attn_out": "attn.c_proj", "ln_attn": "ln_1", "ln_mlp": "ln_2", "mlp": "mlp",
           "act": "mlp.act", "mlp_in": "mlp.c_fc", "mlp_out": "mlp.c_proj"},
    norm="layernorm", mlp="plain", conv1d=True,
    tiny=lambda t: T.GPT2Config(n_layer=t.n_layers, n_embd=32, n_head=4, vocab_size=t.vocab, n_positions=128,
                                bos_token_id=2, eos_token_id=3, pad_token_id=0),
))
register(Family(
    name="gpt_neox", model_types=("gpt_neox",),
    layers="gpt_neox.layers", embed="gpt_neox.embed_in", final_norm="gpt_neox.final_layer_norm",
    unembed="lm_head",
    block={"attn": "attention", "attn_out": "attention.dense", "ln_attn": "input_layernorm",
           "ln_mlp": "post_attention_layernorm", "mlp": "mlp", "act": "mlp.act",
           "mlp_in": "mlp.dense_h_to_4h", "mlp_out": "mlp.dense_4h_to_h"},
    norm="layernorm", mlp="plain", parallel="use_parallel_residual",
    tiny=lambda t: T.GPTNeoXConfig(**{k: v for k, v in t.dims.items() if k != "num_key_value_heads"}),
    notes="Pythia; parallel attention and MLP when config.use_parallel_residual.",
))
register(Family(name="llama", model_types=("llama",), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated", tiny=lambda t: T.LlamaConfig(**t.dims)))
register(Family(name="mistral", model_types=("mistral",), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated",
                tiny=lambda t: T.MistralConfig(**t.dims, head_dim=16, sliding_window=4),
                notes="Llama's layout; every layer has a sliding window when config.sliding_window is set."))
register(Family(name="qwen2", model_types=("qwen2",), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated", tiny=lambda t: T.Qwen2Config(**t.dims),
                notes="Llama's layout with biases on the q/k/v projections."))
register(Family(name="qwen3", model_types=("qwen3",), **_LLAMA_MODEL, block={**_LLAMA_BLOCK, **_QK_NORMS},
                norm="rmsnorm", mlp="gated", tiny=lambda t: T.Qwen3Config(**t.dims, head_dim=16),
                notes="Llama's layout plus per-head q/k RMSNorms; head_dim need not be d_model / heads."))
register(Family(
    name="gemma2", model_types=("gemma2",), **_LLAMA_MODEL, block=_SANDWICH_BLOCK,
    norm="rmsnorm_offset", mlp="gated", logit_softcap="final_logit_softcapping",
    tiny=lambda t: T.Gemma2Config(**t.dims, head_dim=8),
    notes="RMSNorm scales by (1 + weight); attention and MLP outputs are normed before the residual add; "
          "attention and final logits are soft-capped.",
))
register(Family(
    name="gemma3", model_types=("gemma3_text",), **_LLAMA_MODEL, block={**_SANDWICH_BLOCK, **_QK_NORMS},
    norm="rmsnorm_offset", mlp="gated", logit_softcap="final_logit_softcapping",
    tiny=lambda t: T.Gemma3TextConfig(**t.dims, head_dim=16, query_pre_attn_scalar=8, sliding_window=4,
                                      layer_types=_alternating(t), final_logit_softcapping=0.5),
    notes="Gemma 2's layout plus per-head q/k norms; sliding-window and global attention layers "
          "(config.layer_types); the embedding module scales by sqrt(d_model) itself.",
))
register(Family(
    name="phi3", model_types=("phi3",), **_LLAMA_MODEL,
    block={**_ATTN_BLOCK, "act": "mlp.activation_fn", "mlp_gate_up": "mlp.gate_up_proj", "mlp_out": "mlp.down_proj"},
    norm="rmsnorm", mlp="gated", tiny=lambda t: T.Phi3Config(**t.dims),
    notes="Fused q/k/v projection (self_attn.qkv_proj) and fused gate/up projection (gate first).",
))
register(Family(
    name="olmo2", model_types=("olmo2",), **_LLAMA_MODEL,
    block={**{k: v for k, v in _LLAMA_BLOCK.items() if k not in ("ln_attn", "ln_mlp")}, **_QK_NORMS,
           "ln_attn_post": "post_attention_layernorm", "ln_mlp_post": "post_feedforward_layernorm"},
    norm="rmsnorm", mlp="gated", tiny=lambda t: T.Olmo2Config(**t.dims),
    notes="Post-norm: attention and MLP read the residual stream un-normed and their outputs are normed "
          "before the residual add; q/k RMSNorms over all heads.",
))
register(Family(name="granite", model_types=("granite",), **_LLAMA_MODEL, block=_LLAMA_BLOCK,
                norm="rmsnorm", mlp="gated", **_GRANITE,
                tiny=lambda t: T.GraniteConfig(**t.dims, **_GRANITE_SCALES),
                notes="Llama's layout with multipliers: embeddings x embedding_multiplier, attention scores x "
                      "attention_multiplier, sublayer outputs x residual_multiplier before the residual add, "
                      "logits / logits_scaling."))
register(Family(name="mixtral", model_types=("mixtral",), **_LLAMA_MODEL, block=_MOE_BLOCK,
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK(renormalise=True),
                tiny=lambda t: T.MixtralConfig(**t.dims, num_local_experts=t.n_experts, **_moe(t))))
register(Family(name="olmoe", model_types=("olmoe",), **_LLAMA_MODEL, block={**_MOE_BLOCK, **_QK_NORMS},
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK(),
                tiny=lambda t: T.OlmoeConfig(**t.dims, num_experts=t.n_experts, **_moe(t))))
register(Family(name="qwen2_moe", model_types=("qwen2_moe",), **_LLAMA_MODEL,
                block={**_MOE_OR_DENSE_BLOCK, "shared": "mlp.shared_expert", "shared_gate": "mlp.shared_expert_gate"},
                norm="rmsnorm", mlp="gated", routing=SoftmaxTopK(),
                tiny=lambda t: T.Qwen2MoeConfig(**_dense_first(t), num_experts=t.n_experts, moe_intermediate_size=16,
                                                shared_expert_intermediate_size=32, **_moe(t))))
register(Family(name="qwen3_moe", model_types=("qwen3_moe",), **_LLAMA_MODEL,
                block={**_MOE_OR_DENSE_BLOCK, **_QK_NORMS}, norm="rmsnorm", mlp="gated", routing=SoftmaxTopK(),
                tiny=lambda t: T.Qwen3MoeConfig(**_dense_first(t), num_experts=t.n_experts, moe_intermediate_size=16,
                                                head_dim=8, **_moe(t))))
register(Family(name="deepseek_v3", model_types=("deepseek_v3",), **_LLAMA_MODEL,
                block={**_MOE_OR_DENSE_BLOCK, "shared": "mlp.shared_experts", "q_norm": "self_attn.q_a_layernorm",
                       "k_norm": "self_attn.kv_a_layernorm"},
                norm="rmsnorm", mlp="gated", routing=GroupedSigmoidTopK(),
                tiny=lambda t: T.DeepseekV3Config(
                    **{**t.dims, "num_hidden_layers": t.n_layers + 1, "num_key_value_heads": 4},
                    n_routed_experts=t.n_experts, moe_intermediate_size=16, n_group=2, topk_group=1,
                    first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4,
                    v_head_dim=8, **_moe(t)),
                notes="The first config.first_k_dense_replace layers are dense; multi-head latent attention."))
register(Family(name="gpt_oss", model_types=("gpt_oss",), **_LLAMA_MODEL,
                block={**_ATTN_BLOCK, "router": "mlp.router", "experts": "mlp.experts"},
                norm="rmsnorm", mlp="gated", routing=TopKSoftmax(),
                tiny=lambda t: T.GptOssConfig(**{**t.dims, "intermediate_size": 16, "max_position_embeddings": 131072},
                                              num_local_experts=t.n_experts, head_dim=8, **_moe(t)),
                notes="The MLP returns (hidden, router_scores); attention has sinks."))
register(Family(name="granitemoe", model_types=("granitemoe",), **_LLAMA_MODEL,
                block={**_ATTN_BLOCK, "mlp": "block_sparse_moe", "router": "block_sparse_moe.router",
                       "experts": "block_sparse_moe.experts"},
                norm="rmsnorm", mlp="gated", routing=TopKSoftmax(float_logits=True), **_GRANITE,
                tiny=lambda t: T.GraniteMoeConfig(**t.dims, num_local_experts=t.n_experts, **_moe(t),
                                                  **_GRANITE_SCALES),
                notes="Granite's multipliers; top-k on float32 router logits, softmax over the k."))
