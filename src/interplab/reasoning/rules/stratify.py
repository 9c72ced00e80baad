"""Stratification: in which order rules must run so that `not x` is only tested once x is final.

A concept concluded by a rule depends on each concept its body tests: positively, or
negatively when the name sits under an odd number of `not`s. Concepts that depend on each
other (a strongly connected component of that graph) share a stratum; such a component must
not contain a negative dependency, or a concept would depend on its own absence. A concept's
stratum is the largest over its dependencies of (their stratum, plus one across a `not`).
Given concepts that no rule concludes are final from the start, so negating them costs no
stratum. Suppress rules conclude nothing that a body can test; they run after every stratum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import StratificationError
from .formula import Rule, literals

# concept -> [(premise, negated, rule index)] for each premise that a rule concludes
Dependencies = dict[str, list[tuple[str, bool, int]]]


@dataclass(frozen=True)
class Strata:
    levels: dict[str, int]  # concluded concept -> its stratum
    stages: list[list[int]]  # rule indices per stratum, then one last stage of suppress rules


def stratify(rules: Sequence[Rule]) -> Strata:
    """The evaluation order of `rules`; raises StratificationError for a cycle through `not`."""
    strata, errors = analyse(rules)
    if errors:
        raise errors[0]
    return strata


def analyse(rules: Sequence[Rule]) -> tuple[Strata, list[StratificationError]]:
    """The strata, and one error per group of concepts that depend on their own absence."""
    dependencies = _dependencies(rules)
    levels: dict[str, int] = {}
    errors = []
    for component in _components(dependencies):
        members = set(component)
        level = 0
        cycle_found = False
        for concept in component:
            for premise, negated, index in dependencies[concept]:
                if premise in members:
                    if negated and not cycle_found:  # one error per component is enough
                        cycle_found = True
                        errors.append(_cycle_error(rules, dependencies, members, concept, premise, index))
                else:
                    level = max(level, levels[premise] + negated)
        for concept in component:
            levels[concept] = level
    n_strata = max(levels.values(), default=-1) + 1
    stages: list[list[int]] = [[] for _ in range(n_strata + 1)]
    for index, rule in enumerate(rules):
        stages[n_strata if rule.suppress else levels[rule.head]].append(index)
    errors.sort(key=lambda error: (error.line is None, error.line or 0))
    return Strata(levels, stages), errors


def _dependencies(rules: Sequence[Rule]) -> Dependencies:
    concluded = {rule.head for rule in rules if not rule.suppress}
    dependencies: Dependencies = {concept: [] for concept in concluded}
    for index, rule in enumerate(rules):
        if rule.suppress:
            continue
        seen = set()
        for atom, positive in literals(rule.body):
            key = (atom.name, not positive)
            if atom.name in concluded and key not in seen:
                seen.add(key)
                dependencies[rule.head].append((atom.name, not positive, index))
    return dependencies


def _components(graph: Dependencies) -> list[list[str]]:
    """Strongly connected components, each after every component it depends on (Tarjan's
    algorithm, iterative so that long rule chains do not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, edges = work[-1]
            for premise, _, _ in edges:
                if premise not in index:
                    index[premise] = low[premise] = len(index)
                    stack.append(premise)
                    on_stack.add(premise)
                    work.append((premise, iter(graph[premise])))
                    break
                if premise in on_stack:
                    low[node] = min(low[node], index[premise])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component[::-1])
    return components


def _cycle_error(
    rules: Sequence[Rule], graph: Dependencies, members: set[str], concept: str, premise: str, index: int
) -> StratificationError:
    """The cycle `concept -> not premise -> ... -> concept`, found by breadth-first search."""
    steps = [(concept, premise, True, rules[index])]
    if premise != concept:
        came_from: dict[str, tuple[str, bool, int]] = {}
        queue = deque([premise])
        while concept not in came_from:
            node = queue.popleft()
            for nxt, negated, rule_index in graph[node]:
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = (node, negated, rule_index)
                    queue.append(nxt)
        path = []
        node = concept
        while node != premise:
            previous, negated, rule_index = came_from[node]
            path.append((previous, node, negated, rules[rule_index]))
            node = previous
        steps.extend(reversed(path))
    return StratificationError(steps)
