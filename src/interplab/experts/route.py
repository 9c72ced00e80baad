"""``route``: the experts every real token of a prompt set selects, per MoE layer, exactly as the model routes."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .. import run
from ..checks import check_count
from ..model import Model
from .capture import capture_batch
from .interventions import active_masks, routing_plan
from .masks import combine, expert_masks, moe_of
from .result import Routing
from .template import as_prompts

__all__ = ["route"]


def route(model: Model, prompts, off: Iterable | None = None, on: Iterable | None = None, *,
          probabilities: bool = False, batch_size: int = 32, progress: bool = True) -> Routing:
    """Capture the routing of ``prompts`` (a list of strings, one string, or a ``Template``).

    With ``off``/``on`` (``[(layer, expert), ...]``) the model runs with those experts switched
    off / forced on, and the routing returned is the rerouted one. Prompts run in batches,
    right-padded; padded positions are never returned.
    """
    moe = moe_of(model)
    batch_size = check_count("batch_size", batch_size, 1)
    prompts = as_prompts(prompts)
    masks = combine(model, active_masks(model), expert_masks(model, off, on))
    layers = list(moe.moe_layers)
    plan = routing_plan(model, masks)
    parts = []
    for start, batch in run.steps(prompts, batch_size, desc="route", unit="prompt", progress=progress):
        encoded = run.encode(model, batch, side="right")
        ids, attn = encoded.input_ids, encoded.attention_mask
        captured = capture_batch(model, ids, attn, plan, probabilities=probabilities)
        keep = attn.flatten().bool()
        weights, order = captured.weights[:, keep].sort(dim=-1, descending=True, stable=True)
        indices = captured.indices[:, keep].gather(-1, order)
        b, s = ids.shape
        probs = captured.probabilities[:, keep].cpu() if probabilities else None
        parts.append((weights.cpu(), indices.cpu(), probs,
                      (start + torch.arange(b, device=keep.device)).repeat_interleave(s)[keep].cpu(),
                      torch.arange(s, device=keep.device).repeat(b)[keep].cpu(), ids.flatten()[keep].cpu()))
    weights = torch.cat([p[0] for p in parts], dim=1)
    indices = torch.cat([p[1] for p in parts], dim=1)
    n_tokens, k = weights.shape[1], moe.top_k
    n_layers = model.anatomy.n_layers
    all_indices = torch.full((n_tokens, n_layers, k), -1, dtype=torch.long)
    all_weights = torch.full((n_tokens, n_layers, k), float("nan"))
    all_indices[:, layers] = indices.permute(1, 0, 2).long()
    all_weights[:, layers] = weights.permute(1, 0, 2)
    all_probs = None
    if probabilities:
        all_probs = torch.full((n_tokens, n_layers, moe.n_experts), float("nan"))
        all_probs[:, layers] = torch.cat([p[2] for p in parts], dim=1).permute(1, 0, 2)
    token_ids = torch.cat([p[5] for p in parts])
    tokens = run.decode_each(model, token_ids)
    return Routing(prompts=list(prompts), indices=all_indices, weights=all_weights,
                   prompt=torch.cat([p[3] for p in parts]), position=torch.cat([p[4] for p in parts]),
                   token_ids=token_ids, tokens=tokens, moe_layers=tuple(layers), n_experts=moe.n_experts,
                   probabilities=all_probs, off=masks.pairs("off"), on=masks.pairs("on"))
