"""The residuals of labelled texts at a concept site, batch by batch, with the tokens concepts
are read from: real tokens that are neither special (<bos>, padding) nor attention sinks
(``residual.sink_mask``), and their labels."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from ...model import Model
from ..residual import Site, residuals, sink_mask, tokenize
from .labels import Labelled

__all__ = ["labelled_batches", "labelled_tokens"]


def labelled_batches(model: Model, data: Labelled, layer: int, site: Site, batch_size: int,
                     sink_ratio: float) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Per batch of labelled texts: residuals ``[b, s, d]`` at the site, the tokens concepts are
    read from ``[b, s]`` and their labels ``[b, s, n_concepts]`` (both on the CPU)."""
    for start in range(0, len(data.texts), batch_size):
        rows = list(range(start, min(start + batch_size, len(data.texts))))
        enc = tokenize(model, [data.texts[r] for r in rows], offsets=True)
        h = residuals(model, enc["input_ids"], enc["attention_mask"], layer, site)
        valid = enc["attention_mask"].bool().cpu() & ~enc["special_tokens_mask"]
        valid &= ~sink_mask(h, valid, sink_ratio).cpu()
        yield h, valid, data.token_labels(rows, enc["offset_mapping"], valid)


def labelled_tokens(model: Model, data: Labelled, layer: int, site: Site, batch_size: int,
                    sink_ratio: float) -> Iterator[tuple[Tensor, Tensor]]:
    """Per batch: the residuals of the tokens concepts are read from ``[n, d]`` and their labels ``[n, C]``."""
    for h, valid, labels in labelled_batches(model, data, layer, site, batch_size, sink_ratio):
        yield h[valid.to(h.device)], labels[valid]
