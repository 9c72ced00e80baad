"""One traced forward pass that records every MoE layer's routing: the engine under ``route`` and ``scan``.

Per MoE layer the router's input is read and the family's selection recomputed from it (bit-exact
with the model's own), with any off/on masks applied and written back so the model runs with
them. The trace stops after the last MoE router: capture needs no experts of that layer, no
later layers and no unembedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import Model
from .interventions import LayerRoute, route_layer, routing_plan
from .masks import ExpertMasks

__all__ = ["BatchRouting", "capture_batch"]


@dataclass(frozen=True)
class BatchRouting:
    """Routing of every row of a ``[batch, seq]`` input, stacked over MoE layers.

    ``weights``/``indices``: ``[n_moe_layers, batch * seq, top_k]``; ``probabilities``:
    ``[n_moe_layers, batch * seq, n_experts]`` or None.
    """

    weights: Tensor
    indices: Tensor
    probabilities: Tensor | None


def capture_batch(model: Model, input_ids: Tensor, attention_mask: Tensor, plan: list[LayerRoute] | ExpertMasks,
                  *, probabilities: bool = False) -> BatchRouting:
    """Run one forward pass over a padded batch and return its routing (see ``BatchRouting``).

    ``plan`` is ``routing_plan(model, masks)`` (build it once for many batches), or the masks.
    """
    rule = model.anatomy.moe.rule
    if isinstance(plan, ExpertMasks):
        plan = routing_plan(model, plan)
    saved = []
    with torch.no_grad(), model.trace(input_ids=input_ids, attention_mask=attention_mask) as tracer:
        for step in plan:
            logits, weights, indices = route_layer(step, rule, step.masked)
            probs = rule.probabilities(step.module, logits).save() if probabilities else None
            saved.append((weights.save(), indices.save(), probs))
        tracer.stop()
    weights = torch.stack([w.float() for w, _, _ in saved])
    indices = torch.stack([i for _, i, _ in saved])
    probs = torch.stack([p.float() for _, _, p in saved]) if probabilities else None
    return BatchRouting(weights, indices, probs)
