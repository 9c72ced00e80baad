"""evaluate(): base and AR answers against per-question torch-hook references; detection quality
against hand counts."""

from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from planted import passthrough_llama

from interplab.reasoning import Concepts
from interplab.reasoning.evaluate import Evaluation, answer_ids, detection_quality, evaluate


@dataclass(frozen=True)
class Q:
    prompt: str
    answer: str
    hops: int


QUESTIONS = [Q("the cat sat on the", "cat", 1), Q("a dog was in", "dog", 1), Q("Mary gave John a drink and", "cat", 3),
             Q("the dog", "dog", 3), Q("it is the cat of Mary", "dog", 5)]


@pytest.fixture(scope="module")
def planted(device):
    """Block 0 passes embeddings through; 'cat' carries 3 * e_5 that no other token has."""
    model = passthrough_llama(device, {"cat": {5: 3.0}})
    concepts = Concepts(0)
    e5 = torch.zeros(32)
    e5[5] = 1.0
    concepts.add("cat", direction=e5, threshold=1.5)
    for word in ("cat", "dog"):  # the unembedding row of the word: steering along it says the word
        row = model.module("unembed").weight[model.tokenizer.convert_tokens_to_ids(word)]
        concepts.add(f"say_{word}", direction=row.detach().cpu(), threshold=1e9)
    return model, concepts


def reference_answer(model, prompt, terms, answers=("cat", "dog")):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)

    def hook(module, args, out):
        out = out.clone()
        norm = out[:, -1].norm(dim=-1, keepdim=True)
        for alpha, d in terms:
            out[:, -1] = out[:, -1] + alpha * 0.2 * d.to(out.device) * norm / d.norm()  # strength 1: 0.2 ||h||
        return out

    handle = model.hf.model.layers[0].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model.hf(ids).logits[0, -1]
    finally:
        handle.remove()
    targets = [model.tokenizer.convert_tokens_to_ids(a) for a in answers]
    return answers[int(logits[targets].argmax())]


@pytest.mark.parametrize("rule,sign,target", [("cat -> say_dog", 1.0, "say_dog"),
                                              ("cat -> suppress say_cat", -1.0, "say_cat")])
def test_answers_match_per_question_references(planted, rule, sign, target):
    model, concepts = planted
    strength = 20.0  # 4 x ||h||, as the planted direction needs
    result = evaluate(model, QUESTIONS, concepts, rule, strength=strength, answers=("cat", "dog"), batch_size=3)
    frame = result.frame
    d = concepts[target].direction
    for q, row in zip(QUESTIONS, frame.itertuples()):
        has_cat = "cat" in q.prompt.split()
        assert row.base == reference_answer(model, q.prompt, [])
        assert row.ar == reference_answer(model, q.prompt, [(sign * strength, d)] if has_cat else [])
        assert row.steering == ({target: sign * strength} if has_cat else {})
        assert ("cat" in row.facts) == has_cat
    assert (frame["ar"] != frame["base"]).any()  # the steering is strong enough to matter somewhere


def test_steer_limits_which_concluded_concepts_steer(planted):
    """Rules conclude two concepts; with steer=["say_dog"] only that one steers, as a reference run
    steering by it alone answers."""
    model, concepts = planted
    rules = "cat -> say_dog\ncat -> say_cat"
    result = evaluate(model, QUESTIONS, concepts, rules, strength=20.0, answers=("cat", "dog"), steer=["say_dog"])
    d = concepts["say_dog"].direction
    for q, row in zip(QUESTIONS, result.frame.itertuples()):
        has_cat = "cat" in q.prompt.split()
        assert set(row.derived) == ({"say_dog", "say_cat"} if has_cat else set())
        assert row.steering == ({"say_dog": 20.0} if has_cat else {})
        assert row.ar == reference_answer(model, q.prompt, [(20.0, d)] if has_cat else [])
    with pytest.raises(KeyError, match="say_bird"):
        evaluate(model, QUESTIONS, concepts, rules, steer=["say_bird"])
    with pytest.raises(TypeError, match="list of concept names"):
        evaluate(model, QUESTIONS, concepts, rules, steer="say_dog")


def test_accuracy_table():
    frame = pd.DataFrame({"hops": [1, 1, 3, 3, 3, 5], "answer": ["a", "b", "a", "a", "b", "b"],
                          "base": ["a", "a", "b", "a", "a", "a"], "ar": ["a", "b", "a", "a", "a", "b"]})
    table = Evaluation(frame, 0.5).accuracy()
    assert table.loc[1, "base"] == 0.5 and table.loc[1, "ar"] == 1.0
    assert table.loc[3, "base"] == pytest.approx(1 / 3) and table.loc[3, "ar"] == pytest.approx(2 / 3)
    assert table.loc[5, "base"] == 0.0 and table.loc[5, "ar"] == 1.0
    assert table.loc["all", "n"] == 6 and table.loc["all", "ar"] == pytest.approx(5 / 6)
    assert Evaluation(frame, 0.5).to_dict()["accuracy"]["3"]["n"] == 3


def test_detection_quality_by_hand(planted):
    model, concepts = planted
    # 'cat' fires exactly on the token cat. Text 1: the labelled cat is found (TP). Text 2: the labelled
    # 'dog' is missed (FN) and the unlabelled 'cat' is a false alarm (FP). Text 3: nothing at all.
    quality = detection_quality(model, concepts, {"cat": ["the [cat] sat", "a [dog] and a cat"]},
                                negatives=["Mary gave John a drink"])
    row = quality.set_index("concept").loc["cat"]
    assert (row.tp, row.fp, row.fn) == (1, 1, 1)
    assert row.precision == 0.5 and row.recall == 0.5 and row.f1 == pytest.approx(0.5)


def test_answer_ids_must_differ(planted):
    model, _ = planted
    assert answer_ids(model, ["cat", "dog"]) == model.tokenizer.convert_tokens_to_ids(["cat", "dog"])
    with pytest.raises(ValueError, match="same token"):
        answer_ids(model, ["cat", "cat"])
