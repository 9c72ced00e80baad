"""Reasoning over concepts read from activations (ActivationReasoning), in two halves and the
steps that join them:

- ``rules``: the rule language, its chainer and proofs (no torch; names only);
- ``concepts``: the concept dictionary, fitting (DiffMean / LDA / SAE), calibration, files;
- ``detect`` (concepts per token), ``reason`` (detect -> infer), ``steer`` and ``generate``
  (detect -> infer -> steer), ``evaluate`` (accuracy and detection quality), over the residual
  stream read and written by ``residual``."""

from interplab.reasoning.concepts import SAE, Concept, Concepts, Cut, best_cut, parse_example
from interplab.reasoning.detect import Detection, detect
from interplab.reasoning.evaluate import Evaluation, detection_quality, evaluate
from interplab.reasoning.reason import Generation, Reasoning, generate, reason
from interplab.reasoning.rules import (
    And,
    Atom,
    Diagnostic,
    Inference,
    Not,
    Or,
    Proof,
    Rule,
    RuleError,
    RuleSet,
    RuleSyntaxError,
    StratificationError,
    UnknownConceptError,
    check_rules,
    parse_rules,
)
from interplab.reasoning.steer import Reasoner, add_directions, steer

__all__ = [
    "SAE",
    "And",
    "Atom",
    "Concept",
    "Concepts",
    "Cut",
    "Detection",
    "Diagnostic",
    "Evaluation",
    "Generation",
    "Inference",
    "Not",
    "Or",
    "Proof",
    "Reasoner",
    "Reasoning",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleSyntaxError",
    "StratificationError",
    "UnknownConceptError",
    "add_directions",
    "best_cut",
    "check_rules",
    "detect",
    "detection_quality",
    "evaluate",
    "generate",
    "parse_example",
    "parse_rules",
    "reason",
    "steer",
]
