"""Steering by concepts, and ActivationReasoning's detect -> infer -> steer step.

The steering rule: at the last position, ``h' = h + alpha * s * d / ||d||`` for each steered
concept ``d``, where ``s`` (``Concepts.steering_scale``) is ``STEER_UNIT`` times the dictionary's
typical residual norm at its site (``Concepts.residual_norm``: the median norm of the tokens it
was fitted on, attention sinks left out). AR's rule scales by ``||h||`` of the steered position
instead; the typical norm is the same for ordinary tokens (within about 10% on SmolLM2) but not
at an attention sink, whose norm is a hundred times larger, and ``STEER_UNIT`` makes the
strengths people use (0.5 to 2) steer a real model without breaking its text (docs/reasoning.md,
"Steering strength"). A dictionary that does not know its residual norm (built by hand, or saved
before it was recorded) scales by ``STEER_UNIT * ||h||``. With several concepts the terms add up;
a negative ``alpha`` steers away (suppresses).

``steer`` applies given strengths inside any trace. ``Reasoner.step`` is the AR step for one
forward pass of a generation (call it inside each step of ``model.generate``'s loop, alone
or next to your own interventions): it reads the concepts' site, detects concepts on the new
tokens, keeps every detected concept active for the rest of the sequence, infers with the
rules, and steers the last position by the concluded concepts (``+strength``) and the
suppressed ones (``-strength``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..model import Model
from .concepts import Concepts
from .residual import median_norm, read, sink_mask, write
from .rules import Inference, RuleSet

__all__ = ["MAX_NEW_TOKENS", "MAX_STRENGTH", "Reasoner", "add_directions", "check_max_new_tokens", "check_strength",
           "steer"]

MAX_STRENGTH = 50.0  # |strength| beyond this adds ten typical residual norms or more: no text survives it
MAX_NEW_TOKENS = 4096


def check_strength(value: Any, name: str = "strength") -> float:
    """``value`` as a float, or a ValueError that gives the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or abs(value) > MAX_STRENGTH:
        raise ValueError(f"{name} must be a finite number from {-MAX_STRENGTH:g} to {MAX_STRENGTH:g} (in units of "
                         f"the layer's typical residual norm x {Concepts.STEER_UNIT:g}; negative steers away), "
                         f"got {value!r}")
    return float(value)


def check_max_new_tokens(value: Any, *, limit: int = MAX_NEW_TOKENS) -> int:
    """``value`` as an int, or a ValueError that gives the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValueError(f"max_new_tokens must be an integer from 1 to {limit}, got {value!r}")
    return value


def add_directions(h: Tensor, coefficients: Tensor, units: Tensor, position: int | Tensor = -1,
                   scale: float = math.nan) -> Tensor:
    """``h`` ``[batch, seq, d]`` with ``scale * coefficients @ units`` added at position ``p`` (one
    index for every row, or a tensor ``[batch]`` of per-row positions); ``coefficients`` is
    ``[batch, n]`` or ``[n]``, ``units`` ``[n, d]`` unit directions. ``scale`` NaN: each row's
    ``STEER_UNIT * ||h_p||`` (AR's rule, scaled)."""
    rows = torch.arange(h.shape[0], device=h.device)
    where = torch.as_tensor(position, device=h.device).expand(h.shape[0])
    last = h[rows, where].float()
    size = Concepts.STEER_UNIT * last.norm(dim=-1, keepdim=True) if math.isnan(scale) else scale
    out = h.clone()
    out[rows, where] = (last + size * (coefficients.to(units) @ units)).to(h.dtype)
    return out


def steer(model: Model, concepts: Concepts, strengths: Mapping[str, float], *, position: int = -1) -> None:
    """Inside a trace: steer the residual at the concepts' site by ``{concept: alpha}`` at ``position``
    (every row of the batch; see the module docstring for the rule)."""
    unknown = [n for n in strengths if n not in concepts]
    if unknown:
        raise KeyError(f"steer: no concepts {unknown} in the dictionary ({concepts.names})")
    alpha = torch.zeros(len(concepts))
    for name, value in strengths.items():
        alpha[concepts.names.index(name)] = check_strength(value, f"the strength of {name!r}")
    concepts.check_model(model)
    h = read(model, concepts.layer, concepts.site)
    units = concepts.unit_directions(h.device)
    write(model, concepts.layer, concepts.site,
          add_directions(h, alpha.to(h.device), units, position, concepts.steering_scale))


def steerable_concepts(concepts: Concepts, steer: Sequence[str] | None) -> frozenset[str]:
    """The concepts that may steer: ``steer`` (checked against the dictionary), or all of them."""
    if steer is None:
        return frozenset(concepts.names)
    if isinstance(steer, str):
        raise TypeError(f"steer is a list of concept names, got the string {steer!r}")
    unknown = [n for n in steer if n not in concepts]
    if unknown:
        raise KeyError(f"steer names concepts {unknown} that are not in the dictionary ({concepts.names})")
    return frozenset(steer)


class Reasoner:
    """AR state over a batch of sequences during generation (see the module docstring).

    ``attention_mask`` ``[batch, prompt_len]`` is the (left-padded) prompts' mask; ``special``
    (same shape, optional) marks special tokens (<bos>...), which are never detected; evidence
    positions count from each row's first real token. ``steered`` ``[batch]`` says which rows are
    steered (the others are only observed, e.g. a base row); ``scope``: detect on the prompt
    ("input"), the generated tokens ("output") or both ("all"). After each ``step``,
    ``records[row]`` holds one entry per step.
    """

    def __init__(self, concepts: Concepts, rules: RuleSet, attention_mask: Tensor, *, special: Tensor | None = None,
                 strength: float = 0.5, scope: str = "all", steered: Sequence[bool] | Tensor | None = None,
                 steer: Sequence[str] | None = None):
        if scope not in ("input", "output", "all"):
            raise ValueError(f"scope must be 'input', 'output' or 'all', got {scope!r}")
        self.concepts, self.rules, self.strength, self.scope = concepts, rules, check_strength(strength), scope
        self.steerable = steerable_concepts(concepts, steer)
        attention_mask = attention_mask.bool().cpu()
        self.prompt_mask = attention_mask if special is None else attention_mask & ~special.bool().cpu()
        batch = attention_mask.shape[0]
        self.pad = (~attention_mask).long().cumprod(1).sum(1)  # left padding per row
        self.steered = torch.ones(batch, dtype=torch.bool) if steered is None else torch.as_tensor(steered).bool()
        self.names = concepts.names
        self.step_index = 0
        self.typical = torch.full((batch,), torch.nan)  # the prompt's median residual norm, per row
        self.active = torch.zeros(batch, len(self.names), dtype=torch.bool)
        self.evidence: list[dict[str, list[dict[str, Any]]]] = [{} for _ in range(batch)]
        self.concluded: list[set[str]] = [set() for _ in range(batch)]
        self.inferences: list[Inference | None] = [None] * batch
        self.records: list[list[dict[str, Any]]] = [[] for _ in range(batch)]

    def step(self, model: Model) -> None:
        """Inside one forward pass of a trace or generation step: detect, infer, steer."""
        h = read(model, self.concepts.layer, self.concepts.site)
        first = self.step_index == 0
        look = self.scope in ("input", "all") if first else self.scope in ("output", "all")
        new = torch.zeros_like(self.active)
        if look:
            local, _ = self.concepts.thresholds(h.device)
            scores = self.concepts.score(h)
            mask = self.in_scope(h, first)
            hits = self.concepts.fill_slots(scores, (scores >= local) & mask.unsqueeze(-1)).cpu()
            new = hits.any(1) & ~self.active
            self.active |= hits.any(1)
            self._collect(hits, scores.cpu(), first)
        coefficients = torch.zeros(len(self.active), len(self.names))
        for row in range(len(self.active)):
            coefficients[row] = self._infer(row, new[row])
        coefficients[~self.steered] = 0.0
        if coefficients.any():
            units = self.concepts.unit_directions(h.device)
            write(model, self.concepts.layer, self.concepts.site,
                  add_directions(h, coefficients.to(h.device), units, scale=self.concepts.steering_scale))
        self.step_index += 1

    def in_scope(self, h: Tensor, first: bool) -> Tensor:
        """The tokens of this step that detection reads ``[batch, seq]``: the prompt's real,
        non-special tokens at the first step, the new token later; attention sinks never (a new
        token is a sink when its norm is far above the prompt's median, ``residual.sink_mask``)."""
        if first:
            keep = self.prompt_mask.to(h.device)
            self.typical = median_norm(h.detach().float().norm(dim=-1), keep)
        else:
            keep = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        return keep & ~sink_mask(h, keep, self.concepts.sink_ratio, typical=self.typical)

    def _collect(self, hits: Tensor, scores: Tensor, first: bool) -> None:
        """Record each detection with its position in the row's unpadded sequence."""
        for row, pos, c in hits.nonzero().tolist():
            position = pos - int(self.pad[row])
            if not first:  # the token generated at the previous step
                position = self.prompt_mask.shape[1] - int(self.pad[row]) + self.step_index - 1
            self.evidence[row].setdefault(self.names[c], []).append(
                {"position": position, "score": round(float(scores[row, pos, c]), 6)})

    def _infer(self, row: int, new: Tensor) -> Tensor:
        """Infer from the row's active concepts; return its steering coefficients ``[n_concepts]``."""
        facts = {name: self.evidence[row][name] for name in self.evidence[row]}
        previous = self.inferences[row]
        if previous is None or previous.given != frozenset(facts):
            self.inferences[row] = self.rules.infer(facts)
        inference = self.inferences[row]
        self.concluded[row] |= inference.derived
        alpha = torch.zeros(len(self.names))
        steering: dict[str, float] = {}
        for name in self.concluded[row]:
            if name in self.steerable and name not in inference.suppressed:
                steering[name] = self.strength
        for name in inference.suppressed:
            if name in self.steerable:
                steering[name] = -self.strength
        for name, value in steering.items():
            alpha[self.names.index(name)] = value
        self.records[row].append({
            "step": self.step_index,
            "detected": [self.names[c] for c in new.nonzero().squeeze(-1).tolist()],
            "facts": sorted(inference.facts), "derived": sorted(inference.derived),
            "suppressed": sorted(inference.suppressed),
            "steering": dict(sorted(steering.items())) if bool(self.steered[row]) else {},
        })
        return alpha
