"""``il.RuleEditor(model, concepts, rules)``: write rules and watch them reason over a text.

The widget shows a rule editor (the kernel's diagnostics inline, a moment after typing stops),
the input text's tokens with the concepts detected on each, the inferred facts with their
proofs, and base and steered continuations side by side. Everything it does is a method or a
trait here too::

    editor = il.RuleEditor(model, concepts, "cat or dog -> pet", text="the cat sat")
    editor.rules = "cat -> pet\\npet -> suppress wild"   # diagnostics and inference follow
    editor.diagnostics                                    # [] when the rules are fine
    editor.facts, editor.reasoning.explain("pet")
    editor.generate(strength=1.0)                         # also the widget's button

A rules edit re-infers over the detection the text already has (``Reasoning.with_rules``: no
model run); a text edit runs detection once. While the rules have errors, the widget keeps the
inference of the last rules without errors and marks it stale. Proofs go to the browser flat
(``Inference.to_dict``: each premise names another entry), and the browser expands them one step
at a time on demand, so a derivation thousands of steps deep costs one entry per concept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import traitlets

from ..model import Model
from ..reasoning import Concepts, Generation, Reasoning, RuleSet, generate, parse_rules, reason
from ..reasoning.detect import evidence_kind
from ..reasoning.rules import Inference, checked_rules
from ..reasoning.rules.chainer import plain
from ..reasoning.steer import MAX_NEW_TOKENS, check_max_new_tokens, check_strength, steerable_concepts
from .base import Widget, command

__all__ = ["RuleEditor"]

NOTHING_INFERRED = {"given": [], "derived": [], "facts": [], "suppressed": [], "conflicts": [], "proofs": {},
                    "suppression_proofs": {}}  # what the browser shows when the inference cannot be sent
MAX_NEW_TOKENS_LIMIT = min(256, MAX_NEW_TOKENS)  # the widget's own bound: a continuation to read side by side


class RuleEditor(Widget, bundle="editor"):
    """Rules (text in the rule language) reasoning over ``concepts`` detected in ``text`` by ``model``.

    ``rules`` and ``text`` are synced traits (saved with the notebook; set them from Python or
    in the widget). ``strength`` and ``max_new_tokens`` are what ``generate()`` uses by default.
    ``evidence``: "local" (per-token detections are facts) or "global"/"both" (see ``il.reasoning.reason``;
    ``level=`` is its old, deprecated name).
    ``steer`` names the concepts that may steer when generating (default: all of them).
    """

    rules = traitlets.Unicode("", help="the rule text").tag(sync=True)
    text = traitlets.Unicode("", help="the input text the rules reason over").tag(sync=True)
    strength = traitlets.Float(0.5, help="steering strength of generate()").tag(sync=True)
    max_new_tokens = traitlets.Int(24, help="tokens generate() adds").tag(sync=True)
    diagnostics = traitlets.List(traitlets.Dict(), help="the problems in `rules` (Diagnostic.to_dict())").tag(
        sync=True)
    generation = traitlets.Dict(allow_none=True, default_value=None,
                                help="the last generate(): prompt, strength, base, steered").tag(sync=True)
    _concepts = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: what the browser edits; the diagnostics, detection, inference and generation are the kernel's
    _browser_writable = frozenset({"rules", "text", "strength"})
    _detection = traitlets.Dict().tag(sync=True)
    _inference = traitlets.Dict().tag(sync=True)

    def __init__(self, model: Model, concepts: Concepts, rules: str | RuleSet = "", *, text: str = "",
                 strength: float = 0.5, max_new_tokens: int = 24, evidence: str = "local",
                 steer: Sequence[str] | None = None, **kwargs: Any):
        if not isinstance(concepts, Concepts):
            raise TypeError(f"concepts must be an il.reasoning.Concepts dictionary, got {type(concepts).__name__}")
        if isinstance(rules, RuleSet):
            rules = str(rules)
        if not isinstance(rules, str):
            raise TypeError(f"rules must be rule text or a RuleSet, got {type(rules).__name__}")
        concepts.check_model(model)
        evidence = evidence_kind(evidence, kwargs.pop("level", None), "RuleEditor")
        self.model = model
        self.concepts = concepts
        self.evidence = evidence
        self.steer = sorted(steerable_concepts(concepts, steer)) if steer is not None else None
        self.reasoning: Reasoning | None = None
        self.ruleset: RuleSet = parse_rules("")
        self.inference: Inference = self.ruleset.infer({})
        self._busy = True  # the observers wait until every trait is in place
        super().__init__(_concepts=self._concept_list(), strength=strength, max_new_tokens=max_new_tokens, **kwargs)
        self.rules = rules
        self.text = text
        self._busy = False
        self._check_rules()
        self._detect()

    def refresh(self) -> None:
        """Detect and infer again: after changing the concept dictionary (thresholds, new
        concepts), or to retry a detection that failed."""
        self._concepts = self._concept_list()
        self._check_rules()
        self._detect()

    def _concept_list(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "method": c.method, "detected": c.detectable} for c in self.concepts]

    # --- what the kernel computes ---------------------------------------------------------------
    @property
    def facts(self) -> frozenset[str]:
        """Every true concept of the current inference (detected and derived)."""
        return self.inference.facts

    @property
    def derived(self) -> frozenset[str]:
        return self.inference.derived

    @property
    def suppressed(self) -> frozenset[str]:
        return self.inference.suppressed

    @property
    def stale(self) -> bool:
        """True while the rules have errors (the inference is the last error-free rules')."""
        return any(d["severity"] == "error" for d in self.diagnostics)

    @property
    def elapsed_ms(self) -> float:
        """The kernel's time for the last update: diagnostics and re-inference after a rules edit,
        detection and inference after a text edit."""
        return self._inference.get("elapsed_ms", float("nan"))

    @traitlets.observe("rules")
    def _on_rules(self, change: dict) -> None:
        if not self._busy:
            self._check_rules()

    @traitlets.observe("text")
    def _on_text(self, change: dict) -> None:
        if not self._busy:
            self._detect()

    @traitlets.validate("max_new_tokens")
    def _check_max_new_tokens(self, proposal: dict) -> int:
        try:
            return check_max_new_tokens(proposal["value"], limit=MAX_NEW_TOKENS_LIMIT)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.validate("strength")
    def _check_strength(self, proposal: dict) -> float:
        try:
            return check_strength(proposal["value"])
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _check_rules(self) -> None:
        """Diagnostics for the rules; without errors, re-infer over the current detection."""
        started = time.perf_counter()
        source = self.rules
        try:
            found, ruleset = checked_rules(source, known=self.concepts.names)
            if ruleset is not None:
                self.ruleset = ruleset
                self._infer()
            self._clear_error("check rules")
        except Exception as exc:  # the widget stays usable: the banner explains, the editor goes on
            self.record_error(exc, command="check rules")
            found = []
        self.diagnostics = [d.to_dict() for d in found]
        self._publish_inference(source, started)

    def _detect(self) -> None:
        """Detect the concepts in the text (one model run) and infer with the current rules."""
        started = time.perf_counter()
        try:
            if self.text.strip():
                with self.working("detecting concepts"):
                    self.reasoning = reason(self.model, self.text, self.concepts, self.ruleset, evidence=self.evidence)
                self.inference = self.reasoning.inference
            else:
                self.reasoning = None
                self.inference = self.ruleset.infer({})
            self._clear_error("detect")
        except Exception as exc:
            self.record_error(exc, command="detect")
            self.reasoning = None
            self.inference = self.ruleset.infer({})
        self._detection = self._detection_state()
        self._publish_inference(self.rules, started)

    def _infer(self) -> None:
        if self.reasoning is not None:
            self.reasoning = self.reasoning.with_rules(self.ruleset)
            self.inference = self.reasoning.inference
        else:
            self.inference = self.ruleset.infer({})

    def _clear_error(self, command_name: str) -> None:
        if self.error and self.error.get("command") == command_name:
            self.error = None

    def _detection_state(self) -> dict[str, Any]:
        if self.reasoning is None:
            return {"text": self.text, "tokens": [], "detected": {}}
        detection = self.reasoning.detection
        return {"text": self.text, "tokens": list(detection.tokens[0]), "detected": detection.positions(0),
                "in_scope": detection.in_scope[0].nonzero().squeeze(-1).tolist()}

    def _publish_inference(self, source: str, started: float) -> None:
        """Send the inference to the browser (``Inference.to_dict``: flat proofs), tagged with the
        rule text it answers (the editor matches it to its document) and how long the kernel took.
        If that fails, the banner says so and the browser still gets the diagnostics, so the
        editor never waits for an answer that will not come."""
        try:
            state = self.inference.to_dict()
            self._clear_error("publish")
        except Exception as exc:
            self.record_error(exc, command="publish")
            state = dict(NOTHING_INFERRED)
        self._inference = {"rules": source, "stale": self.stale, "diagnostics": self.diagnostics, **state,
                           "elapsed_ms": round(1000 * (time.perf_counter() - started), 2)}

    # --- generation --------------------------------------------------------------------------------
    def generate(self, strength: float | None = None, max_new_tokens: int | None = None) -> Generation:
        """Greedy continuations of the text without and with steering by what the rules infer
        (``il.reasoning.generate``); shown side by side in the widget and kept in ``generation``."""
        if strength is not None:
            self.strength = check_strength(strength)
        if max_new_tokens is not None:
            self.max_new_tokens = check_max_new_tokens(max_new_tokens, limit=MAX_NEW_TOKENS_LIMIT)
        if not self.text.strip():
            raise ValueError("the text is empty: type a prompt in the text box (or set editor.text) to generate from")
        errors = [d for d in self.diagnostics if d["severity"] == "error"]
        if errors:
            first = errors[0]
            raise ValueError(f"the rules have {len(errors)} error(s), first at line {first['line']}, column "
                             f"{first['column']}: {first['message']}; fix them before generating")
        with self.working("generating"):
            result = generate(self.model, self.text, self.concepts, self.ruleset, strength=self.strength,
                              max_new_tokens=self.max_new_tokens, steer=self.steer)
        self.generation = {"prompt": result.prompt, "strength": self.strength, "base": result.base,
                           "steered": result.steered, "derived": sorted(result.inference.derived),
                           "suppressed": sorted(result.inference.suppressed),
                           "steering": plain(result.steps[-1]["steering"]) if result.steps else {}}
        return result

    # --- commands from the browser -----------------------------------------------------------------
    @command
    def _generate(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.generate(msg.get("strength"), msg.get("max_new_tokens", self.max_new_tokens))
        return self.generation, []

    def __repr__(self) -> str:
        state = "stale: the rules have errors" if self.stale else f"{len(self.facts)} facts"
        return f"RuleEditor({len(self.concepts)} concepts, {len(self.ruleset)} rules, {state})"
