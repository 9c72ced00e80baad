"""Fitting concepts to labelled texts: difference of means (DiffMean), its whitened reading (LDA),
SAE features ranked by their activation gap, and slots (see ``dictionary``). What
``Concepts.from_examples`` and ``Concepts.from_sae`` run.

Every statistic is streamed over batches of labelled texts (``reading.labelled_tokens``): sums
and counts (and second moments for LDA), never the tokens themselves. Attention sinks are left
out of all of them (``residual.sink_mask``, ``sink_ratio``); the median residual norm of the
tokens read is kept as the dictionary's ``residual_norm``, the unit of steering strengths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...model import Model
from ..residual import SINK_RATIO, Site, check_site
from .calibration import calibrate
from .dictionary import Concepts, model_record
from .labels import Labelled
from .reading import labelled_tokens
from .sae import SAE

__all__ = ["CANDIDATES", "from_examples", "from_sae"]

CANDIDATES = 10  # SAE features kept per concept, ranked (AR keeps the top 10)
METHODS = ("diffmean", "lda")


def from_examples(model: Model, layer: int, examples: Mapping[str, Sequence[Any]], *, method: str = "diffmean",
                  negatives: Sequence[str] = (), site: Site = "output", markers: tuple[str, str] = ("[", "]"),
                  batch_size: int = 32, criterion: str = "balanced_accuracy", shrinkage: float = 0.01,
                  slots: Mapping[str, Sequence[str]] | None = None, sink_ratio: float = SINK_RATIO) -> Concepts:
    """Difference-of-means concepts: for each concept, the mean residual over its labelled tokens
    minus the mean over all other tokens of the labelled texts; thresholds calibrated on the
    same texts. ``examples`` is ``{name: [labelled texts]}`` (see ``interplab.reasoning.concepts.labels``).

    ``method="lda"`` steers along the same direction but detects with it whitened by the
    covariance ``S`` of all the labelled tokens' residuals: ``(S + shrinkage * tr(S)/d * I)^-1 d``
    (Fisher's discriminant with shrinkage).

    ``slots`` (``{gate: [member names]}``) makes groups of the named concepts slots (see
    ``dictionary``): the gate is a further concept of the method's kind whose positives are all
    the members' labelled tokens; the members' classifier is LDA among those tokens (class
    means, shared within-class covariance with the same shrinkage, equal priors).

    Tokens whose residual norm exceeds ``sink_ratio`` times their text's median (attention
    sinks) are left out of fitting, calibration and later detection (``math.inf``: keep them)."""
    if method not in METHODS:
        raise ValueError(f"from_examples builds method='diffmean' or 'lda' concepts; for SAE features use "
                         f"Concepts.from_sae (got method={method!r})")
    check_site(model, layer, site)
    slots = _check_slots(slots or {}, examples)
    examples = {**examples, **{gate: _union(examples, members) for gate, members in slots.items()}}
    data = Labelled.build(examples, negatives, markers)
    d = model.anatomy.d_model
    member_index = {gate: [data.names.index(m) for m in members] for gate, members in slots.items()}
    slot_second = {gate: torch.zeros(d, d, dtype=torch.float64) for gate in slots}
    pos_sum = torch.zeros(len(data.names), d, dtype=torch.float64)
    pos_n = torch.zeros(len(data.names), dtype=torch.float64)
    total, total_n = torch.zeros(d, dtype=torch.float64), 0
    second = torch.zeros(d, d, dtype=torch.float64) if method == "lda" else None
    norms = []
    for h, labels in labelled_tokens(model, data, layer, site, batch_size, sink_ratio):
        x, y = h.double().cpu(), labels.double()
        norms.append(x.norm(dim=-1))
        pos_sum += y.T @ x
        pos_n += y.sum(0)
        total += x.sum(0)
        total_n += x.shape[0]
        if second is not None:
            second += x.T @ x
        for gate, index in member_index.items():
            inside = x[y[:, index].sum(1) > 0]
            slot_second[gate] += inside.T @ inside
    _require_labels(data.names, pos_n, total_n)
    directions = pos_sum / pos_n[:, None] - (total - pos_sum) / (total_n - pos_n)[:, None]
    detectors = [None] * len(directions)
    if second is not None:
        mean = total / total_n
        cov = second / total_n - torch.outer(mean, mean)
        ridge = shrinkage * cov.trace() / d * torch.eye(d, dtype=cov.dtype)
        detectors = list(torch.linalg.solve(cov + ridge, directions.T).T.float())
    concepts = Concepts(layer % model.anatomy.n_layers, site, metadata=model_record(model), sink_ratio=sink_ratio,
                        residual_norm=float(torch.cat(norms).median()))
    for name, vector, detector, n in zip(data.names, directions, detectors, pos_n.tolist()):
        concepts.add(name, direction=vector.float(), detector=detector, method=method,
                     info={"positive_tokens": int(n), "negative_tokens": int(total_n - n)})
    for gate, index in member_index.items():
        classifiers, biases = _slot_classifier(pos_sum[index], pos_n[index], slot_second[gate], shrinkage)
        concepts.set_slot(gate, slots[gate], classifiers, biases)
    calibrated = {n: v for n, v in examples.items() if concepts[n].slot is None}
    calibrate(concepts, model, calibrated, negatives=negatives, markers=markers, batch_size=batch_size,
              criterion=criterion)
    return concepts


def from_sae(model: Model, layer: int | None, sae: SAE, examples: Mapping[str, Sequence[Any]], *, k: int = 1,
             negatives: Sequence[str] = (), markers: tuple[str, str] = ("[", "]"), batch_size: int = 32,
             criterion: str = "balanced_accuracy", slots: Mapping[str, Sequence[str]] | None = None,
             shrinkage: float = 0.01, sink_ratio: float = SINK_RATIO) -> Concepts:
    """SAE-feature concepts: features ranked by mean activation on the concept's labelled tokens
    minus the mean on all other tokens (the top ``CANDIDATES`` are kept in ``info``). ``k=1``
    is the single representation (the top feature), ``k>1`` the multi one (the top ``k``
    weighted by their mean difference, normalised to sum 1). Thresholds are calibrated.

    ``slots`` as in ``from_examples``, in SAE terms: the gate is one more SAE concept (its
    positives: all the members' tokens) and the members' classifier is LDA over the codes of
    the features that rank in any member's top ``CANDIDATES`` (a second pass over the texts).
    ``sink_ratio`` as in ``from_examples``."""
    layer = sae.layer if layer is None else layer
    if layer is None:
        raise ValueError("the SAE does not say its layer: pass layer=")
    if not isinstance(k, int) or not 1 <= k <= min(CANDIDATES, sae.d_sae):
        raise ValueError(f"k must be an integer from 1 to {min(CANDIDATES, sae.d_sae)}, got {k!r}")
    check_site(model, layer, sae.site)
    if sae.d_in != model.anatomy.d_model:
        raise ValueError(f"the SAE reads {sae.d_in} dimensions, the model's residual has {model.anatomy.d_model}")
    layer = layer % model.anatomy.n_layers
    sae.to(model.device)
    slots = _check_slots(slots or {}, examples)
    examples = {**examples, **{gate: _union(examples, members) for gate, members in slots.items()}}
    data = Labelled.build(examples, negatives, markers)
    pos_sum = torch.zeros(len(data.names), sae.d_sae, dtype=torch.float64, device=model.device)
    pos_n = torch.zeros(len(data.names), dtype=torch.float64, device=model.device)
    total = torch.zeros(sae.d_sae, dtype=torch.float64, device=model.device)
    total_n = 0
    norms = []
    for h, labels in labelled_tokens(model, data, layer, sae.site, batch_size, sink_ratio):
        y = labels.to(model.device).double()
        norms.append(h.float().norm(dim=-1).cpu())
        for start in range(0, h.shape[0], 1024):  # bound the [tokens, d_sae] code block
            f = sae.encode(h[start:start + 1024]).double()
            pos_sum += y[start:start + 1024].T @ f
            total += f.sum(0)
        pos_n += y.sum(0)
        total_n += h.shape[0]
    _require_labels(data.names, pos_n.cpu(), total_n)
    gap = (pos_sum / pos_n[:, None] - (total - pos_sum) / (total_n - pos_n)[:, None]).cpu()
    top = gap.topk(min(CANDIDATES, sae.d_sae), dim=-1)
    concepts = Concepts(layer, sae.site, sae=sae, metadata=model_record(model), sink_ratio=sink_ratio,
                        residual_norm=float(torch.cat(norms).median()))
    for c, name in enumerate(data.names):
        index, value = top.indices[c, :k], top.values[c, :k]
        weights = torch.ones(1) if k == 1 else value.clamp_min(0) / value.clamp_min(0).sum().clamp_min(1e-12)
        candidates = [{"feature": int(i), "gap": float(v)} for i, v in zip(top.indices[c], top.values[c])]
        concepts.add(name, features=index, weights=weights.float(), method="sae",
                     info={"candidates": candidates, "positive_tokens": int(pos_n[c]),
                           "negative_tokens": int(total_n - pos_n[c])})
    for gate, members in slots.items():
        index = [data.names.index(m) for m in members]
        features = top.indices[index].unique()
        stats = _slot_code_stats(model, data, index, sae, features, layer, batch_size, sink_ratio)
        classifiers, biases = _slot_classifier(*stats, shrinkage)
        concepts.set_slot(gate, members, classifiers, biases, features=features)
    calibrated = {n: v for n, v in examples.items() if concepts[n].slot is None}
    calibrate(concepts, model, calibrated, negatives=negatives, markers=markers, batch_size=batch_size,
              criterion=criterion)
    return concepts


def _check_slots(slots: Mapping[str, Sequence[str]], examples: Mapping[str, Sequence[Any]]) -> dict:
    seen: dict[str, str] = {}
    for gate, members in slots.items():
        if not isinstance(gate, str) or not gate.isidentifier() or gate in examples:
            raise ValueError(f"slot {gate!r}: a slot's name is an identifier that names no concept of the examples")
        members = list(members)
        missing = [m for m in members if m not in examples]
        if missing:
            raise ValueError(f"slot {gate!r}: no examples for members {missing}")
        if len(set(members)) < 2 or len(set(members)) != len(members):
            raise ValueError(f"slot {gate!r}: give at least two distinct members, got {members}")
        twice = [m for m in members if m in seen]
        if twice:
            raise ValueError(f"slot {gate!r}: {twice} are already members of slot {seen[twice[0]]!r}")
        seen |= dict.fromkeys(members, gate)
    return {gate: list(members) for gate, members in slots.items()}


def _union(examples: Mapping[str, Sequence[Any]], members: Sequence[str]) -> list[Any]:
    """The gate's examples: every member's labelled texts."""
    return [item for m in members for item in examples[m]]


def _slot_classifier(pos_sum: Tensor, pos_n: Tensor, second: Tensor, shrinkage: float) -> tuple[Tensor, Tensor]:
    """LDA among a slot's members from their token sums ``[m, d]``, counts ``[m]`` and the second
    moment of all their tokens ``[d, d]``: ``w_c = S^-1 mu_c``, ``b_c = -mu_c . w_c / 2``, with
    ``S`` the pooled within-class covariance plus ``shrinkage * tr(S)/d * I``."""
    means = pos_sum / pos_n[:, None]
    within = (second - (means * pos_n[:, None]).T @ means) / pos_n.sum()
    d = within.shape[0]
    # The floor keeps S invertible when every member's tokens are alike (then: nearest mean).
    scale = max(float(within.trace()), 1e-6 * float(second.trace() / pos_n.sum())) / d
    within = within + shrinkage * scale * torch.eye(d, dtype=within.dtype)
    w = torch.linalg.solve(within, means.T).T
    return w.float(), (-0.5 * (means * w).sum(1)).float()


def _slot_code_stats(model: Model, data: Labelled, members: list[int], sae: SAE, features: Tensor, layer: int,
                     batch_size: int, sink_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per member: sums ``[m, f]`` and counts ``[m]`` of the codes of ``features`` on its tokens;
    the second moment ``[f, f]`` of those codes over all the members' tokens."""
    n = features.numel()
    pos_sum = torch.zeros(len(members), n, dtype=torch.float64)
    pos_n = torch.zeros(len(members), dtype=torch.float64)
    second = torch.zeros(n, n, dtype=torch.float64)
    for h, labels in labelled_tokens(model, data, layer, sae.site, batch_size, sink_ratio):
        y = labels[:, members].double()
        inside = y.sum(1) > 0
        if not inside.any():
            continue
        f = sae.encode_features(h[inside.to(h.device)].float(), features.to(h.device)).double().cpu()
        pos_sum += y[inside].T @ f
        pos_n += y[inside].sum(0)
        second += f.T @ f
    return pos_sum, pos_n, second


def _require_labels(names: list[str], pos_n: Tensor, total_n: int) -> None:
    empty = [n for n, c in zip(names, pos_n.tolist()) if c == 0]
    if empty:
        raise ValueError(f"no token of the examples is labelled with {empty}: mark the concept's words, "
                         "e.g. 'Max is a [wumpus].'")
    full = [n for n, c in zip(names, pos_n.tolist()) if c == total_n]
    if full:
        raise ValueError(f"every token is labelled with {full}: add texts without the concept (negatives=) "
                         "or examples of other concepts")
