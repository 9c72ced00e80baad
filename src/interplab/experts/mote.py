"""The MoTE experiment (Dahlke et al., arXiv 2502.11096): scan, then switch the top experts off,
switch as many random experts off, and force the top experts on; compare behaviour rates.

Choices made here (the paper publishes no code):

- The experts to switch off are the ``k`` highest-scoring ``(layer, expert)`` pairs of the scan,
  skipping any that would leave a layer with fewer than ``top_k`` experts to route to.
- Random controls draw ``k`` distinct pairs uniformly from all MoE ``(layer, expert)`` pairs that
  are *not* among the top ``k`` (same per-layer limit), one draw per trial from ``seed``.
- Forcing on walks the same ranking and keeps an expert only while its layer has fewer than
  ``top_k`` forced experts, until ``k`` are kept (or every layer holds ``top_k``, so at most
  ``top_k * n_moe_layers``): forcing ``top_k`` experts fixes that layer's routing completely.
- Each condition is evaluated by greedy generation on both prompt sets (behaviour and control),
  or on ``evaluate=(behaviour_prompts, control_prompts)`` (e.g. held-out prompts).
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..checks import check_count
from ..model import Model
from .generate import MAX_NEW_TOKENS, classify_all, generate
from .masks import moe_of
from .result import ExpertScan
from .scan import scan as run_scan
from .template import as_prompts

__all__ = ["MoteResult", "mote", "pick_forced", "pick_off", "pick_random"]

SETS = ("behaviour", "control")

#: the most random draws one experiment makes
MAX_TRIALS = 1000


@dataclass
class MoteResult:
    """Behaviour rates per condition and prompt set, with the experts each condition used."""

    k: int
    off: list[tuple[int, int, float]]
    forced: list[tuple[int, int, float]]
    random_sets: list[list[tuple[int, int]]]
    rates: dict[str, dict[str, float]]
    random_rates: dict[str, list[float]]
    n_prompts: dict[str, int]
    scan: ExpertScan | None = field(default=None, repr=False)

    def random_mean(self, which: str = "behaviour") -> float:
        return statistics.fmean(self.random_rates[which])

    def random_sd(self, which: str = "behaviour") -> float:
        rates = self.random_rates[which]
        return statistics.stdev(rates) if len(rates) > 1 else 0.0

    def to_frame(self) -> pd.DataFrame:
        """Columns: condition (baseline, top_off, random_off, forced_on), set, rate, sd, trials, n_prompts."""
        rows = []
        for which in SETS:
            rows.append(("baseline", which, self.rates["baseline"][which], 0.0, 1))
            rows.append(("top_off", which, self.rates["top_off"][which], 0.0, 1))
            rows.append(("random_off", which, self.random_mean(which), self.random_sd(which),
                         len(self.random_rates[which])))
            rows.append(("forced_on", which, self.rates["forced_on"][which], 0.0, 1))
        frame = pd.DataFrame(rows, columns=["condition", "set", "rate", "sd", "trials"])
        frame["n_prompts"] = frame["set"].map(self.n_prompts)
        return frame

    def to_dict(self) -> dict:
        return {"k": self.k, "off": self.off, "forced": self.forced, "random_sets": self.random_sets,
                "rates": self.rates, "random_rates": self.random_rates, "n_prompts": self.n_prompts,
                "random_mean": {w: self.random_mean(w) for w in SETS},
                "random_sd": {w: self.random_sd(w) for w in SETS}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        r = self.rates
        return (f"MoteResult(k={self.k}; behaviour rate: baseline {r['baseline']['behaviour']:.3f}, top-k off "
                f"{r['top_off']['behaviour']:.3f}, random-k off {self.random_mean():.3f}±{self.random_sd():.3f}, "
                f"forced on {r['forced_on']['behaviour']:.3f})")


def _first(ranking: Sequence[tuple[int, int, float]], k: int, per_layer_limit: int):
    per_layer: dict[int, int] = {}
    picked = []
    for layer, expert, score in ranking:
        if len(picked) == k:
            break
        if per_layer.get(layer, 0) < per_layer_limit:
            per_layer[layer] = per_layer.get(layer, 0) + 1
            picked.append((layer, expert, score))
    return picked


def pick_off(ranking: Sequence[tuple[int, int, float]], k: int, n_experts: int, top_k: int):
    """The first ``k`` of ``ranking`` leaving every layer at least ``top_k`` experts."""
    return _first(ranking, k, n_experts - top_k)


def pick_forced(ranking: Sequence[tuple[int, int, float]], k: int, top_k: int):
    """The first ``k`` of ``ranking`` with at most ``top_k`` per layer."""
    return _first(ranking, k, top_k)


def pick_random(candidates: Sequence[tuple[int, int]], k: int, n_experts: int, top_k: int,
                rng: random.Random, tries: int = 1000) -> list[tuple[int, int]]:
    """``k`` distinct random pairs from ``candidates``, at most ``n_experts - top_k`` per layer."""
    if k > len(candidates):
        raise ValueError(f"cannot draw {k} random experts from {len(candidates)} candidates")
    for _ in range(tries):
        draw = rng.sample(list(candidates), k)
        layers = [layer for layer, _ in draw]
        if all(layers.count(layer) <= n_experts - top_k for layer in set(layers)):
            return sorted(draw)
    raise ValueError(f"could not draw {k} random experts leaving top_k={top_k} per layer; lower k")


def _rates(model: Model, prompt_sets: dict[str, Sequence[str]], classify, off, on, **gen) -> dict[str, float]:
    rates = {}
    for which, prompts in prompt_sets.items():
        flags = classify_all(classify, generate(model, prompts, off, on, **gen))
        rates[which] = sum(flags) / len(flags)
    return rates


def mote(model: Model, behaviour, control, classify: Callable[[str], bool], *, k: int = 10, trials: int = 5,
         seed: int = 0, tokens: str = "prompt", score: str = "contrast", evaluate=None, max_new_tokens: int = 32,
         batch_size: int = 16, progress: bool = True) -> MoteResult:
    """Run the MoTE experiment (see the module docstring). ``classify`` marks a continuation as
    showing the behaviour (e.g. ``il.experts.refusal_classifier()``)."""
    moe = moe_of(model)
    k = check_count("k (experts per condition)", k, 1, len(moe.moe_layers) * moe.n_experts)
    trials = check_count("trials", trials, 1, MAX_TRIALS)
    seed = check_count("seed", seed, 0)
    max_new_tokens = check_count("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    batch_size = check_count("batch_size", batch_size, 1)
    if not callable(classify):
        raise TypeError(f"classify must be a function text -> bool; got {classify!r}")
    found = run_scan(model, behaviour, control, tokens=tokens, score=score, max_new_tokens=max_new_tokens,
                     batch_size=batch_size, progress=progress)
    ranking = found.top(len(moe.moe_layers) * moe.n_experts)
    off = pick_off(ranking, k, moe.n_experts, moe.top_k)
    forced = pick_forced(ranking, k, moe.top_k)
    chosen = {(layer, e) for layer, e, _ in off}
    candidates = [(layer, e) for layer in moe.moe_layers for e in range(moe.n_experts) if (layer, e) not in chosen]
    rng = random.Random(seed)
    random_sets = [pick_random(candidates, len(off), moe.n_experts, moe.top_k, rng) for _ in range(trials)]
    if evaluate is None:
        prompt_sets = {"behaviour": as_prompts(behaviour, "behaviour"), "control": as_prompts(control, "control")}
    else:
        if not isinstance(evaluate, tuple | list) or len(evaluate) != 2:
            raise TypeError("evaluate= takes a pair (behaviour_prompts, control_prompts)")
        prompt_sets = {"behaviour": as_prompts(evaluate[0], "evaluate[0]"),
                       "control": as_prompts(evaluate[1], "evaluate[1]")}
    gen = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    rates = {
        "baseline": _rates(model, prompt_sets, classify, None, None, **gen),
        "top_off": _rates(model, prompt_sets, classify, off, None, **gen),
        "forced_on": _rates(model, prompt_sets, classify, None, forced, **gen),
    }
    per_trial = [_rates(model, prompt_sets, classify, draw, None, **gen) for draw in random_sets]
    return MoteResult(k=k, off=off, forced=forced, random_sets=random_sets, rates=rates,
                      random_rates={w: [t[w] for t in per_trial] for w in SETS},
                      n_prompts={w: len(p) for w, p in prompt_sets.items()}, scan=found)
