"""ActivationReasoning end to end: ``reason`` (detect -> infer, with proofs down to tokens) and
``generate`` (detect -> infer -> steer at every decoding step)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..model import Model
from .concepts import Concepts
from .detect import Detection, Evidence, Scope, detect, evidence_kind
from .residual import special_mask
from .rules import Inference, RuleSet, parse_rules
from .steer import Reasoner, check_max_new_tokens

__all__ = ["Generation", "Reasoning", "generate", "reason", "ruleset"]


def ruleset(rules: RuleSet | str, known: Sequence[str]) -> RuleSet:
    """Rules as a RuleSet; rule text is parsed with the dictionary's names as the known concepts."""
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str):
        return parse_rules(rules, known=known)
    raise TypeError(f"rules must be a RuleSet or rule text, got {type(rules).__name__}")


@dataclass
class Reasoning:
    """What ``reason`` found in one text.

    ``detection``: the per-token detection; ``inference``: the rules applied to every detected
    concept (proof leaves carry the tokens as evidence); ``timeline``: one entry per in-scope
    token with the concepts it shows and, as concepts stay active once they fire, the facts and
    derived concepts from the start of the text up to it.
    """

    detection: Detection
    inference: Inference
    timeline: list[dict[str, Any]]
    evidence: Evidence = "local"

    def with_rules(self, rules: RuleSet | str) -> Reasoning:
        """The same detection reasoned over with other rules (rule text is checked against the
        detection's concepts): what a rule editor re-runs on each edit, without the model."""
        rules = ruleset(rules, self.detection.concepts)
        return Reasoning(self.detection, rules.infer(self.detection.facts(0, self.evidence)),
                         _timeline(self.detection, rules, self.evidence), self.evidence)

    @property
    def facts(self) -> frozenset[str]:
        return self.inference.facts

    @property
    def derived(self) -> frozenset[str]:
        return self.inference.derived

    @property
    def suppressed(self) -> frozenset[str]:
        return self.inference.suppressed

    @property
    def proofs(self):
        return self.inference.proofs

    def explain(self, concept: str) -> str:
        return self.inference.explain(concept)

    def to_frame(self):
        """One row per in-scope token: position, token, detected, facts, derived, suppressed."""
        import pandas as pd

        return pd.DataFrame(self.timeline)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the tokens, the timeline and the inference (``Inference.to_dict``)."""
        return {"tokens": self.detection.tokens[0], "timeline": self.timeline, "evidence": self.evidence,
                "inference": self.inference.to_dict()}

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict())


def reason(model: Model, text: str | tuple[str, str], concepts: Concepts, rules: RuleSet | str, *,
           scope: Scope = "input", evidence: Evidence = "local", level: str | None = None) -> Reasoning:
    """Detect the concepts in ``text`` (a string or a (prompt, completion) pair), make them facts
    (evidence: the tokens where they fire; ``evidence="global"`` uses sequence-level detections
    instead, ``"both"`` both; ``level=`` is its old, deprecated name) and infer with ``rules`` (a
    RuleSet, or rule text checked against the dictionary)."""
    rules = ruleset(rules, concepts.names)
    if not isinstance(text, str | tuple):
        raise TypeError("reason takes one text (or one (prompt, completion) pair); use detect for batches")
    detection = detect(model, text, concepts, scope=scope)
    evidence = evidence_kind(evidence, level, "reason")
    inference = rules.infer(detection.facts(0, evidence))
    return Reasoning(detection, inference, _timeline(detection, rules, evidence), evidence)


def _timeline(detection: Detection, rules: RuleSet, evidence: Evidence) -> list[dict[str, Any]]:
    """Per in-scope token: what it shows, and the inference over everything detected up to it (one
    inference per position where a concept first fires; global detections hold from the start)."""
    names = detection.concepts
    active = detection.active[0]
    local = detection.facts(0, "local") if evidence in ("local", "both") else {}
    facts = {} if evidence == "local" else {n: e for n, e in detection.facts(0, "global").items() if n not in local}
    inference = rules.infer(facts)
    rows = []
    for position in detection.in_scope[0].nonzero().squeeze(-1).tolist():
        shown = [names[c] for c in active[position].nonzero().squeeze(-1).tolist()]
        fresh = [n for n in shown if n not in facts]
        for name in shown:
            if name in local:
                facts.setdefault(name, []).append(next(e for e in local[name] if e["position"] == position))
        if fresh and local:
            inference = rules.infer(facts)
        rows.append({"position": position, "token": detection.tokens[0][position], "detected": shown,
                     "facts": sorted(inference.facts), "derived": sorted(inference.derived),
                     "suppressed": sorted(inference.suppressed)})
    return rows


@dataclass
class Generation:
    """``generate``'s result: the prompt, the base and the steered continuations, and per decoding
    step (steered run) what was detected, the facts, derived and suppressed concepts and the
    steering applied (``steps``; ``base_steps`` for the unsteered run)."""

    prompt: str
    base: str | None
    steered: str
    steps: list[dict[str, Any]]
    base_steps: list[dict[str, Any]] | None
    inference: Inference

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.steps)


def generate(model: Model, prompt: str, concepts: Concepts, rules: RuleSet | str, *, strength: float = 0.5,
             max_new_tokens: int = 32, scope: Scope = "all", base: bool = True, steer: Sequence[str] | None = None,
             **generate_kwargs) -> Generation:
    """Greedy generation with ActivationReasoning: at each step the concepts are detected on the new
    tokens (``scope``: the prompt, the output or both), stay active once they fire, the rules infer,
    and the last position at the concepts' site is steered by ``+strength`` per concluded concept
    and ``-strength`` per suppressed one (``h + a * s * d / ||d||``, ``s`` the dictionary's
    ``steering_scale``; see ``interplab.reasoning.steer``). With ``base=True`` an
    unsteered row runs in the same batch for comparison. ``steer`` names the concepts that may
    steer (default: all). One nnsight generation trace."""
    rules = ruleset(rules, concepts.names)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    check_max_new_tokens(max_new_tokens)
    if generate_kwargs.get("do_sample"):
        raise ValueError("generate decodes greedily; do_sample is not supported")
    concepts.check_model(model)
    rows = 2 if base else 1
    enc = model.encode([prompt] * rows)
    limit = getattr(model.hf.config, "max_position_embeddings", None)
    if limit and enc["input_ids"].shape[1] + max_new_tokens > limit:
        raise ValueError(f"the prompt's {enc['input_ids'].shape[1]} tokens and max_new_tokens={max_new_tokens} exceed "
                         f"the {limit} positions {model.name} has; shorten the prompt or ask for fewer tokens")
    reasoner = Reasoner(concepts, rules, enc["attention_mask"], special=special_mask(model.tokenizer, enc["input_ids"]),
                        strength=strength, scope=scope,
                        steered=[False, True] if base else [True], steer=steer)
    tokens = _generate(model, enc, reasoner, max_new_tokens, generate_kwargs)
    texts, kept = _decode(model, tokens, generate_kwargs.get("eos_token_id"))
    for row, records in enumerate(reasoner.records):  # each step's record gets the token it chose
        del records[len(kept[row]):]
        for record, token in zip(records, kept[row]):
            record["token"] = model.tokenizer.decode([token])
    steered_row = rows - 1
    return Generation(prompt=prompt, base=texts[0] if base else None, steered=texts[steered_row],
                      steps=reasoner.records[steered_row], base_steps=reasoner.records[0] if base else None,
                      inference=reasoner.inferences[steered_row])


def _generate(model: Model, enc: dict, reasoner: Reasoner, max_new_tokens: int, kwargs: dict) -> list[torch.Tensor]:
    """Run the generation trace; the greedy token of each step, ``[batch]`` each.

    The loop over the steps is bounded: generation runs all ``max_new_tokens`` steps (it does not
    stop at end-of-sequence tokens, ``eos_token_id=None``) and ``_decode`` cuts each row at its
    first one, which gives the same tokens as stopping there."""
    tok = model.tokenizer
    kwargs = {"pad_token_id": tok.pad_token_id, **kwargs, "do_sample": False, "max_new_tokens": max_new_tokens,
              "eos_token_id": None}
    with torch.no_grad(), model.generate(**enc, **kwargs) as tracer:
        tokens = list().save()
        for _ in tracer.iter[:max_new_tokens]:
            reasoner.step(model)
            tokens.append(model.unembed.output[:, -1].argmax(-1).cpu())
    return tokens


def _decode(model: Model, tokens: Sequence[torch.Tensor], eos: int | list[int] | None
            ) -> tuple[list[str], list[list[int]]]:
    """Each row's text up to (not including) its first end-of-sequence token, and the ids of the
    steps it took (up to and including that token)."""
    ids = torch.stack(list(tokens), 1)
    if eos is None:  # what transformers stops at by default
        eos = model.hf.generation_config.eos_token_id
        eos = [eos, model.tokenizer.eos_token_id] if not isinstance(eos, list) else [*eos, model.tokenizer.eos_token_id]
    eos = set(eos if isinstance(eos, list) else [eos]) - {None}
    texts, kept = [], []
    for row in ids.tolist():
        cut = next((i for i, t in enumerate(row) if t in eos), len(row))
        texts.append(model.tokenizer.decode(row[:cut]))
        kept.append(row[: cut + 1])
    return texts, kept
