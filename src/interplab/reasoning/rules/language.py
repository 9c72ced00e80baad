"""The rule language: text to rules, with errors a person can act on.

Syntax, one rule per line::

    # a comment runs to the end of the line
    cat or dog -> pet                  # body -> head
    pet and not wild -> domestic       # `not x`: x was neither given nor derived
    (tiger or wolf) and not pet -> wild
    wild -> suppress cuddly            # a suppress rule: steer away from `cuddly`

A body combines concept names with `and`, `or`, `not` and parentheses; `not` binds tighter
than `and`, which binds tighter than `or` (`a or b and not c` is `a or (b and (not c))`). A
head is one concept name, or `suppress` and one concept name. Names are identifiers (a letter
or `_`, then letters, digits or `_`); `and`, `or`, `not` and `suppress` are reserved and
lowercase. Text is parsed by a lark grammar, one line at a time, and never evaluated.

Meaning: the given facts (detected concepts) are true; a rule makes its head true when its
body holds; rules apply until nothing changes. `not x` holds when x is neither given nor
derived: rules are stratified so that x is final before anything tests `not x`, and a rule
set in which a concept depends on its own absence is rejected, naming the concepts on the
cycle. A suppress rule adds its head to the inference's *suppressed* concepts (for steering
away from them); suppression is an output only: it does not remove a fact, and bodies cannot
test it (`not x` still asks only whether x is a fact). A concept can be both a fact and
suppressed; `Inference.conflicts` lists those.

Names: when the concept dictionary's names (`known`) are given, every name a body tests, and
every suppress target, must be known or concluded by some rule head (a misspelling gets a
did-you-mean). Plain heads may introduce new, derived concepts.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
from collections.abc import Iterable

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import Diagnostic, RuleError, RuleSyntaxError, UnknownConceptError
from .formula import (
    KEYWORDS,
    NAME_PATTERN,
    Atom,
    Formula,
    Not,
    Rule,
    atoms,
    conjunction,
    disjunction,
)
from .ruleset import RuleSet
from .stratify import analyse

_GRAMMAR = rf"""
start: disj ARROW head
head: NAME | SUPPRESS NAME
?disj: conj (OR conj)*
?conj: neg (AND neg)*
?neg: NOT neg -> negation
    | atom
?atom: NAME
     | LPAR disj RPAR
ARROW: "->"
AND: "and"
OR: "or"
NOT: "not"
SUPPRESS: "suppress"
LPAR: "("
RPAR: ")"
NAME: /{NAME_PATTERN}/
%ignore /[ \t\f\r\v]+/
"""
_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="basic")
MAX_NESTING = 100  # parentheses plus `not`s in one rule; deeper text is surely a mistake
_NOT_WORD = re.compile(r"(?<!\w)not(?!\w)")


def parse_rules(text: str, known: Iterable[str] | None = None) -> RuleSet:
    """Parse rule text into a RuleSet; raise the first problem (in text order) as a RuleError:
    a RuleSyntaxError (with .line, .column) for bad syntax or an unknown name, or a
    StratificationError for a cycle through `not`."""
    rules, errors = _read(text, known)
    if errors:
        raise errors[0]
    return RuleSet(rules)


def check_rules(text: str, known: Iterable[str] | None = None) -> list[Diagnostic]:
    """Every problem in rule text, for an editor: syntax errors (one per bad line; the other
    lines are still checked), unknown names, cycles through `not` (one diagnostic per rule on
    the cycle) and, as warnings, repeated rules. Sorted by position."""
    return checked_rules(text, known)[0]


def checked_rules(text: str, known: Iterable[str] | None = None) -> tuple[list[Diagnostic], RuleSet | None]:
    """``check_rules``'s diagnostics and, when none is an error, the RuleSet ``parse_rules``
    would return, from one reading of the text (what an editor needs on every edit)."""
    rules, errors = _read(text, known)
    found = [diagnostic for error in errors for diagnostic in error.diagnostics()]
    lines = text.split("\n")
    first_line: dict[Rule, int] = {}
    for rule in rules:
        if rule in first_line:
            code = lines[rule.line - 1].split("#", 1)[0].rstrip()
            start = len(code) - len(code.lstrip()) + 1
            found.append(
                Diagnostic(
                    rule.line, start, rule.line, len(code) + 1, "warning",
                    f"the same rule as line {first_line[rule]}", "duplicate-rule",
                )
            )  # fmt: skip
        else:
            first_line[rule] = rule.line
    found.sort(key=lambda d: (d.line, d.column, d.severity))
    return found, (None if errors else RuleSet(rules))


def _read(text: str, known: Iterable[str] | None) -> tuple[list[Rule], list[RuleError]]:
    if not isinstance(text, str):
        raise TypeError(f"rule text must be a string, not {type(text).__name__}")
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            rule = parse_line(line, number)
        except RuleSyntaxError as error:
            errors.append(error)
            continue
        if rule is not None:
            rules.append(rule)
    if known is not None:
        errors.extend(_unknown_names(rules, known))
    errors.extend(analyse(rules)[1])
    errors.sort(key=lambda error: (getattr(error, "line", None) or 0, getattr(error, "column", 1)))
    return rules, errors


def parse_line(line: str, number: int = 1) -> Rule | None:
    """One line of rule text as a Rule, or None for a blank or comment line. Lines that parse
    are remembered (rules are immutable), so re-reading a long text after an edit parses only
    the lines that changed."""
    return _parse_code(line.split("#", 1)[0], number)


@functools.lru_cache(maxsize=8192)
def _parse_code(code: str, number: int) -> Rule | None:
    if not code.strip():
        return None
    _check_nesting(code, number)
    try:
        tree = _PARSER.parse(code)
    except UnexpectedCharacters as error:
        raise _character_error(code, number, error.column) from None
    except UnexpectedToken as error:
        raise _token_error(_tokens(code), error.token, number) from None
    except UnexpectedInput as error:  # not expected from a LALR parser, but never let lark's text through
        raise RuleSyntaxError("this rule does not parse", number, getattr(error, "column", 1)) from None
    body, _, head = tree.children
    suppress = len(head.children) == 2
    name = head.children[-1]
    return Rule(_formula(body, number), str(name), suppress, line=number, head_column=name.column)


def _tokens(code: str) -> list[Token]:
    """The tokens of a line up to any bad character (Lark.lex builds a lexer per call, so this
    runs only to explain an error)."""
    tokens: list[Token] = []
    with contextlib.suppress(UnexpectedCharacters):  # the tokens before it explain the error
        tokens.extend(_PARSER.lex(code))
    return tokens


def _formula(node: Tree | Token, number: int) -> Formula:
    if isinstance(node, Token):
        return Atom(str(node), line=number, column=node.column)
    operands = [child for child in node.children if isinstance(child, Tree) or child.type == "NAME"]
    parts = [_formula(child, number) for child in operands]
    if node.data == "negation":
        return Not(parts[0])
    if node.data == "atom":  # parentheses
        return parts[0]
    return conjunction(parts) if node.data == "conj" else disjunction(parts)


def _check_nesting(code: str, number: int) -> None:
    negations = len(_NOT_WORD.findall(code))
    if code.count("(") + negations <= MAX_NESTING:
        return
    depth = deepest = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    if deepest + negations > MAX_NESTING:
        raise RuleSyntaxError(
            f"this rule nests more than {MAX_NESTING} levels of parentheses and 'not'; "
            "split it into several rules with intermediate concepts",
            number, len(code) - len(code.lstrip()) + 1,
        )  # fmt: skip


_OPERATOR_HINTS = {"&": "and", "|": "or", "!": "not", "~": "not"}


def _character_error(line: str, number: int, column: int) -> RuleSyntaxError:
    char = line[column - 1]
    after = line[column : column + 1]
    if char == "=" and after == ">":
        message = "use '->' between the body and the head, not '=>'"
    elif char == "-":
        message = "'-' must be followed by '>' to make the arrow '->' between the body and the head"
    elif char in _OPERATOR_HINTS:
        message = f"unexpected '{char}': write '{_OPERATOR_HINTS[char]}'"
    elif char == ",":
        message = (
            "unexpected ',': combine conditions with 'and' or 'or'; "
            "a head is one concept name (write one rule per conclusion)"
        )
    elif char in "'\"`":
        message = f"unexpected quote mark ({char}): concept names are written without quotes"
    elif char.isspace():
        message = f"unexpected whitespace character {char!r}: use ordinary spaces or tabs"
    elif char.isdigit():
        message = f"unexpected '{char}': a concept name cannot start with a digit"
    else:
        message = (
            f"unexpected character {char!r}: concept names are identifiers (letters, digits and '_'), "
            "combined with 'and', 'or', 'not' and parentheses"
        )
    return RuleSyntaxError(message, number, column)


def _describe(token: Token | None) -> str:
    return "the end of the line" if token is None else f"'{token}'"


def _token_error(tokens: list[Token], bad: Token, number: int) -> RuleSyntaxError:
    """Turn lark's "unexpected token" into what the writer most likely got wrong, judged from
    the tokens around it (lark's expected-token sets are too coarse for a good message)."""
    at = len(tokens)  # at the end of the line, unless lark points at a token
    if bad.type != "$END":
        at = next(i for i, token in enumerate(tokens) if token.start_pos == bad.start_pos)
    before = tokens[:at]
    token = tokens[at] if at < len(tokens) else None
    prev = before[-1] if before else None
    kind = token.type if token is not None else "END"
    prev_kind = prev.type if prev is not None else "START"
    column = token.column if token is not None else (prev.end_column if prev is not None else 1)
    end = token.end_column if token is not None else column + 1

    def error(message: str, at_column: int = column, end_column: int = end) -> RuleSyntaxError:
        return RuleSyntaxError(message, number, at_column, end_column)

    open_parens: list[Token] = []
    for earlier in before:
        if earlier.type == "LPAR":
            open_parens.append(earlier)
        elif earlier.type == "RPAR" and open_parens:
            open_parens.pop()

    if any(earlier.type == "ARROW" for earlier in before):  # the error is in the head
        if prev_kind == "ARROW":
            if kind == "END":
                return error("empty head: write a concept name after '->'")
            if kind == "NOT":
                return error("a head cannot be negated; to steer away from it write '-> suppress name'")
            return error(f"expected a concept name after '->', found {_describe(token)}")
        if prev_kind == "SUPPRESS":
            return error(f"expected a concept name after 'suppress', found {_describe(token)}")
        if kind == "ARROW":
            return error("a rule has one '->'; to chain conclusions write one rule per step")
        return error(
            f"a head is one concept name, and nothing may follow '{prev}' "
            "(write one rule per conclusion, and combine conditions in the body)"
        )
    if kind == "SUPPRESS":
        return error("'suppress' belongs in a head: 'body -> suppress name'")
    if kind == "RPAR" and not open_parens:
        return error("unbalanced parenthesis: this ')' closes nothing")
    if kind == "RPAR" and prev_kind == "LPAR":
        return error("empty parentheses: put a condition between '(' and ')'")
    if prev_kind in ("AND", "OR", "NOT", "LPAR"):
        found = "" if kind == "END" else f", found {_describe(token)}"
        return error(f"expected a concept name after '{prev}'{found}")
    if kind == "ARROW" and prev is None:
        return error("missing condition before '->': a rule reads 'body -> head'")
    if kind in ("ARROW", "END") and open_parens:
        paren = open_parens[-1]
        where = "before '->'" if kind == "ARROW" else "in this rule"
        message = f"unbalanced parenthesis: this '(' is not closed {where}"
        return error(message, paren.column, paren.end_column)
    if kind == "END":
        return error("missing '->': a rule reads 'body -> head', e.g. 'a and not b -> c'")
    if prev is None:
        return error(f"a rule starts with a concept name, 'not' or '(', not {_describe(token)}")
    if kind == "NAME" and token.lower() in KEYWORDS:
        return error(f"keywords are lowercase: write '{token.lower()}', not '{token}'")
    if kind == "NAME":
        return error(f"expected 'and', 'or' or '->' between '{prev}' and '{token}'")
    if kind == "NOT":
        return error(f"'not' needs 'and' or 'or' before it, e.g. '{prev} and not ...'")
    return error(f"expected 'and', 'or' or '->' before {_describe(token)}")


def _unknown_names(rules: list[Rule], known: Iterable[str]) -> list[UnknownConceptError]:
    if isinstance(known, str):
        raise TypeError("known must be a collection of concept names, not one string")
    valid = set(known) | {rule.head for rule in rules if not rule.suppress}
    candidates = sorted(valid)
    errors = []
    for rule in rules:
        named = [(atom.name, atom.column, False) for atom in atoms(rule.body)]
        if rule.suppress:
            named.append((rule.head, rule.head_column, True))
        for name, column, suppress in named:
            if name not in valid:
                suggestion = _closest(name, candidates)
                errors.append(UnknownConceptError(name, suggestion, rule.line, column, suppress))
    return errors


def _closest(name: str, candidates: list[str]) -> str | None:
    same_case = [candidate for candidate in candidates if candidate.lower() == name.lower()]
    if same_case:
        return same_case[0]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None
