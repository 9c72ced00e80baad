"""Concepts, the other half of the reasoning instrument: the dictionary (``dictionary``: named
directions or SAE features, thresholds, slots, scoring), fitting to labelled texts (``fitting``:
DiffMean, LDA, SAE features; ``labels`` for how examples are written, ``reading`` for the
residuals they give), threshold calibration (``calibration``, ``roc``), files (``store``) and
sparse autoencoders (``sae``)."""

from .dictionary import Concept, Concepts
from .labels import parse_example
from .roc import Cut, best_cut
from .sae import SAE

__all__ = ["SAE", "Concept", "Concepts", "Cut", "best_cut", "parse_example"]
