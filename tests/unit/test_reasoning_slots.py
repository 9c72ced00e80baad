"""Slots: a gate that finds the role's token once per text, and LDA among the members that says
which member fills it; checked against a hand-written LDA, hand-made scores and a planted model."""

import math

import pytest
import torch
from planted import passthrough_llama
from test_reasoning_concepts import hidden

import interplab as il
from interplab.reasoning import SAE, Concepts, detect

# "w7" is a word of the tiny tokenizer's vocabulary (its third animal, here).
EXAMPLES = {
    "cat": ["the [cat] sat on the mat", "a [cat] is on the mat", "a [cat] and the mat"],
    "dog": ["the [dog] sat", "a [dog] was in the store", "Mary gave the [dog] a drink"],
    "w7": ["the [w7] sat", "a [w7] is on the mat", "a [w7] and a mat"],
}
TEXTS = ["the cat sat on the mat", "a cat is on the mat", "a cat and the mat", "the dog sat",
         "a dog was in the store", "Mary gave the dog a drink", "the w7 sat", "a w7 is on the mat",
         "a w7 and a mat"]
POSITIVE = {"cat": [(0, 1), (1, 1), (2, 1)], "dog": [(3, 1), (4, 1), (5, 3)], "w7": [(6, 1), (7, 1), (8, 1)]}
MEMBERS = ["cat", "dog", "w7"]


def test_slot_members_classify_by_hand_computed_lda(device):
    model = il.zoo.tiny("llama", n_layers=3, device=device)
    concepts = Concepts.from_examples(model, 1, EXAMPLES, slots={"animal": MEMBERS}, shrinkage=0.1)
    hs = [h.double().cpu() for h in hidden(model, TEXTS, 1)]
    groups = {m: torch.stack([hs[t][p] for t, p in POSITIVE[m]]) for m in MEMBERS}
    means = {m: x.mean(0) for m, x in groups.items()}
    scatter = sum((x - means[m]).T @ (x - means[m]) for m, x in groups.items()) / 9
    scatter = scatter + 0.1 * scatter.trace() / 32 * torch.eye(32, dtype=torch.float64)
    for m in MEMBERS:
        w = torch.linalg.solve(scatter, means[m])
        assert torch.allclose(concepts[m].detector.double(), w, rtol=1e-3, atol=1e-3)
        assert math.isclose(concepts[m].bias, float(-0.5 * means[m] @ w), rel_tol=1e-3, abs_tol=1e-3)
        assert concepts[m].slot == "animal" and math.isnan(concepts[m].threshold)
    # The gate is a DiffMean concept whose positives are every member's tokens.
    union = [(t, p) for m in MEMBERS for t, p in POSITIVE[m]]
    pos = torch.stack([hs[t][p] for t, p in union]).mean(0)
    neg = torch.stack([hs[t][p] for t in range(len(TEXTS)) for p in range(len(hs[t])) if (t, p) not in union])
    assert torch.allclose(concepts["animal"].direction.double(), pos - neg.mean(0), atol=1e-5)
    assert not math.isnan(concepts["animal"].threshold)
    assert concepts.slots == {"animal": ("cat", "dog", "w7")}
    # A member's score is its classifier, read as it is (not as a unit direction), plus its bias.
    found = detect(model, TEXTS[3], concepts)
    c = concepts.names.index("dog")
    expected = hs[3] @ concepts["dog"].detector.double() + concepts["dog"].bias
    assert torch.allclose(found.scores[0, :, c].double(), expected, atol=1e-3)


def manual_slot() -> Concepts:
    concepts = Concepts(0)
    for name in ("role", "a", "b", "c", "free"):
        concepts.add(name, direction=torch.eye(4)[0], threshold=0.5)
    concepts.set_slot("role", ["a", "b", "c"], torch.eye(4)[1:], torch.zeros(3))
    return concepts


def test_fill_slots_keeps_the_best_gate_token_and_its_best_member():
    concepts = manual_slot()
    role, a, b, c, free = range(5)
    scores = torch.zeros(2, 4, 5)
    active = torch.zeros(2, 4, 5, dtype=torch.bool)
    # Text 0: the gate fires at tokens 1 (0.6) and 3 (0.9); at token 3 member b scores highest.
    active[0, 1, role] = active[0, 3, role] = True
    scores[0, 1, role], scores[0, 3, role] = 0.6, 0.9
    scores[0, 3, [a, b, c]] = torch.tensor([0.1, 0.7, 0.3])
    scores[0, 1, [a, b, c]] = torch.tensor([5.0, 0.0, 0.0])  # a strong member where the gate is weaker
    scores[0, 0, role] = 3.0  # a high gate score that did not pass the threshold (inactive)
    active[0, 2, a] = True  # a member active on its own is not kept: only the slot decides
    active[0, 0, free] = active[1, 2, free] = True  # concepts outside the slot are untouched
    # Text 1: the gate never fires, so nothing of the slot is detected, whatever the members score.
    scores[1, :, [a, b, c]] = 9.0
    out = concepts.fill_slots(scores, active)
    expected = torch.zeros_like(active)
    expected[0, 3, role] = expected[0, 3, b] = True
    expected[0, 0, free] = expected[1, 2, free] = True
    assert torch.equal(out, expected)


def test_slot_members_are_detectable_without_thresholds():
    concepts = manual_slot()
    concepts.add("steer_only", direction=torch.eye(4)[2])
    assert math.isnan(concepts["a"].threshold) and concepts["a"].detectable
    assert concepts["free"].detectable and not concepts["steer_only"].detectable


def planted_animals(device):
    """A tiny llama whose block 0 passes its input through: 'cat', 'dog' and 'w7' share a large
    'animal' component (dimension 5) and each has a small one of its own (dimensions 6, 7, 8)."""
    return passthrough_llama(device, {word: {5: 3.0, dim: 0.8} for dim, word in zip((6, 7, 8), MEMBERS)})


def test_a_slot_finds_the_planted_member_once_per_text(device):
    model = planted_animals(device)
    with_slot = Concepts.from_examples(model, 0, EXAMPLES, slots={"animal": MEMBERS})
    texts = ["a dog and a mat", "the w7 sat", "a cat is in the store", "the mat was in the store"]
    found = detect(model, texts, with_slot)
    expected = [{"animal": [1], "dog": [1]}, {"animal": [1], "w7": [1]}, {"animal": [1], "cat": [1]}, {}]
    assert [found.positions(i) for i in range(4)] == expected
    assert found.global_active[:, with_slot.names.index("dog")].tolist() == [True, False, False, False]


def test_slots_survive_save_and_load(tmp_path, device):
    model = planted_animals(device)
    concepts = Concepts.from_examples(model, 0, EXAMPLES, slots={"animal": ["cat", "dog"]}, method="lda")
    concepts.save(tmp_path / "c")
    back = Concepts.load(tmp_path / "c")
    assert back.slots == concepts.slots
    for a, b in zip(concepts, back):
        assert (a.slot, a.bias) == (b.slot, b.bias)
    texts = ["a dog and a cat", "the w7 sat"]
    one, two = detect(model, texts, concepts), detect(model, texts, back)
    assert torch.equal(one.active, two.active) and torch.allclose(one.scores.nan_to_num(), two.scores.nan_to_num())
    # Removing the gate dissolves the slot; the members stay as concepts that are not detected.
    back.remove("animal")
    assert back.slots == {} and back["cat"].slot is None


def test_bad_slots_raise_clear_errors(device):
    model = il.zoo.tiny("llama", device=device)
    with pytest.raises(ValueError, match="names no concept"):
        Concepts.from_examples(model, 0, EXAMPLES, slots={"cat": ["dog", "w7"]})
    with pytest.raises(ValueError, match="no examples for members"):
        Concepts.from_examples(model, 0, EXAMPLES, slots={"animal": ["cat", "fish"]})
    with pytest.raises(ValueError, match="at least two"):
        Concepts.from_examples(model, 0, EXAMPLES, slots={"animal": ["cat"]})
    with pytest.raises(ValueError, match="already members"):
        Concepts.from_examples(model, 0, EXAMPLES, slots={"pet": ["cat", "dog"], "wild": ["dog", "w7"]})
    concepts = manual_slot()
    with pytest.raises(ValueError, match="slot members"):
        concepts.calibrate(model, {"a": ["the [cat] sat"]})
    with pytest.raises(ValueError, match="already belong"):
        concepts.set_slot("free", ["a", "b"], torch.eye(4)[:2], torch.zeros(2))
    concepts.remove("role")  # dissolves the slot: a, b, c are free again
    with pytest.raises(ValueError, match="classifiers must be"):
        concepts.set_slot("free", ["a", "b"], torch.eye(4)[:3], torch.zeros(2))


def planted_sae(model) -> SAE:
    """ReLU SAE over the planted residual: feature 0 reads the shared 'animal' dimension, features
    1-3 the words' own dimensions (cat, dog, w7), features 4-11 random directions."""
    g = torch.Generator().manual_seed(2)
    w_enc = torch.randn(32, 12, generator=g) * 0.1
    w_enc[:, :4] = 0.0
    for feature, dim in enumerate((5, 6, 7, 8)):
        w_enc[dim, feature] = 1.0
    w_dec = torch.randn(12, 32, generator=g) * 0.1
    return SAE(w_enc, w_dec, torch.full((12,), -0.2), torch.zeros(32), activation="relu", layer=0)


def test_sae_slots_classify_from_the_codes_and_keep_sae_steering(tmp_path, device):
    model = planted_animals(device)
    sae = planted_sae(model)
    concepts = Concepts.from_sae(model, 0, sae, EXAMPLES, k=2, slots={"animal": MEMBERS})
    features = concepts["cat"].features
    assert {1, 2, 3} <= set(features.tolist())
    for m in MEMBERS:  # every member reads the same features; steering stays its own top-k decoder mix
        member = concepts[m]
        assert member.slot == "animal" and torch.equal(member.features, features)
        top = member.info["candidates"][:2]
        weights = torch.tensor([c["gap"] for c in top]).clamp_min(0)
        expected = (weights / weights.sum()) @ sae.W_dec[[c["feature"] for c in top]].cpu()
        assert torch.allclose(member.direction, expected, atol=1e-5)
    assert concepts["animal"].uses_sae and concepts["animal"].slot is None
    texts = ["a dog and a mat", "the w7 sat", "a cat is in the store", "the mat was in the store"]
    found = detect(model, texts, concepts)
    expected = [{"animal": [1], "dog": [1]}, {"animal": [1], "w7": [1]}, {"animal": [1], "cat": [1]}, {}]
    assert [found.positions(i) for i in range(4)] == expected
    concepts.save(tmp_path / "c")
    back = Concepts.load(tmp_path / "c")
    assert back.slots == concepts.slots
    again = detect(model, texts, back)
    assert torch.equal(found.active, again.active) and torch.allclose(found.scores.nan_to_num(),
                                                                       again.scores.nan_to_num())
    assert all(torch.equal(a.direction, b.direction) for a, b in zip(concepts, back))
