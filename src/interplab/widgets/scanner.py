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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import traitlets

from .. import experts
from ..experts.compare import classifier_name
from ..experts.generate import MAX_NEW_TOKENS
from ..experts.masks import expert_masks, moe_of
from ..experts.result import SCORE_MAPS, SCORES, ExpertScan
from ..experts.scan import TOKENS
from ..experts.template import as_prompts
from ..model import Model
from .base import Widget, command
from .codecs import encode_array, encode_reply_array

__all__ = ["CHOICES", "PROMPT_LIST_LIMIT", "ExpertScanner"]

PROMPT_LIST_LIMIT = 200
"""How many prompts of each set the token panel offers (the first ones)."""

MODES = ("behaviour", "control", "score")

_MODE_LABELS = {"behaviour": "behaviour", "control": "control", "score": "behaviour − control"}
_SCORE_LABELS = {"contrast": "mean routing weight (contrast)", "risk_diff": "selection rate (risk difference)"}
_TOKEN_LABELS = {"prompt": "prompt tokens", "response": "response tokens", "all": "prompt + response"}
# a set's map (SetStats field) -> its buffers' suffix in ``_maps``, its short name, what one cell's number is
_MAPS = {"mean_weight": ("weight", "mean weight", "routing weight per counted token, mean over prompts"),
         "selection_rate": ("rate", "selection rate", "share of counted tokens that select the expert")}

CHOICES = {
    "mode": [{"value": m, "label": _MODE_LABELS[m], "signed": m == "score"} for m in MODES],
    "score": [dict(zip(("value", "label", "map", "name", "unit"), (s, _SCORE_LABELS[s], *_MAPS[SCORE_MAPS[s]])))
              for s in SCORES],
    "tokens": [{"value": t, "label": _TOKEN_LABELS[t]} for t in TOKENS],
}
"""The toolbar's choices as the front end shows them (sent in the ``_choices`` trait, never repeated
in TypeScript): every value the engine accepts, in its order, with a label; a mode says whether its
map is a signed difference; a score names the buffers it is the difference of (``behaviour_<map>``
and ``control_<map>`` in ``_maps``), the map's short name and the unit of one cell's number. The
widget adds ``limits``: the ranges of the run panel's numbers."""


def _pairs(value: Any) -> list:
    """Mark lists as ``expert_masks`` takes them (``None`` for none)."""
    return [] if value is None else value


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

    _browser_writable = frozenset({"mode", "score"})

    model_name = traitlets.Unicode("").tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_experts = traitlets.Int(0).tag(sync=True)
    top_k = traitlets.Int(0).tag(sync=True)
    moe_layers = traitlets.List(traitlets.Int()).tag(sync=True)
    tokens = traitlets.Enum(TOKENS, "prompt", help="which tokens the scan counted").tag(sync=True)
    score = traitlets.Enum(SCORES, "contrast", help='"contrast" (mean routing weight) or "risk_diff" '
                                                    "(selection rate)").tag(sync=True)
    mode = traitlets.Enum(MODES, "score", help='the map shown: "behaviour", "control" or "score" '
                                               "(their difference)").tag(sync=True)
    off = traitlets.List(help="experts switched off, [[layer, expert], ...]").tag(sync=True)
    on = traitlets.List(help="experts forced on, [[layer, expert], ...]").tag(sync=True)
    runs = traitlets.List(traitlets.Dict(), help="every run's outputs, the latest last").tag(sync=True)
    run_n = traitlets.Int(4, min=1, help="prompts per set that run() generates for").tag(sync=True)
    max_new_tokens = traitlets.Int(32, min=1, max=MAX_NEW_TOKENS, help="tokens run() generates per prompt").tag(
        sync=True)
    classifier = traitlets.Unicode("", help="the name of the classify function ('' for none)").tag(sync=True)
    _choices = traitlets.Dict().tag(sync=True)
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
        if scan is not None:
            self._check_scan(scan, moe)
            if tokens is not None and tokens != scan.tokens:
                raise ValueError(f"scan= counted {scan.tokens!r} tokens but tokens={tokens!r} was asked for; "
                                 "leave tokens= out to keep the scan's")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}; got {score!r}")
        super().__init__(model_name=_short_name(model.name), n_layers=model.anatomy.n_layers, n_experts=moe.n_experts,
                         top_k=moe.top_k, moe_layers=list(moe.moe_layers), score=score,
                         classifier=classifier_name(self.classify) or "", _choices=self._choices_with_limits(),
                         _prompts=self._prompt_lists(), run_n=run_n, max_new_tokens=max_new_tokens, **kwargs)
        if scan is None:
            scan = experts.scan(model, self.behaviour, self.control, tokens=tokens or "prompt", score=score,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        self._set_scan(scan)

    def _choices_with_limits(self) -> dict:
        most = max(len(self.behaviour), len(self.control))
        return {**CHOICES, "limits": {"run_n": {"min": 1, "max": most},
                                      "max_new_tokens": {"min": 1, "max": MAX_NEW_TOKENS}}}

    # --- the scan ----------------------------------------------------------------------------------
    @property
    def scan(self) -> ExpertScan:
        """The ``il.experts.ExpertScan`` shown, scored by the widget's measure (``score``)."""
        return dataclasses.replace(self._scan, score=self.score)

    def _check_scan(self, scan: ExpertScan, moe) -> None:
        if not isinstance(scan, ExpertScan):
            raise TypeError(f"scan= takes an il.experts.ExpertScan; got {type(scan).__name__}")
        if (scan.n_experts, tuple(scan.moe_layers), scan.n_layers) != (
                moe.n_experts, tuple(moe.moe_layers), self.model.anatomy.n_layers):
            raise ValueError(f"scan= does not fit this model: it has {scan.n_layers} layers, MoE layers "
                             f"{list(scan.moe_layers)} and {scan.n_experts} experts; the model has "
                             f"{self.model.anatomy.n_layers}, {list(moe.moe_layers)} and {moe.n_experts}")

    def _set_scan(self, scan: ExpertScan) -> None:
        self._scan = scan
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
        with self.engine_progress():
            found = experts.scan(self.model, self.behaviour, self.control, tokens=self.tokens if tokens is None
                                 else tokens, score=self.score, max_new_tokens=self.max_new_tokens,
                                 batch_size=self.batch_size, progress=False)
        self._set_scan(found)
        return self.scan

    # --- marks -------------------------------------------------------------------------------------
    @traitlets.validate("off", "on")
    def _check_marks(self, proposal: dict) -> list[list[int]]:
        which = proposal["trait"].name
        marks = {"off": self.off, "on": self.on, which: _pairs(proposal["value"])}
        try:
            masks = expert_masks(self.model, off=marks["off"], on=marks["on"])
        except (TypeError, ValueError) as err:
            raise traitlets.TraitError(str(err)) from None
        return [list(p) for p in masks.pairs(which)]

    def set_marks(self, off: Iterable | None = None, on: Iterable | None = None) -> None:
        """Set both mark lists at once (checked together: e.g. moving an expert from off to on)."""
        masks = expert_masks(self.model, off=_pairs(off), on=_pairs(on))
        with self.hold_trait_notifications():
            self.off = [list(p) for p in masks.pairs("off")]
            self.on = [list(p) for p in masks.pairs("on")]

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
    def run(self, n: int | None = None, *, prompts: Sequence[str] | None = None,
            max_new_tokens: int | None = None) -> dict:
        """Generate for the first ``n`` prompts of each set (or for ``prompts``) without and with the
        marked experts (``il.experts.compare``); append the outputs (and behaviour rates, with a
        classifier) to ``runs``."""
        if n is not None:
            self.run_n = n
        if max_new_tokens is not None:
            self.max_new_tokens = max_new_tokens
        if prompts is not None:
            sets = {"custom": as_prompts(prompts)}
        else:
            sets = {"behaviour": self.behaviour[:self.run_n], "control": self.control[:self.run_n]}
        with self.engine_progress():
            record = experts.compare(self.model, sets, off=self.off, on=self.on, classify=self.classify,
                                     max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                     progress=False).to_dict()
        self.runs = [*self.runs, record]
        return record

    # --- export --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The scan (``ExpertScan.to_dict()``) with the marks and the runs."""
        return {"scan": self.scan.to_dict(), "off": self.off, "on": self.on, "runs": self.runs}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # --- commands from the browser: each calls the method above ---------------------------------------
    @command(layer=int, expert=int, state=(str, None))
    def _mark(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.mark(msg["layer"], msg["expert"], msg["state"])
        return {"off": self.off, "on": self.on}, []

    @command(off=list, on=list)
    def _set_marks(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.set_marks(msg["off"], msg["on"])
        return {"off": self.off, "on": self.on}, []

    @command(set=str, index=int)
    def _route(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        out: list[bytes] = []
        message = self._routing_message(msg["set"], msg["index"], lambda x, dtype: encode_reply_array(x, out, dtype))
        return message, out

    @command(n=(int, None), max_new_tokens=(int, None))
    def _run(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        record = self.run(msg["n"], max_new_tokens=msg["max_new_tokens"])
        return {"rates": record["rates"], "n_rows": len(record["rows"])}, []

    @command(tokens=str)
    def _rescan(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.rescan(msg["tokens"])
        return {"tokens": self.tokens}, []

    @command()
    def _to_json(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"json": self.to_json()}, []

    def __repr__(self) -> str:
        return (f"ExpertScanner({self.model_name}, {self.tokens} tokens, {self.score}; off={self.off}, on={self.on}, "
                f"{len(self.runs)} run(s))")
