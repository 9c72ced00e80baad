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

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...model import Model
from ..residual import SINK_RATIO, Site
from .sae import SAE

__all__ = ["Concept", "Concepts", "model_record"]

NAN = float("nan")
RECORDED = ("family", "n_layers", "d_model", "vocab_size")  # what a dictionary records of its model's anatomy


def model_record(model: Model) -> dict[str, Any]:
    """What a fitted dictionary records of its model (in ``metadata``): the name and the anatomy
    that ``Concepts.check_model`` compares with the model it is used on."""
    anatomy = model.anatomy
    return {"model": model.name, "anatomy": {key: getattr(anatomy, key) for key in RECORDED}}


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

    # Steering adds strength x STEER_UNIT x residual_norm along a concept (see reasoning.steer): the
    # unit is calibrated on SmolLM2 and Gemma 3 (docs/reasoning.md, "Steering strength").
    STEER_UNIT = 0.2

    def __init__(self, layer: int, site: Site = "output", sae: SAE | None = None,
                 metadata: Mapping[str, Any] | None = None, *, sink_ratio: float = SINK_RATIO,
                 residual_norm: float = NAN):
        if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
            raise ValueError(f"layer must be a decoder-layer index (an integer >= 0), got {layer!r}")
        if site not in ("output", "input"):
            raise ValueError(f"site must be 'output' (residual leaving block {layer}) or 'input', got {site!r}")
        if sae is not None and sae.layer is not None and (sae.layer, sae.site) != (layer, site):
            raise ValueError(f"the SAE reads the {sae.site} of layer {sae.layer}, but these concepts are read at "
                             f"the {site} of layer {layer}")
        if not (isinstance(sink_ratio, int | float) and sink_ratio > 1):
            raise ValueError(f"sink_ratio must be a number above 1 (math.inf: no token is a sink), got {sink_ratio!r}")
        self.layer, self.site, self.sae = layer, site, sae
        self.metadata: dict[str, Any] = dict(metadata or {})
        # Tokens whose residual norm exceeds sink_ratio x their text's median are attention sinks,
        # left out of fitting, calibration and detection (residual.sink_mask).
        self.sink_ratio = float(sink_ratio)
        # The median residual norm of the tokens fitted on (sinks left out): the unit of steering
        # strengths (steer.add_directions). NaN when unknown (built by hand, old files).
        self.residual_norm = float(residual_norm)
        self._concepts: dict[str, Concept] = {}
        self._slots: dict[str, tuple[str, ...]] = {}
        self._compiled: dict[Any, tuple] = {}

    @property
    def steering_scale(self) -> float:
        """The norm that strength 1 adds: ``STEER_UNIT * residual_norm`` (NaN when the residual norm
        is unknown; steering then scales by the steered position's own norm)."""
        return self.STEER_UNIT * self.residual_norm

    def check_model(self, model: Model) -> None:
        """Raise a ValueError unless ``model`` is one these concepts can be read from: its residual
        has the dictionary's dimension, it has the layer, and (where the dictionary recorded its
        model's anatomy) the same family, depth and vocabulary."""
        anatomy = model.anatomy
        fitted = self.metadata.get("model", "another model")
        if (self._concepts or self.sae is not None) and self.d_model != anatomy.d_model:
            raise ValueError(f"these concepts read a {self.d_model}-dimensional residual (fitted on {fitted}), "
                             f"but {model.name} has d_model {anatomy.d_model}: fit concepts on this model "
                             "(Concepts.from_examples) or use the model they were fitted on")
        if self.layer >= anatomy.n_layers:
            raise ValueError(f"these concepts are read at layer {self.layer}, but {model.name} has "
                             f"{anatomy.n_layers} layers")
        recorded = self.metadata.get("anatomy")
        if isinstance(recorded, dict):
            differs = {k: (recorded[k], getattr(anatomy, k)) for k in RECORDED
                       if k in recorded and recorded[k] != getattr(anatomy, k)}
            if differs:
                detail = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differs.items())
                raise ValueError(f"these concepts were fitted on {fitted}, a different model from {model.name} "
                                 f"({detail}): fit concepts on this model, or drop metadata['anatomy'] if you "
                                 "know the residuals match")

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


    # --- fitting, calibration and files (modules fitting, calibration, store) --------------------
    @classmethod
    def from_examples(cls, model: Model, layer: int, examples: Mapping[str, Sequence[Any]], **options) -> Concepts:
        """DiffMean (or ``method="lda"``) concepts fitted to labelled texts, thresholds calibrated:
        see ``interplab.reasoning.concepts.fitting.from_examples`` for the options."""
        from .fitting import from_examples

        return from_examples(model, layer, examples, **options)

    @classmethod
    def from_sae(cls, model: Model, layer: int | None, sae: SAE, examples: Mapping[str, Sequence[Any]],
                 **options) -> Concepts:
        """SAE-feature concepts (the top ``k`` features by activation gap), thresholds calibrated:
        see ``interplab.reasoning.concepts.fitting.from_sae`` for the options."""
        from .fitting import from_sae

        return from_sae(model, layer, sae, examples, **options)

    def calibrate(self, model: Model, examples: Mapping[str, Sequence[Any]], **options):
        """Fit the thresholds of the concepts named in ``examples`` on those labelled texts (ROC
        point of best balanced accuracy or F1); returns a DataFrame of the chosen points. See
        ``interplab.reasoning.concepts.calibration.calibrate`` for the options."""
        from .calibration import calibrate

        return calibrate(self, model, examples, **options)

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>.safetensors`` and ``<path>.json`` (``interplab.reasoning.concepts.store``)."""
        from .store import save

        return save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None) -> Concepts:
        """Read a dictionary written by ``save`` (``path`` with or without the suffix), checking
        its structure first (``interplab.reasoning.concepts.store``)."""
        from .store import load

        return load(path, device=device)

    # --- plain data -----------------------------------------------------------------------------
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

    def __repr__(self) -> str:
        sae = f", sae={self.sae}" if self.sae is not None else ""
        return f"Concepts({len(self)} at the {self.site} of layer {self.layer}{sae}: {self.names})"
