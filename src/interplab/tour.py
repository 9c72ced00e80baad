"""``interplab tour``: run the instruments on the shipped demo models and write an HTML report.

The tour is a list of sections; each instrument adds its own with ``@section``. A section
function gets the demo models and returns a ``Section`` (text, widget snapshots, tables), or
None when its model is not available. A section that fails is reported in the page and makes
the tour's exit status non-zero, without losing the other sections.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__, tokens, zoo
from .model import Model
from .widgets import TokenView
from .widgets.base import error_record
from .widgets.report import Section, write_report

__all__ = ["SECTIONS", "Demo", "TourResult", "demo_models", "run", "section"]


@dataclass
class Demo:
    """The models the tour runs on (name -> Model) and what they are."""

    models: dict[str, Model]
    notes: dict[str, str]


SectionFn = Callable[[Demo], Section | None]
SECTIONS: list[SectionFn] = []


def section(fn: SectionFn) -> SectionFn:
    """Register a tour section (sections run in the order they are registered)."""
    SECTIONS.append(fn)
    return fn


def demo_models(device: str | torch.device | None = None) -> Demo:
    """The IOI demo model when it is shipped, else a tiny random GPT-2 in its place."""
    if "ioi" in zoo.available():
        return Demo({"dense": zoo.load("ioi", device=device)}, {"dense": "the IOI demo model shipped with interplab"})
    return Demo({"dense": zoo.tiny("gpt2", device=device)},
                {"dense": "a tiny random GPT-2 (the IOI demo model is not installed): its predictions are noise"})


SAMPLE = "Mary and John sat in the store . John gave a drink to Mary"


@section
def model_overview(demo: Demo) -> Section:
    import pandas as pd

    rows = []
    for role, model in demo.models.items():
        a = model.anatomy
        rows.append({"role": role, "model": model.name, "family": a.family, "layers": a.n_layers, "heads": a.n_heads,
                     "d_model": a.d_model, "vocab": a.vocab_size,
                     "parameters": sum(p.numel() for p in model.hf.parameters()), "about": demo.notes[role]})
    return Section("Models", ["The demo models this report was computed on."], tables=[pd.DataFrame(rows)])


@section
def token_view(demo: Demo) -> Section:
    model = demo.models["dense"]
    view = TokenView(model, SAMPLE)
    view.preload_predictions()
    last = len(view.tokens) - 1
    import pandas as pd

    predictions = pd.DataFrame(view.predictions().at(last), columns=["token", "id", "logprob"])
    predictions.index = predictions.index + 1
    return Section(
        "Tokens: how surprising is each token?",
        [f"Each token of the sample text coloured by {tokens.LOGPROB_LABEL}: the model's log-probability of that "
         "token given the tokens before it (the first token has no value). Hover a token for its id, its value and "
         "the model's five likeliest next tokens.",
         f"The model's likeliest tokens after the whole text (after {view.tokens[last]!r}):"],
        widgets=[view], tables=[predictions])


@dataclass
class TourResult:
    path: Path
    failed: list[str]


def run(out: str | Path = "report.html", *, device: str | torch.device | None = None) -> TourResult:
    """Run every registered section and write the report to ``out``."""
    started = time.perf_counter()
    demo = demo_models(device)
    sections: list[Section] = []
    failed: list[str] = []
    for fn in SECTIONS:
        try:
            result = fn(demo)
        except Exception as exc:
            record = error_record(exc)
            failed.append(fn.__name__)
            result = Section(fn.__name__.replace("_", " "), error=record["traceback"])
        if result is not None:
            sections.append(result)
    meta = (f"interplab {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
            f"device {next(iter(demo.models.values())).device} · {time.perf_counter() - started:.1f} s")
    path = write_report(out, sections, title="interplab tour", meta=meta)
    return TourResult(path, failed)
