"""The concept dictionary: named concepts read from the residual stream at one site.

Each concept has a *representation* and two *thresholds*:

- a direction ``d`` (difference of means, or given by hand): the score of a token is the
  projection ``h . d / ||d||``; steering adds along ``d``; a concept may read with a separate
  ``detector`` vector (LDA: the difference of means whitened by the residual covariance, which
  separates far better where the residual is anisotropic) and still steer along ``d``;
- or SAE features ``i_1..i_k`` with weights ``w``: the score is ``sum_j w_j f_{i_j}(h)``;
  steering adds along ``sum_j w_j W_dec[i_j]`` (single: the top-1 feature, multi: weighted top-k);
- ``threshold``: a token shows the concept when its score is ``>=`` it (local detection);
  ``global_threshold``: a text shows it when its mean score over the tokens is ``>=`` it.

Thresholds are chosen by ``calibrate`` as the ROC point of best balanced accuracy (or of best F1,
``criterion="f1"``, for rare concepts) on labelled
texts (see ``labels`` for how examples are written), and can be set by hand.

A *slot* groups concepts that exclude each other and fill one role once per text: the category a
sentence states of an entity, the category a question asks about. One-vs-rest detectors do
badly there, because each must fire on "this role AND this value", which is no linear cut of the
residual when many values share the role. A slot splits the two: its *gate* (a concept named
after the slot) detects the role, and at the one token per text where the gate scores highest
(and passes its threshold), the member whose classifier scores highest is the one detected.
The classifier is linear discriminant analysis among the slot's labelled tokens (``h . w_c +
b_c``, or the same over SAE codes); members keep their own steering directions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..model import Model
from .labels import Labelled
from .residual import check_site, residuals, tokenize
from .roc import best_cut
from .sae import SAE, Site

__all__ = ["Concept", "Concepts"]

FORMAT = "interplab.concepts/1"
CANDIDATES = 10  # SAE features kept per concept, ranked (AR keeps the top 10)
NAN = float("nan")
SAE_KEYS = ("activation", "k", "layer", "site", "centre")  # SAE metadata that are constructor arguments


@dataclass
class Concept:
    """One concept: a direction (``features is None``) or SAE features with weights, and thresholds."""

    name: str
    method: str  # "diffmean" | "sae" | "manual"
    direction: Tensor  # [d_model]: the steering direction
    features: Tensor | None = None  # long [k]: SAE feature indices
    weights: Tensor | None = None  # [k]
    detector: Tensor | None = None  # [d_model]: what scores read, when not the direction
    bias: float = 0.0  # added to a slot member's score (its classifier's intercept)
    slot: str | None = None  # the slot this concept is a member of (it then has no thresholds)
    threshold: float = NAN
    global_threshold: float = NAN
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_sae(self) -> bool:
        return self.features is not None

    @property
    def detectable(self) -> bool:
        """Whether detection can find it: it has a local threshold or fills a slot (else it only steers)."""
        return self.slot is not None or not math.isnan(self.threshold)

    def __repr__(self) -> str:
        rep = (f"features={self.features.tolist()}" if self.uses_sae else f"direction[{self.direction.numel()}]")
        return (f"Concept({self.name!r}, {self.method}, {rep}, threshold={self.threshold:.4g}, "
                f"global_threshold={self.global_threshold:.4g})")


class Concepts:
    """An ordered dictionary of concepts read at decoder layer ``layer`` (``site``: the residual
    leaving the block, "output", or entering it, "input"); ``sae`` when some concepts are SAE features."""

    def __init__(self, layer: int, site: Site = "output", sae: SAE | None = None,
                 metadata: Mapping[str, Any] | None = None):
        if sae is not None and sae.layer is not None and (sae.layer, sae.site) != (layer, site):
            raise ValueError(f"the SAE reads the {sae.site} of layer {sae.layer}, but these concepts are read at "
                             f"the {site} of layer {layer}")
        self.layer, self.site, self.sae = layer, site, sae
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._concepts: dict[str, Concept] = {}
        self._slots: dict[str, tuple[str, ...]] = {}
        self._compiled: dict[Any, tuple] = {}

    # --- the dictionary -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._concepts)

    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts.values())

    def __contains__(self, name: object) -> bool:
        return name in self._concepts

    def __getitem__(self, name: str) -> Concept:
        try:
            return self._concepts[name]
        except KeyError:
            raise KeyError(f"no concept {name!r}; the dictionary has {self.names}") from None

    def add(self, name: str, *, direction: Tensor | Sequence[float] | None = None,
            detector: Tensor | Sequence[float] | None = None,
            features: Sequence[int] | Tensor | None = None, weights: Sequence[float] | Tensor | None = None,
            threshold: float | None = None, global_threshold: float | None = None, method: str = "manual",
            info: Mapping[str, Any] | None = None) -> Concept:
        """Add (or replace) a concept given by a ``direction`` (and optionally a separate ``detector``
        that scores read) or by SAE ``features`` (and ``weights``, default equal). Thresholds can be
        given here, set later, or fitted with ``calibrate``."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"concept names are identifiers (usable in rules), got {name!r}")
        if (direction is None) == (features is None):
            raise ValueError(f"concept {name!r}: give exactly one of direction= or features=")
        if detector is not None and direction is None:
            raise ValueError(f"concept {name!r}: a detector goes with a direction, not with SAE features")
        if features is not None:
            if self.sae is None:
                raise ValueError(f"concept {name!r} uses SAE features, but this dictionary has no SAE "
                                 "(build it with Concepts(layer, sae=...))")
            index = torch.as_tensor(features, dtype=torch.long).reshape(-1).cpu()
            if index.numel() == 0 or index.min() < 0 or index.max() >= self.sae.d_sae \
                    or index.unique().numel() != index.numel():
                raise ValueError(f"concept {name!r}: feature indices must be distinct, in 0..{self.sae.d_sae - 1}; "
                                 f"got {index.tolist()}")
            w = (torch.full((index.numel(),), 1.0 / index.numel()) if weights is None
                 else torch.as_tensor(weights, dtype=torch.float32).reshape(-1).cpu())
            if w.shape != index.shape:
                raise ValueError(f"concept {name!r}: {index.numel()} features but {w.numel()} weights")
            vector = (w.to(self.sae.W_dec.dtype).to(self.sae.device) @ self.sae.W_dec[index.to(self.sae.device)])
            concept = Concept(name, method, vector.float().cpu(), features=index, weights=w)
        else:
            vector = torch.as_tensor(direction, dtype=torch.float32).detach().reshape(-1).cpu()
            if not torch.isfinite(vector).all() or vector.norm() == 0:
                raise ValueError(f"concept {name!r}: the direction must be finite and non-zero")
            if self._concepts and vector.numel() != self.d_model:
                raise ValueError(f"concept {name!r}: direction has {vector.numel()} dimensions, the dictionary "
                                 f"{self.d_model}")
            concept = Concept(name, method, vector)
            if detector is not None:
                concept.detector = torch.as_tensor(detector, dtype=torch.float32).detach().reshape(-1).cpu()
                if concept.detector.shape != vector.shape or concept.detector.norm() == 0:
                    raise ValueError(f"concept {name!r}: the detector must be non-zero and shaped like the direction")
        if self.sae is not None and concept.direction.numel() != self.sae.d_in:
            raise ValueError(f"concept {name!r}: {concept.direction.numel()} dimensions, the SAE reads {self.sae.d_in}")
        concept.threshold = NAN if threshold is None else float(threshold)
        concept.global_threshold = NAN if global_threshold is None else float(global_threshold)
        concept.info = dict(info or {})
        self._concepts[name] = concept
        self._compiled.clear()
        return concept

    def remove(self, name: str) -> None:
        """Remove a concept; removing a slot's gate dissolves the slot (its members stay, undetected)."""
        concept = self[name]
        del self._concepts[name]
        if concept.slot is not None:
            self._slots[concept.slot] = tuple(m for m in self._slots[concept.slot] if m != name)
        for member in self._slots.pop(name, ()):
            self._concepts[member].slot = None
        self._compiled.clear()

    @property
    def slots(self) -> dict[str, tuple[str, ...]]:
        """Slot gate name -> member names (see the module docstring)."""
        return dict(self._slots)

    def set_slot(self, gate: str, members: Sequence[str], classifiers: Tensor, biases: Tensor, *,
                 features: Sequence[int] | Tensor | None = None) -> None:
        """Make ``members`` a slot gated by the concept ``gate``: member ``c`` scores
        ``h . classifiers[c] + biases[c]`` (or, with SAE ``features``, ``f(h)[features] .
        classifiers[c] + biases[c]``) and is detected where the slot is filled. Members keep
        their steering directions."""
        members = list(members)
        for name in [gate, *members]:
            self[name]
        if len(members) < 2 or gate in members or len(set(members)) != len(members):
            raise ValueError(f"slot {gate!r}: give at least two distinct members other than the gate, got {members}")
        taken = [m for m in members if self[m].slot not in (None, gate)]
        if self[gate].slot is not None:
            raise ValueError(f"slot {gate!r}: the gate is itself a member of slot {self[gate].slot!r}")
        if taken:
            raise ValueError(f"slot {gate!r}: {taken} already belong to another slot")
        coded = [m for m in members if self[m].uses_sae]
        if len(coded) != (0 if features is None else len(members)):
            raise ValueError(f"slot {gate!r}: SAE concepts read SAE features and the others the residual; "
                             f"give features= exactly when every member is an SAE concept (SAE: {coded})")
        width = self.d_model if features is None else len(features)
        if classifiers.shape != (len(members), width) or biases.shape != (len(members),):
            raise ValueError(f"slot {gate!r}: classifiers must be [{len(members)}, {width}] and biases "
                             f"[{len(members)}], got {tuple(classifiers.shape)} and {tuple(biases.shape)}")
        for old in self._slots.pop(gate, ()):
            self._concepts[old].slot = None
        for name, w, b in zip(members, classifiers.float().cpu(), biases.float().cpu().tolist()):
            concept = self[name]
            if features is None:
                concept.detector = w.clone()
            else:  # read the codes of `features`; the steering direction stays the concept's own
                direction = concept.direction
                self.add(name, features=features, weights=w, method=concept.method, info=concept.info)
                concept = self[name]
                concept.direction = direction
            concept.bias, concept.slot = float(b), gate
            concept.threshold = concept.global_threshold = NAN
        self._slots[gate] = tuple(members)
        self._compiled.clear()

    def fill_slots(self, scores: Tensor, active: Tensor) -> Tensor:
        """``active`` ``[texts, seq, concepts]`` with each slot filled once per text: at the token
        where the gate is active and scores highest, the gate and the best-scoring member."""
        if not self._slots:
            return active
        active = active.clone()
        rows = torch.arange(active.shape[0], device=active.device)
        for gate, members in self._slots.items():
            g = self.names.index(gate)
            index = torch.tensor([self.names.index(m) for m in members], device=active.device)
            gate_scores = torch.where(active[..., g], scores[..., g], -torch.inf)
            where = gate_scores.argmax(1)
            filled = active[..., g].any(1)
            choice = index[scores[rows, where][:, index].argmax(1)]
            active[..., g] = False
            active[..., index] = False
            active[rows[filled], where[filled], g] = True
            active[rows[filled], where[filled], choice[filled]] = True
        return active

    def set_threshold(self, name: str, threshold: float | None = None, global_threshold: float | None = None) -> None:
        """Override a concept's local and/or global threshold by hand (NaN: never detected; the
        concept can still steer)."""
        concept = self[name]
        if threshold is not None:
            concept.threshold = float(threshold)
        if global_threshold is not None:
            concept.global_threshold = float(global_threshold)

    @property
    def d_model(self) -> int:
        if self.sae is not None:
            return self.sae.d_in
        if not self._concepts:
            raise ValueError("an empty dictionary without an SAE has no dimension yet")
        return next(iter(self._concepts.values())).direction.numel()

    # --- scoring (vectorised over tokens and concepts) -------------------------------------
    def _tensors(self, device: torch.device) -> tuple:
        key = str(device)
        if key not in self._compiled:
            concepts = list(self)
            plain = [i for i, c in enumerate(concepts) if not c.uses_sae]
            coded = [i for i, c in enumerate(concepts) if c.uses_sae]
            readers = [c.direction if c.detector is None else c.detector for c in (concepts[i] for i in plain)]
            # A slot member's classifier is read as it is (its scale and intercept carry the class
            # boundaries); every other reader as a unit direction.
            units = torch.stack([r if concepts[i].slot else r / r.norm() for i, r in zip(plain, readers)]) \
                if plain else torch.zeros(0, self.d_model if concepts else 0)
            bias = torch.tensor([concepts[i].bias for i in plain + coded], dtype=torch.float32)
            used = torch.unique(torch.cat([concepts[i].features for i in coded])) if coded \
                else torch.zeros(0, dtype=torch.long)
            mix = torch.zeros(len(coded), used.numel())
            for row, i in enumerate(coded):
                mix[row, torch.searchsorted(used, concepts[i].features)] = concepts[i].weights
            order = torch.argsort(torch.tensor(plain + coded, dtype=torch.long))
            steer = torch.stack([c.direction / c.direction.norm() for c in concepts]) if concepts \
                else torch.zeros(0, 0)
            self._compiled[key] = tuple(t.to(device) for t in (units, bias, used, mix, order, steer))
        return self._compiled[key]

    def score(self, h: Tensor, codes: Tensor | None = None) -> Tensor:
        """Concept scores ``[..., n_concepts]`` (float32) of residuals ``h [..., d_model]``; SAE
        concepts read ``codes`` (``sae.encode(h)``, ``[..., d_sae]``) when given, else encode."""
        if not self._concepts:
            raise ValueError("the concept dictionary is empty")
        units, bias, used, mix, order, _ = self._tensors(h.device)
        x = h.float()
        parts = []
        if units.shape[0]:
            parts.append(x @ units.T)
        if used.numel():
            f = codes[..., used] if codes is not None else self.sae.to(h.device).encode_features(x, used)
            parts.append(f.float() @ mix.T)
        return (torch.cat(parts, -1) + bias)[..., order]

    def thresholds(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Local and global thresholds ``[n_concepts]`` (NaN where not set: that concept never fires)."""
        local = torch.tensor([c.threshold for c in self], dtype=torch.float32, device=device)
        whole = torch.tensor([c.global_threshold for c in self], dtype=torch.float32, device=device)
        return local, whole

    def unit_directions(self, device: torch.device | str = "cpu") -> Tensor:
        """Steering directions ``d / ||d||``, ``[n_concepts, d_model]`` (float32)."""
        return self._tensors(torch.device(device))[5]

    # --- building from labelled texts ------------------------------------------------------
    @classmethod
    def from_examples(cls, model: Model, layer: int, examples: Mapping[str, Sequence[Any]], *,
                      method: str = "diffmean", negatives: Sequence[str] = (), site: Site = "output",
                      markers: tuple[str, str] = ("[", "]"), batch_size: int = 32,
                      criterion: str = "balanced_accuracy", shrinkage: float = 0.01,
                      slots: Mapping[str, Sequence[str]] | None = None) -> Concepts:
        """Difference-of-means concepts: for each concept, the mean residual over its labelled tokens
        minus the mean over all other tokens of the labelled texts; thresholds calibrated on the
        same texts. ``examples`` is ``{name: [labelled texts]}`` (see ``interplab.reasoning.labels``).

        ``method="lda"`` steers along the same direction but detects with it whitened by the
        covariance ``S`` of all the labelled tokens' residuals: ``(S + shrinkage * tr(S)/d * I)^-1 d``
        (Fisher's discriminant with shrinkage).

        ``slots`` (``{gate: [member names]}``) makes groups of the named concepts slots (see the
        module docstring): the gate is a further concept of the method's kind whose positives are
        all the members' labelled tokens; the members' classifier is LDA among those tokens
        (class means, shared within-class covariance with the same shrinkage, equal priors)."""
        if method not in ("diffmean", "lda"):
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
        for h, labels in _labelled_tokens(model, data, layer, site, batch_size):
            x, y = h.double().cpu(), labels.double()
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
        concepts = cls(layer % model.anatomy.n_layers, site, metadata={"model": model.name})
        for name, vector, detector, n in zip(data.names, directions, detectors, pos_n.tolist()):
            concepts.add(name, direction=vector.float(), detector=detector, method=method,
                         info={"positive_tokens": int(n), "negative_tokens": int(total_n - n)})
        for gate, index in member_index.items():
            classifiers, biases = _slot_classifier(pos_sum[index], pos_n[index], slot_second[gate], shrinkage)
            concepts.set_slot(gate, slots[gate], classifiers, biases)
        calibrated = {n: v for n, v in examples.items() if concepts[n].slot is None}
        concepts.calibrate(model, calibrated, negatives=negatives, markers=markers, batch_size=batch_size,
                           criterion=criterion)
        return concepts

    @classmethod
    def from_sae(cls, model: Model, layer: int | None, sae: SAE, examples: Mapping[str, Sequence[Any]], *,
                 k: int = 1, negatives: Sequence[str] = (), markers: tuple[str, str] = ("[", "]"),
                 batch_size: int = 32, criterion: str = "balanced_accuracy",
                 slots: Mapping[str, Sequence[str]] | None = None, shrinkage: float = 0.01) -> Concepts:
        """SAE-feature concepts: features ranked by mean activation on the concept's labelled tokens
        minus the mean on all other tokens (the top ``CANDIDATES`` are kept in ``info``). ``k=1``
        is the single representation (the top feature), ``k>1`` the multi one (the top ``k``
        weighted by their mean difference, normalised to sum 1). Thresholds are calibrated.

        ``slots`` as in ``from_examples``, in SAE terms: the gate is one more SAE concept (its
        positives: all the members' tokens) and the members' classifier is LDA over the codes of
        the features that rank in any member's top ``CANDIDATES`` (a second pass over the texts)."""
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
        for h, labels in _labelled_tokens(model, data, layer, sae.site, batch_size):
            y = labels.to(model.device).double()
            for start in range(0, h.shape[0], 1024):  # bound the [tokens, d_sae] code block
                f = sae.encode(h[start:start + 1024]).double()
                pos_sum += y[start:start + 1024].T @ f
                total += f.sum(0)
            pos_n += y.sum(0)
            total_n += h.shape[0]
        _require_labels(data.names, pos_n.cpu(), total_n)
        gap = (pos_sum / pos_n[:, None] - (total - pos_sum) / (total_n - pos_n)[:, None]).cpu()
        top = gap.topk(min(CANDIDATES, sae.d_sae), dim=-1)
        concepts = cls(layer, sae.site, sae=sae, metadata={"model": model.name})
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
            stats = _slot_code_stats(model, data, index, sae, features, layer, batch_size)
            classifiers, biases = _slot_classifier(*stats, shrinkage)
            concepts.set_slot(gate, members, classifiers, biases, features=features)
        calibrated = {n: v for n, v in examples.items() if concepts[n].slot is None}
        concepts.calibrate(model, calibrated, negatives=negatives, markers=markers, batch_size=batch_size,
                           criterion=criterion)
        return concepts

    def calibrate(self, model: Model, examples: Mapping[str, Sequence[Any]], *, negatives: Sequence[str] = (),
                  markers: tuple[str, str] = ("[", "]"), batch_size: int = 32,
                  criterion: str = "balanced_accuracy"):
        """Fit the thresholds of the concepts named in ``examples`` on those labelled texts: the ROC
        point of best ``criterion`` (balanced accuracy, AR's choice, or ``"f1"``) per token
        (``threshold``) and over the texts' mean scores
        (``global_threshold``; a text is positive when some token of it is). Returns a DataFrame of
        the chosen points."""
        import pandas as pd

        unknown = [n for n in examples if n not in self]
        if unknown:
            raise KeyError(f"calibrate: no concepts {unknown} in this dictionary ({self.names})")
        members = [n for n in examples if self[n].slot is not None]
        if members:
            raise ValueError(f"calibrate: {members} are slot members, detected by their slot's gate and "
                             "classifier, not by thresholds; calibrate the gate instead")
        data = Labelled.build(examples, negatives, markers)
        which = torch.tensor([self.names.index(n) for n in data.names])
        token_scores, token_labels, text_scores, text_labels = [], [], [], []
        for h, valid, labels in _labelled_batches(model, data, self.layer, self.site, batch_size):
            s = self.score(h)[..., which.to(h.device)].cpu()
            weight = valid.float().unsqueeze(-1)
            token_scores.append(s[valid])
            token_labels.append(labels[valid])
            text_scores.append((s * weight).sum(1) / weight.sum(1).clamp_min(1))
            text_labels.append(labels.any(1))
        scores, labels = torch.cat(token_scores), torch.cat(token_labels)
        means, any_labels = torch.cat(text_scores), torch.cat(text_labels)
        rows = []
        for c, name in enumerate(data.names):
            concept = self[name]
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

    # --- plain data and files ---------------------------------------------------------------
    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{
            "concept": c.name, "method": c.method,
            "features": c.features.tolist() if c.uses_sae else None,
            "weights": [round(w, 6) for w in c.weights.tolist()] if c.uses_sae else None,
            "threshold": c.threshold, "global_threshold": c.global_threshold,
            "balanced_accuracy": c.info.get("local", {}).get("balanced_accuracy", NAN),
            "auc": c.info.get("local", {}).get("auc", NAN),
        } for c in self])

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>.safetensors`` (directions, feature indices and weights, the SAE) and
        ``<path>.json`` (names, methods, thresholds, info, layer, site, metadata)."""
        tensors_path, json_path = _paths(path)
        concepts = list(self)
        width = max((c.features.numel() for c in concepts if c.uses_sae), default=0)
        tensors: dict[str, Tensor] = {"directions": torch.stack([c.direction for c in concepts]) if concepts
                                      else torch.zeros(0, self.sae.d_in if self.sae else 0)}
        if width:
            features = torch.full((len(concepts), width), -1, dtype=torch.long)
            weights = torch.zeros(len(concepts), width)
            for i, c in enumerate(concepts):
                if c.uses_sae:
                    features[i, : c.features.numel()] = c.features
                    weights[i, : c.weights.numel()] = c.weights
            tensors |= {"features": features, "weights": weights}
        if any(c.detector is not None for c in concepts):
            tensors["detectors"] = torch.stack([torch.zeros_like(c.direction) if c.detector is None else c.detector
                                                for c in concepts])
        sae_meta = None
        if self.sae is not None:
            sae_tensors, sae_meta = self.sae.state()
            tensors |= {f"sae.{name}": t for name, t in sae_tensors.items()}
        save_file({n: t.contiguous() for n, t in tensors.items()}, str(tensors_path), metadata={"format": FORMAT})
        doc = {"format": FORMAT, "layer": self.layer, "site": self.site, "sae": sae_meta, "metadata": self.metadata,
               "slots": {gate: list(members) for gate, members in self._slots.items()},
               "concepts": [{"name": c.name, "method": c.method, "threshold": _number(c.threshold),
                             "global_threshold": _number(c.global_threshold), "bias": c.bias, "info": c.info}
                            for c in concepts]}
        json_path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return tensors_path, json_path

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None) -> Concepts:
        """Read a dictionary written by ``save`` (``path`` with or without the suffix)."""
        tensors_path, json_path = _paths(path)
        for p in (tensors_path, json_path):
            if not p.is_file():
                raise FileNotFoundError(f"no concept file {p} (a dictionary is a .safetensors and a .json file)")
        doc = json.loads(json_path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{json_path} is not an interplab concept dictionary (format {doc.get('format')!r})")
        tensors = load_file(str(tensors_path))
        sae = None
        if doc["sae"] is not None:
            meta = doc["sae"]
            sae = SAE(*(tensors[f"sae.{n}"] for n in ("W_enc", "W_dec", "b_enc", "b_dec")),
                      activation=meta["activation"], k=int(meta["k"]) if "k" in meta else None,
                      threshold=tensors.get("sae.threshold"), layer=int(meta["layer"]) if "layer" in meta else None,
                      site=meta["site"], centre=meta["centre"] == "true",
                      metadata={k: v for k, v in meta.items() if k not in SAE_KEYS})
            if device is not None:
                sae.to(device)
        concepts = cls(doc["layer"], doc["site"], sae=sae, metadata=doc["metadata"])
        for i, entry in enumerate(doc["concepts"]):
            thresholds = {"threshold": _float(entry["threshold"]),
                          "global_threshold": _float(entry["global_threshold"])}
            if "features" in tensors and tensors["features"][i, 0] >= 0:
                keep = tensors["features"][i] >= 0
                concept = concepts.add(entry["name"], features=tensors["features"][i][keep],
                                       weights=tensors["weights"][i][keep], method=entry["method"],
                                       info=entry["info"], **thresholds)
                concept.direction = tensors["directions"][i]  # as saved, not recomputed
            else:
                detector = tensors["detectors"][i] if "detectors" in tensors else None
                concepts.add(entry["name"], direction=tensors["directions"][i], method=entry["method"],
                             detector=detector if detector is not None and detector.any() else None,
                             info=entry["info"], **thresholds)
        for gate, members in doc.get("slots", {}).items():
            index = [concepts.names.index(m) for m in members]
            biases = torch.tensor([doc["concepts"][i].get("bias", 0.0) for i in index])
            first = concepts[members[0]]
            if first.uses_sae:
                concepts.set_slot(gate, members, torch.stack([concepts[m].weights for m in members]), biases,
                                  features=first.features)
            else:
                concepts.set_slot(gate, members, tensors["detectors"][index], biases)
        return concepts

    def __repr__(self) -> str:
        sae = f", sae={self.sae}" if self.sae is not None else ""
        return f"Concepts({len(self)} at the {self.site} of layer {self.layer}{sae}: {self.names})"


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
                     batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per member: sums ``[m, f]`` and counts ``[m]`` of the codes of ``features`` on its tokens;
    the second moment ``[f, f]`` of those codes over all the members' tokens."""
    n = features.numel()
    pos_sum = torch.zeros(len(members), n, dtype=torch.float64)
    pos_n = torch.zeros(len(members), dtype=torch.float64)
    second = torch.zeros(n, n, dtype=torch.float64)
    for h, labels in _labelled_tokens(model, data, layer, sae.site, batch_size):
        y = labels[:, members].double()
        inside = y.sum(1) > 0
        if not inside.any():
            continue
        f = sae.encode_features(h[inside.to(h.device)].float(), features.to(h.device)).double().cpu()
        pos_sum += y[inside].T @ f
        pos_n += y[inside].sum(0)
        second += f.T @ f
    return pos_sum, pos_n, second


def _labelled_batches(model: Model, data: Labelled, layer: int, site: Site, batch_size: int):
    """Per batch of labelled texts: residuals ``[b, s, d]`` at the site, the real non-special tokens
    ``[b, s]`` and their labels ``[b, s, n_concepts]`` (both on the CPU)."""
    for start in range(0, len(data.texts), batch_size):
        rows = list(range(start, min(start + batch_size, len(data.texts))))
        enc = tokenize(model, [data.texts[r] for r in rows], offsets=True)
        valid = enc["attention_mask"].bool().cpu() & ~enc["special_tokens_mask"]
        labels = data.token_labels(rows, enc["offset_mapping"], valid)
        yield residuals(model, enc["input_ids"], enc["attention_mask"], layer, site), valid, labels


def _labelled_tokens(model: Model, data: Labelled, layer: int, site: Site, batch_size: int):
    """Per batch: the residuals of the real, non-special tokens ``[n, d]`` and their labels ``[n, C]``."""
    for h, valid, labels in _labelled_batches(model, data, layer, site, batch_size):
        yield h[valid.to(h.device)], labels[valid]


def _require_labels(names: list[str], pos_n: Tensor, total_n: int) -> None:
    empty = [n for n, c in zip(names, pos_n.tolist()) if c == 0]
    if empty:
        raise ValueError(f"no token of the examples is labelled with {empty}: mark the concept's words, "
                         "e.g. 'Max is a [wumpus].'")
    full = [n for n, c in zip(names, pos_n.tolist()) if c == total_n]
    if full:
        raise ValueError(f"every token is labelled with {full}: add texts without the concept (negatives=) "
                         "or examples of other concepts")


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _float(value: float | None) -> float:
    return NAN if value is None else float(value)
