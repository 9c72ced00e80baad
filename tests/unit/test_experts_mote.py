"""The MoTE experiment on a planted model whose planted experts cause a behaviour.

The planted expert of each MoE layer (firing only on the trigger word) is given weights that write
the unembedding direction of "!" into the residual stream (for any input, since it reads the constant
direction B as well as the trigger direction U), so a prompt ending in the trigger is
answered with "!". Expected by construction: baseline rate 1 on trigger prompts and 0 on the others;
the planted experts off: 0; random other experts off: unchanged; planted experts forced on: the
control prompts answer "!" too.
"""

import json
import random

import pytest
import torch
from experts_reference import TRIGGER, B, U, planted, planted_expert

import interplab as il
from interplab.experts.mote import pick_forced, pick_off, pick_random
from interplab.zoo.tiny import WORDS


def shouting(device):
    model, _ = planted("mixtral", device=device)
    bang = model.tokenizer.convert_tokens_to_ids("!")
    v = model.module("unembed").weight[bang].detach().clone()
    v[[U, B]] = 0
    v = v / v.norm()
    with torch.no_grad():
        for layer in model.anatomy.moe.moe_layers:
            experts = model.blocks[layer].module("experts")
            e = planted_expert(layer)
            inter = experts.down_proj.shape[2]
            experts.gate_up_proj[e].zero_()
            experts.gate_up_proj[e][:, [U, B]] = 1.0      # positive for every token, largest on the trigger
            experts.down_proj[e] = 2.0 * v[:, None].expand(-1, inter) / inter
    return model


def prompts(seed, end):
    rng = random.Random(seed)
    words = [w for w in WORDS if w not in (TRIGGER, "!")]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) + f" {end}" for _ in range(8)]


def says_bang(text: str) -> bool:
    return text.split()[:1] == ["!"]


def test_mote_on_planted_behaviour(device):
    model = shouting(device)
    behaviour, control = prompts(0, TRIGGER), prompts(1, "cat")
    result = il.experts.mote(model, behaviour, control, says_bang, k=2, trials=3, seed=0, max_new_tokens=3)
    planted_pairs = {(layer, planted_expert(layer)) for layer in model.anatomy.moe.moe_layers}
    assert {(layer, e) for layer, e, _ in result.off} == planted_pairs
    assert {(layer, e) for layer, e, _ in result.forced} == planted_pairs
    assert result.rates["baseline"] == {"behaviour": 1.0, "control": 0.0}
    assert result.rates["top_off"] == {"behaviour": 0.0, "control": 0.0}
    assert result.random_rates["behaviour"] == [1.0, 1.0, 1.0]
    assert result.random_mean() == 1.0 and result.random_sd() == 0.0
    assert result.rates["forced_on"] == {"behaviour": 1.0, "control": 1.0}
    assert all(not set(draw) & planted_pairs and len(draw) == 2 for draw in result.random_sets)
    frame = result.to_frame()
    assert list(frame.condition.unique()) == ["baseline", "top_off", "random_off", "forced_on"]
    assert frame[(frame.condition == "forced_on") & (frame.set == "control")].rate.item() == 1.0
    assert json.loads(result.to_json())["random_mean"]["behaviour"] == 1.0
    again = il.experts.mote(model, behaviour, control, says_bang, k=2, trials=3, seed=0, max_new_tokens=3,
                            evaluate=(behaviour[:4], control[:4]))
    assert again.random_sets == result.random_sets and again.n_prompts == {"behaviour": 4, "control": 4}


def test_picking_respects_per_layer_limits():
    ranking = [(1, 0, 0.9), (1, 1, 0.8), (1, 2, 0.7), (2, 5, 0.6), (1, 3, 0.5), (2, 6, 0.4)]
    assert pick_forced(ranking, 4, top_k=2) == [(1, 0, 0.9), (1, 1, 0.8), (2, 5, 0.6), (2, 6, 0.4)]
    assert pick_off(ranking, 4, n_experts=4, top_k=2) == [(1, 0, 0.9), (1, 1, 0.8), (2, 5, 0.6), (2, 6, 0.4)]
    assert pick_off(ranking, 3, n_experts=8, top_k=2) == ranking[:3]
    candidates = [(layer, e) for layer in (1, 2) for e in range(4)]
    for seed in range(20):
        draw = pick_random(candidates, 4, n_experts=4, top_k=2, rng=random.Random(seed))
        assert len(set(draw)) == 4
        assert all(sum(1 for layer, _ in draw if layer == x) <= 2 for x in (1, 2))
    with pytest.raises(ValueError, match="cannot draw"):
        pick_random(candidates, 9, 4, 2, random.Random(0))
