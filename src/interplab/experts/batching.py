"""Batches of prompts with a progress bar, and tokenisation into id rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tqdm.auto import tqdm

from ..model import Model

__all__ = ["batches", "token_rows"]


def batches(prompts: Sequence[str], batch_size: int, *, desc: str, progress: bool = True
            ) -> Iterator[tuple[int, list[str]]]:
    """``(start, prompts[start:start + batch_size])`` over the set, with a tqdm bar when it takes
    more than one batch."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    total = len(prompts)
    with tqdm(total=total, desc=desc, unit="prompt", disable=not progress or total <= batch_size,
              leave=False) as bar:
        for start in range(0, total, batch_size):
            batch = list(prompts[start:start + batch_size])
            yield start, batch
            bar.update(len(batch))


def token_rows(model: Model, texts: Sequence[str], *, special: bool = True) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens unless ``special=False``)."""
    rows = model.tokenizer(list(texts), add_special_tokens=special)["input_ids"]
    empty = [t for t, r in zip(texts, rows) if not r and special]
    if empty:
        raise ValueError(f"these prompts tokenise to no tokens: {empty[:3]!r}")
    return rows
