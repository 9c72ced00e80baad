"""fTRI scans: which experts a behaviour routes to more than a control does.

For every counted token ``t`` of a prompt ``p`` and MoE layer ``l`` the model selects ``top_k``
experts with weights ``w[t, l, e]`` (0 for experts not selected). Per set of prompts:

- ``selection_rate[l, e] = A / N``: ``A`` the number of counted tokens of the set that selected
  ``e`` in layer ``l``, ``N`` the set's number of counted tokens (SteerMoE).
- ``mean_weight[l, e] = mean_p (1 / T_p) sum_{t in p} w[t, l, e]``: each prompt's activation map
  (routing weight mass per counted token) averaged over the prompts that have counted tokens
  (MoTE).

``risk_diff`` and ``contrast`` are the behaviour set's map minus the control set's. Which tokens
count is the user's choice (``tokens=``): the prompt's, the response's (generated greedily, or
given, then teacher-forced after the prompt in one batched pass), or both, since routing on the
prompt need not predict routing while the model answers. Statistics are running sums on the
model's device, batch by batch: a scan never holds per-token routing beyond one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .. import run
from ..checks import check_count
from ..model import Model
from .capture import BatchRouting, capture_batch
from .generate import MAX_NEW_TOKENS, response_rows
from .interventions import active_masks, routing_plan
from .masks import ExpertMasks, moe_of
from .result import SCORES, ExpertScan, SetStats
from .template import as_prompts

__all__ = ["TOKENS", "RunningStats", "scan"]

TOKENS = ("prompt", "response", "all")


class RunningStats:
    """Running sums of one prompt set's routing (see the module docstring), kept on ``device``."""

    def __init__(self, n_moe_layers: int, n_experts: int, device):
        self.shape = (n_moe_layers, n_experts)
        size = n_moe_layers * n_experts
        self.weight = torch.zeros(size, dtype=torch.float64, device=device)
        self.count = torch.zeros(size, dtype=torch.float64, device=device)
        self.n_tokens = torch.zeros((), dtype=torch.long, device=device)
        self.n_prompts = torch.zeros((), dtype=torch.long, device=device)
        self.offsets = torch.arange(n_moe_layers, device=device)[:, None, None] * n_experts

    def add(self, routing: BatchRouting, counted: Tensor) -> None:
        """Add one batch: ``routing`` of its ``[batch * seq]`` rows, ``counted`` ``[batch, seq]`` bool."""
        per_prompt = counted.sum(dim=1)
        flat = counted.flatten()
        scale = (1.0 / per_prompt.clamp(min=1)).double().repeat_interleave(counted.shape[1])[flat]
        slots = (routing.indices[:, flat] + self.offsets).flatten()
        mass = routing.weights[:, flat].double() * scale[None, :, None]
        self.weight.index_add_(0, slots, mass.flatten())
        self.count += torch.bincount(slots, minlength=self.count.numel())
        self.n_tokens += per_prompt.sum()
        self.n_prompts += (per_prompt > 0).sum()

    def stats(self, n_layers: int, moe_layers: Sequence[int], what: str) -> SetStats:
        n_tokens, n_prompts = int(self.n_tokens), int(self.n_prompts)
        if n_tokens == 0:
            raise ValueError(f"the {what} set has no counted tokens (with tokens='response', every response "
                             "was empty: raise max_new_tokens or give responses=)")
        rate = torch.full((n_layers, self.shape[1]), float("nan"), dtype=torch.float64)
        weight = rate.clone()
        rate[list(moe_layers)] = (self.count / n_tokens).view(self.shape).cpu()
        weight[list(moe_layers)] = (self.weight / n_prompts).view(self.shape).cpu()
        return SetStats(n_prompts=n_prompts, n_tokens=n_tokens, selection_rate=rate.float(),
                        mean_weight=weight.float())


def _set_stats(model: Model, prompts: Sequence[str], responses: Sequence[str] | None, tokens: str,
               masks: ExpertMasks, *, batch_size: int, max_new_tokens: int, progress: bool, what: str) -> SetStats:
    moe = moe_of(model)
    running = RunningStats(len(moe.moe_layers), moe.n_experts, model.device)
    plan = routing_plan(model, masks)
    for start, batch in run.steps(prompts, batch_size, desc=f"scan {what}", unit="prompt", progress=progress):
        rows = run.token_ids(model, batch)
        if tokens == "prompt":
            seqs, flags = rows, [[True] * len(r) for r in rows]
        else:
            if responses is None:
                answers = response_rows(model, rows, max_new_tokens)
            else:
                answers = _response_ids(model, responses[start:start + len(batch)])
            seqs = [r + a for r, a in zip(rows, answers)]
            flags = [[tokens == "all"] * len(r) + [True] * len(a) for r, a in zip(rows, answers)]
        padded = run.pad(seqs, "right", model.tokenizer.pad_token_id, model.device)
        running.add(capture_batch(model, padded.input_ids, padded.attention_mask, plan), padded.spread(flags))
    return running.stats(model.anatomy.n_layers, moe.moe_layers, what)


def _response_ids(model: Model, responses: Sequence[str]) -> list[list[int]]:
    """Token ids of given responses (no special tokens; an empty response counts no tokens)."""
    return [list(r) for r in model.tokenizer(list(responses), add_special_tokens=False)["input_ids"]]


def _check_responses(responses, behaviour, control):
    if responses is None:
        return None, None
    if not isinstance(responses, tuple | list) or len(responses) != 2:
        raise TypeError("responses= takes a pair (behaviour_responses, control_responses) of string lists, "
                        "aligned with the prompts")
    for name, given, prompts in (("behaviour", responses[0], behaviour), ("control", responses[1], control)):
        if isinstance(given, str) or not isinstance(given, Sequence) or any(not isinstance(r, str) for r in given):
            raise TypeError(f"{name} responses must be a list of strings")
        if len(given) != len(prompts):
            raise ValueError(f"{len(given)} {name} responses for {len(prompts)} {name} prompts; give one per prompt")
    return responses[0], responses[1]


def scan(model: Model, behaviour, control, *, tokens: str = "prompt", score: str = "contrast",
         responses: tuple[Sequence[str], Sequence[str]] | None = None, max_new_tokens: int = 32,
         batch_size: int = 32, progress: bool = True) -> ExpertScan:
    """Scan the routing of a behaviour prompt set against a control set (lists or ``Template``s).

    ``tokens``: which tokens count, "prompt", "response" or "all" (prompt + response). For the
    response, the model generates greedily (``max_new_tokens``, stopping at end of sequence)
    unless ``responses=(behaviour_responses, control_responses)`` gives them. ``score``:
    "contrast" (MoTE) or "risk_diff" (SteerMoE); both stay available on the result. Runs inside
    an ``intervene`` block use its routing.
    """
    moe = moe_of(model)
    if tokens not in TOKENS:
        raise ValueError(f"tokens must be one of {TOKENS}; got {tokens!r}")
    max_new_tokens = check_count("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    batch_size = check_count("batch_size", batch_size, 1)
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}; got {score!r}")
    behaviour, control = as_prompts(behaviour, "behaviour"), as_prompts(control, "control")
    if responses is not None and tokens == "prompt":
        raise ValueError("responses= are only used with tokens='response' or tokens='all'")
    b_resp, c_resp = _check_responses(responses, behaviour, control)
    masks = active_masks(model)
    common = dict(tokens=tokens, masks=masks, batch_size=batch_size, max_new_tokens=max_new_tokens,
                  progress=progress)
    return ExpertScan(
        behaviour=_set_stats(model, behaviour, b_resp, what="behaviour", **common),
        control=_set_stats(model, control, c_resp, what="control", **common),
        score=score, tokens=tokens, moe_layers=tuple(moe.moe_layers), n_experts=moe.n_experts, top_k=moe.top_k,
        model=model.name)
