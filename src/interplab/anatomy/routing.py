"""Router selection rules: recompute a MoE layer's top-k choice from the router's input.

Under transformers 5 a router returns ``(logits, top_k_weights, top_k_indices)`` and the MoE block
uses only the weights and indices, so editing the logits changes nothing. These rules recompute
the family's own selection from the router input (bit-exact without masks) and can apply two
interventions before selecting:

- ``off``: the expert cannot be selected (its score becomes -inf); the next-best takes its place
  and the weights follow the family's rule (renormalised where the family renormalises).
- ``on``: the expert is forced into the top-k with the top weight (its score becomes the row's
  maximum plus a margin, as SteerMoE does in log-space).

Masks are boolean tensors broadcastable to ``[tokens, n_experts]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Mask = Tensor | None

_MARGIN = 0.01


def _force(scores: Tensor, off: Mask, on: Mask) -> Tensor:
    """Apply off (-inf) and on (row max + margin) to selection scores."""
    if off is None and on is None:
        return scores
    scores = scores.clone()
    if off is not None:
        scores = scores.masked_fill(off.to(scores.device), float("-inf"))
    if on is not None:
        on = on.to(scores.device).expand_as(scores)
        top = scores.masked_fill(on, float("-inf")).amax(dim=-1, keepdim=True)
        scores = torch.where(on, top + _MARGIN, scores)
    return scores


@dataclass(frozen=True)
class SoftmaxTopK:
    """Softmax over all experts, top-k, optional renormalisation (Mixtral, OLMoE, Qwen-MoE).

    ``renormalise=None`` reads the router's own ``norm_topk_prob`` attribute.
    """

    renormalise: bool | None = None
    name: str = "softmax-topk"

    def logits(self, router: nn.Module, hidden: Tensor) -> Tensor:
        hidden = hidden.reshape(-1, router.weight.shape[1])
        return F.linear(hidden, router.weight, getattr(router, "bias", None))

    def select(self, router: nn.Module, logits: Tensor, off: Mask = None, on: Mask = None):
        probs = torch.softmax(_force(logits, off, on).float(), dim=-1)
        weights, indices = torch.topk(probs, router.top_k, dim=-1)
        renorm = self.renormalise if self.renormalise is not None else router.norm_topk_prob
        if renorm:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        if self.renormalise is None:  # OLMoE and Qwen routers cast back to the logits' dtype
            weights = weights.to(logits.dtype)
        return weights, indices

    def probabilities(self, router: nn.Module, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=-1)


@dataclass(frozen=True)
class TopKSoftmax:
    """Top-k on raw logits (with the router's bias, if it has one), then softmax over the k
    (GPT-OSS, GraniteMoE).

    ``float_logits``: the logits are computed in float32 and the weights cast back to the router's
    dtype (GraniteMoE); otherwise both stay in the router's dtype (GPT-OSS).
    """

    float_logits: bool = False
    name: str = "topk-softmax"

    def logits(self, router: nn.Module, hidden: Tensor) -> Tensor:
        hidden = hidden.reshape(-1, router.weight.shape[1])
        logits = F.linear(hidden, router.weight, getattr(router, "bias", None))
        return logits.float() if self.float_logits else logits

    def select(self, router: nn.Module, logits: Tensor, off: Mask = None, on: Mask = None):
        values, indices = torch.topk(_force(logits, off, on), router.top_k, dim=-1)
        weights = torch.softmax(values, dim=-1, dtype=values.dtype)
        return (weights.to(router.weight.dtype) if self.float_logits else weights), indices

    def probabilities(self, router: nn.Module, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=-1)


@dataclass(frozen=True)
class GroupedSigmoidTopK:
    """DeepSeek-V3: sigmoid scores, a correction bias used for selection only, group-limited
    top-k, renormalisation, and ``routed_scaling_factor``."""

    name: str = "sigmoid-group-topk"

    def logits(self, router: nn.Module, hidden: Tensor) -> Tensor:
        hidden = hidden.reshape(-1, router.weight.shape[1])
        return F.linear(hidden.type(torch.float32), router.weight.type(torch.float32))

    def select(self, router: nn.Module, logits: Tensor, off: Mask = None, on: Mask = None):
        scores = logits.sigmoid()
        choice = scores + router.e_score_correction_bias
        if off is not None:
            choice = choice.masked_fill(off.to(choice.device), float("-inf"))
        n_group, n_experts = router.num_group, router.num_experts
        group_scores = choice.view(-1, n_group, n_experts // n_group).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(-1, n_group, n_experts // n_group).reshape(-1, n_experts)
        choice = choice.masked_fill(~score_mask.bool(), float("-inf"))
        if on is not None:
            on = on.to(choice.device).expand_as(choice)
            choice = torch.where(on, torch.full_like(choice, float("inf")), choice)
            scores = torch.where(on, scores.amax(dim=-1, keepdim=True), scores)
        indices = torch.topk(choice, k=router.top_k, dim=-1, sorted=False)[1]
        weights = scores.gather(1, indices)
        if router.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * router.routed_scaling_factor, indices

    def probabilities(self, router: nn.Module, logits: Tensor) -> Tensor:
        return logits.sigmoid()


class RoutingRule(Protocol):
    """What a family's routing rule provides (a new rule only has to implement these)."""

    name: str

    def logits(self, router: nn.Module, hidden: Tensor) -> Tensor:
        """The router's logits ``[tokens, n_experts]`` from its input, exactly as the router computes them."""

    def select(self, router: nn.Module, logits: Tensor, off: Mask = None, on: Mask = None) -> tuple[Tensor, Tensor]:
        """Top-k ``(weights, indices)`` as the MoE block uses them, with experts ``off`` / forced ``on``."""

    def probabilities(self, router: nn.Module, logits: Tensor) -> Tensor:
        """The router's distribution over all experts (softmax; sigmoid scores for DeepSeek-V3)."""
