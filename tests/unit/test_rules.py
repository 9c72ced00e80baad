"""The rule language: grammar, precedence, canonical text, error positions, diagnostics,
unknown names, and hostile text that must never run."""

import builtins
import itertools
import json
import os
import random
import subprocess

import pytest

from interplab.reasoning import (
    And,
    Atom,
    Not,
    Or,
    Rule,
    RuleError,
    RuleSyntaxError,
    UnknownConceptError,
    check_rules,
    parse_rules,
)

# ---------------------------------------------------------------------------------------------
# Grammar and precedence.


def test_precedence_not_over_and_over_or():
    (rule,) = parse_rules("a or b and not c -> d").rules
    assert rule.body == Or((Atom("a"), And((Atom("b"), Not(Atom("c"))))))
    assert rule.head == "d" and not rule.suppress and rule.line == 1


def test_parentheses_group_and_nested_groups_flatten():
    (rule,) = parse_rules("(a or b) and (c and (d)) -> e").rules
    assert rule.body == And((Or((Atom("a"), Atom("b"))), Atom("c"), Atom("d")))


def test_suppress_head():
    (rule,) = parse_rules("wild and not pet -> suppress cuddly").rules
    assert rule.suppress and rule.head == "cuddly"
    assert rule.body == And((Atom("wild"), Not(Atom("pet"))))


def test_comments_blank_lines_crlf_and_unicode_names():
    rules = parse_rules("# animals\r\n\r\n  café and 猫 -> x   # trailing\r\n\t# indented comment\nx -> y")
    assert [str(rule) for rule in rules] == ["café and 猫 -> x", "x -> y"]
    assert [rule.line for rule in rules] == [3, 5]
    assert len(parse_rules("")) == 0 and len(parse_rules("# only a comment\n\n")) == 0


def test_keywords_are_whole_words_and_lowercase():
    (rule,) = parse_rules("android or notable -> order").rules
    assert rule.body == Or((Atom("android"), Atom("notable"))) and rule.head == "order"


MESSY = """  ( a )and(b or c)->d  # comment
not(not x)   ->   y

(a and b) and c -> suppress  z
a or (b or c) -> w
not (a or b and c) -> v
(not a) and (b or (c and d)) -> u"""

CANONICAL = """a and (b or c) -> d
not not x -> y
a and b and c -> suppress z
a or b or c -> w
not (a or b and c) -> v
not a and (b or c and d) -> u"""


def test_canonical_text_round_trips():
    rules = parse_rules(MESSY)
    assert str(rules) == CANONICAL
    assert parse_rules(str(rules)) == rules
    assert [rule.line for rule in rules] == [1, 2, 4, 5, 6, 7]


def random_tree(rng, depth):
    if depth == 0 or rng.random() < 0.25:
        return ("atom", rng.choice("pqrs"))
    draw = rng.random()
    if draw < 0.25:
        return ("not", random_tree(rng, depth - 1))
    return ("and" if draw < 0.6 else "or", [random_tree(rng, depth - 1) for _ in range(rng.randint(2, 3))])


LEVEL = {"or": 1, "and": 2, "not": 3, "atom": 4}


def minimal_text(tree):
    """Text with parentheses only where this test's own reading of the precedence needs them."""
    op, arg = tree
    if op == "atom":
        return arg

    def part(child, needed):
        text = minimal_text(child)
        return f"({text})" if LEVEL[child[0]] < needed else text

    if op == "not":
        return "not " + part(arg, LEVEL["not"])
    # a same-operator child needs no parentheses (associative), a looser one does
    return f" {op} ".join(part(child, LEVEL[op]) for child in arg)


def truth(tree, true_names):
    op, arg = tree
    if op == "atom":
        return arg in true_names
    if op == "not":
        return not truth(arg, true_names)
    values = [truth(child, true_names) for child in arg]
    return all(values) if op == "and" else any(values)


def library_truth(formula, true_names):
    if isinstance(formula, Atom):
        return formula.name in true_names
    if isinstance(formula, Not):
        return not library_truth(formula.operand, true_names)
    values = [library_truth(part, true_names) for part in formula.operands]
    return all(values) if isinstance(formula, And) else any(values)


@pytest.mark.parametrize("seed", range(40))
def test_random_formulas_parse_with_the_documented_precedence(seed):
    rng = random.Random(seed)
    tree = random_tree(rng, 4)
    (rule,) = parse_rules(minimal_text(tree) + " -> out").rules
    for values in itertools.product([False, True], repeat=4):
        true_names = {name for name, value in zip("pqrs", values) if value}
        assert library_truth(rule.body, true_names) == truth(tree, true_names)
    assert parse_rules(str(rule)).rules == (rule,)


def test_ruleset_accessors_and_json():
    rules = parse_rules("a and not b -> c\nc -> suppress d")
    assert rules.concepts == {"a", "b", "c", "d"}
    assert rules.heads == {"c"} and rules.suppressions == {"d"}
    assert list(rules) == list(rules.rules) and len(rules) == 2
    assert rules.rules[0].atoms == {"a", "b"}
    data = rules.to_dict()
    assert isinstance(rules.to_json(), str) and json.loads(rules.to_json()) == data
    assert data == {
        "text": "a and not b -> c\nc -> suppress d",
        "rules": [
            {
                "text": "a and not b -> c", "head": "c", "suppress": False, "line": 1,
                "body": {"and": [{"atom": "a"}, {"not": {"atom": "b"}}]},
            },
            {"text": "c -> suppress d", "head": "d", "suppress": True, "line": 2, "body": {"atom": "c"}},
        ],
        "concepts": ["a", "b", "c", "d"],
        "heads": ["c"],
        "suppressions": ["d"],
        "strata": [["c"]],
    }  # fmt: skip


def test_rules_built_in_code_are_checked():
    with pytest.raises(RuleError, match="keyword"):
        Atom("not")
    with pytest.raises(RuleError, match="not a concept name"):
        Rule(Atom("a"), "two words")
    with pytest.raises(TypeError, match="formula"):
        Rule("a", "b")


# ---------------------------------------------------------------------------------------------
# Errors: positions checked by hand (1-based columns).

BAD = [
    ("a and -> b", 1, 7, "expected a concept name after 'and', found '->'"),
    ("a and b", 1, 8, "missing '->'"),
    ("(a and b -> c", 1, 1, "unbalanced parenthesis"),
    ("a and (b or c -> d", 1, 7, "unbalanced parenthesis"),
    ("a) -> b", 1, 2, "unbalanced parenthesis: this ')' closes nothing"),
    ("a -> ", 1, 5, "empty head"),
    ("a -> suppress", 1, 14, "expected a concept name after 'suppress'"),
    ("a -> b c", 1, 8, "a head is one concept name"),
    ("a -> b -> c", 1, 8, "a rule has one '->'"),
    ("a b -> c", 1, 3, "expected 'and', 'or' or '->' between 'a' and 'b'"),
    ("a => b", 1, 3, "use '->'"),
    ("-> b", 1, 1, "missing condition before '->'"),
    ("a AND b -> c", 1, 3, "keywords are lowercase: write 'and'"),
    ("1a -> b", 1, 1, "cannot start with a digit"),
    ("a -> not b", 1, 6, "suppress"),
    ("a and suppress b -> c", 1, 7, "'suppress' belongs in a head"),
    ("() -> a", 1, 2, "empty parentheses"),
    ("a not b -> c", 1, 3, "'not' needs 'and' or 'or' before it"),
    ("a & b -> c", 1, 3, "write 'and'"),
    ("a\u00a0and b -> c", 1, 2, "use ordinary spaces"),
    ("  cat and   dog or -> pet", 1, 20, "expected a concept name after 'or'"),
    ("\ta and -> b", 1, 8, "expected a concept name after 'and'"),
    ("a -> b\n\n# comment\nx and (y or) -> z", 4, 12, "expected a concept name after 'or', found ')'"),
    ("a and b -> c # fine\nd or -> e", 2, 6, "expected a concept name after 'or'"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD)
def test_syntax_errors_say_where_and_what(text, line, column, message):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rules(text)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert message in error.message
    assert str(error).startswith(f"line {line}, column {column}: ")


def test_error_spans():
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rules("a b -> c")
    assert caught.value.end_column == 4
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rules("x and (y -> z")
    assert (caught.value.column, caught.value.end_column) == (7, 8)


def test_check_rules_reports_every_bad_line():
    text = "a -> b\na and -> c\nb or a -> d\nd -> e f\nbogus_typo -> g\na -> b"
    found = [(d.line, d.column, d.severity, d.code) for d in check_rules(text, known={"a", "bogus"})]
    assert found == [
        (2, 7, "error", "syntax"),
        (4, 8, "error", "syntax"),
        (5, 1, "error", "unknown-concept"),
        (6, 1, "warning", "duplicate-rule"),
    ]
    unknown = check_rules(text, known={"a", "bogus"})[2]
    assert (unknown.end_line, unknown.end_column) == (5, 11)
    assert "did you mean 'bogus'?" in unknown.message
    assert check_rules("a -> b\nb or c -> d") == []
    (repeat,) = check_rules("a -> b\n  a  ->  b  # again")
    assert (repeat.line, repeat.column, repeat.end_column) == (2, 3, 11)  # "a  ->  b" spans 3..10
    assert repeat.message == "the same rule as line 1"


def test_check_rules_marks_each_rule_on_a_negation_cycle():
    found = check_rules("a -> b\nnot c -> d\nd -> c")
    assert [(d.line, d.column, d.end_column, d.code) for d in found] == [
        (2, 5, 6, "negation-cycle"),
        (3, 1, 2, "negation-cycle"),
    ]
    assert "'d' depends on 'not c'" in found[0].message


def test_rules_nested_too_deeply_are_refused():
    deep = "(" * 150 + "a" + ")" * 150 + " -> b"
    with pytest.raises(RuleSyntaxError, match="nests more than"):
        parse_rules(deep)
    assert parse_rules("(" * 60 + "a" + ")" * 60 + " -> b").rules[0].body == Atom("a")


def test_text_must_be_a_string():
    with pytest.raises(TypeError, match="string"):
        parse_rules(["a -> b"])


# ---------------------------------------------------------------------------------------------
# Names against the concept dictionary.


def test_unknown_body_name_gets_a_suggestion():
    with pytest.raises(UnknownConceptError) as caught:
        parse_rules("cat -> pet\npet and not dgo -> lonely_cat", known={"cat", "dog"})
    error = caught.value
    assert (error.line, error.column, error.name, error.suggestion) == (2, 13, "dgo", "dog")
    assert "did you mean 'dog'?" in str(error)


def test_heads_may_introduce_derived_concepts():
    rules = parse_rules("cat -> mammal\nmammal and dog -> pair", known={"cat", "dog"})
    assert rules.heads == {"mammal", "pair"}


def test_suppress_targets_must_exist():
    with pytest.raises(UnknownConceptError, match="cannot suppress unknown concept 'dgo'") as caught:
        parse_rules("cat -> suppress dgo", known={"cat", "dog"})
    assert (caught.value.column, caught.value.suggestion) == (17, "dog")
    assert parse_rules("cat -> suppress mammal\ncat -> mammal", known={"cat"}).suppressions == {"mammal"}


def test_suggestions_prefer_case_matches_and_can_be_absent():
    with pytest.raises(UnknownConceptError) as caught:
        parse_rules("Cat -> x", known={"cat", "bat"})
    assert caught.value.suggestion == "cat"
    with pytest.raises(UnknownConceptError) as caught:
        parse_rules("zzz -> x", known={"cat"})
    assert caught.value.suggestion is None and "did you mean" not in str(caught.value)


def test_without_known_every_name_is_accepted():
    assert parse_rules("anything and whatever -> x").concepts == {"anything", "whatever", "x"}


# ---------------------------------------------------------------------------------------------
# Hostile text is parsed as data, never run.


def hostile_texts(marker):
    return [
        f"__import__('os').system('touch {marker}') -> x",
        f"a; import os; os.system('touch {marker}') -> x",
        f"`touch {marker}` -> x",
        f"$(touch {marker}) -> x",
        f"exec(\"open('{marker}', 'w')\") -> x",
        f"x -> y; __import__('os').system('touch {marker}')",
        "os.system -> x",
        "a -> b.__class__.__bases__",
        "lambda: open('/etc/passwd') -> x",
        f"a -> b\n__import__('subprocess').run(['touch', '{marker}']) -> c",
    ]


def test_hostile_text_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    reached = []

    def refuse(*args, **kwargs):
        reached.append(args)
        raise RuntimeError("rule text reached code execution")

    outcomes = []
    with monkeypatch.context() as patched:
        for name in ("eval", "exec", "compile"):
            patched.setattr(builtins, name, refuse)
        patched.setattr(os, "system", refuse)
        patched.setattr(subprocess, "Popen", refuse)
        for text in hostile_texts(marker):
            try:
                parse_rules(text)
                outcomes.append((text, None))
            except Exception as error:  # checked below, once the guards are lifted
                outcomes.append((text, error))
            outcomes.append((text, check_rules(text)))
    assert reached == []
    assert not marker.exists()
    for text, outcome in outcomes:
        if isinstance(outcome, list):
            assert outcome and outcome[0].severity == "error", text
        else:
            assert isinstance(outcome, RuleSyntaxError), (text, outcome)
            assert isinstance(outcome.line, int) and isinstance(outcome.column, int)


def test_the_rule_language_stands_alone_without_torch():
    """The rules half of the reasoning instrument (interplab.reasoning.rules) loads and infers as a
    package of its own with torch made unimportable: it uses only the standard library and lark."""
    import sys
    from pathlib import Path

    import interplab.reasoning.rules as rules_package

    folder = Path(rules_package.__file__).parent
    code = f"""
import importlib.util, json, sys
sys.modules["torch"] = None  # importing torch now raises ImportError
spec = importlib.util.spec_from_file_location("rules", {str(folder / "__init__.py")!r},
                                              submodule_search_locations=[{str(folder)!r}])
rules = importlib.util.module_from_spec(spec)
sys.modules["rules"] = rules
spec.loader.exec_module(rules)
inference = rules.parse_rules("a and not b -> c\\nc -> d").infer({{"a": [1]}})
print(json.dumps({{"facts": sorted(inference.facts), "interplab": "interplab" in sys.modules,
                  "proofs": json.loads(inference.to_json())["proofs"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["facts"] == ["a", "c", "d"] and result["interplab"] is False
    assert result["proofs"]["a"] == {"kind": "given", "evidence": [1]}
