"""Batches of prompts with a progress bar, and tokenisation into id rows.

Long loops report progress twice: a tqdm bar (when a loop takes more than one batch), and to every
callback registered with ``observe_progress`` (a widget shows them in its own progress bar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from tqdm.auto import tqdm

from ..model import Model

__all__ = ["ProgressCallback", "batches", "observe_progress", "token_rows"]

ProgressCallback = Callable[[str, int, int], None]
"""``callback(desc, done, total)``: ``done`` of ``total`` prompts of the loop ``desc`` are through."""

_OBSERVERS: ContextVar[tuple[ProgressCallback, ...]] = ContextVar("interplab_progress_observers", default=())


@contextmanager
def observe_progress(callback: ProgressCallback) -> Iterator[None]:
    """Call ``callback(desc, done, total)`` before the first and after every batch of every
    ``il.experts`` loop (scan, route, generate, SCMoE) that runs inside the block."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), callback))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def _notify(desc: str, done: int, total: int) -> None:
    for callback in _OBSERVERS.get():
        callback(desc, done, total)


def batches(prompts: Sequence[str], batch_size: int, *, desc: str, progress: bool = True
            ) -> Iterator[tuple[int, list[str]]]:
    """``(start, prompts[start:start + batch_size])`` over the set, with a tqdm bar when it takes
    more than one batch."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    total = len(prompts)
    _notify(desc, 0, total)
    with tqdm(total=total, desc=desc, unit="prompt", disable=not progress or total <= batch_size,
              leave=False) as bar:
        for start in range(0, total, batch_size):
            batch = list(prompts[start:start + batch_size])
            yield start, batch
            bar.update(len(batch))
            _notify(desc, start + len(batch), total)


def token_rows(model: Model, texts: Sequence[str], *, special: bool = True) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens unless ``special=False``)."""
    rows = model.tokenizer(list(texts), add_special_tokens=special)["input_ids"]
    empty = [t for t, r in zip(texts, rows) if not r and special]
    if empty:
        raise ValueError(f"these prompts tokenise to no tokens: {empty[:3]!r}")
    return rows
