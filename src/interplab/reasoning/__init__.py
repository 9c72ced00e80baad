"""Reasoning over concepts read from activations (ActivationReasoning)."""

# --- concepts, detection, steering (branch reasoning) ---------------------------------------
from interplab.reasoning.concepts import Concept, Concepts
from interplab.reasoning.detect import Detection, detect
from interplab.reasoning.labels import parse_example
from interplab.reasoning.roc import Cut, best_cut
from interplab.reasoning.sae import SAE

__all__ = [
    "SAE",
    "Concept",
    "Concepts",
    "Cut",
    "Detection",
    "best_cut",
    "detect",
    "parse_example",
]
