"""Interventions during generation and inside user traces; behaviour rates and the refusal classifier."""

import pytest
import torch
from experts_reference import own_routing, planted, planted_expert, reference_select, rerouted_logits, routers

import interplab as il
from interplab.zoo.tiny import tiny

PROMPTS = ["the cat sat on the", "Mary gave a drink to", "a dog"]


def experts_calls(model):
    """Record the expert indices every MoE block is called with (plain torch hooks)."""
    calls = {layer: [] for layer in model.anatomy.moe.moe_layers}
    hooks = [model.blocks[layer].module("experts").register_forward_hook(
        lambda m, args, out, layer=layer: calls[layer].append(args[1].detach().clone()))
        for layer in calls]
    return calls, hooks


@pytest.mark.parametrize("family", ["mixtral", "deepseek_v3", "gpt_oss"])
def test_generate_applies_off_and_on_at_every_step(family, device):
    model, _ = planted(family, device=device)
    layers = model.anatomy.moe.moe_layers
    off = [(layers[0], planted_expert(layers[0]))]
    on = [(layers[-1], 6)]
    calls, hooks = experts_calls(model)
    try:
        texts = il.experts.generate(model, PROMPTS, off=off, on=on, max_new_tokens=5, min_new_tokens=5)
    finally:
        for h in hooks:
            h.remove()
    assert len(texts) == 3 and all(len(t.split()) == 5 for t in texts)
    assert len(calls[layers[0]]) == len(calls[layers[-1]]) == 5          # prefill + 4 decoding steps
    for step in calls[layers[0]]:
        assert not (step == off[0][1]).any()
    for step in calls[layers[-1]]:
        assert (step == 6).any(dim=-1).all()
    # and without the intervention expert 6 is not chosen for every token
    calls, hooks = experts_calls(model)
    try:
        il.experts.generate(model, PROMPTS, max_new_tokens=5, min_new_tokens=5)
    finally:
        for h in hooks:
            h.remove()
    assert not all((step == 6).any(dim=-1).all() for step in calls[layers[-1]])
    assert len(model.nn._edits) == 0


@pytest.mark.parametrize("family", ["olmoe", "qwen2_moe"])
def test_generated_text_equals_generation_with_hand_rerouted_routers(family, device):
    model = tiny(family, device=device)
    layer = model.anatomy.moe.moe_layers[-1]
    with torch.no_grad():                       # loud experts, so that rerouting changes the text
        model.blocks[layer].module("experts").down_proj *= 100
    gone = {layer: {1, 4}}
    ours = il.experts.generate(model, PROMPTS, off=[(layer, 1), (layer, 4)], max_new_tokens=6)
    hooks = [routers(model)[layer].register_forward_hook(
        lambda m, args, out: reference_select(family, m, args[0], gone[layer]))]
    expected = []
    try:
        for prompt in PROMPTS:                          # one at a time: no padding in the reference
            enc = model.encode([prompt])
            out = model.hf.generate(**enc, max_new_tokens=6, do_sample=False,
                                    pad_token_id=model.tokenizer.pad_token_id)
            expected.append(model.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    finally:
        hooks[0].remove()
    plain = il.experts.generate(model, PROMPTS, max_new_tokens=6)
    assert ours == expected
    assert plain != ours


def test_intervene_composes_with_user_interventions_and_nests(device):
    family = "mixtral"
    model, _ = planted(family, device=device)
    enc = model.encode(["Mary sat on the mat", "the dog gave Mary a drink"], padding_side="right")
    l0, l1 = model.anatomy.moe.moe_layers
    with torch.no_grad(), il.experts.intervene(model, off=[(l0, 2)]) as outer:
        assert outer.pairs("off") == [(l0, 2)]
        with il.experts.intervene(model, off=[(l1, 5)]) as inner:
            assert inner.pairs("off") == [(l0, 2), (l1, 5)]
            with model.trace(**enc):
                seen0 = model.router(l0).output[2].save()      # the user reads the rerouted values
                seen1 = model.router(l1).output[2].save()
                model.blocks[l1].mlp.output[:] = 0              # and adds an intervention of their own
                logits = model.unembed.output.save()
        with model.trace(**enc):
            after_inner = model.router(l1).output[2].save()
    assert not (seen0 == 2).any() and not (seen1 == 5).any()
    assert (after_inner == 5).any()                     # the inner block's mask is gone again
    assert not il.experts.active_masks(model)
    with model.trace(**enc):
        unrouted = model.router(l0).output[2].save()
    with model.nn.trace(**enc):  # the model's own envoy was never edited
        untouched = model.router(l0).output[2].save()
    assert (unrouted == 2).any() and (untouched == 2).any()
    # the same run in plain torch: layer l0 rerouted by hand, layer l1's MoE output zeroed
    hooks = [routers(model)[l0].register_forward_hook(lambda m, a, o: reference_select(family, m, a[0], {2})),
             model.blocks[l1].module("mlp").register_forward_hook(lambda m, a, o: torch.zeros_like(o))]
    try:
        with torch.no_grad():
            expected = model.hf(**enc).logits
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_apply_routing_in_the_users_own_generate_block(device):
    """The documented way to reroute every step of one's own generation: apply_routing per step."""
    model = tiny("qwen2_moe", device=device)
    enc = model.encode(PROMPTS)
    calls, hooks = experts_calls(model)
    try:
        with model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False) as tracer:
            for _ in tracer.iter[:4]:
                il.experts.apply_routing(model, on=[(2, 4)])
            ids = tracer.result.save()
    finally:
        for h in hooks:
            h.remove()
    assert ids.shape[1] == enc["input_ids"].shape[1] + 4
    assert len(calls[2]) == 4 and all((step == 4).any(dim=-1).all() for step in calls[2])
    assert not any((step == 4).any(dim=-1).all() for step in calls[1])


def test_intervene_cleans_up_after_an_error(device):
    model = tiny("olmoe", device=device)
    with pytest.raises(RuntimeError, match="boom"), il.experts.intervene(model, off=[(0, 1)]):
        raise RuntimeError("boom")
    assert not il.experts.active_masks(model)
    with pytest.raises(ValueError, match="both switched off and forced on"), \
            il.experts.intervene(model, off=[(0, 1)]), il.experts.intervene(model, on=[(0, 1)]):
        pass
    assert len(model.nn._edits) == 0


def test_apply_routing_inside_a_trace_body(device):
    family = "gpt_oss"
    model = tiny(family, device=device)
    enc = model.encode(PROMPTS, padding_side="right")
    layer = model.anatomy.moe.moe_layers[0]
    with torch.no_grad(), model.trace(**enc):
        il.experts.apply_routing(model, off=[(layer, 0), (layer, 3)])
        logits = model.unembed.output.save()
    expected = rerouted_logits(model, family, enc["input_ids"], {layer: {0, 3}}, enc["attention_mask"])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    own = own_routing(model, enc["input_ids"], enc["attention_mask"])     # untouched afterwards
    assert (own[layer][2] == 0).any() or (own[layer][2] == 3).any()


def test_behaviour_rate_and_refusal_classifier(device):
    model = tiny("mixtral", device=device)
    texts = il.experts.generate(model, PROMPTS, max_new_tokens=4)
    has_w = [any(w.startswith("w") for w in t.split()) for t in texts]
    rate = il.experts.behaviour_rate(model, PROMPTS, lambda t: any(w.startswith("w") for w in t.split()),
                                     max_new_tokens=4)
    assert rate == pytest.approx(sum(has_w) / 3)
    with pytest.raises(TypeError, match="True or False"):
        il.experts.behaviour_rate(model, PROMPTS, lambda t: None, max_new_tokens=2)
    with pytest.raises(TypeError, match="function"):
        il.experts.behaviour_rate(model, PROMPTS, "refusal", max_new_tokens=2)
    is_refusal = il.experts.refusal_classifier()
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I cannot answer this question")
    assert not is_refusal("The capital of France is Paris.")
    custom = il.experts.refusal_classifier([r"\bno way\b"])
    assert custom("No way I will do that") and not custom("I'm sorry")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        il.experts.refusal_classifier(["(unclosed"])


def test_route_and_scan_inside_intervene_use_its_masks(device):
    model, _ = planted("qwen3_moe", device=device)
    layer = model.anatomy.moe.moe_layers[0]
    e = planted_expert(layer)
    texts = ["Mary sat on the mat", "the dog gave Mary a drink"]
    assert il.experts.route(model, texts).selected(layer, e).any()
    with il.experts.intervene(model, off=[(layer, e)]):
        inside = il.experts.route(model, texts, on=[(layer, 0)])
        scan = il.experts.scan(model, texts, ["the cat"])
    assert inside.off == [(layer, e)] and inside.on == [(layer, 0)]
    assert not inside.selected(layer, e).any() and inside.selected(layer, 0).all()
    assert scan.behaviour.selection_rate[layer, e] == 0


def test_traces_run_through_nnsights_serialising_local_backend(device):
    """remote="local" serialises each trace as NDIF would: route and scan give the same results."""
    model = tiny("deepseek_v3", device=device)
    texts = ["the cat sat on the mat", "a dog"]
    local = il.experts.route(model, texts, off=[(1, 2)])
    scan = il.experts.scan(model, texts, ["Mary gave a drink"])
    model.remote = "local"
    try:
        remote = il.experts.route(model, texts, off=[(1, 2)])
        remote_scan = il.experts.scan(model, texts, ["Mary gave a drink"])
    finally:
        model.remote = False
    assert torch.equal(remote.indices, local.indices)
    torch.testing.assert_close(remote_scan.scores, scan.scores, equal_nan=True)
