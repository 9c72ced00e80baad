"""The forward chainer: random rule sets against a naive fixpoint, stratified negation,
suppression, and hand-checked proof trees."""

import json
import random

import pytest

from interplab.reasoning import (
    And,
    Atom,
    Not,
    Or,
    Rule,
    RuleSet,
    StratificationError,
    parse_rules,
)

# ---------------------------------------------------------------------------------------------
# An independent reference: random programs as nested tuples, stratified by construction, and a
# naive evaluator that re-applies every rule of a level until nothing changes.


def random_formula(rng, depth, positive, pools, negation):
    """A formula as ("atom", name) | ("not", f) | ("and"|"or", [f, ...]). Names under an even
    number of nots come from pools[True], under an odd number from pools[False]."""
    if depth == 0 or rng.random() < 0.3:
        return ("atom", rng.choice(pools[positive]))
    draw = rng.random()
    if negation and draw < 0.25:
        return ("not", random_formula(rng, depth - 1, not positive, pools, negation))
    op = "and" if draw < 0.6 else "or"
    return (op, [random_formula(rng, depth - 1, positive, pools, negation) for _ in range(rng.randint(2, 3))])


def random_program(rng, n_base, n_derived, n_rules, n_levels, negation, n_suppress=0):
    """Rules (formula, head, suppress) and each derived concept's level. A rule's positive
    names come from levels <= its head's level, its negated names from strictly lower levels
    (base concepts count as lowest), so every program is stratified."""
    base = [f"b{i}" for i in range(n_base)]
    derived = [f"d{i}" for i in range(n_derived)]
    level = {name: rng.randrange(n_levels) for name in derived}
    rules = []
    for _ in range(n_rules):
        head = rng.choice(derived)
        pools = {
            True: base + [d for d in derived if level[d] <= level[head]],
            False: base + [d for d in derived if level[d] < level[head]],
        }
        rules.append((random_formula(rng, rng.randint(0, 3), True, pools, negation), head, False))
    everything = {True: base + derived, False: base + derived}
    for _ in range(n_suppress):
        body = random_formula(rng, rng.randint(0, 3), True, everything, negation)
        rules.append((body, rng.choice(base + derived), True))
    return rules, level, base


def holds(formula, facts):
    op, arg = formula
    if op == "atom":
        return arg in facts
    if op == "not":
        return not holds(arg, facts)
    if op == "and":
        return all(holds(part, facts) for part in arg)
    return any(holds(part, facts) for part in arg)


def naive_fixpoint(rules, level, given):
    facts = set(given)
    for current in sorted(set(level.values())):
        stratum = [(body, head) for body, head, suppress in rules if not suppress and level[head] == current]
        changed = True
        while changed:
            changed = False
            for body, head in stratum:
                if head not in facts and holds(body, facts):
                    facts.add(head)
                    changed = True
    suppressed = {head for body, head, suppress in rules if suppress and holds(body, facts)}
    return facts, suppressed


def render(formula, rng):
    """Text with every compound operand parenthesised and random spacing."""
    op, arg = formula
    if op == "atom":
        return arg
    space = " " * rng.randint(1, 2)

    def wrapped(part):
        return render(part, rng) if part[0] == "atom" else f"({render(part, rng)})"

    if op == "not":
        return f"not{space}{wrapped(arg)}"
    return f"{space}{op}{space}".join(wrapped(part) for part in arg)


def rule_text(rules, rng):
    lines = []
    for body, head, suppress in rules:
        lines.append(f"{render(body, rng)} -> {'suppress ' if suppress else ''}{head}")
        if rng.random() < 0.1:
            lines.append("# a comment line")
    return "\n".join(lines)


def kleene(formula, values):
    """Three-valued value of one of the library's formulas: names missing from `values` are
    unknown (None)."""
    if isinstance(formula, Atom):
        return values.get(formula.name)
    if isinstance(formula, Not):
        inner = kleene(formula.operand, values)
        return None if inner is None else not inner
    parts = [kleene(part, values) for part in formula.operands]
    decided, undecided = (False, True) if isinstance(formula, And) else (True, False)
    if decided in parts:
        return decided
    return None if None in parts else undecided


def check_proofs(ruleset, inference, given):
    """Every fact has a well-founded proof whose premises alone make its rule's body true."""
    order = list(inference.proofs)
    assert set(order) == set(inference.facts)
    rules = set(ruleset.rules)
    for position, concept in enumerate(order):
        proof = inference.proofs[concept]
        assert proof.concept == concept
        if concept in given:
            assert proof.kind == "given" and proof.evidence == given[concept]
            continue
        assert proof.kind == "derived" and proof.rule in rules and proof.rule.head == concept
        check_premises(proof, inference, order[:position])
    for concept, proof in inference.suppression_proofs.items():
        assert proof.kind == "suppressed" and proof.rule.suppress and proof.rule.head == concept
        check_premises(proof, inference, order)


def check_premises(proof, inference, earlier):
    values = {}
    for premise in proof.premises:
        if premise.kind == "absent":
            assert premise.concept not in inference.facts
            values[premise.concept] = False
        else:
            assert premise is inference.proofs[premise.concept]
            assert premise.concept in earlier  # premises became true first: no circular proofs
            values[premise.concept] = True
    assert kleene(proof.rule.body, values) is True


@pytest.mark.parametrize("seed", range(60))
def test_stratified_negation_matches_naive_fixpoint(seed):
    rng = random.Random(seed)
    rules, level, base = random_program(
        rng, n_base=rng.randint(2, 8), n_derived=rng.randint(2, 25), n_rules=rng.randint(1, 60),
        n_levels=rng.randint(1, 4), negation=True, n_suppress=rng.randint(0, 5),
    )  # fmt: skip
    ruleset = parse_rules(rule_text(rules, rng))
    assert len(ruleset) == len(rules)
    for _ in range(8):
        given = {name: f"evidence of {name}" for name in base + list(level) if rng.random() < 0.3}
        inference = ruleset.infer(given)
        facts, suppressed = naive_fixpoint(rules, level, given)
        assert inference.facts == facts
        assert inference.derived == facts - set(given)
        assert inference.suppressed == suppressed
        check_proofs(ruleset, inference, given)


@pytest.mark.parametrize("seed", range(30))
def test_positive_programs_with_cycles_match_naive_fixpoint(seed):
    rng = random.Random(1000 + seed)
    rules, level, base = random_program(
        rng, n_base=rng.randint(1, 5), n_derived=rng.randint(2, 15), n_rules=rng.randint(5, 60),
        n_levels=1, negation=False,
    )  # fmt: skip
    ruleset = parse_rules(rule_text(rules, rng))
    for _ in range(8):
        given = {name: None for name in base + list(level) if rng.random() < 0.25}
        inference = ruleset.infer(set(given))
        assert inference.facts == naive_fixpoint(rules, level, given)[0]
        check_proofs(ruleset, inference, given)


# ---------------------------------------------------------------------------------------------
# Negation and stratification by hand.


def test_not_means_neither_given_nor_derived():
    rules = parse_rules("not b -> c\na -> b")  # the rule testing `not b` comes first on purpose
    assert rules.infer(set()).facts == {"c"}
    assert rules.infer({"b"}).facts == {"b"}
    assert rules.infer({"a"}).facts == {"a", "b"}  # b derived, so not b fails


def test_strata_follow_negation():
    rules = parse_rules("not c -> d\nnot b -> c\na -> b\nd and a -> e")
    assert rules.strata == ({"b"}, {"c"}, {"d", "e"})
    assert rules.infer({"a"}).facts == {"a", "b", "d", "e"}
    assert rules.infer(set()).facts == {"c"}


def test_negating_an_undetected_base_concept_needs_no_extra_stratum():
    assert parse_rules("not base -> x\nx -> y").strata == ({"x", "y"},)


def test_negative_cycle_is_rejected_with_the_names_on_it():
    with pytest.raises(StratificationError) as caught:
        parse_rules("a and not c -> b\nb -> d\nd -> c\ne -> f")
    error = caught.value
    assert error.cycle == ["b", "c", "d"]
    assert error.lines == [1, 3, 2]
    message = str(error)
    assert "'b' needs 'not c' (line 1)" in message
    assert "'c' needs 'd' (line 3)" in message
    assert "'d' needs 'b' (line 2)" in message
    assert "f" not in error.cycle


def test_self_negation_and_negated_groups_are_cycles():
    with pytest.raises(StratificationError, match="'a' needs 'not a'"):
        parse_rules("not a -> a")
    with pytest.raises(StratificationError) as caught:
        parse_rules("x -> a\nnot (a and y) -> a")  # De Morgan: a depends on not a
    assert caught.value.cycle == ["a"] and caught.value.lines == [2]


def test_rule_objects_with_a_negative_cycle_are_rejected_too():
    with pytest.raises(StratificationError):
        RuleSet([Rule(Not(Atom("q")), "p"), Rule(Atom("p"), "q")])


def test_double_negation_is_positive_so_this_cycle_is_allowed():
    rules = parse_rules("not not a -> b\nb -> a")
    assert rules.infer({"a"}).facts == {"a", "b"}
    assert rules.infer({"b"}).facts == {"a", "b"}
    assert rules.infer(set()).facts == set()


def test_positive_cycles_terminate():
    rules = parse_rules("a -> b\nb -> c\nc -> a\nc and x -> y")
    assert rules.infer({"b"}).facts == {"a", "b", "c"}
    assert rules.infer({"x", "a"}).facts == {"a", "b", "c", "x", "y"}
    assert rules.infer(set()).facts == set()


def test_negated_disjunction_and_conjunction():
    assert parse_rules("not (a or b) -> c").infer({"b"}).facts == {"b"}
    assert parse_rules("not (a or b) -> c").infer(set()).facts == {"c"}
    assert parse_rules("not (a and b) -> c").infer({"a"}).facts == {"a", "c"}
    assert parse_rules("not (a and b) -> c").infer({"a", "b"}).facts == {"a", "b"}


# ---------------------------------------------------------------------------------------------
# Suppression.


def test_suppression_is_an_output_not_a_fact():
    rules = parse_rules("a -> suppress x\nnot x -> y")
    inference = rules.infer({"a"})
    assert inference.suppressed == {"x"}
    assert inference.facts == {"a", "y"}  # `not x` asks only whether x is a fact
    assert inference.conflicts == frozenset()


def test_a_concept_can_be_a_fact_and_suppressed():
    inference = parse_rules("a -> x\nb -> suppress x").infer({"a", "b"})
    assert "x" in inference.facts and inference.suppressed == {"x"}
    assert inference.conflicts == {"x"}


def test_suppress_rules_see_final_facts_of_every_stratum():
    rules = parse_rules("not b -> suppress c\na -> b\nb -> suppress b")
    assert rules.infer({"a"}).suppressed == {"b"}
    assert rules.infer(set()).suppressed == {"c"}
    assert rules.suppressions == {"b", "c"} and rules.heads == {"b"}


# ---------------------------------------------------------------------------------------------
# Proofs by hand.

ANIMALS = """cat -> mammal
mammal and not aquatic -> land_animal
dog or cat -> pet
land_animal and pet -> suppress wild"""


def test_proof_tree_of_a_suppression():
    inference = parse_rules(ANIMALS).infer({"cat": (3, 4)})
    assert inference.facts == {"cat", "mammal", "land_animal", "pet"}
    assert inference.derived == {"mammal", "land_animal", "pet"}
    cat = {"concept": "cat", "kind": "given", "evidence": [3, 4]}
    assert inference.suppression_proofs["wild"].to_dict() == {
        "concept": "wild", "kind": "suppressed", "rule": "land_animal and pet -> suppress wild", "line": 4,
        "premises": [
            {
                "concept": "land_animal", "kind": "derived", "rule": "mammal and not aquatic -> land_animal",
                "line": 2,
                "premises": [
                    {
                        "concept": "mammal", "kind": "derived", "rule": "cat -> mammal", "line": 1,
                        "premises": [cat],
                    },
                    {"concept": "aquatic", "kind": "absent"},
                ],
            },
            {"concept": "pet", "kind": "derived", "rule": "dog or cat -> pet", "line": 3, "premises": [cat]},
        ],
    }  # fmt: skip
    assert inference.proofs["land_animal"].given_facts() == {"cat": (3, 4)}


def test_proof_text():
    inference = parse_rules(ANIMALS).infer({"cat": "token 3"})
    assert inference.explain("land_animal") == (
        "land_animal  [by line 2: mammal and not aquatic -> land_animal]\n"
        "  mammal  [by line 1: cat -> mammal]\n"
        "    cat  [given: 'token 3']\n"
        "  not aquatic  [neither given nor derived]"
    )
    with pytest.raises(KeyError, match="dog"):
        inference.explain("dog")


def test_or_records_the_disjunct_that_held():
    rules = parse_rules("dog or cat -> pet")
    assert [p.concept for p in rules.infer({"dog"}).proofs["pet"].premises] == ["dog"]
    assert [p.concept for p in rules.infer({"cat"}).proofs["pet"].premises] == ["cat"]


def test_negative_premises_follow_de_morgan():
    def premises(text, facts, concept="c"):
        return [(p.concept, p.kind) for p in parse_rules(text).infer(facts).proofs[concept].premises]

    assert premises("not (a or b) -> c", set()) == [("a", "absent"), ("b", "absent")]
    assert premises("not (a and b) -> c", {"a"}) == [("b", "absent")]
    assert premises("(a or b) and not (c and d) -> e", {"b", "c"}, "e") == [("b", "given"), ("d", "absent")]


def test_shared_sub_proofs_are_spelled_out_once():
    proof = parse_rules("a -> b\nb -> c\nb and c -> d").infer({"a"}).proofs["d"]
    a = {"concept": "a", "kind": "given", "evidence": None}
    assert proof.to_dict() == {
        "concept": "d", "kind": "derived", "rule": "b and c -> d", "line": 3,
        "premises": [
            {"concept": "b", "kind": "derived", "rule": "a -> b", "line": 1, "premises": [a]},
            {
                "concept": "c", "kind": "derived", "rule": "b -> c", "line": 2,
                "premises": [{"concept": "b", "kind": "derived", "shared": True}],
            },
        ],
    }  # fmt: skip


def test_inference_json_is_flat():
    inference = parse_rules(ANIMALS).infer({"cat": (3, 4)})
    data = inference.to_dict()
    assert json.loads(inference.to_json()) == data
    assert data["derived"] == ["mammal", "pet", "land_animal"]  # derivation order, breadth first
    assert data["suppressed"] == ["wild"] and data["conflicts"] == []
    assert data["proofs"]["cat"] == {"kind": "given", "evidence": [3, 4]}
    assert data["proofs"]["land_animal"] == {
        "kind": "derived", "rule": "mammal and not aquatic -> land_animal", "line": 2,
        "premises": [{"concept": "mammal", "holds": True}, {"concept": "aquatic", "holds": False}],
    }  # fmt: skip


def test_long_chains_infer_and_serialise_without_recursion():
    n = 5000
    rules = RuleSet(Rule(Atom(f"c{i}"), f"c{i + 1}") for i in range(n))
    inference = rules.infer({"c0"})
    assert len(inference.facts) == n + 1
    tree = inference.proofs[f"c{n}"].to_dict()
    depth = 0
    while tree.get("premises"):
        tree, depth = tree["premises"][0], depth + 1
    assert depth == n and tree == {"concept": "c0", "kind": "given", "evidence": None}
    assert len(str(inference.proofs[f"c{n}"]).splitlines()) == n + 1


# ---------------------------------------------------------------------------------------------
# Inputs.


def test_facts_may_be_a_set_or_a_mapping_to_evidence():
    rules = RuleSet([Rule(And((Atom("a"), Or((Atom("b"), Not(Atom("z")))))), "c")])
    assert rules.infer(["a"]).facts == {"a", "c"}
    assert rules.infer({"a": [1, 2]}).proofs["a"].evidence == [1, 2]
    assert RuleSet().infer({"q"}).facts == {"q"}


def test_bad_facts_are_refused_clearly():
    rules = parse_rules("a -> b")
    with pytest.raises(TypeError, match="not a string"):
        rules.infer("a")
    with pytest.raises(TypeError, match="strings"):
        rules.infer({1})
