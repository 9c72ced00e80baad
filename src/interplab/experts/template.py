"""Prompt templates with placeholders, expanded over value lists (as MoTE builds its prompt sets).

    Template("What happened {time} {place}?", time=["in 1989", "yesterday"], place=["here", "there"])

expands to the product of the value lists (4 prompts here), in the order of the placeholders'
first appearance, the last placeholder varying fastest. Expansion is lazy: iterating never holds
the whole product, and ``sample(n, seed)`` draws from a product too large to list.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence

__all__ = ["MAX_PROMPTS", "Template", "as_prompts"]

MAX_PROMPTS = 100_000
"""Default cap on a template's expansion; above it ``prompts()`` and scans refuse (use ``sample``)."""


class Template:
    """A format string with named placeholders and a list of values for each placeholder."""

    def __init__(self, text: str, *, max_prompts: int = MAX_PROMPTS, **values: Sequence[str]):
        if not isinstance(text, str):
            raise TypeError(f"Template text must be a string; got {type(text).__name__}")
        self.text = text
        self.max_prompts = max_prompts
        self.names = _placeholders(text)
        missing = [n for n in self.names if n not in values]
        extra = [n for n in values if n not in self.names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no values for placeholder(s) {missing} (add {', '.join(f'{n}=[...]' for n in missing)})")
            if extra:
                parts.append(f"value list(s) {extra} match no placeholder in {text!r}")
            raise ValueError("Template: " + "; ".join(parts) + f". The placeholders are {self.names}.")
        self.values: dict[str, list[str]] = {}
        for name in self.names:
            options = values[name]
            if isinstance(options, str) or not isinstance(options, Sequence):
                raise TypeError(f"Template: {name}= must be a list of strings; got {options!r}")
            if not options:
                raise ValueError(f"Template: {name}= is empty; give at least one value")
            bad = [v for v in options if not isinstance(v, str)]
            if bad:
                raise TypeError(f"Template: {name}= must contain strings only; got {bad[:3]!r}")
            self.values[name] = list(options)

    def __len__(self) -> int:
        n = 1
        for options in self.values.values():
            n *= len(options)
        return n

    def fill(self, index: int) -> str:
        """The ``index``-th prompt of the product (last placeholder fastest)."""
        if not 0 <= index < len(self):
            raise IndexError(f"template index {index} out of range for {len(self)} prompts")
        chosen = {}
        for name in reversed(self.names):
            options = self.values[name]
            index, k = divmod(index, len(options))
            chosen[name] = options[k]
        return self.text.format(**chosen)

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self.fill(i) for i in range(*index.indices(len(self)))]
        return self.fill(index + len(self) if index < 0 else index)

    def __iter__(self) -> Iterator[str]:
        self._check_size()
        return (self.fill(i) for i in range(len(self)))

    def prompts(self) -> list[str]:
        """All prompts of the product (refused above ``max_prompts``)."""
        return list(self)

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """``n`` distinct prompts drawn uniformly from the product, without listing it."""
        total = len(self)
        if n > total:
            raise ValueError(f"cannot sample {n} distinct prompts from a template with {total}")
        return [self.fill(i) for i in random.Random(seed).sample(range(total), n)]

    def _check_size(self) -> None:
        if len(self) > self.max_prompts:
            sizes = " x ".join(f"{len(v)} {k}" for k, v in self.values.items())
            raise ValueError(
                f"Template expands to {len(self):,} prompts ({sizes}), more than max_prompts={self.max_prompts:,}. "
                "Use template.sample(n, seed) for a random subset, shorten the value lists, or pass "
                "Template(..., max_prompts=...) to allow more.")

    def __repr__(self) -> str:
        return f"Template({self.text!r}, {len(self)} prompts)"


def _placeholders(text: str) -> list[str]:
    names: list[str] = []
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as err:
        raise ValueError(f"Template {text!r} is not a valid format string ({err}); write literal braces as "
                         "{{ and }}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"Template {text!r}: placeholder {{{name}}} must be a plain name such as {{place}}")
        if spec or conversion:
            raise ValueError(f"Template {text!r}: placeholder {{{name}}} takes no format spec or conversion")
        if name not in names:
            names.append(name)
    return names


def as_prompts(prompts, what: str = "prompts") -> Sequence[str]:
    """A list of prompt strings, or a ``Template`` (kept lazy); a single string becomes ``[string]``."""
    if isinstance(prompts, Template):
        prompts._check_size()
        return prompts
    if isinstance(prompts, str):
        return [prompts]
    if prompts is None or not isinstance(prompts, Sequence):
        raise TypeError(f"{what} must be a list of strings or an il.experts.Template; got {type(prompts).__name__}")
    if not prompts:
        raise ValueError(f"{what} is empty: give at least one prompt")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise TypeError(f"{what} must contain strings only; got {bad[:3]!r}")
    if any(not p for p in prompts):
        raise ValueError(f"{what} contains an empty string; every prompt needs at least one token")
    return list(prompts)
