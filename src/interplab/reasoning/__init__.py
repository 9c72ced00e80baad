"""Reasoning over concepts read from activations: the rule language and its forward chainer,
concepts (SAE features / DiffMean directions), detection, reasoning and steering."""

from interplab.reasoning.chainer import Inference, Proof
from interplab.reasoning.errors import (
    Diagnostic,
    RuleError,
    RuleSyntaxError,
    StratificationError,
    UnknownConceptError,
)
from interplab.reasoning.formula import And, Atom, Not, Or, Rule
from interplab.reasoning.rules import check_rules, parse_rules
from interplab.reasoning.ruleset import RuleSet

__all__ = [
    "And",
    "Atom",
    "Diagnostic",
    "Inference",
    "Not",
    "Or",
    "Proof",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleSyntaxError",
    "StratificationError",
    "UnknownConceptError",
    "check_rules",
    "parse_rules",
]

# --- concepts, detection, reasoning, steering (branch reasoning) ----------------------------
from interplab.reasoning.concepts import Concept, Concepts
from interplab.reasoning.detect import Detection, detect
from interplab.reasoning.evaluate import Evaluation, detection_quality, evaluate
from interplab.reasoning.labels import parse_example
from interplab.reasoning.reason import Generation, Reasoning, generate, reason
from interplab.reasoning.roc import Cut, best_cut
from interplab.reasoning.sae import SAE
from interplab.reasoning.steer import Reasoner, add_directions, steer

__all__ += [
    "SAE",
    "Concept",
    "Concepts",
    "Cut",
    "Detection",
    "Evaluation",
    "Generation",
    "Reasoner",
    "Reasoning",
    "add_directions",
    "best_cut",
    "detect",
    "detection_quality",
    "evaluate",
    "generate",
    "parse_example",
    "reason",
    "steer",
]
