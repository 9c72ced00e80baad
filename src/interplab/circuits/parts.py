"""``attribute_in_parts``: ``attribute`` over parts of a task's prompts, with progress per part.

The metric is a mean over prompts, and every method's score is linear in it, so a task's scores
are its parts' scores weighted by their shares of the prompts. Parts are encoded on their own:
a part whose prompts are all shorter than the task's longest has a narrower window, and since
windows are right-aligned (left padding), its position ``p`` is the task's position
``p + (S - S_part)``; the task's first positions are padding for every prompt of that part, where
every score is zero. So the combination is exact, padded tasks included.

``observer(done, total)`` is called after each part: a widget's progress bar, a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from ..tasks.contrast import ContrastTask
from .attribution import attribute
from .result import Attribution

__all__ = ["Observer", "attribute_in_parts", "split"]

Observer = Callable[[int, int], None]


def split(n: int, parts: int) -> list[list[int]]:
    """``n`` prompt indices in ``parts`` contiguous, nearly equal parts (none empty)."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    parts = min(parts, n)
    bounds = [k * n // parts for k in range(parts + 1)]
    return [list(range(bounds[k], bounds[k + 1])) for k in range(parts)]


def _right_aligned(scores: torch.Tensor, axes: tuple[str, ...], seq_len: int) -> torch.Tensor:
    if "position" not in axes:
        return scores
    dim = axes.index("position")
    short = seq_len - scores.shape[dim]
    if short == 0:
        return scores
    pad = list(scores.shape)
    pad[dim] = short
    return torch.cat([scores.new_zeros(pad), scores], dim=dim)


def attribute_in_parts(model, task: ContrastTask, method: str = "atp", level: str = "component", *,
                       parts: int = 4, observer: Observer | None = None, **kwargs) -> Attribution:
    """``attribute(model, task, method, level, **kwargs)`` computed over ``parts`` parts of the prompts.

    Edge-level attributions are split only when all prompts have one length (their scores are
    already summed over positions; nothing to align).
    """
    enc = task.encode(model)
    if level == "edge" and enc.padded:
        parts = 1
    chunks = split(enc.n, parts)
    total: Attribution | None = None
    for done, idx in enumerate(chunks, start=1):
        part = attribute(model, task if len(chunks) == 1 else task.subset(idx), method, level, progress=False,
                         **kwargs)
        weight = len(idx) / enc.n
        scores = {c: _right_aligned(t, part.axes[c], enc.seq_len) * weight for c, t in part.scores.items()}
        edges = None if part.edge_scores is None else part.edge_scores * weight
        if total is None:
            total = replace(part, scores=scores, edge_scores=edges, clean_metric=part.clean_metric * weight,
                            corrupt_metric=part.corrupt_metric * weight, labels=enc.labels)
        else:
            total = replace(total, scores={c: total.scores[c] + scores[c] for c in scores},
                            edge_scores=None if edges is None else total.edge_scores + edges,
                            clean_metric=total.clean_metric + part.clean_metric * weight,
                            corrupt_metric=total.corrupt_metric + part.corrupt_metric * weight)
        if observer is not None:
            observer(done, len(chunks))
    return total
