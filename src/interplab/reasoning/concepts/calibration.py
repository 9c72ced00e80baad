"""Detection thresholds fitted on labelled texts (what ``Concepts.calibrate`` runs): per concept,
the ROC point of best balanced accuracy (AR's choice) or F1 over the tokens (``threshold``) and
over the texts' mean scores (``global_threshold``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ...model import Model
from .labels import Labelled
from .reading import labelled_batches
from .roc import best_cut

if TYPE_CHECKING:
    from .dictionary import Concepts

__all__ = ["calibrate"]

NAN = math.nan


def calibrate(concepts: Concepts, model: Model, examples: Mapping[str, Sequence[Any]], *,
              negatives: Sequence[str] = (), markers: tuple[str, str] = ("[", "]"), batch_size: int = 32,
              criterion: str = "balanced_accuracy"):
    """Fit the thresholds of the concepts named in ``examples`` on those labelled texts: the ROC
    point of best ``criterion`` (balanced accuracy, AR's choice, or ``"f1"``) per token
    (``threshold``) and over the texts' mean scores (``global_threshold``; a text is positive
    when some token of it is). Attention sinks are left out as in detection. Returns a DataFrame
    of the chosen points."""
    import pandas as pd

    unknown = [n for n in examples if n not in concepts]
    if unknown:
        raise KeyError(f"calibrate: no concepts {unknown} in this dictionary ({concepts.names})")
    members = [n for n in examples if concepts[n].slot is not None]
    if members:
        raise ValueError(f"calibrate: {members} are slot members, detected by their slot's gate and "
                         "classifier, not by thresholds; calibrate the gate instead")
    concepts.check_model(model)
    data = Labelled.build(examples, negatives, markers)
    which = torch.tensor([concepts.names.index(n) for n in data.names])
    token_scores, token_labels, text_scores, text_labels = [], [], [], []
    for h, valid, labels in labelled_batches(model, data, concepts.layer, concepts.site, batch_size,
                                             concepts.sink_ratio):
        s = concepts.score(h)[..., which.to(h.device)].cpu()
        weight = valid.float().unsqueeze(-1)
        token_scores.append(s[valid])
        token_labels.append(labels[valid])
        text_scores.append((s * weight).sum(1) / weight.sum(1).clamp_min(1))
        text_labels.append(labels.any(1))
    scores, labels = torch.cat(token_scores), torch.cat(token_labels)
    means, any_labels = torch.cat(text_scores), torch.cat(text_labels)
    rows = []
    for c, name in enumerate(data.names):
        concept = concepts[name]
        cut = best_cut(scores[:, c], labels[:, c], criterion)
        concept.threshold = cut.threshold
        concept.info["local"] = vars(cut)
        row = {"concept": name, "threshold": cut.threshold, "balanced_accuracy": cut.balanced_accuracy,
               "f1": cut.f1, "precision": cut.precision, "auc": cut.auc, "tpr": cut.tpr, "fpr": cut.fpr}
        if 0 < int(any_labels[:, c].sum()) < len(any_labels):
            whole = best_cut(means[:, c], any_labels[:, c], criterion)
            concept.global_threshold = whole.threshold
            concept.info["global"] = vars(whole)
            row |= {"global_threshold": whole.threshold, "global_balanced_accuracy": whole.balanced_accuracy}
        else:  # every text (or none) shows the concept: no global cut can be fitted
            concept.global_threshold = NAN
            concept.info.pop("global", None)
            row |= {"global_threshold": NAN, "global_balanced_accuracy": NAN}
        rows.append(row)
    return pd.DataFrame(rows)
