"""The rule language's syntax tree: formulas over concept names, and rules.

A formula is an `Atom` (a concept name), `Not`, `And` or `Or`. `And` and `Or` are n-ary and
flattened (`a and (b and c)` is `And(a, b, c)`), so two texts that mean the same grouping give
equal trees. Source positions ride along on atoms and rules but take no part in equality.

`str()` gives canonical text: single spaces, lowercase keywords, and parentheses only where the
precedence (`not` binds tighter than `and`, which binds tighter than `or`) needs them. Parsing
that text gives an equal tree back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import RuleError

KEYWORDS = frozenset({"and", "or", "not", "suppress"})
NAME_PATTERN = r"[^\W\d]\w*"
_NAME = re.compile(NAME_PATTERN)


def check_name(name: object) -> str:
    """Return `name` if it can be written in rule text, else raise a RuleError saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RuleError(
            f"{name!r} is not a concept name: names are identifiers "
            "(a letter or '_' followed by letters, digits or '_')"
        )
    if name in KEYWORDS:
        raise RuleError(f"{name!r} is a keyword of the rule language and cannot name a concept")
    return name


@dataclass(frozen=True)
class Atom:
    """A concept name; true when the concept is a fact (given or derived)."""

    name: str
    line: int | None = field(default=None, compare=False, repr=False)
    column: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)

    def __str__(self) -> str:
        return format_formula(self)


@dataclass(frozen=True)
class Not:
    """True when the operand is false once everything it depends on has been inferred."""

    operand: Formula

    def __str__(self) -> str:
        return format_formula(self)


@dataclass(frozen=True)
class And:
    operands: tuple[Formula, ...]

    def __str__(self) -> str:
        return format_formula(self)


@dataclass(frozen=True)
class Or:
    operands: tuple[Formula, ...]

    def __str__(self) -> str:
        return format_formula(self)


Formula = Atom | Not | And | Or


def conjunction(parts: Iterable[Formula]) -> Formula:
    """`And` of the parts, with nested `And`s flattened; a single part is returned as is."""
    flat = tuple(_flatten(parts, And))
    return flat[0] if len(flat) == 1 else And(flat)


def disjunction(parts: Iterable[Formula]) -> Formula:
    """`Or` of the parts, with nested `Or`s flattened; a single part is returned as is."""
    flat = tuple(_flatten(parts, Or))
    return flat[0] if len(flat) == 1 else Or(flat)


def _flatten(parts: Iterable[Formula], kind: type) -> Iterator[Formula]:
    for part in parts:
        if isinstance(part, kind):
            yield from part.operands
        else:
            yield part


def atoms(formula: Formula) -> Iterator[Atom]:
    """The atoms of a formula in text order (repeats included)."""
    if isinstance(formula, Atom):
        yield formula
    elif isinstance(formula, Not):
        yield from atoms(formula.operand)
    else:
        for operand in formula.operands:
            yield from atoms(operand)


def literals(formula: Formula, positive: bool = True) -> Iterator[tuple[Atom, bool]]:
    """Each atom with its polarity: False when it sits under an odd number of `not`s."""
    if isinstance(formula, Atom):
        yield formula, positive
    elif isinstance(formula, Not):
        yield from literals(formula.operand, not positive)
    else:
        for operand in formula.operands:
            yield from literals(operand, positive)


_PRECEDENCE = {Or: 1, And: 2, Not: 3, Atom: 4}


def format_formula(formula: Formula) -> str:
    if isinstance(formula, Atom):
        return formula.name
    if isinstance(formula, Not):
        return "not " + _operand_text(formula.operand, _PRECEDENCE[Not])
    joiner = " and " if isinstance(formula, And) else " or "
    return joiner.join(_operand_text(part, _PRECEDENCE[type(formula)] + 1) for part in formula.operands)


def _operand_text(formula: Formula, needed: int) -> str:
    text = format_formula(formula)
    return f"({text})" if _PRECEDENCE[type(formula)] < needed else text


def formula_to_dict(formula: Formula) -> dict[str, Any]:
    """Plain-data form: {"atom": name} | {"not": f} | {"and": [f, ...]} | {"or": [f, ...]}."""
    if isinstance(formula, Atom):
        return {"atom": formula.name}
    if isinstance(formula, Not):
        return {"not": formula_to_dict(formula.operand)}
    key = "and" if isinstance(formula, And) else "or"
    return {key: [formula_to_dict(part) for part in formula.operands]}


@dataclass(frozen=True)
class Rule:
    """`body -> head`, or `body -> suppress head` when `suppress` is true.

    A plain rule makes `head` a fact when the body holds. A suppress rule adds `head` to the
    inference's suppressed concepts (to steer away from); it never makes or unmakes a fact.
    """

    body: Formula
    head: str
    suppress: bool = False
    line: int | None = field(default=None, compare=False, repr=False)
    head_column: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_name(self.head)
        if not isinstance(self.body, Atom | Not | And | Or):
            raise TypeError(f"a rule body is a formula (Atom, Not, And, Or), not {type(self.body).__name__}")

    @property
    def atoms(self) -> frozenset[str]:
        """The concept names the body tests."""
        return frozenset(atom.name for atom in atoms(self.body))

    def __str__(self) -> str:
        return f"{format_formula(self.body)} -> {'suppress ' if self.suppress else ''}{self.head}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": str(self),
            "head": self.head,
            "suppress": self.suppress,
            "line": self.line,
            "body": formula_to_dict(self.body),
        }
