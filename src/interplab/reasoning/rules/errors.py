"""Errors and diagnostics of the rule language.

Every problem found in rule text has a position, so one object serves both the notebook (an
exception whose message says where and what is wrong) and the editor (a `Diagnostic` drawn
inline). Lines and columns are 1-based; `end_column` is exclusive (the column just after the
marked span), as in most editors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .formula import Rule

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in rule text. `code` is "syntax", "unknown-concept", "negation-cycle" or
    "duplicate-rule" (a warning)."""

    line: int
    column: int
    end_line: int
    end_column: int
    severity: Severity
    message: str
    code: str = "syntax"

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RuleError(ValueError):
    """A rule or rule set that cannot be used. Base class of the rule language's errors."""

    def diagnostics(self) -> list[Diagnostic]:
        return []


class RuleSyntaxError(RuleError):
    """Rule text that does not parse, or names something it may not. Has `.line`, `.column`
    (1-based), `.end_column` (exclusive) and `.message` (without the position)."""

    code = "syntax"

    def __init__(self, message: str, line: int, column: int, end_column: int | None = None):
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column
        self.end_column = column + 1 if end_column is None else end_column

    def diagnostics(self) -> list[Diagnostic]:
        return [
            Diagnostic(self.line, self.column, self.line, self.end_column, "error", self.message, self.code)
        ]


class UnknownConceptError(RuleSyntaxError):
    """A body (or suppress target) names a concept that is neither in the concept dictionary
    nor concluded by any rule. `.name` is the name, `.suggestion` the closest valid one or None."""

    code = "unknown-concept"

    def __init__(self, name: str, suggestion: str | None, line: int, column: int, suppress: bool = False):
        what = "cannot suppress unknown concept" if suppress else "unknown concept"
        message = f"{what} '{name}': it is not in the concept dictionary and no rule concludes it"
        if suggestion is not None:
            message += f"; did you mean '{suggestion}'?"
        super().__init__(message, line, column, column + len(name))
        self.name = name
        self.suggestion = suggestion


class StratificationError(RuleError):
    """Rules through which a concept depends on its own absence (a cycle through `not`).

    `.cycle` lists the concepts on the cycle in order (each depends on the next, the last on
    the first); `.steps` gives, for each dependency, (concept, premise, negated, rule);
    `.lines` the source lines of those rules (None for rules built without text).
    """

    code = "negation-cycle"

    def __init__(self, steps: Sequence[tuple[str, str, bool, Rule]]):
        self.steps = tuple(steps)
        self.cycle = [concept for concept, _, _, _ in self.steps]
        self.lines = [rule.line for _, _, _, rule in self.steps]
        described = ", ".join(
            f"'{concept}' needs '{'not ' if negated else ''}{premise}'"
            + (f" (line {rule.line})" if rule.line is not None else f" ({rule})")
            for concept, premise, negated, rule in self.steps
        )
        names = ", ".join(self.cycle)
        super().__init__(
            f"rules make a concept depend on its own absence (a cycle through 'not'): {described}. "
            f"Concepts on the cycle: {names}. Break the cycle, e.g. by removing the 'not' "
            "or concluding a new concept instead."
        )

    @property
    def line(self) -> int | None:
        lines = [line for line in self.lines if line is not None]
        return min(lines) if lines else None

    def diagnostics(self) -> list[Diagnostic]:
        """One diagnostic per rule on the cycle, marking the premise that closes the loop."""
        from .formula import atoms

        found = []
        for concept, premise, negated, rule in self.steps:
            if rule.line is None:
                continue
            atom = next(a for a in atoms(rule.body) if a.name == premise)
            column = atom.column or 1
            end = column + len(premise) if atom.column else column + 1
            if negated:
                message = f"'{concept}' depends on 'not {premise}', but '{premise}' depends on '{concept}'"
            else:
                message = f"'{concept}' depends on '{premise}', part of a cycle through 'not'"
            message += f" (cycle: {' -> '.join([*self.cycle, self.cycle[0]])})"
            found.append(Diagnostic(rule.line, column, rule.line, end, "error", message, self.code))
        return found
