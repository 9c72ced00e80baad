"""Test helpers for the experts instrument, written independently of interplab's routing code.

- ``planted(family)``: a tiny random MoE whose router rows are set by hand so that one known expert
  per MoE layer fires exactly for a trigger word. Two residual directions carry the plant: ``U``
  (large only in the trigger's embedding) and ``B`` (a constant in every embedding). The planted
  expert's router row is ``4 U - 4 B`` and every other row is blind to both, so after the norm the
  planted logit is about +20 on the trigger and about -20 elsewhere; the other writers into the
  residual stream (attention, experts) add components of order 0.01, far too small to flip it.
- ``own_routing``: the routing the model itself computes, read with plain torch forward hooks.
- ``reference_select`` / ``rerouted_logits``: the routing with experts removed, computed per family
  by hand (softmax families, GPT-OSS and GraniteMoE: the expert's router row deleted; DeepSeek-V3: its choice
  score set to -inf), and the model's logits when its routers are replaced by it (plain torch hooks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interplab.zoo.tiny import tiny

TRIGGER = "Mary"
U, B = 0, 1


def planted_expert(layer: int, n_experts: int = 8) -> int:
    return (3 * layer + 1) % n_experts


def routers(model) -> dict[int, torch.nn.Module]:
    return {i: model.blocks[i].module("router") for i in model.anatomy.moe.moe_layers}


def planted(family: str, device: str = "cpu"):
    """``(model, trigger_id)`` with expert ``planted_expert(layer)`` firing only on the trigger."""
    model = tiny(family, device=device)
    trigger = model.tokenizer.convert_tokens_to_ids(TRIGGER)
    with torch.no_grad():
        embed = model.module("embed").weight
        embed[:, U] = 0.0
        embed[:, B] = 0.2
        embed[trigger, U] = 2.0
        for layer, router in routers(model).items():
            router.weight[:, U] = 0.0
            router.weight[:, B] = 0.0
            e = planted_expert(layer, router.weight.shape[0])
            router.weight[e, U] = 4.0
            router.weight[e, B] = -4.0
    return model, trigger


def own_routing(model, input_ids, attention_mask=None) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``{layer: (logits, weights, indices)}`` exactly as the routers return them in a plain forward."""
    seen = {}
    hooks = [r.register_forward_hook(lambda m, a, out, layer=layer: seen.__setitem__(layer, out))
             for layer, r in routers(model).items()]
    try:
        with torch.no_grad():
            model.hf(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for h in hooks:
            h.remove()
    return seen


def reference_select(family: str, router, hidden: torch.Tensor, off: set[int]):
    """``(logits, weights, indices)`` of ``router`` on ``hidden`` with the experts in ``off`` removed."""
    h = hidden.reshape(-1, router.weight.shape[1])
    n, k = router.weight.shape[0], router.top_k
    if family == "deepseek_v3":
        logits = F.linear(h.float(), router.weight.float())
        scores = logits.sigmoid()
        choice = scores + router.e_score_correction_bias
        choice[:, sorted(off)] = float("-inf")
        g = router.num_group
        group_scores = choice.view(-1, g, n // g).topk(2, dim=-1)[0].sum(dim=-1)
        best_groups = group_scores.topk(router.topk_group, dim=-1)[1]
        allowed = torch.zeros_like(group_scores).scatter_(1, best_groups, 1).bool()
        allowed = allowed[:, :, None].expand(-1, g, n // g).reshape(-1, n)
        indices = choice.masked_fill(~allowed, float("-inf")).topk(k, dim=-1)[1]
        weights = scores.gather(1, indices)
        if router.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return logits, weights * router.routed_scaling_factor, indices
    keep = torch.tensor([e for e in range(n) if e not in off], device=h.device)
    bias = router.bias[keep] if getattr(router, "bias", None) is not None else None
    logits = F.linear(h, router.weight[keep], bias)
    if family in ("gpt_oss", "granitemoe"):  # top-k on the logits, softmax over the k
        values, local = logits.topk(k, dim=-1)
        weights = torch.softmax(values, dim=1)
    else:
        probs = torch.softmax(logits.float(), dim=-1)
        weights, local = probs.topk(k, dim=-1)
        if family == "mixtral" or router.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        if family != "mixtral":
            weights = weights.to(logits.dtype)
    full_logits = F.linear(h, router.weight, getattr(router, "bias", None))
    return full_logits, weights, keep[local]


def rerouted_logits(model, family: str, input_ids, off: dict[int, set[int]], attention_mask=None) -> torch.Tensor:
    """The model's output logits with its routers replaced by ``reference_select`` (plain torch)."""
    hooks = []
    for layer, router in routers(model).items():
        if layer in off:
            hooks.append(router.register_forward_hook(
                lambda m, args, out, gone=off[layer]: reference_select(family, m, args[0], gone)))
    try:
        with torch.no_grad():
            return model.hf(input_ids=input_ids, attention_mask=attention_mask).logits
    finally:
        for h in hooks:
            h.remove()
