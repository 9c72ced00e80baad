"""RuleSet: a checked, stratified, compiled collection of rules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .chainer import Inference, Program
from .formula import Rule, atoms
from .stratify import stratify


class RuleSet:
    """Rules ready to infer with. Build one with `parse_rules(text)` or from Rule objects.

    Construction raises StratificationError if a concept depends on its own absence.
    `str(ruleset)` is canonical rule text (one rule per line) that parses back to an equal
    RuleSet.
    """

    def __init__(self, rules: Iterable[Rule] = ()):
        self._rules = tuple(rules)
        for rule in self._rules:
            if not isinstance(rule, Rule):
                raise TypeError(f"a RuleSet holds Rule objects, not {type(rule).__name__}: {rule!r}")
        strata = stratify(self._rules)
        self._levels = strata.levels
        self._program = Program(self._rules, strata.stages)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def heads(self) -> frozenset[str]:
        """Concepts that some (non-suppress) rule concludes."""
        return frozenset(self._levels)

    @property
    def suppressions(self) -> frozenset[str]:
        """Concepts that some suppress rule names."""
        return frozenset(rule.head for rule in self._rules if rule.suppress)

    @property
    def concepts(self) -> frozenset[str]:
        """Every concept name the rules use, in bodies or heads."""
        names = {atom.name for rule in self._rules for atom in atoms(rule.body)}
        return frozenset(names | {rule.head for rule in self._rules})

    @property
    def strata(self) -> tuple[frozenset[str], ...]:
        """Concluded concepts grouped by stratum, in evaluation order."""
        groups: list[set[str]] = [set() for _ in range(max(self._levels.values(), default=-1) + 1)]
        for concept, level in self._levels.items():
            groups[level].add(concept)
        return tuple(frozenset(group) for group in groups)

    def infer(self, facts: Iterable[str] | Mapping[str, Any]) -> Inference:
        """Apply the rules to a fixpoint. `facts` is a collection of concept names, or a mapping
        name -> evidence (e.g. token positions); the evidence ends up in the proofs' leaves."""
        if isinstance(facts, str):
            raise TypeError("facts must be concept names (a set, or a dict name -> evidence), not a string")
        given = dict(facts) if isinstance(facts, Mapping) else dict.fromkeys(facts)
        bad = [name for name in given if not isinstance(name, str)]
        if bad:
            raise TypeError(f"fact names must be strings, got {bad[0]!r}")
        return self._program.run(given)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the canonical text, each rule as data, the concepts, heads, suppressions and strata."""
        return {
            "text": str(self),
            "rules": [rule.to_dict() for rule in self._rules],
            "concepts": sorted(self.concepts),
            "heads": sorted(self.heads),
            "suppressions": sorted(self.suppressions),
            "strata": [sorted(group) for group in self.strata],
        }

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict())

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __str__(self) -> str:
        return "\n".join(str(rule) for rule in self._rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self._rules)} rules, {len(self.concepts)} concepts)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and self._rules == other._rules

    def __hash__(self) -> int:
        return hash(self._rules)
