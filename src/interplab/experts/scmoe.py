"""SCMoE: self-contrast decoding between a MoE model's normal ("strong") routing and a "weak" routing.

Shi et al., "Unchosen Experts Can Contribute Too" (reference code DavidFanzz/SCMoE). Per decoding
step the model runs twice on the same sequence: with its own top-k routing (log-probabilities
``z_strong``) and with every MoE layer routed to a single expert, the one of rank ``weak_rank``
(1 = the router's favourite) by the router's own distribution (softmax over experts; sigmoid for
DeepSeek-V3), with weight 1 (``z_weak``). The next token is the argmax of
``(1 + beta) * z_strong - beta * z_weak`` over the tokens with
``z_strong >= log(alpha) + max z_strong``.

Cost: two forward passes per step. With ``cache=True`` (default) each pass keeps its own KV cache
(the weak pass's cache holds keys and values computed under weak routing), so a step costs two
one-token forwards and the memory of two caches. ``cache=False`` recomputes both passes over the
whole sequence at every step: no cache memory, but quadratic time in the sequence length.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import run
from ..checks import check_count, check_number
from ..model import Model
from .generate import MAX_NEW_TOKENS, eos_ids
from .interventions import LayerRoute, routing_plan
from .masks import ExpertMasks, moe_of
from .template import as_prompts

__all__ = ["scmoe_generate", "weak_route"]


def weak_route(step: LayerRoute, rule, rank: int) -> None:
    """Inside a trace body: route every token of this layer to its rank-``rank`` expert alone, weight 1."""
    hidden = step.envoy.input
    logits = rule.logits(step.module, hidden)
    probs = rule.probabilities(step.module, logits)
    indices = probs.topk(rank, dim=-1).indices[:, rank - 1:]
    step.envoy.output = (logits, torch.ones(indices.shape, dtype=hidden.dtype, device=indices.device), indices)


def _last_logits(model: Model, inputs: dict, cache, weak_rank: int | None) -> Tensor:
    rule = model.anatomy.moe.rule
    plan = routing_plan(model, ExpertMasks()) if weak_rank else []
    kwargs = {**inputs, "use_cache": cache is not None}
    if cache is not None:
        kwargs["cache"] = cache
    with torch.no_grad(), model.trace(**kwargs):
        for step in plan:
            weak_route(step, rule, weak_rank)
        logits = model.unembed.output[:, -1].save()
    return model.anatomy.final_logits(logits.float())  # the model's logits (GraniteMoE divides by logits_scaling)


def _decode_batch(model: Model, rows: list[list[int]], *, beta: float, alpha: float, weak_rank: int,
                  max_new_tokens: int, cache: bool) -> list[list[int]]:
    from transformers import DynamicCache

    device, pad = model.device, model.tokenizer.pad_token_id
    padded = run.pad(rows, "left", pad, device)
    ids, attn, positions = padded.input_ids, padded.attention_mask, padded.position_ids
    caches = ({"strong": DynamicCache(config=model.hf.config), "weak": DynamicCache(config=model.hf.config)}
              if cache else {"strong": None, "weak": None})
    eos = torch.tensor(sorted(eos_ids(model)), device=device)
    done = torch.zeros(len(rows), dtype=torch.bool, device=device)
    new_tokens = []
    step_ids, step_pos = ids, positions
    for _ in range(max_new_tokens):
        inputs = {"input_ids": step_ids, "attention_mask": attn, "position_ids": step_pos}
        strong = torch.log_softmax(_last_logits(model, inputs, caches["strong"], None), dim=-1)
        weak = torch.log_softmax(_last_logits(model, inputs, caches["weak"], weak_rank), dim=-1)
        score = (1 + beta) * strong - beta * weak
        plausible = strong >= math.log(alpha) + strong.max(dim=-1, keepdim=True).values
        token = score.masked_fill(~plausible, float("-inf")).argmax(dim=-1)
        token = torch.where(done, torch.full_like(token, pad), token)
        new_tokens.append(token)
        done |= torch.isin(token, eos)
        if bool(done.all()):
            break
        ids = torch.cat([ids, token[:, None]], dim=1)
        attn = torch.cat([attn, torch.ones_like(token)[:, None]], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        step_ids, step_pos = (token[:, None], positions[:, -1:]) if cache else (ids, positions)
    out = torch.stack(new_tokens, dim=1).tolist()
    stops = set(eos.tolist())
    return [row[:next((j for j, t in enumerate(row) if t in stops), len(row))] for row in out]


def scmoe_generate(model: Model, prompts, *, beta: float = 0.5, alpha: float = 0.1, weak_rank: int = 2,
                   max_new_tokens: int = 32, batch_size: int = 8, cache: bool = True,
                   progress: bool = True) -> list[str]:
    """Decode each prompt's continuation with SCMoE (see the module docstring); greedy, batched."""
    moe = moe_of(model)
    alpha = check_number("alpha", alpha, 0, 1, low_open=True)
    beta = check_number("beta", beta, 0, 100)
    weak_rank = check_count("weak_rank (1 = the router's favourite expert)", weak_rank, 1, moe.n_experts)
    max_new_tokens = check_count("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    prompts = as_prompts(prompts)
    texts = []
    for _, batch in run.steps(prompts, batch_size, desc="scmoe", unit="prompt", progress=progress):
        rows = _decode_batch(model, run.token_ids(model, batch), beta=beta, alpha=alpha, weak_rank=weak_rank,
                             max_new_tokens=max_new_tokens, cache=cache)
        texts.extend(model.tokenizer.batch_decode(rows, skip_special_tokens=True))
    return texts
