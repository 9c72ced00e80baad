"""Reasoning over concepts read from activations: the rule language and its forward chainer."""

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
