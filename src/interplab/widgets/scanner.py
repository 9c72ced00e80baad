"""``il.ExpertScanner(model, behaviour=, control=)``: an fTRI scan you can look at and act on.

The widget runs ``il.experts.scan`` and shows the layer x expert map (behaviour, control, or their
difference, as mean routing weight or selection rate), the experts each token of a prompt routes
to (``il.experts.route``), lets you switch experts off (click) or force them on (shift-click), and
generates with and without those marks (``il.experts.generate``). Everything it does is a method
here too::

    scanner = il.ExpertScanner(model, behaviour=prompts, control=others)
    scanner.scan                     # the il.experts.ExpertScan
    scanner.off = scanner.scan.top(5)
    scanner.run()                    # baseline and intervened outputs, in scanner.runs
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import traitlets

from .. import experts
from ..experts.generate import classify_all
from ..experts.masks import expert_masks, moe_of
from ..experts.result import SCORES, ExpertScan
from ..experts.scan import TOKENS
from ..experts.template import as_prompts
from ..model import Model
from .base import Widget, command
from .codecs import encode_array, encode_reply_array

__all__ = ["PROMPT_LIST_LIMIT", "ExpertScanner"]

PROMPT_LIST_LIMIT = 200
"""How many prompts of each set the token panel offers (the first ones)."""

MODES = ("behaviour", "control", "score")


def _pairs(value: Any, what: str) -> list[list[int]]:
    """``[[layer, expert], ...]``, sorted and without repeats, from pairs or ``scan.top()`` triples."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise traitlets.TraitError(f"{what} takes a list of (layer, expert) pairs, e.g. [(3, 5)]; got {value!r}")
    out = set()
    for item in value:
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) not in (2, 3):
            raise traitlets.TraitError(f"each {what} item must be a (layer, expert) pair or a (layer, expert, score) "
                                       f"triple from scan.top(); got {item!r}")
        try:
            if isinstance(item[0], bool) or isinstance(item[1], bool):
                raise TypeError
            out.add((operator.index(item[0]), operator.index(item[1])))
        except TypeError:
            raise traitlets.TraitError(f"{what} item {item!r}: layer and expert must be integers") from None
    return [list(p) for p in sorted(out)]


def _short_name(name: str) -> str:
    """A local model folder by its folder name (a hub id stays as it is)."""
    path = Path(name)
    return path.name if path.is_absolute() and path.is_dir() else name


class ExpertScanner(Widget, bundle="scanner"):
    """An fTRI scan of ``behaviour`` against ``control`` prompts (lists or ``il.experts.Template``s).

    ``tokens``: which tokens the scan counts ("prompt", "response" or "all"; see
    ``il.experts.scan``). ``score``: "contrast" (mean routing weight) or "risk_diff" (selection
    rate). ``classify``: a function text -> bool marking outputs that show the behaviour, used by
    ``run()`` to report the behaviour rate before and after the marks; ``None`` uses
    ``il.experts.refusal_classifier()``, ``False`` reports no rate. ``scan``: an ``ExpertScan`` of
    these prompts already computed (its ``tokens`` setting is kept). ``run_n``: how many prompts of
    each set ``run()`` generates for; ``max_new_tokens``: their length (and the response length
    of a ``tokens="response"`` scan). ``progress``: tqdm bars for the first scan (later scans and
    runs show their progress in the widget).
    """

    model_name = traitlets.Unicode("").tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_experts = traitlets.Int(0).tag(sync=True)
    top_k = traitlets.Int(0).tag(sync=True)
    moe_layers = traitlets.List(traitlets.Int()).tag(sync=True)
    tokens = traitlets.Unicode("prompt", help="which tokens the scan counted").tag(sync=True)
    score = traitlets.Unicode("contrast", help='"contrast" (mean routing weight) or "risk_diff" (selection rate)').tag(
        sync=True)
    mode = traitlets.Unicode("score", help='the map shown: "behaviour", "control" or "score" (their difference)').tag(
        sync=True)
    off = traitlets.List(help="experts switched off, [[layer, expert], ...]").tag(sync=True)
    on = traitlets.List(help="experts forced on, [[layer, expert], ...]").tag(sync=True)
    runs = traitlets.List(traitlets.Dict(), help="every run's outputs, the latest last").tag(sync=True)
    run_n = traitlets.Int(4, help="prompts per set that run() generates for").tag(sync=True)
    max_new_tokens = traitlets.Int(32, help="tokens run() generates per prompt").tag(sync=True)
    classifier = traitlets.Unicode("", help="the name of the classify function ('' for none)").tag(sync=True)
    _maps = traitlets.Dict().tag(sync=True)
    _prompts = traitlets.Dict().tag(sync=True)
    _routing = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)

    def __init__(self, model: Model, behaviour, control, *, tokens: str | None = None, score: str = "contrast",
                 classify: Callable[[str], bool] | bool | None = None, scan: ExpertScan | None = None,
                 run_n: int = 4, max_new_tokens: int = 32, batch_size: int = 32, progress: bool = True,
                 **kwargs: Any):
        moe = moe_of(model)
        self.model = model
        self.behaviour = as_prompts(behaviour, "behaviour")
        self.control = as_prompts(control, "control")
        self.batch_size = batch_size
        if classify is None:
            classify = experts.refusal_classifier()
        elif classify is False:
            classify = None
        elif not callable(classify):
            raise TypeError(f"classify must be a function text -> bool, None (the refusal classifier) or False "
                            f"(no classifier); got {classify!r}")
        self.classify: Callable[[str], bool] | None = classify
        self._baselines: dict[tuple[str, int], str] = {}
        if scan is not None:
            self._check_scan(scan, moe)
            if tokens is not None and tokens != scan.tokens:
                raise ValueError(f"scan= counted {scan.tokens!r} tokens but tokens={tokens!r} was asked for; "
                                 "leave tokens= out to keep the scan's")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}; got {score!r}")
        super().__init__(model_name=_short_name(model.name), n_layers=model.anatomy.n_layers, n_experts=moe.n_experts,
                         top_k=moe.top_k, moe_layers=list(moe.moe_layers), score=score,
                         classifier=self._classifier_name(), _prompts=self._prompt_lists(), run_n=run_n,
                         max_new_tokens=max_new_tokens, **kwargs)
        if scan is None:
            scan = experts.scan(model, self.behaviour, self.control, tokens=tokens or "prompt", score=score,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        self._set_scan(scan)

    # --- the scan ----------------------------------------------------------------------------------
    @property
    def scan(self) -> ExpertScan:
        """The ``il.experts.ExpertScan`` shown (its ``score`` follows the widget's measure)."""
        return self._scan

    def _check_scan(self, scan: ExpertScan, moe) -> None:
        if not isinstance(scan, ExpertScan):
            raise TypeError(f"scan= takes an il.experts.ExpertScan; got {type(scan).__name__}")
        if (scan.n_experts, tuple(scan.moe_layers), scan.n_layers) != (
                moe.n_experts, tuple(moe.moe_layers), self.model.anatomy.n_layers):
            raise ValueError(f"scan= does not fit this model: it has {scan.n_layers} layers, MoE layers "
                             f"{list(scan.moe_layers)} and {scan.n_experts} experts; the model has "
                             f"{self.model.anatomy.n_layers}, {list(moe.moe_layers)} and {moe.n_experts}")

    def _set_scan(self, scan: ExpertScan) -> None:
        self._scan = dataclasses.replace(scan, score=self.score)
        stats = {}
        for which in ("behaviour", "control"):
            s = getattr(scan, which)
            stats[f"{which}_rate"] = encode_array(s.selection_rate, "float32")
            stats[f"{which}_weight"] = encode_array(s.mean_weight, "float32")
            stats[which] = {"n_prompts": s.n_prompts, "n_tokens": s.n_tokens}
        with self.hold_sync():
            self.tokens = scan.tokens
            self._maps = stats

    def rescan(self, tokens: str | None = None) -> ExpertScan:
        """Scan again (e.g. ``tokens="response"``), showing the progress in the widget."""
        tokens = self.tokens if tokens is None else tokens
        if tokens not in TOKENS:
            raise ValueError(f"tokens must be one of {TOKENS}; got {tokens!r}")
        with self._engine_progress():
            found = experts.scan(self.model, self.behaviour, self.control, tokens=tokens, score=self.score,
                                 max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, progress=False)
        self._set_scan(found)
        return self._scan

    @traitlets.validate("score")
    def _check_score(self, proposal: dict) -> str:
        if proposal["value"] not in SCORES:
            raise traitlets.TraitError(f"score must be one of {SCORES}; got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.observe("score")
    def _follow_score(self, change: dict) -> None:
        if getattr(self, "_scan", None) is not None:
            self._scan = dataclasses.replace(self._scan, score=change["new"])

    @traitlets.validate("mode")
    def _check_mode(self, proposal: dict) -> str:
        if proposal["value"] not in MODES:
            raise traitlets.TraitError(f"mode must be one of {MODES}; got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("run_n", "max_new_tokens")
    def _check_positive(self, proposal: dict) -> int:
        if proposal["value"] < 1:
            raise traitlets.TraitError(f"{proposal['trait'].name} must be a positive integer; got {proposal['value']}")
        return proposal["value"]

    # --- marks -------------------------------------------------------------------------------------
    @traitlets.validate("off", "on")
    def _check_marks(self, proposal: dict) -> list[list[int]]:
        which = proposal["trait"].name
        pairs = _pairs(proposal["value"], which)
        other = self.on if which == "off" else self.off
        try:
            expert_masks(self.model, off=pairs if which == "off" else other, on=pairs if which == "on" else other)
        except (TypeError, ValueError) as err:
            raise traitlets.TraitError(str(err)) from None
        return pairs

    def set_marks(self, off: Iterable | None = None, on: Iterable | None = None) -> None:
        """Set both mark lists at once (checked together: e.g. moving an expert from off to on)."""
        with self.hold_trait_notifications():
            self.off = [] if off is None else off
            self.on = [] if on is None else on

    def mark(self, layer: int, expert: int, state: str | None) -> None:
        """Switch one expert ``"off"``, force it ``"on"``, or clear its mark (``None``)."""
        if state not in ("off", "on", None):
            raise ValueError(f"state must be 'off', 'on' or None; got {state!r}")
        cell = [layer, expert]
        off = [p for p in self.off if p != cell] + ([cell] if state == "off" else [])
        on = [p for p in self.on if p != cell] + ([cell] if state == "on" else [])
        self.set_marks(off, on)

    # --- token routing -------------------------------------------------------------------------------
    def _prompt_lists(self) -> dict:
        limit = PROMPT_LIST_LIMIT
        return {"behaviour": list(self.behaviour[:limit]), "control": list(self.control[:limit]),
                "n_behaviour": len(self.behaviour), "n_control": len(self.control)}

    def prompt(self, which: str, index: int) -> str:
        prompts = {"behaviour": self.behaviour, "control": self.control}.get(which)
        if prompts is None:
            raise ValueError(f"which must be 'behaviour' or 'control'; got {which!r}")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(prompts):
            raise ValueError(f"prompt index {index!r} is out of range: the {which} set has prompts "
                             f"0..{len(prompts) - 1}")
        return prompts[index]

    def routing(self, which: str = "behaviour", index: int = 0, *, marked: bool = False) -> experts.Routing:
        """How the model routes every token of one prompt (with the current marks if ``marked``)."""
        prompt = self.prompt(which, index)
        if marked:
            return experts.route(self.model, [prompt], off=self.off, on=self.on, progress=False)
        return experts.route(self.model, [prompt], progress=False)

    def _routing_message(self, which: str, index: int, encode: Callable[[Any, str], dict]) -> dict:
        base = self.routing(which, index)
        message = {"set": which, "index": index, "prompt": base.prompts[0], "tokens": base.tokens,
                   "indices": encode(base.indices, "int32"), "weights": encode(base.weights, "float32"),
                   "marked": None}
        if self.off or self.on:
            rerouted = self.routing(which, index, marked=True)
            message["marked"] = {"off": self.off, "on": self.on, "indices": encode(rerouted.indices, "int32"),
                                 "weights": encode(rerouted.weights, "float32")}
        return message

    def preload_routing(self, which: str = "behaviour", index: int = 0) -> None:
        """Send one prompt's routing with the widget's state, so that its token panel works without a
        kernel (for static snapshots such as ``interplab tour`` reports)."""
        self._routing = self._routing_message(which, index, encode_array)

    # --- runs ----------------------------------------------------------------------------------------
    def _classifier_name(self) -> str:
        if self.classify is None:
            return ""
        if getattr(self.classify, "__qualname__", "").startswith("refusal_classifier."):
            return "refusal_classifier"
        return getattr(self.classify, "__name__", None) or type(self.classify).__name__

    def run(self, n: int | None = None, *, prompts: Sequence[str] | None = None,
            max_new_tokens: int | None = None) -> dict:
        """Generate for the first ``n`` prompts of each set (or for ``prompts``) without and with the
        marked experts; append the outputs (and behaviour rates, with a classifier) to ``runs``."""
        if n is not None:
            self.run_n = n
        if max_new_tokens is not None:
            self.max_new_tokens = max_new_tokens
        tokens = self.max_new_tokens
        if prompts is not None:
            sets = {"custom": list(as_prompts(prompts))}
        else:
            sets = {"behaviour": list(self.behaviour[:self.run_n]), "control": list(self.control[:self.run_n])}
        off, on = [list(p) for p in self.off], [list(p) for p in self.on]
        rows, rates = [], {}
        with self._engine_progress() as stage:
            for which, texts in sets.items():
                stage(f"{which} prompts without the marks")
                baseline = self._baseline(texts, tokens)
                stage(f"{which} prompts with the marks")
                intervened = experts.generate(self.model, texts, off=off, on=on, max_new_tokens=tokens,
                                              batch_size=self.batch_size, progress=False)
                flags = ([None] * len(texts), [None] * len(texts))
                if self.classify is not None:
                    flags = (classify_all(self.classify, baseline), classify_all(self.classify, intervened))
                    rates[which] = {"baseline": sum(flags[0]) / len(texts), "intervened": sum(flags[1]) / len(texts),
                                    "n": len(texts)}
                rows += [{"set": which, "prompt": p, "baseline": b, "intervened": i, "baseline_flag": fb,
                          "intervened_flag": fi}
                         for p, b, i, fb, fi in zip(texts, baseline, intervened, *flags)]
        record = {"off": off, "on": on, "max_new_tokens": tokens, "classifier": self.classifier or None,
                  "rows": rows, "rates": rates or None}
        self.runs = [*self.runs, record]
        return record

    def _baseline(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Unmarked outputs, generated once per (prompt, length) and kept."""
        missing = [p for p in dict.fromkeys(prompts) if (p, max_new_tokens) not in self._baselines]
        if missing:
            texts = experts.generate(self.model, missing, max_new_tokens=max_new_tokens, batch_size=self.batch_size,
                                     progress=False)
            self._baselines.update({(p, max_new_tokens): t for p, t in zip(missing, texts)})
        return [self._baselines[(p, max_new_tokens)] for p in prompts]

    @contextmanager
    def _engine_progress(self) -> Iterator[Callable[[str], None]]:
        """Show the engine's batch progress (scan, generate) in the widget's progress bar; the
        yielded ``stage(text)`` names the part of the work under way."""
        where = {"stage": ""}

        def report(desc: str, done: int, total: int) -> None:
            label = f"{where['stage']}: {desc}" if where["stage"] else desc
            self.progress = {"label": label, "done": done, "total": total}

        def stage(text: str) -> None:
            where["stage"] = text

        try:
            with experts.observe_progress(report):
                yield stage
        finally:
            self.progress = None

    # --- export --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The scan (``ExpertScan.to_dict()``) with the marks and the runs."""
        return {"scan": self._scan.to_dict(), "off": self.off, "on": self.on, "runs": self.runs}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # --- commands from the browser ---------------------------------------------------------------------
    @command
    def _mark(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        layer, expert = msg.get("layer"), msg.get("expert")
        if not isinstance(layer, int) or not isinstance(expert, int):
            raise ValueError(f"a mark needs integer layer and expert; got {layer!r}, {expert!r}")
        self.mark(layer, expert, msg.get("state"))
        return {"off": self.off, "on": self.on}, []

    @command
    def _set_marks(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.set_marks(msg.get("off") or [], msg.get("on") or [])
        return {"off": self.off, "on": self.on}, []

    @command
    def _route(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        out: list[bytes] = []
        message = self._routing_message(msg.get("set"), msg.get("index"),
                                        lambda x, dtype: encode_reply_array(x, out, dtype))
        return message, out

    @command
    def _run(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        n, tokens = msg.get("n"), msg.get("max_new_tokens")
        for name, value in (("n", n), ("max_new_tokens", tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        record = self.run(n, max_new_tokens=tokens)
        return {"rates": record["rates"], "n_rows": len(record["rows"])}, []

    @command
    def _rescan(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.rescan(msg.get("tokens"))
        return {"tokens": self.tokens}, []

    @command
    def _to_json(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"json": self.to_json()}, []

    def __repr__(self) -> str:
        return (f"ExpertScanner({self.model_name}, {self.tokens} tokens, {self.score}; off={self.off}, on={self.on}, "
                f"{len(self.runs)} run(s))")
