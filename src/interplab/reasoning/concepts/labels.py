"""Labelled texts: which tokens of a text mention a concept.

A concept's examples are given as any of

- ``"Max is a [wumpus]."``: the characters between the markers (default ``[`` and ``]``) are the
  concept's span; a text may mark several spans; the markers are removed before tokenising;
- ``("Max is a wumpus.", "wumpus")``: every whole-word occurrence of the word is a span;
- ``("Max is a wumpus.", [(9, 15)])``: explicit character spans ``(start, end)``;
- a text with no marker at all: the whole text is about the concept (every token is positive).

A token is labelled with a concept when its characters overlap one of the concept's spans.
Negatives are all other (non-special) tokens of all labelled texts, plus ``negatives=`` texts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Labelled", "parse_example"]

Span = tuple[int, int]
WHOLE: None = None  # spans value meaning "the whole text"


def parse_example(item: Any, markers: tuple[str, str] = ("[", "]")) -> tuple[str, tuple[Span, ...] | None]:
    """One labelled example -> (plain text, character spans or None for the whole text)."""
    if isinstance(item, str):
        return _unmark(item, markers)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        text, where = item
        if isinstance(where, str):
            spans = tuple(m.span() for m in re.finditer(rf"(?<!\w){re.escape(where)}(?!\w)", text))
            if not spans:
                raise ValueError(f"the word {where!r} does not occur in the example {text!r}")
            return text, spans
        spans = tuple((int(a), int(b)) for a, b in where)
        for a, b in spans:
            if not 0 <= a < b <= len(text):
                raise ValueError(f"span ({a}, {b}) is not a non-empty character range of {text!r}")
        return text, spans
    raise TypeError(f"a labelled example is a string with [marked] spans, (text, word) or (text, [(start, end)]); "
                    f"got {item!r}")


def _unmark(text: str, markers: tuple[str, str]) -> tuple[str, tuple[Span, ...] | None]:
    opening, closing = markers
    plain: list[str] = []
    spans: list[Span] = []
    start = None
    i = length = 0
    while i < len(text):
        if text.startswith(opening, i):
            if start is not None:
                raise ValueError(f"nested '{opening}' at character {i} of {text!r}: spans cannot nest")
            start, i = length, i + len(opening)
        elif text.startswith(closing, i):
            if start is None:
                raise ValueError(f"'{closing}' at character {i} of {text!r} closes no span")
            if length == start:
                raise ValueError(f"empty span at character {i} of {text!r}")
            spans.append((start, length))
            start, i = None, i + len(closing)
        else:
            plain.append(text[i])
            length, i = length + 1, i + 1
    if start is not None:
        raise ValueError(f"a span opened with '{opening}' in {text!r} is never closed")
    return "".join(plain), (tuple(spans) if spans else WHOLE)


@dataclass
class Labelled:
    """Unique plain texts with, per text and concept, the character spans that mention it."""

    names: list[str]
    texts: list[str]
    spans: list[dict[int, tuple[Span, ...] | None]]  # per text: concept index -> spans (None = whole text)

    @classmethod
    def build(cls, examples: Mapping[str, Sequence[Any]], negatives: Sequence[str] = (),
              markers: tuple[str, str] = ("[", "]")) -> Labelled:
        if not isinstance(examples, Mapping) or not examples:
            raise ValueError("examples must be a non-empty dict {concept name: [labelled texts]}")
        names = list(examples)
        index: dict[str, int] = {}
        texts: list[str] = []
        spans: list[dict[int, Any]] = []
        for c, name in enumerate(names):
            items = examples[name]
            if isinstance(items, str | tuple) or not items:
                raise ValueError(f"concept {name!r} needs a non-empty list of examples, got {items!r}")
            for item in items:
                text, where = parse_example(item, markers)
                if text not in index:
                    index[text] = len(texts)
                    texts.append(text)
                    spans.append({})
                row = spans[index[text]]
                row[c] = WHOLE if where is WHOLE or row.get(c, ()) is WHOLE else (*row.get(c, ()), *where)
        for text in negatives:
            if not isinstance(text, str):
                raise TypeError(f"negatives are plain texts, got {text!r}")
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
                spans.append({})
        return cls(names, texts, spans)

    def token_labels(self, rows: Sequence[int], offsets: Tensor, valid: Tensor) -> Tensor:
        """Boolean labels ``[len(rows), seq, n_concepts]`` for a tokenised batch of ``texts[rows]``.

        ``offsets`` is the tokenizer's ``offset_mapping`` ``[batch, seq, 2]``; ``valid`` marks the
        real, non-special tokens.
        """
        start, end = offsets[..., 0], offsets[..., 1]
        labels = torch.zeros(*valid.shape, len(self.names), dtype=torch.bool)
        for b, row in enumerate(rows):
            for c, where in self.spans[row].items():
                if where is WHOLE:
                    labels[b, :, c] = True
                    continue
                for a, z in where:
                    labels[b, :, c] |= (start[b] < z) & (end[b] > a) & (end[b] > start[b])
        return labels & valid.unsqueeze(-1).cpu()
