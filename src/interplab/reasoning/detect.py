"""Detection: which concepts each token shows, and how strongly.

One trace per batch reads the residual at the concepts' site (stopping there), then the scores of
all tokens and concepts come from one vectorised ``Concepts.score`` call and are compared with
the thresholds; slots are then filled (``Concepts.fill_slots``). Nothing loops over tokens in Python.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..model import Model
from .concepts import Concepts
from .residual import residuals, sink_mask, special_mask

__all__ = ["Detection", "Evidence", "Scope", "detect", "encode_pairs", "evidence_kind"]

Scope = Literal["input", "output", "all"]
SCOPES = ("input", "output", "all")
Evidence = Literal["local", "global", "both"]
EVIDENCE = ("local", "global", "both")


@dataclass
class Detection:
    """Detection over a batch of texts.

    ``scores``/``active`` are ``[n_texts, seq, n_concepts]`` (right-padded; ``NaN``/``False`` at
    padding); ``in_scope`` ``[n_texts, seq]`` marks the tokens detection looked at (real,
    non-special tokens of the chosen part that are not attention sinks); ``sinks`` ``[n_texts,
    seq]`` the attention sinks left out (``residual.sink_mask``); ``mean_scores``/``global_active``
    ``[n_texts, n_concepts]`` are the sequence-level (global) detection over the in-scope tokens.
    """

    concepts: list[str]
    tokens: list[list[str]]
    input_ids: Tensor
    prompt_lengths: list[int]
    scores: Tensor
    active: Tensor
    in_scope: Tensor
    mean_scores: Tensor
    global_active: Tensor
    scope: str
    sinks: Tensor

    def __len__(self) -> int:
        return len(self.tokens)

    def positions(self, i: int = 0) -> dict[str, list[int]]:
        """Text ``i``'s active concepts -> the token positions where they fire (in position order)."""
        where = self.active[i].nonzero().tolist()  # [(position, concept)], sorted by position
        found: dict[str, list[int]] = {}
        for position, c in where:
            found.setdefault(self.concepts[c], []).append(position)
        return {name: found[name] for name in self.concepts if name in found}

    def facts(self, i: int = 0, evidence: Evidence = "local", *, level: str | None = None) -> dict[str, Any]:
        """Text ``i``'s detected concepts as facts for ``RuleSet.infer``: name -> evidence.
        ``evidence="local"``: per-token detections, each fact's evidence a list of ``{"position",
        "token", "score"}``; ``"global"``: per-text detections, ``{"mean_score": ...}``; ``"both"``
        keeps the local evidence where there is some. (``level=`` is its old, deprecated name.)"""
        evidence = evidence_kind(evidence, level, "Detection.facts")
        facts: dict[str, Any] = {}
        if evidence in ("global", "both"):
            for c in self.global_active[i].nonzero().squeeze(-1).tolist():
                facts[self.concepts[c]] = {"mean_score": round(float(self.mean_scores[i, c]), 6)}
        if evidence in ("local", "both"):
            scores = self.scores[i]
            for name, positions in self.positions(i).items():
                c = self.concepts.index(name)
                facts[name] = [{"position": p, "token": self.tokens[i][p], "score": round(float(scores[p, c]), 6)}
                               for p in positions]
        return facts

    def to_frame(self):
        """One row per (text, in-scope token, concept): text, position, token, part, concept, score, active."""
        import pandas as pd

        text, position, c = self.in_scope.unsqueeze(-1).expand_as(self.active).nonzero().unbind(-1)
        tokens = [self.tokens[t][p] for t, p in zip(text.tolist(), position.tolist())]
        part = ["input" if p < self.prompt_lengths[t] else "output" for t, p in zip(text.tolist(), position.tolist())]
        return pd.DataFrame({
            "text": text.numpy(), "position": position.numpy(), "token": tokens, "part": part,
            "concept": pd.Categorical.from_codes(c.numpy(), categories=self.concepts),
            "score": self.scores[text, position, c].numpy(), "active": self.active[text, position, c].numpy(),
        })

    def __repr__(self) -> str:
        n = int(self.active.any(-1).sum())
        return f"Detection({len(self)} texts, {len(self.concepts)} concepts, scope={self.scope}, {n} tokens active)"


def evidence_kind(evidence: str, level: str | None, where: str) -> str:
    """``evidence`` checked; ``level`` (its old name, which in ``il.circuits`` means granularity)
    still works, with a DeprecationWarning."""
    if level is not None:
        warnings.warn(f"{where}: level= is now evidence= (which detections become facts: 'local', 'global' or "
                      "'both')", DeprecationWarning, stacklevel=3)
        evidence = level
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence must be 'local' (per-token detections are facts), 'global' (per-text) or "
                         f"'both', got {evidence!r}")
    return evidence


def encode_pairs(model: Model, items: Sequence[str | tuple[str, str]]) -> tuple[Tensor, Tensor, list[int]]:
    """Token ids of texts or (prompt, completion) pairs, right-padded: ``input_ids``, ``attention_mask``
    and each text's prompt length in tokens. A completion is tokenised on its own (no special tokens)
    and appended, as generation appends new tokens."""
    tok = model.tokenizer
    ids: list[list[int]] = []
    prompt_lengths: list[int] = []
    for item in items:
        if isinstance(item, str):
            prompt, completion = item, None
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            prompt, completion = item
        else:
            raise TypeError(f"detect takes texts or (prompt, completion) pairs of strings, got {item!r}")
        row = tok(prompt)["input_ids"]
        prompt_lengths.append(len(row))
        if completion:
            row = row + tok(completion, add_special_tokens=False)["input_ids"]
        if not row:
            raise ValueError(f"{item!r} has no tokens")
        ids.append(row)
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids, mask, prompt_lengths


def scope_mask(attention_mask: Tensor, special: Tensor, prompt_lengths: Sequence[int], scope: str) -> Tensor:
    """The tokens detection looks at: real, non-special, and in the chosen part (input / output / all)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    keep = attention_mask.bool() & ~special
    if scope == "all":
        return keep
    position = torch.arange(keep.shape[1], device=keep.device)
    in_prompt = position[None, :] < torch.as_tensor(list(prompt_lengths), device=keep.device)[:, None]
    return keep & (in_prompt if scope == "input" else ~in_prompt)


def detect(model: Model, texts: str | tuple[str, str] | Sequence[str | tuple[str, str]], concepts: Concepts, *,
           scope: Scope = "input", batch_size: int = 32) -> Detection:
    """Detect ``concepts`` in texts, per token (local thresholds) and per text (global thresholds).

    ``texts`` are strings (all input) or ``(prompt, completion)`` pairs; ``scope`` picks the part
    looked at: the prompt (``"input"``), the completion (``"output"``) or both (``"all"``).
    """
    items = [texts] if isinstance(texts, str | tuple) else list(texts)
    if not items:
        raise ValueError("no texts to detect in")
    if len(concepts) == 0:
        raise ValueError("the concept dictionary is empty")
    concepts.check_model(model)
    input_ids, attention_mask, prompt_lengths = encode_pairs(model, items)
    special = special_mask(model.tokenizer, input_ids)
    in_scope = scope_mask(attention_mask, special, prompt_lengths, scope)
    sinks = torch.zeros_like(in_scope)
    chunks = []
    for start in range(0, len(items), batch_size):
        rows = slice(start, start + batch_size)
        ids, mask = input_ids[rows], attention_mask[rows]
        width = int(mask.sum(1).max())  # right padding: drop columns that are padding in every row
        h = residuals(model, ids[:, :width].to(model.device), mask[:, :width].to(model.device), concepts.layer,
                      concepts.site)
        s = concepts.score(h).cpu()
        keep = attention_mask[rows, :width].bool() & ~special[rows, :width]
        sinks[rows, :width] = sink_mask(h, keep, concepts.sink_ratio).cpu()
        chunks.append(torch.nn.functional.pad(s, (0, 0, 0, input_ids.shape[1] - width), value=float("nan")))
    scores = torch.cat(chunks).masked_fill(~attention_mask.bool().unsqueeze(-1), float("nan"))
    in_scope &= ~sinks
    local, whole = concepts.thresholds()
    active = concepts.fill_slots(scores, (scores >= local) & in_scope.unsqueeze(-1))
    weight = in_scope.float().unsqueeze(-1)
    mean_scores = torch.where(in_scope.unsqueeze(-1), scores, 0.0).sum(1) / weight.sum(1).clamp_min(1)
    global_active = (mean_scores >= whole) & in_scope.any(1, keepdim=True)
    slotted = [i for i, c in enumerate(concepts) if c.slot is not None or c.name in concepts.slots]
    global_active[:, slotted] = active[..., slotted].any(1)  # a text shows a slot where it is filled
    flat = model.tokenizer.batch_decode(input_ids.reshape(-1, 1))
    lengths = attention_mask.sum(1).tolist()
    width = input_ids.shape[1]
    tokens = [flat[i * width: i * width + n] for i, n in enumerate(lengths)]
    return Detection(concepts=concepts.names, tokens=tokens, input_ids=input_ids, prompt_lengths=prompt_lengths,
                     scores=scores, active=active, in_scope=in_scope, mean_scores=mean_scores,
                     global_active=global_active, scope=scope, sinks=sinks)
