"""The rule language, one half of the reasoning instrument: rule text (``language``), its
formulas (``formula``), errors and diagnostics (``errors``), stratification (``stratify``), the
forward chainer with proofs (``chainer``) and the compiled rule set (``ruleset``).

This half knows nothing of models or tensors (it imports neither torch nor the other half):
rules infer over concept *names*, whatever detected them."""

from .chainer import Inference, Proof
from .errors import Diagnostic, RuleError, RuleSyntaxError, StratificationError, UnknownConceptError
from .formula import And, Atom, Not, Or, Rule
from .language import check_rules, checked_rules, parse_rules
from .ruleset import RuleSet

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
    "checked_rules",
    "parse_rules",
]
