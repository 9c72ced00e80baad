"""Routing capture and off/on interventions, checked against plain-torch references and planted experts."""

import random

import pytest
import torch
from conftest import MOE_FAMILIES
from experts_reference import TRIGGER, own_routing, planted, planted_expert, reference_select, rerouted_logits, routers

import interplab as il
from interplab.zoo.tiny import WORDS, tiny

PROMPTS = ["the cat sat on the mat and the dog sat", "Mary gave a drink", "a dog", "John gave it to Mary ."]


def texts_with_trigger(n: int, seed: int = 0, length: int = 8) -> list[str]:
    rng = random.Random(seed)
    words = [w for w in WORDS if w != TRIGGER]
    return [" ".join(rng.choice(words) for _ in range(length)) + f" {TRIGGER} " + rng.choice(words)
            for _ in range(n)]


@pytest.fixture(scope="module", params=MOE_FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def plant(family, device):
    return planted(family, device=device)


def test_route_equals_the_models_own_routing_prompt_by_prompt(family, device):
    model = tiny(family, device=device)
    routing = il.experts.route(model, PROMPTS, batch_size=3)   # two batches, padded
    moe = model.anatomy.moe
    assert routing.indices.shape == (len(routing), model.anatomy.n_layers, moe.top_k)
    start = 0
    for p, text in enumerate(PROMPTS):
        ids = model.encode([text])["input_ids"]          # the prompt alone: no padding at all
        n = ids.shape[1]
        rows = routing.tokens_of(p)
        assert rows.tolist() == list(range(start, start + n))
        assert routing.position[rows].tolist() == list(range(n))
        assert routing.token_ids[rows].tolist() == ids[0].tolist()
        assert routing.tokens[start:start + n] == text.split()
        own = own_routing(model, ids)
        for layer in range(model.anatomy.n_layers):
            if layer not in moe.moe_layers:
                assert (routing.indices[rows, layer] == -1).all()
                assert torch.isnan(routing.weights[rows, layer]).all()
                continue
            _, w, idx = own[layer]
            mine_idx, mine_w = routing.indices[rows, layer], routing.weights[rows, layer]
            assert torch.equal(mine_idx.sort(-1).values, idx.cpu().sort(-1).values)
            assert torch.allclose(mine_w.sort(-1).values, w.float().cpu().sort(-1).values, atol=1e-6)
            assert (mine_w[:, :-1] >= mine_w[:, 1:]).all()             # sorted largest first
        start += n
    assert len(routing) == start


def test_probabilities_are_the_routers_distribution(family, device):
    model = tiny(family, device=device)
    routing = il.experts.route(model, PROMPTS[:2], probabilities=True)
    enc = model.encode(PROMPTS[:2], padding_side="right")
    own = own_routing(model, enc["input_ids"], enc["attention_mask"])
    keep = enc["attention_mask"].flatten().bool().cpu()
    for layer, (logits, _, _) in own.items():
        logits = logits.float().cpu()[keep]
        expected = logits.sigmoid() if family == "deepseek_v3" else torch.softmax(logits, dim=-1)
        assert torch.allclose(routing.probabilities[:, layer], expected, atol=1e-6)


def test_planted_expert_fires_exactly_on_the_trigger(plant):
    model, trigger = plant
    routing = il.experts.route(model, texts_with_trigger(6) + PROMPTS)
    is_trigger = routing.token_ids == trigger
    assert is_trigger.sum() > 6
    for layer in model.anatomy.moe.moe_layers:
        assert torch.equal(routing.selected(layer, planted_expert(layer)), is_trigger)


def test_off_removes_the_planted_expert_everywhere(plant):
    model, trigger = plant
    prompts = texts_with_trigger(6)
    layers = model.anatomy.moe.moe_layers
    off = [(layer, planted_expert(layer)) for layer in layers]
    routing = il.experts.route(model, prompts, off=off)
    assert routing.off == sorted(off)
    for layer, e in off:
        assert not routing.selected(layer, e).any()
        assert (routing.indices[:, layer] >= 0).all()           # the next-best took its place
        trigger_rows = routing.token_ids == trigger
        assert torch.isfinite(routing.weights[trigger_rows, layer]).all()


def test_on_forces_the_expert_into_every_tokens_top_k_with_the_top_weight(plant):
    model, _trigger = plant
    layers = model.anatomy.moe.moe_layers
    forced = [(layer, (planted_expert(layer) + 2) % 8) for layer in layers]
    routing = il.experts.route(model, PROMPTS, on=forced)
    for layer, e in forced:
        assert routing.selected(layer, e).all()
        assert (routing.indices[:, layer, 0] == e).all() or model.family.name == "deepseek_v3"
        top = routing.weights[:, layer].max(dim=-1).values
        forced_weight = (routing.weights[:, layer] * (routing.indices[:, layer] == e)).sum(-1)
        assert (forced_weight >= top - 1e-6).all()


def test_logits_under_off_equal_a_hand_written_rerouting(plant, family):
    """The model's output under il.experts' off equals a plain-torch forward whose routers are
    replaced by a per-family reference with the expert removed."""
    model, _ = plant
    layers = model.anatomy.moe.moe_layers
    off = {layers[0]: {planted_expert(layers[0]), 5}, layers[-1]: {planted_expert(layers[-1])}}
    enc = model.encode(texts_with_trigger(3), padding_side="right")
    expected = rerouted_logits(model, family, enc["input_ids"], off, enc["attention_mask"])
    clean = rerouted_logits(model, family, enc["input_ids"], {}, enc["attention_mask"])
    assert not torch.allclose(expected, clean, atol=1e-4)          # the intervention matters here
    pairs = [(layer, e) for layer, experts in off.items() for e in experts]
    with torch.no_grad(), il.experts.intervene(model, off=pairs), model.trace(**enc):
        logits = model.anatomy.final_logits(model.unembed.output).save()  # GraniteMoE: / logits_scaling
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    # route() under the same off gives the reference's selection
    routing = il.experts.route(model, texts_with_trigger(3), off=pairs)
    keep = enc["attention_mask"].flatten().bool()
    seen = {}
    hooks = [r.register_forward_pre_hook(lambda m, a, layer=layer: seen.__setitem__(layer, a[0]))
             for layer, r in routers(model).items()]
    try:
        with torch.no_grad(), il.experts.intervene(model, off=pairs), model.trace(**enc):
            pass
    finally:
        for h in hooks:
            h.remove()
    for layer, experts in off.items():
        _, _, idx = reference_select(family, routers(model)[layer], seen[layer], experts)
        assert torch.equal(routing.indices[:, layer].sort(-1).values, idx[keep].cpu().sort(-1).values)


def test_dense_layers_and_bad_masks_get_clear_errors(device):
    model = tiny("qwen2_moe", device=device)      # layer 0 dense, layers 1 and 2 MoE, 8 experts, top-2
    with pytest.raises(ValueError, match="layer 0 is dense"):
        il.experts.route(model, PROMPTS, off=[(0, 1)])
    with pytest.raises(ValueError, match="out of range"):
        il.experts.route(model, PROMPTS, off=[(7, 1)])
    with pytest.raises(ValueError, match="expert 8 is out of range"):
        il.experts.route(model, PROMPTS, on=[(1, 8)])
    with pytest.raises(ValueError, match="both switched off and forced on"):
        il.experts.route(model, PROMPTS, off=[(1, 2)], on=[(1, 2)])
    with pytest.raises(ValueError, match="top_k=2"):
        il.experts.route(model, PROMPTS, on=[(1, 0), (1, 1), (1, 2)])
    with pytest.raises(ValueError, match="fewer than top_k"):
        il.experts.route(model, PROMPTS, off=[(2, e) for e in range(7)])
    with pytest.raises(TypeError, match="pair"):
        il.experts.route(model, PROMPTS, off=[3])
    with pytest.raises(TypeError, match=r"list of .layer, expert. pairs"):
        il.experts.route(model, PROMPTS, off=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="dense"):
        il.experts.route(tiny("llama", device=device), PROMPTS)
    # scan.top() triples are accepted
    routing = il.experts.route(model, PROMPTS, off=[(1, 3, 0.25)])
    assert not routing.selected(1, 3).any()


def test_routing_frame_and_json(device):
    model = tiny("mixtral", device=device)
    routing = il.experts.route(model, PROMPTS[:2], probabilities=True)
    frame = routing.to_frame()
    assert len(frame) == len(routing) * 2 * 2
    row = frame.iloc[5]
    assert row["expert"] == routing.indices[row["token"], row["layer"], row["rank"]]
    assert routing.counts()[0].sum() == len(routing) * 2
    import json
    data = json.loads(routing.to_json())
    assert data["tokens"] == routing.tokens and len(data["indices"]) == len(routing)
