"""The run layer: how every instrument turns text into model inputs, batches its work and reports progress.

**Padding convention** (one of two, chosen by what the positions mean):

- ``"right"`` (token sets: routing scans, concept fitting and detection, per-token readings): each
  row's real tokens sit at positions ``0..n-1`` exactly as if the row ran alone; causal attention
  never looks at the pads after them.
- ``"left"`` (contrast tasks and generation): every row ends at the last position, so "the last
  position" and the right-aligned window ``p`` mean the same token in every row, and generation
  continues every row at once. ``position_ids`` restart at 0 on each row's first real token, so a
  left-padded row computes exactly what it computes alone.

**Token budget**: one forward holds at most ``TOKEN_BUDGET`` tokens (rows x positions) unless the
caller says otherwise; ``rows_per_forward`` turns that into a batch size.

**Progress**: long loops call ``report(desc, done, total)`` (through ``steps``); observers
registered with ``observe_progress`` receive every report (a widget's progress bar), and a tqdm
bar shows in the notebook when a loop takes more than one step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = [
    "TOKEN_BUDGET",
    "Batch",
    "ProgressCallback",
    "Side",
    "check_ids",
    "check_lengths",
    "decode_each",
    "each",
    "encode",
    "max_positions",
    "observe_progress",
    "pad",
    "report",
    "rows_per_forward",
    "steps",
    "token_ids",
]

Side = Literal["left", "right"]

#: tokens (rows x positions) per forward when the caller gives no batch size
TOKEN_BUDGET = 16384


# --- encoding ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """Padded token id rows on a device: ``input_ids``, ``attention_mask``, ``position_ids`` ``[rows, seq]``;
    ``lengths`` (real tokens per row) and ``side`` (where the padding is)."""

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    lengths: tuple[int, ...]
    side: Side

    def inputs(self) -> dict[str, Tensor]:
        """Keyword arguments for a forward pass (positions included, so left padding is exact)."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}

    def inputs_without_positions(self) -> dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` only (what ``generate`` and a tokenizer's output hold)."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    def real(self) -> Tensor:
        """``[rows, seq]`` bool: where the real (non-pad) tokens are."""
        return self.attention_mask.bool()

    def spread(self, values: Sequence[Sequence[bool]]) -> Tensor:
        """Per-token flags of each row (``len(values[i]) == lengths[i]``) as a padded ``[rows, seq]``
        bool tensor (False at the pads)."""
        out = torch.zeros(self.input_ids.shape, dtype=torch.bool)
        out[self.real().cpu()] = torch.tensor([v for row in values for v in row], dtype=torch.bool)
        return out.to(self.input_ids.device)


def token_ids(model, texts: str | Sequence[str], *, special: bool = True) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens unless ``special=False``).

    Raises ``ValueError`` for a non-string, an empty list, or a text that tokenises to nothing.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no texts: pass at least one string")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings; got {type(bad[0]).__name__} {bad[0]!r}")
    rows = model.tokenizer(texts, add_special_tokens=special)["input_ids"]
    empty = [t for t, r in zip(texts, rows) if not r]
    if empty:
        raise ValueError(f"these texts tokenise to no tokens: {empty[:3]!r}")
    check_ids(model, rows)
    return [list(r) for r in rows]


def check_ids(model, rows: Sequence[Sequence[int]]) -> None:
    """Refuse token ids the model's embedding has no row for (tokens added to the tokenizer
    without ``resize_token_embeddings``): otherwise a bare IndexError, or a device-side assert on CUDA."""
    rows_in_table = model.anatomy.vocab_size
    largest = max((max(r) for r in rows if len(r)), default=-1)
    if largest >= rows_in_table:
        raise ValueError(f"the tokenizer gives token id {largest} but {model.name}'s embedding has {rows_in_table} "
                         f"rows: after tokenizer.add_tokens(...), call "
                         f"model.hf.resize_token_embeddings(len(model.tokenizer))")


def pad(rows: Sequence[Sequence[int]], side: Side, pad_id: int | None, device=None) -> Batch:
    """Pad id rows to one width on ``side`` (see the module docstring)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    lengths = torch.tensor([len(r) for r in rows])
    width = int(lengths.max())
    if side == "right":
        real = torch.arange(width)[None, :] < lengths[:, None]
    else:
        real = torch.arange(width)[None, :] >= (width - lengths)[:, None]
    ids = torch.full(real.shape, 0 if pad_id is None else pad_id, dtype=torch.long)
    ids[real] = torch.tensor([t for r in rows for t in r], dtype=torch.long)
    mask = real.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids.to(device), mask.to(device), positions.to(device), tuple(lengths.tolist()), side)


def encode(model, texts: str | Sequence[str], *, side: Side = "right", special: bool = True) -> Batch:
    """Tokenise and pad texts for ``model``, on its device (texts longer than its position table are refused)."""
    rows = token_ids(model, texts, special=special)
    check_lengths(model, [len(r) for r in rows], "a text")
    return pad(rows, side, model.tokenizer.pad_token_id, model.device)


def decode_each(model, ids: Tensor | Sequence[int]) -> list[str]:
    """Each id decoded as a token of its own (each distinct id decoded once)."""
    flat = ids.reshape(-1).tolist() if isinstance(ids, Tensor) else [int(i) for i in ids]
    distinct = list(dict.fromkeys(flat))
    text = dict(zip(distinct, model.tokenizer.batch_decode([[i] for i in distinct])))
    return [text[i] for i in flat]


def max_positions(model) -> int | None:
    """The longest input the model's position table holds (None when it has no fixed limit)."""
    config = model.hf.config.get_text_config() if hasattr(model.hf.config, "get_text_config") else model.hf.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_lengths(model, lengths: Sequence[int], what: str = "a text") -> None:
    """Refuse inputs longer than the model's position table, with the lengths (a bare IndexError on
    the CPU and a device-side assert on CUDA otherwise)."""
    limit = max_positions(model)
    longest = max(lengths, default=0)
    if limit is not None and longest > limit:
        raise ValueError(f"{what} is {longest} tokens long, but {model.name} holds at most {limit} positions "
                         f"(config.max_position_embeddings): shorten it to {limit} tokens or fewer")


def rows_per_forward(tokens_per_row: int, budget: int = TOKEN_BUDGET) -> int:
    """How many rows of ``tokens_per_row`` tokens fit in one forward (at least one)."""
    return max(1, budget // max(1, tokens_per_row))


# --- progress ------------------------------------------------------------------------------------
ProgressCallback = Callable[[str, int, int], None]
"""``callback(desc, done, total)``: ``done`` of ``total`` units of the loop ``desc`` are through."""

_OBSERVERS: ContextVar[tuple[ProgressCallback, ...]] = ContextVar("interplab_progress_observers", default=())


@contextmanager
def observe_progress(callback: ProgressCallback) -> Iterator[None]:
    """Call ``callback(desc, done, total)`` before the first and after every step of every long loop
    of every instrument that runs inside the block."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), callback))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def report(desc: str, done: int, total: int) -> None:
    """Tell every observer that ``done`` of ``total`` units of ``desc`` are through."""
    for callback in _OBSERVERS.get():
        callback(desc, done, total)


def steps(items: Sequence, size: int, *, desc: str, unit: str = "item", progress: bool = True
          ) -> Iterator[tuple[int, list]]:
    """``(start, items[start:start + size])`` over ``items``, reporting progress after each step
    (observers always; a tqdm bar when ``progress`` and it takes more than one step)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size must be a positive integer; got {size!r}")
    total = len(items)
    report(desc, 0, total)
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress or total <= size, leave=False) as bar:
        for start in range(0, total, size):
            chunk = list(items[start:start + size])
            yield start, chunk
            bar.update(len(chunk))
            report(desc, start + len(chunk), total)


def each(items: Iterable, total: int, *, desc: str, unit: str = "step", progress: bool = True) -> Iterator:
    """The items of an iterable with progress reported after each one (``steps`` for batches)."""
    report(desc, 0, total)
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress or total < 2, leave=False) as bar:
        for done, item in enumerate(items, 1):
            yield item
            bar.update(1)
            report(desc, done, total)
