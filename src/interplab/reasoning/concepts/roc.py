"""Detection thresholds: the ROC point of best balanced accuracy (AR's choice) or of best F1 on
labelled scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CRITERIA", "Cut", "best_cut"]

CRITERIA = ("balanced_accuracy", "f1")


@dataclass(frozen=True)
class Cut:
    """A threshold (a score ``>= threshold`` is a detection) and how well it separates the data."""

    threshold: float
    balanced_accuracy: float
    f1: float
    precision: float
    tpr: float
    fpr: float
    auc: float
    positives: int
    negatives: int


def best_cut(scores: Tensor, labels: Tensor, criterion: str = "balanced_accuracy") -> Cut:
    """The cut with the highest ``criterion`` over all cuts between distinct score values (ties go
    to the highest threshold): balanced accuracy ``(TPR + TNR) / 2``, the ROC point AR uses, or
    ``"f1"``, which weighs false alarms by how rare the concept is (balanced accuracy accepts a
    5% false-alarm rate even when positives are 1 token in 1000). The threshold lies halfway
    between the lowest score called positive and the highest score called negative (or at the
    lowest score when every example is called positive), so it generalises symmetrically.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    scores = scores.detach().reshape(-1).double().cpu()
    labels = labels.detach().reshape(-1).bool().cpu()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.numel()} scores but {labels.numel()} labels")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"a threshold needs positive and negative examples; got {n_pos} positive and "
                         f"{n_neg} negative")
    order = scores.argsort(descending=True, stable=True)
    ranked, hits = scores[order], labels[order]
    tp = hits.cumsum(0).double()
    fp = (~hits).cumsum(0).double()
    group_end = torch.ones_like(hits)
    group_end[:-1] = ranked[1:] != ranked[:-1]
    ends = group_end.nonzero().squeeze(-1)
    tpr, fpr = tp[ends] / n_pos, fp[ends] / n_neg
    balanced = (tpr + 1 - fpr) / 2
    f1 = 2 * tp[ends] / (tp[ends] + fp[ends] + n_pos)
    j = int((balanced if criterion == "balanced_accuracy" else f1).argmax())
    precision = tp[ends[j]] / (tp[ends[j]] + fp[ends[j]])
    lowest_in = ranked[ends[j]]
    threshold = lowest_in if j == len(ends) - 1 else (lowest_in + ranked[ends[j] + 1]) / 2
    curve_x = torch.cat([torch.zeros(1, dtype=fpr.dtype), fpr])
    curve_y = torch.cat([torch.zeros(1, dtype=tpr.dtype), tpr])
    auc = torch.trapezoid(curve_y, curve_x)
    return Cut(threshold=float(threshold), balanced_accuracy=float(balanced[j]), f1=float(f1[j]),
               precision=float(precision), tpr=float(tpr[j]),
               fpr=float(fpr[j]), auc=float(auc), positives=n_pos, negatives=n_neg)
