"""``compare``: what prompts generate without and with experts switched off / forced on, and how
often each output shows a behaviour.

    result = il.experts.compare(model, {"behaviour": refused, "control": answered}, off=scan.top(5),
                                classify=il.experts.refusal_classifier(), max_new_tokens=32)
    result.rates["behaviour"]    # {"baseline": 0.9, "intervened": 0.2, "n": 10}
    result.to_frame()            # one row per prompt: set, prompt, baseline, intervened, flags

The baseline (no marks) of a prompt is generated once and kept for later comparisons of the same
model, as long as nothing changed: the kept outputs are dropped as soon as the weights or the
tokenizer change (``Model.state_key``), and nothing is kept while an ``intervene`` block is open
(its routing is part of the baseline then).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from torch import nn

from ..checks import check_count
from ..model import Model
from .generate import MAX_NEW_TOKENS, classify_all, generate
from .interventions import active_masks
from .masks import expert_masks
from .template import as_prompts

__all__ = ["Comparison", "classifier_name", "compare"]

#: baselines kept per model before the oldest are dropped
KEEP = 4096

# Per model (its transformers module): the state key the kept baselines belong to and the baselines,
# {(prompt, max_new_tokens): text}.
_BASELINES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[tuple[str, int], str]]] = \
    weakref.WeakKeyDictionary()


@dataclass
class Comparison:
    """Outputs without (``baseline``) and with (``intervened``) the experts ``off``/``on``.

    ``rows``: one dict per prompt, ``{set, prompt, baseline, intervened, baseline_flag,
    intervened_flag}`` (flags None without a classifier). ``rates``: per prompt set, the share of
    outputs the classifier flags, ``{"baseline", "intervened", "n"}`` (None without a classifier).
    """

    off: list[list[int]]
    on: list[list[int]]
    max_new_tokens: int
    classifier: str | None
    rows: list[dict]
    rates: dict[str, dict[str, float]] | None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["set", "prompt", "baseline", "intervened", "baseline_flag",
                                                "intervened_flag"])

    def to_dict(self) -> dict:
        return {"off": self.off, "on": self.on, "max_new_tokens": self.max_new_tokens,
                "classifier": self.classifier, "rows": self.rows, "rates": self.rates}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        rates = "" if not self.rates else "; " + ", ".join(
            f"{name} {r['baseline']:.2f} -> {r['intervened']:.2f}" for name, r in self.rates.items())
        return f"Comparison({len(self.rows)} prompts, off={self.off}, on={self.on}{rates})"


def classifier_name(classify: Callable[[str], bool] | None) -> str | None:
    """How a classify function is shown: its name (``refusal_classifier`` for the ones it makes)."""
    if classify is None:
        return None
    if getattr(classify, "__qualname__", "").startswith("refusal_classifier."):
        return "refusal_classifier"
    return getattr(classify, "__name__", None) or type(classify).__name__


def _prompt_sets(prompts) -> dict[str, list[str]]:
    if isinstance(prompts, Mapping):
        if not prompts:
            raise ValueError("prompts is an empty mapping: give at least one named set of prompts")
        bad = [k for k in prompts if not isinstance(k, str)]
        if bad:
            raise TypeError(f"the names of prompt sets must be strings; got {bad[0]!r}")
        return {name: list(as_prompts(p, f"prompts[{name!r}]")) for name, p in prompts.items()}
    return {"prompts": list(as_prompts(prompts))}


def _baselines(model: Model, prompts: list[str], max_new_tokens: int, *, batch_size: int, progress: bool,
               desc: str) -> list[str]:
    """Unmarked outputs of ``prompts``: kept ones where they are still valid, the others generated."""
    if active_masks(model):  # an open intervene block: its routing is part of this baseline
        return generate(model, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress,
                        desc=desc)
    key = model.state_key()
    kept_key, kept = _BASELINES.get(model.hf, (None, {}))
    if kept_key != key or len(kept) > KEEP:
        kept = {}
    missing = [p for p in dict.fromkeys(prompts) if (p, max_new_tokens) not in kept]
    if missing:
        texts = generate(model, missing, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress,
                         desc=desc)
        kept.update({(p, max_new_tokens): t for p, t in zip(missing, texts)})
    _BASELINES[model.hf] = (key, kept)
    return [kept[(p, max_new_tokens)] for p in prompts]


def compare(model: Model, prompts, off: Iterable | None = None, on: Iterable | None = None, *,
            classify: Callable[[str], bool] | None = None, max_new_tokens: int = 32, batch_size: int = 16,
            progress: bool = True) -> Comparison:
    """Generate (greedily) for ``prompts`` without and with the experts ``off``/``on`` and compare.

    ``prompts``: a list of strings, a ``Template``, or a mapping of named sets (e.g.
    ``{"behaviour": [...], "control": [...]}``). ``classify``: a function text -> bool marking
    outputs that show the behaviour; with it every row has flags and every set a rate. Progress
    goes to the run layer's observers (``il.experts.observe_progress``), one stage per set and
    condition.
    """
    masks = expert_masks(model, off, on)
    max_new_tokens = check_count("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    batch_size = check_count("batch_size", batch_size, 1)
    if classify is not None and not callable(classify):
        raise TypeError(f"classify must be a function text -> bool or None; got {classify!r}")
    sets = _prompt_sets(prompts)
    common = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    rows, rates = [], {}
    for name, texts in sets.items():
        baseline = _baselines(model, texts, desc=f"{name} without the marks", **common)
        intervened = baseline
        if masks:
            intervened = generate(model, texts, off=masks, desc=f"{name} with the marks", **common)
        flags: tuple[Sequence, Sequence] = ([None] * len(texts), [None] * len(texts))
        if classify is not None:
            flags = (classify_all(classify, baseline), classify_all(classify, intervened))
            rates[name] = {"baseline": sum(flags[0]) / len(texts), "intervened": sum(flags[1]) / len(texts),
                           "n": len(texts)}
        rows += [{"set": name, "prompt": p, "baseline": b, "intervened": i, "baseline_flag": fb,
                  "intervened_flag": fi} for p, b, i, fb, fi in zip(texts, baseline, intervened, *flags)]
    return Comparison(off=[list(p) for p in masks.pairs("off")], on=[list(p) for p in masks.pairs("on")],
                      max_new_tokens=max_new_tokens, classifier=classifier_name(classify), rows=rows,
                      rates=rates if classify is not None else None)
