"""reason(): detected tokens become facts, rules infer, proofs end in the tokens; the per-token timeline."""

import pytest
import torch
from planted import passthrough_llama

import interplab as il
from interplab.reasoning import Concepts, parse_rules, reason

RULES = """
cat -> pet
dog -> pet
pet and not dog -> calm
cat and dog -> suppress calm
"""


@pytest.fixture(scope="module")
def planted(device):
    """Block 0 passes embeddings through; 'cat' carries 3 * e_5 and 'dog' 3 * e_6, nothing else does."""
    model = passthrough_llama(device, {"cat": {5: 3.0}, "dog": {6: 3.0}})
    concepts = Concepts(0)
    for name, axis in (("cat", 5), ("dog", 6)):
        d = torch.zeros(32)
        d[axis] = 1.0
        concepts.add(name, direction=d, threshold=1.5, global_threshold=0.2)
    concepts.add("calm", direction=torch.ones(32), threshold=1e9)
    return model, concepts


def test_proofs_end_in_detected_tokens(planted):
    model, concepts = planted
    result = reason(model, "the cat sat on the mat and the dog", concepts, RULES)
    assert result.detection.positions(0) == {"cat": [1], "dog": [8]}
    assert result.facts == {"cat", "dog", "pet"}
    assert result.derived == {"pet"} and result.suppressed == {"calm"}
    leaves = result.proofs["pet"].given_facts()
    assert list(leaves) == ["cat"]
    assert leaves["cat"] == [{"position": 1, "token": "cat", "score": pytest.approx(3.0, abs=1e-4)}]
    assert "cat -> pet" in result.explain("pet") and "position" in result.explain("pet")
    assert result.to_dict()["inference"]["suppressed"] == ["calm"]


def test_timeline_follows_the_text(planted):
    model, concepts = planted
    result = reason(model, "the cat sat and the dog", concepts, parse_rules(RULES))
    frame = result.to_frame()
    assert frame["token"].tolist() == ["the", "cat", "sat", "and", "the", "dog"]
    assert frame["detected"].tolist() == [[], ["cat"], [], [], [], ["dog"]]
    # before 'dog' the cat alone makes a calm pet; from 'dog' on, calm is gone and suppressed
    assert frame["derived"].tolist() == [[]] + [["calm", "pet"]] * 4 + [["pet"]]
    assert frame["suppressed"].tolist() == [[]] * 5 + [["calm"]]


def test_editing_rules_reuses_the_detection(planted):
    model, concepts = planted
    text = "the cat sat and the dog"
    first = reason(model, text, concepts, RULES)
    edited = first.with_rules("cat and dog -> calm\ndog -> suppress cat")
    fresh = reason(model, text, concepts, "cat and dog -> calm\ndog -> suppress cat")
    assert edited.detection is first.detection
    assert edited.facts == fresh.facts == {"cat", "dog", "calm"} and edited.suppressed == {"cat"}
    assert edited.timeline == fresh.timeline
    with pytest.raises(il.reasoning.UnknownConceptError):
        first.with_rules("kat -> calm")


def test_global_evidence_and_scopes(planted):
    model, concepts = planted
    # mean of e_5-scores over 'the cat' is 1.5 >= 0.2: a global detection; locally too
    result = reason(model, "the cat", concepts, RULES, evidence="global")
    assert result.inference.given == {"cat"}
    assert result.proofs["cat"].evidence == {"mean_score": pytest.approx(1.5, abs=1e-4)}
    assert all(row["facts"] == ["calm", "cat", "pet"] for row in result.timeline)  # from the start
    with pytest.warns(DeprecationWarning, match="level= is now evidence="):  # the old keyword still works
        assert reason(model, "the cat", concepts, RULES, level="global").proofs["cat"].evidence == \
            result.proofs["cat"].evidence
    result = reason(model, ("the cat sat", " and the dog"), concepts, RULES, scope="output")
    assert result.facts == {"dog", "pet"}
    assert [row["position"] for row in result.timeline] == [3, 4, 5]


def test_rule_text_is_checked_against_the_dictionary(planted):
    model, concepts = planted
    with pytest.raises(il.reasoning.UnknownConceptError, match="kat"):
        reason(model, "the cat", concepts, "kat -> pet")
    with pytest.raises(il.reasoning.RuleSyntaxError):
        reason(model, "the cat", concepts, "cat ->")
    with pytest.raises(TypeError, match="RuleSet or rule text"):
        reason(model, "the cat", concepts, ["cat -> pet"])
