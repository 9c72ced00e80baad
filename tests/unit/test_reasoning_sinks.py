"""Attention sinks against hand computations on a planted model with one huge-norm token (like the
first token of a model without BOS): sink_mask, DiffMean fitting, calibration and detection leave it
out; with ``sink_ratio=inf`` it dominates the negatives' mean, as it did on SmolLM2."""

import math

import pytest
import torch
from planted import passthrough_llama

import interplab as il
from interplab.reasoning import Concepts, detect, generate, reason
from interplab.reasoning.residual import SINK_RATIO, sink_mask

SINK = 400.0  # the planted sink's norm; every other token is noise of norm about 0.5 plus planted units
EXAMPLES = {"cat": ["sat the [cat] on", "sat a [cat] in the mat", "sat the dog and the [cat]"]}
NEGATIVES = ["sat the dog on the mat", "sat a dog in the store"]
TEXTS = [text.replace("[", "").replace("]", "") for text in EXAMPLES["cat"]] + NEGATIVES


@pytest.fixture(scope="module")
def model(device):
    """Block 0 passes the embedding through; 'cat' carries e_5, and 'sat' (the first word of every
    text, as the sink is the first token of a model without BOS) SINK * e_6."""
    return passthrough_llama(device, {"cat": {5: 1.0}, "sat": {6: SINK}})


def embedding(model, word: str) -> torch.Tensor:
    return model.module("embed").weight[model.tokenizer.convert_tokens_to_ids(word)].detach().double().cpu()


def hand_direction(model, keep_sinks: bool) -> torch.Tensor:
    """Mean embedding of the 'cat' tokens minus the mean of every other token of the texts (the sink
    'sat' at position 0 of each text left out unless ``keep_sinks``)."""
    pos, neg = [], []
    for text in TEXTS:
        for word in text.split():
            if word == "sat" and not keep_sinks:
                continue
            (pos if word == "cat" else neg).append(embedding(model, word))
    return (torch.stack(pos).mean(0) - torch.stack(neg).mean(0)).float()


def test_sink_mask_by_hand():
    h = torch.zeros(2, 4, 3)
    h[0, :, 0] = torch.tensor([100.0, 1.0, 2.0, 1.5])  # median of the kept tokens 1.5 (the lower middle)
    h[1, :, 0] = torch.tensor([3.0, 41.0, 4.0, 500.0])  # median 4; the last token is padding: not kept
    keep = torch.tensor([[True, True, True, True], [True, True, True, False]])
    assert sink_mask(h, keep).tolist() == [[True, False, False, False], [False, True, False, False]]
    assert sink_mask(h, keep, ratio=math.inf).sum() == 0
    assert sink_mask(h, keep, typical=torch.tensor([20.0, 20.0])).tolist() == [[False] * 4, [False] * 4]
    assert SINK_RATIO == 6.0


def test_diffmean_leaves_the_sink_out(model):
    concepts = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES)
    expected = hand_direction(model, keep_sinks=False)
    assert torch.allclose(concepts["cat"].direction, expected, atol=1e-5)
    n_tokens = sum(len(t.split()) for t in TEXTS)
    info = concepts["cat"].info
    assert (info["positive_tokens"], info["negative_tokens"]) == (3, n_tokens - 3 - len(TEXTS))
    # the residual norm that scales steering: the median over the tokens fitted on, sinks left out
    norms = [float(embedding(model, w).norm()) for t in TEXTS for w in t.split() if w != "sat"]
    assert concepts.residual_norm == pytest.approx(float(torch.tensor(norms).median()), rel=1e-5)
    # keeping every token, the sink dominates the negatives' mean: the direction points away from e_6
    everything = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES, sink_ratio=math.inf)
    assert torch.allclose(everything["cat"].direction, hand_direction(model, keep_sinks=True), atol=1e-4)
    assert everything["cat"].direction[6] == pytest.approx(-SINK * len(TEXTS) / (n_tokens - 3), rel=1e-3)
    assert abs(float(concepts["cat"].direction[6])) < 1e-6


def test_detection_and_calibration_never_read_the_sink(model):
    concepts = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES)
    e6 = torch.zeros(32)
    e6[6] = 1.0
    concepts.add("big", direction=e6, threshold=1.0)  # the sink would show it
    found = detect(model, ["sat the cat on", "sat a dog"], concepts)
    assert found.sinks[:, 0].all() and found.sinks.sum() == 2
    assert not found.in_scope[:, 0].any()
    assert found.positions(0) == {"cat": [2]} and found.positions(1) == {}
    # calibration leaves the sink out too: the threshold lies between the cat tokens' scores and
    # the highest non-sink negative's, computed by hand
    unit = concepts["cat"].direction.double() / concepts["cat"].direction.double().norm()
    scores = {(t, p): float(embedding(model, w) @ unit) for t, text in enumerate(TEXTS)
              for p, w in enumerate(text.split()) if w != "sat"}
    lowest_cat = min(s for (t, p), s in scores.items() if TEXTS[t].split()[p] == "cat")
    highest_other = max(s for (t, p), s in scores.items() if TEXTS[t].split()[p] != "cat")
    assert lowest_cat > highest_other
    assert concepts["cat"].threshold == pytest.approx((lowest_cat + highest_other) / 2, abs=1e-5)
    # the global (per-text) means are over the in-scope tokens only
    assert found.mean_scores[1, 0] == pytest.approx(
        sum(float(embedding(model, w) @ unit) for w in ("a", "dog")) / 2, abs=1e-5)


def test_generation_never_detects_a_sink(model):
    e6 = torch.zeros(32)
    e6[6] = 1.0
    concepts = Concepts(0)
    concepts.add("big", direction=e6, threshold=1.0)
    result = generate(model, "sat the cat", concepts, "big -> loud", max_new_tokens=3, base=False, eos_token_id=[])
    assert all(step["detected"] == [] for step in result.steps)  # whatever tokens it generates
    assert reason(model, "sat the cat", concepts, "big -> loud").facts == frozenset()


def test_the_steering_scale_is_the_typical_norm_not_the_sinks(model):
    """Steering the sink position adds STEER_UNIT * residual_norm, not a multiple of its own norm."""
    concepts = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES)
    assert Concepts.STEER_UNIT == 0.2  # the documented calibration (docs/reasoning.md)
    enc = model.encode(["sat"])
    with torch.no_grad(), model.trace(**enc):
        il.reasoning.steer(model, concepts, {"cat": 1.0})
        h = model.blocks[0].envoy.output.save()
    unit = concepts["cat"].direction / concepts["cat"].direction.norm()
    expected = embedding(model, "sat").float() + 0.2 * concepts.residual_norm * unit
    assert torch.allclose(h[0, 0].cpu(), expected, atol=1e-4)
