"""Which experts to switch off or force on: validated ``(layer, expert)`` sets as per-layer masks.

``off=[(layer, expert), ...]`` and ``on=[...]`` name experts by decoder-layer index (not the index
among MoE layers) and expert number. Items may also be ``(layer, expert, score)`` triples, so the
output of ``ExpertScan.top(k)`` can be passed straight in.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..anatomy import FAMILIES
from ..model import Model

__all__ = ["ExpertMasks", "combine", "expert_masks", "moe_of"]


def moe_of(model: Model):
    """The model's ``MoeAnatomy``, or a clear error for a dense model."""
    moe = model.anatomy.moe
    if moe is None:
        moe_families = ", ".join(name for name, family in FAMILIES.items() if family.is_moe)
        raise ValueError(f"{model.name} is a dense {model.family.name} model: the experts instrument needs a "
                         f"Mixture-of-Experts model ({moe_families})")
    return moe


@dataclass(frozen=True)
class ExpertMasks:
    """Experts switched off and forced on, per decoder layer (validated against one model)."""

    off: dict[int, frozenset[int]] = field(default_factory=dict)
    on: dict[int, frozenset[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.off or self.on)

    @property
    def layers(self) -> list[int]:
        return sorted(set(self.off) | set(self.on))

    def pairs(self, which: str) -> list[tuple[int, int]]:
        """``[(layer, expert), ...]`` of ``which`` ("off" or "on"), sorted."""
        table = self.off if which == "off" else self.on
        return sorted((layer, e) for layer, experts in table.items() for e in experts)

    def tensors(self, layer: int, n_experts: int, device) -> tuple[Tensor | None, Tensor | None]:
        """Boolean ``[n_experts]`` masks (or None) for one layer, as the routing rules take them."""
        return _mask(self.off.get(layer), n_experts, device), _mask(self.on.get(layer), n_experts, device)



def _mask(experts: frozenset[int] | None, n_experts: int, device) -> Tensor | None:
    if not experts:
        return None
    mask = torch.zeros(n_experts, dtype=torch.bool)
    mask[list(experts)] = True
    return mask.to(device)


def _pairs(model: Model, items: Iterable | None, what: str) -> dict[int, frozenset[int]]:
    moe = moe_of(model)
    if items is None:
        return {}
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise TypeError(f"{what}= takes a list of (layer, expert) pairs, e.g. {what}=[(3, 5)]; got {items!r}")
    items = list(items)
    if items and all(isinstance(i, int) for i in items):
        hint = f": for one expert write {what}=[{tuple(items[:2])!r}]" if len(items) in (2, 3) else ""
        raise TypeError(f"{what}= takes a list of (layer, expert) pairs; got {tuple(items)!r}{hint}")
    table: dict[int, set[int]] = {}
    for item in items:
        if isinstance(item, str | bytes) or not isinstance(item, tuple | list) or len(item) not in (2, 3):
            raise TypeError(f"each {what}= item must be a (layer, expert) pair (or a (layer, expert, score) "
                            f"triple from scan.top()); got {item!r}")
        try:
            if isinstance(item[0], bool) or isinstance(item[1], bool):
                raise TypeError
            layer, expert = operator.index(item[0]), operator.index(item[1])
        except TypeError:
            raise TypeError(f"{what}= item {item!r}: layer and expert must be integers") from None
        if not 0 <= layer < model.anatomy.n_layers:
            raise ValueError(f"{what}= item {item!r}: layer {layer} is out of range; this model has decoder "
                             f"layers 0..{model.anatomy.n_layers - 1}")
        if layer not in moe.moe_layers:
            raise ValueError(f"{what}= item {item!r}: decoder layer {layer} is dense (it has no router); "
                             f"the MoE layers are {list(moe.moe_layers)}")
        if not 0 <= expert < moe.n_experts:
            raise ValueError(f"{what}= item {item!r}: expert {expert} is out of range; each MoE layer has "
                             f"experts 0..{moe.n_experts - 1}")
        table.setdefault(layer, set()).add(expert)
    return {layer: frozenset(experts) for layer, experts in table.items()}


def expert_masks(model: Model, off: Iterable | None = None, on: Iterable | None = None) -> ExpertMasks:
    """Validate ``off``/``on`` against ``model`` and return them as ``ExpertMasks``.

    Errors: a layer that is out of range or dense, an expert out of range, the same expert both
    off and on, more experts forced on in one layer than the model's ``top_k``, or so many experts
    off in one layer that fewer than ``top_k`` remain selectable.
    """
    if isinstance(off, ExpertMasks) and on is None:
        return off
    moe = moe_of(model)
    off_t, on_t = _pairs(model, off, "off"), _pairs(model, on, "on")
    for layer in sorted(set(off_t) & set(on_t)):
        both = sorted(off_t[layer] & on_t[layer])
        if both:
            raise ValueError(f"expert(s) {both} of layer {layer} are both switched off and forced on; "
                             "name each expert in only one of off= and on=")
    for layer, experts in on_t.items():
        if len(experts) > moe.top_k:
            raise ValueError(f"{len(experts)} experts forced on in layer {layer} ({sorted(experts)}), but the "
                             f"model selects only top_k={moe.top_k} per token; force at most {moe.top_k} per layer")
    for layer, experts in off_t.items():
        if moe.n_experts - len(experts) < moe.top_k:
            raise ValueError(f"{len(experts)} of {moe.n_experts} experts switched off in layer {layer}: fewer "
                             f"than top_k={moe.top_k} remain to route to; switch off at most "
                             f"{moe.n_experts - moe.top_k} per layer")
    return ExpertMasks(off=off_t, on=on_t)


def combine(model: Model, *masks: ExpertMasks) -> ExpertMasks:
    """The union of several mask sets, validated again as one (a conflict between them is an error)."""
    masks = [m for m in masks if m]
    if len(masks) < 2:
        return masks[0] if masks else ExpertMasks()
    off = [p for m in masks for p in m.pairs("off")]
    on = [p for m in masks for p in m.pairs("on")]
    return expert_masks(model, off=off, on=on)
