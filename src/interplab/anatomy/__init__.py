"""Architecture knowledge in one place: family tables, the anatomy summary, routing rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import tables  # noqa: F401  (registers the built-in families)
from .families import BLOCK_NAMES, FAMILIES, Family, TinySize, register
from .routing import GroupedSigmoidTopK, RoutingRule, SoftmaxTopK, TopKSoftmax

__all__ = [
    "BLOCK_NAMES", "FAMILIES", "Anatomy", "Family", "FinalLogits", "GroupedSigmoidTopK", "MoeAnatomy", "RoutingRule",
    "SoftmaxTopK", "TinySize", "TopKSoftmax", "UnsupportedModelError", "describe", "family_for", "get_path",
    "register",
]


class UnsupportedModelError(ValueError):
    """The model's architecture has no anatomy table."""


@dataclass(frozen=True)
class MoeAnatomy:
    n_experts: int
    top_k: int
    moe_layers: tuple[int, ...]
    rule: RoutingRule
    shared_experts: bool


@dataclass(frozen=True)
class FinalLogits:
    """What a model does to its unembedding's output to make the logits: divide by ``divisor``
    (Granite's ``logits_scaling``), then soft-cap at ``softcap`` (Gemma 2/3): ``tanh(x / c) * c``."""

    divisor: float = 1.0
    softcap: float | None = None

    def __call__(self, out: Tensor) -> Tensor:
        if self.divisor != 1.0:
            out = out / self.divisor
        if self.softcap is not None:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

    def __str__(self) -> str:
        parts = [f"/ {self.divisor:g}"] if self.divisor != 1.0 else []
        if self.softcap is not None:
            parts.append(f"soft-capped at {self.softcap:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Anatomy:
    """The shape of one loaded model, read off its config and modules.

    ``n_heads`` query heads of ``d_head`` features each (the attention output projection reads
    ``n_heads * d_head`` features, which need not equal ``d_model``), sharing ``n_kv_heads``
    key/value heads (grouped-query attention when fewer). ``parallel``: attention and MLP read the
    same residual stream. ``residual_multiplier``: each sublayer's output is multiplied by it
    before the residual add (Granite). ``final_logits``: the unembedding's output -> logits.
    """

    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    vocab_size: int
    moe: MoeAnatomy | None
    parallel: bool = False
    residual_multiplier: float = 1.0
    final_logits: FinalLogits = field(default_factory=FinalLogits)

    def __str__(self) -> str:
        heads = f"{self.n_heads} heads" + (f" ({self.n_kv_heads} key/value)" if self.n_kv_heads != self.n_heads else "")
        text = f"{self.family}: {self.n_layers} layers, {heads}, head_dim {self.d_head}, d_model {self.d_model}, " \
               f"vocab {self.vocab_size}"
        if self.parallel:
            text += ", parallel attention and MLP"
        if self.residual_multiplier != 1.0:
            text += f", sublayer outputs x {self.residual_multiplier:g} into the residual stream"
        if str(self.final_logits):
            text += f", logits {self.final_logits}"
        if self.moe:
            text += (f"; MoE {self.moe.n_experts} experts top-{self.moe.top_k} ({self.moe.rule.name}) in "
                     f"{len(self.moe.moe_layers)} of {self.n_layers} layers")
        return text


def family_for(config) -> Family:
    """The family table for a transformers config, or a clear error."""
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES.values())
    raise UnsupportedModelError(
        f"interplab has no anatomy table for model_type {model_type!r}. Supported families: {supported}. "
        "To add one, describe where its blocks, attention, MLP, norms and router live with "
        "interplab.anatomy.register(interplab.anatomy.Family(name=..., model_types=(...,), layers=..., "
        "embed=..., final_norm=..., unembed=..., block={...}, norm=..., mlp=..., routing=...)); "
        "see interplab/anatomy/families.py for the vocabulary, tables.py for examples and docs/architecture.md."
    )


def get_path(root: nn.Module, path: str) -> nn.Module | None:
    """The submodule at a dotted path (ModuleList indices allowed), or None if it is absent."""
    module = root
    for part in path.split("."):
        module = getattr(module, part, None) if not part.isdigit() else _index(module, int(part))
        if module is None:
            return None
    return module


def _index(module, i: int):
    try:
        return module[i]
    except (TypeError, IndexError):
        return None


def describe(hf: nn.Module, family: Family) -> Anatomy:
    """Read the anatomy off a built model: counts from its config, MoE layers from its modules."""
    config = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
    layers = get_path(hf, family.layers)
    if layers is None:
        raise UnsupportedModelError(
            f"{type(hf).__name__} has model_type {config.model_type!r} but no decoder layers at "
            f"{family.layers!r}; its anatomy table ({family.name}) does not match this class."
        )
    n_heads = config.num_attention_heads
    attn_out = get_path(layers[0], family.block["attn_out"])
    in_features = attn_out.weight.shape[0 if family.conv1d else 1]
    moe = None
    if family.routing is not None:
        moe_layers = tuple(i for i, block in enumerate(layers) if get_path(block, family.block["router"]) is not None)
        router = get_path(layers[moe_layers[0]], family.block["router"]) if moe_layers else None
        if router is not None:
            moe = MoeAnatomy(
                n_experts=router.weight.shape[0], top_k=router.top_k, moe_layers=moe_layers,
                rule=family.routing,
                shared_experts="shared" in family.block
                and get_path(layers[moe_layers[0]], family.block["shared"]) is not None,
            )
    softcap = _config_value(config, family.logit_softcap, None)
    return Anatomy(
        family=family.name, n_layers=len(layers), n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads, d_model=config.hidden_size,
        d_head=in_features // n_heads, vocab_size=config.vocab_size, moe=moe,
        parallel=family.parallel_blocks(config),
        residual_multiplier=float(_config_value(config, family.residual_scale, 1.0)),
        final_logits=FinalLogits(divisor=float(_config_value(config, family.logit_scale, 1.0)),
                                 softcap=None if softcap is None else float(softcap)),
    )


def _config_value(config, name: str | None, default: float | None) -> float | None:
    """The config attribute a family table names (``default`` when unnamed or unset)."""
    value = getattr(config, name, None) if name else None
    return default if value is None else value
