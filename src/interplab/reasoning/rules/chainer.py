"""Forward chaining to a fixpoint, stratum by stratum, with a proof for every conclusion.

Each rule body is compiled once into an and/or tree over literals: `not` is pushed down to the
names (De Morgan), so the tree grows linearly with the text, unlike a disjunctive normal form.
Inside one stratum every negated name is already final, so a body is monotone in what is still
being derived and can be evaluated incrementally: a leaf fires when its literal holds, an `and`
node when its last child fires (a counter), an `or` node when its first child fires (which is
remembered as the disjunct that held), and a root makes the rule conclude its head. A work
queue holds leaves to fire: those true when the stratum starts, then, as each concept is
derived, only the leaves that name it (an index by name). Each node fires at most once, so
inference is linear in the size of the rule set, however deep the derivations go.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .formula import And, Atom, Formula, Not, Rule

ProofKind = Literal["given", "derived", "absent", "suppressed"]
Leaf = tuple[int, str, bool]  # node, concept name, positive


@dataclass(frozen=True, eq=False, repr=False)
class Proof:
    """Why a concept holds (or is absent, or is suppressed).

    kind "given": a fact the caller supplied; `evidence` is whatever was attached to it.
    kind "derived" / "suppressed": `rule` fired; `premises` are the proofs of the literals
    that made its body true, in text order (for `or`, only the disjunct that held).
    kind "absent": a negative premise: the concept was neither given nor derived.
    Premises that are facts share their Proof objects, so a proof is a DAG down to given facts.
    """

    concept: str
    kind: ProofKind
    rule: Rule | None = None
    premises: tuple[Proof, ...] = ()
    evidence: Any = None

    @property
    def holds(self) -> bool:
        return self.kind != "absent"

    def given_facts(self) -> dict[str, Any]:
        """The given facts this proof rests on, each with its evidence."""
        found: dict[str, Any] = {}
        for proof in self._walk():
            if proof.kind == "given":
                found[proof.concept] = proof.evidence
        return found

    def _walk(self) -> list[Proof]:
        """Each distinct sub-proof once, depth first in text order."""
        seen: set[int] = set()
        order: list[Proof] = []
        stack = [self]
        while stack:
            proof = stack.pop()
            if id(proof) in seen:
                continue
            seen.add(id(proof))
            order.append(proof)
            stack.extend(reversed(proof.premises))
        return order

    def to_dict(self) -> dict[str, Any]:
        """A nested plain-data tree. A sub-proof that the tree already spelled out higher up (to
        the left) appears again as {"concept", "kind", "shared": True} without premises, so the
        tree stays as small as the proof itself, however much the proof shares."""
        expanded: set[int] = set()
        root: dict[str, Any] = {}
        stack: list[tuple[Proof, list | None]] = [(self, None)]
        while stack:  # depth first, iterative: derivation chains can be thousands deep
            proof, siblings = stack.pop()
            out: dict[str, Any] = {"concept": proof.concept, "kind": proof.kind}
            if proof.kind == "given":
                out["evidence"] = plain(proof.evidence)
            elif proof.rule is not None and id(proof) in expanded:
                out["shared"] = True
            elif proof.rule is not None:
                expanded.add(id(proof))
                out.update(rule=str(proof.rule), line=proof.rule.line, premises=[])
                stack.extend((premise, out["premises"]) for premise in reversed(proof.premises))
            if siblings is None:
                root = out
            else:
                siblings.append(out)
        return root

    def __str__(self) -> str:
        """An indented tree, one line per step; repeated sub-proofs say "(see above)"."""
        expanded: set[int] = set()
        lines: list[str] = []
        stack: list[tuple[Proof, int]] = [(self, 0)]
        while stack:
            proof, depth = stack.pop()
            pad = "  " * depth
            if proof.kind == "absent":
                lines.append(f"{pad}not {proof.concept}  [neither given nor derived]")
            elif proof.kind == "given":
                evidence = "" if proof.evidence is None else f": {proof.evidence!r}"
                lines.append(f"{pad}{proof.concept}  [given{evidence}]")
            elif id(proof) in expanded:
                lines.append(f"{pad}{proof.concept}  (see above)")
            else:
                expanded.add(id(proof))
                where = f"line {proof.rule.line}: " if proof.rule.line is not None else ""
                verb = "suppressed by" if proof.kind == "suppressed" else "by"
                lines.append(f"{pad}{proof.concept}  [{verb} {where}{proof.rule}]")
                stack.extend((premise, depth + 1) for premise in reversed(proof.premises))
        return "\n".join(lines)

    def __repr__(self) -> str:
        rule = "" if self.rule is None else f", rule={str(self.rule)!r}"
        return f"Proof({self.concept!r}, {self.kind!r}{rule}, premises={len(self.premises)})"


def plain(value: Any) -> Any:
    """Evidence as JSON-ready data: containers recursively, arrays and tensors via .tolist(),
    anything else by its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if callable(getattr(value, "tolist", None)):
        return plain(value.tolist())
    return repr(value)


@dataclass(frozen=True)
class Inference:
    """What a rule set concluded from given facts.

    `facts`: every true concept (given and derived); `derived`: those the rules added;
    `suppressed`: concepts a suppress rule fired for (to steer away from; never facts);
    `proofs`: a Proof for every fact, in the order they became true (given facts first);
    `suppression_proofs`: a Proof for every suppressed concept.
    """

    given: frozenset[str]
    facts: frozenset[str]
    derived: frozenset[str]
    suppressed: frozenset[str]
    proofs: Mapping[str, Proof] = field(repr=False)
    suppression_proofs: Mapping[str, Proof] = field(repr=False)

    @property
    def conflicts(self) -> frozenset[str]:
        """Concepts that are facts and also suppressed."""
        return self.facts & self.suppressed

    def explain(self, concept: str) -> str:
        """The proof of `concept` (a fact or a suppressed concept) as an indented tree."""
        parts = [str(p[concept]) for p in (self.proofs, self.suppression_proofs) if concept in p]
        if not parts:
            raise KeyError(f"'{concept}' is neither a fact nor suppressed in this inference")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain data with flat proofs: each premise refers to another entry by concept name
        (``{"concept", "holds"}``; a premise that does not hold is an absent concept)."""
        return {
            "given": sorted(self.given),
            "derived": [concept for concept in self.proofs if concept in self.derived],
            "facts": sorted(self.facts),
            "suppressed": sorted(self.suppressed),
            "conflicts": sorted(self.conflicts),
            "proofs": {concept: _flat(proof) for concept, proof in self.proofs.items()},
            "suppression_proofs": {c: _flat(proof) for c, proof in self.suppression_proofs.items()},
        }

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict())


def _flat(proof: Proof) -> dict[str, Any]:
    if proof.kind == "given":
        return {"kind": "given", "evidence": plain(proof.evidence)}
    return {
        "kind": proof.kind,
        "rule": str(proof.rule),
        "line": proof.rule.line,
        "premises": [{"concept": p.concept, "holds": p.holds} for p in proof.premises],
    }


class Program:
    """Rules compiled to flat arrays of and/or nodes, grouped into stages (the strata, then
    the suppress rules) and indexed by the names their positive leaves test."""

    def __init__(self, rules: Sequence[Rule], stages: Sequence[Sequence[int]]):
        self.rules = tuple(rules)
        self.parent: list[int] = []
        self.is_or: list[bool] = []
        self.need: list[int] = []  # children that must fire before an `and` node fires
        self.children: list[tuple[int, ...]] = []
        self.literal: list[tuple[str, bool] | None] = []
        self.rule_of_root: dict[int, int] = {}
        # per stage: each rule's (head, suppress, leaves), and positive leaves by name
        self.stages: list[tuple[list[tuple[str, bool, list[Leaf]]], dict[str, list[int]]]] = []
        for stage in stages:
            compiled = []
            positive_index: dict[str, list[int]] = {}
            for index in stage:
                rule, leaves = self.rules[index], []
                self.rule_of_root[self._compile(rule.body, True, -1, leaves)] = index
                compiled.append((rule.head, rule.suppress, leaves))
                for node, name, positive in leaves:
                    if positive:
                        positive_index.setdefault(name, []).append(node)
            self.stages.append((compiled, positive_index))

    def _compile(self, formula: Formula, positive: bool, parent: int, leaves: list[Leaf]) -> int:
        while isinstance(formula, Not):
            formula, positive = formula.operand, not positive
        node = len(self.parent)
        self.parent.append(parent)
        if isinstance(formula, Atom):
            self.is_or.append(False)
            self.need.append(0)
            self.children.append(())
            self.literal.append((formula.name, positive))
            leaves.append((node, formula.name, positive))
            return node
        is_or = isinstance(formula, And) != positive  # De Morgan swaps and/or under `not`
        self.is_or.append(is_or)
        self.need.append(1 if is_or else len(formula.operands))
        self.children.append(())
        self.literal.append(None)
        self.children[node] = tuple(self._compile(part, positive, node, leaves) for part in formula.operands)
        return node

    def run(self, given: Mapping[str, Any]) -> Inference:
        facts = set(given)
        proofs: dict[str, Proof] = {name: Proof(name, "given", evidence=ev) for name, ev in given.items()}
        suppression_proofs: dict[str, Proof] = {}
        fired = bytearray(len(self.parent))
        remaining = self.need.copy()
        chosen: dict[int, int] = {}  # `or` node -> the child that made it true
        parent, is_or, rules, rule_of_root = self.parent, self.is_or, self.rules, self.rule_of_root

        def premises(root: int) -> tuple[Proof, ...]:
            found: dict[tuple[str, bool], Proof] = {}
            stack = [root]
            while stack:
                node = stack.pop()
                literal = self.literal[node]
                if literal is not None:
                    name, positive = literal
                    if (name, positive) not in found:
                        found[name, positive] = proofs[name] if positive else Proof(name, "absent")
                elif is_or[node]:
                    stack.append(chosen[node])
                else:
                    stack.extend(reversed(self.children[node]))
            return tuple(found.values())

        for compiled, positive_index in self.stages:
            # Leaves true when the stage starts (negated names are final by now); leaves of
            # concepts derived later are added as those concepts are derived.
            work = deque(
                node
                for head, suppress, leaves in compiled
                if suppress or head not in facts  # a rule for a known fact can teach nothing
                for node, name, positive in leaves
                if (name in facts) == positive
            )
            while work:  # first in, first out: concepts are derived breadth first
                node = work.popleft()
                while not fired[node]:  # climb while each node fires
                    fired[node] = 1
                    up = parent[node]
                    if up < 0:
                        rule = rules[rule_of_root[node]]
                        head = rule.head
                        if rule.suppress:
                            if head not in suppression_proofs:
                                suppression_proofs[head] = Proof(head, "suppressed", rule, premises(node))
                        elif head not in facts:
                            facts.add(head)
                            proofs[head] = Proof(head, "derived", rule, premises(node))
                            work.extend(positive_index.get(head, ()))
                        break
                    if is_or[up]:
                        if fired[up]:
                            break
                        chosen[up] = node
                    else:
                        remaining[up] -= 1
                        if remaining[up]:
                            break
                    node = up

        given_names = frozenset(given)
        all_facts = frozenset(facts)
        return Inference(
            given=given_names,
            facts=all_facts,
            derived=all_facts - given_names,
            suppressed=frozenset(suppression_proofs),
            proofs=MappingProxyType(proofs),
            suppression_proofs=MappingProxyType(suppression_proofs),
        )
