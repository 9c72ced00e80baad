"""Route a model's MoE layers with experts switched off or forced on, in any trace or generation.

The mechanism is the anatomy's routing rule (``interplab.anatomy.routing``): a MoE block uses only
the weights and indices its router returns, so an intervention reads the router's input,
recomputes the family's own selection with the masks, and sets the router envoy's output to
``(logits, weights, indices)``.

Two ways to use it:

- ``with il.experts.intervene(model, off=[(3, 5)], on=[...]):`` routes every ``il.experts``
  function run inside the block with the masks (at every forward pass and every decoding step),
  and every ``model.trace(...)`` of your own (a standing intervention, ``Model.edited``, that runs
  before the trace's own interventions, so those see and may further change the rerouted values).
  Your own ``model.generate(...)`` is rerouted on its first forward pass only: for every step,
  call ``apply_routing`` inside ``for step in tracer.iter[:n]``, or use ``il.experts.generate``.
  Contexts nest; the inner one routes with the union of both sets. Calls of ``model.hf`` itself
  bypass nnsight and are not rerouted.
- ``il.experts.apply_routing(model, off=..., on=...)`` called *inside* a trace body reroutes that
  forward pass only (inside ``for step in tracer.all():`` for every step of a generation).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn

from ..model import Model
from .masks import ExpertMasks, combine, expert_masks, moe_of

__all__ = ["LayerRoute", "active_masks", "apply_routing", "intervene", "route_layer", "routing_plan"]

# The mask sets of the intervene() blocks open on each model (keyed by the transformers module).
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, list[ExpertMasks]] = weakref.WeakKeyDictionary()


def active_masks(model: Model) -> ExpertMasks:
    """The union of the masks of every ``intervene`` block currently open on ``model``."""
    return combine(model, *_ACTIVE.get(model.hf, []))


@dataclass(frozen=True)
class LayerRoute:
    """What a trace body needs to route one MoE layer: its router envoy and module, and masks."""

    layer: int
    envoy: object
    module: nn.Module
    off: Tensor | None
    on: Tensor | None

    @property
    def masked(self) -> bool:
        return self.off is not None or self.on is not None


def routing_plan(model: Model, masks: ExpertMasks, *, only_masked: bool = False) -> list[LayerRoute]:
    """One ``LayerRoute`` per MoE layer (or per masked layer), in forward order."""
    moe = moe_of(model)
    plan = []
    for layer in moe.moe_layers:
        if only_masked and layer not in masks.layers:
            continue
        module = model.blocks[layer].module("router")
        off, on = masks.tensors(layer, moe.n_experts, module.weight.device)
        plan.append(LayerRoute(layer, model.router(layer), module, off, on))
    return plan


def route_layer(step: LayerRoute, rule, write: bool):
    """Inside a trace body: the layer's ``(logits, weights, indices)`` recomputed from the router
    input with the step's masks; with ``write`` the MoE block then uses them."""
    hidden = step.envoy.input
    logits = rule.logits(step.module, hidden)
    weights, indices = rule.select(step.module, logits, off=step.off, on=step.on)
    if write:
        step.envoy.output = (logits, weights, indices)
    return logits, weights, indices


def apply_routing(model: Model, off: Iterable | None = None, on: Iterable | None = None) -> None:
    """Call inside a trace body: route this forward pass with ``off``/``on`` (plus any open
    ``intervene`` block's masks). Must come before any read of a later layer."""
    masks = combine(model, active_masks(model), expert_masks(model, off, on))
    rule = model.anatomy.moe.rule
    for step in routing_plan(model, masks, only_masked=True):
        route_layer(step, rule, True)


@contextmanager
def intervene(model: Model, off: Iterable | None = None, on: Iterable | None = None) -> Iterator[ExpertMasks]:
    """Within the block, every nnsight run of ``model`` is routed with ``off``/``on`` at every
    forward pass and decoding step. Yields the (combined) ``ExpertMasks`` in force."""
    new = expert_masks(model, off, on)
    stack = _ACTIVE.setdefault(model.hf, [])
    masks = combine(model, *stack, new)
    if not new:
        yield masks
        return
    plan = routing_plan(model, masks, only_masked=True)
    rule = model.anatomy.moe.rule

    def reroute() -> None:
        for step in plan:
            route_layer(step, rule, True)

    stack.append(new)
    try:
        with model.edited(reroute):
            yield masks
    finally:
        stack[:] = [m for m in stack if m is not new]
