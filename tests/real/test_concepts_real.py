"""Concepts on SmolLM2 (no BOS: its first token is the attention sink): the sink is left out,
DiffMean detection at the middle layer holds on held-out sentences, and steering at a default
strength raises the concept's words. Floors are the measured values (bench/concepts_real.py,
bench/steering_real.py; docs/reasoning.md) less a margin."""

import pytest
import torch

from interplab.reasoning import Concepts, detect, detection_quality, steer
from interplab.reasoning.residual import residuals, sink_mask
from interplab.tasks import everyday

LAYER = 15  # the middle of SmolLM2's 30 layers


@pytest.fixture(scope="module")
def animals_food_vehicles(smollm2):
    torch.set_num_threads(1)
    return Concepts.from_examples(smollm2, LAYER, everyday.examples("train"), negatives=everyday.negatives("train"))


def test_the_first_token_is_the_sink_and_is_left_out(smollm2, animals_food_vehicles):
    text = "The dog ate an apple near the bus."
    enc = smollm2.encode([text])
    h = residuals(smollm2, enc["input_ids"], enc["attention_mask"], LAYER)
    norms = h[0].float().norm(dim=-1)
    assert norms[0] > 50 * norms[1:].median()  # measured: about 120x
    assert sink_mask(h, enc["attention_mask"].bool())[0].tolist() == [True] + [False] * (h.shape[1] - 1)
    found = detect(smollm2, text, animals_food_vehicles)
    assert found.sinks[0].tolist() == [True] + [False] * (h.shape[1] - 1)
    assert not found.in_scope[0, 0] and not found.active[0, 0].any()
    # the typical norm that steering scales by is the ordinary tokens', not the sink's
    assert animals_food_vehicles.residual_norm < 2 * float(norms[1:].median())


def test_diffmean_detects_held_out_concept_words(smollm2, animals_food_vehicles):
    quality = detection_quality(smollm2, animals_food_vehicles, everyday.examples("test"),
                                negatives=everyday.negatives("test"))
    # measured at layer 15: precision 0.75, recall 0.84 (mean over animal, food, vehicle); 0.06 / 0.85
    # when the sink is kept
    assert quality["precision"].mean() >= 0.6 and quality["recall"].mean() >= 0.7, quality


def test_steering_at_a_default_strength_raises_the_concepts_words(smollm2, animals_food_vehicles):
    prompts = ["Yesterday afternoon I went outside and saw", "My favourite part of the weekend is",
               "Let me tell you a short story about"]
    words = ["bread", "cheese", "soup", "apple", "rice", "pizza", "cake", "pasta", "banana", "sandwich"]
    ids = sorted({smollm2.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in words})
    enc = smollm2.encode(prompts)

    def food_probability(strength: float) -> float:
        with torch.no_grad(), smollm2.trace(**enc):
            if strength:
                steer(smollm2, animals_food_vehicles, {"food": strength})
            p = smollm2.unembed.output[:, -1].float().softmax(-1)[:, ids].sum(-1).save()
        return float(p.mean())

    base, steered = food_probability(0.0), food_probability(1.5)
    assert steered > 3 * base, (base, steered)  # measured over 8 prompts and 72 food words: 29x
