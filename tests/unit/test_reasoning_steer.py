"""Steering changes the residual exactly by h + a * 0.2 * r * d / ||d|| (r: the dictionary's typical
residual norm, or ||h|| where it does not know one), checked against plain torch hooks; generation
with ActivationReasoning against a hand-written greedy loop with such a hook."""

import pytest
import torch
from planted import passthrough_llama

import interplab as il
from interplab.reasoning import Concepts, Reasoner, generate, parse_rules, steer

PROMPTS = ["the cat sat on the", "a dog was in the"]


def directions(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, generator=g), torch.randn(32, generator=g)


UNIT = 0.2  # strength 1 adds a fifth of the typical residual norm (docs/reasoning.md, "Steering strength")


def add_at_last(h, terms, norm=None):
    """The steering rule written out: h[:, -1] + sum_c alpha_c * UNIT * r * d_c / ||d_c||, with r the
    given typical norm, or (None) AR's ||h[:, -1]|| of the unsteered residual."""
    h = h.clone()
    last = h[:, -1].clone()
    r = last.norm(dim=-1, keepdim=True) if norm is None else norm
    for alpha, d in terms:
        d = d.to(h.device)
        h[:, -1] = h[:, -1] + alpha * UNIT * r * d / d.norm()
    return h


def hooked_logits(model, enc, layer, terms, norm=None):
    handle = model.hf.model.layers[layer].register_forward_hook(
        lambda mod, args, out: add_at_last(out, terms, norm))
    try:
        with torch.no_grad():
            return model.hf(**enc).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("strengths", [{"a": 0.5}, {"a": -0.5}, {"a": 0.5, "b": -0.8}, {"b": 2.0}])
def test_steer_matches_a_torch_hook(device, strengths):
    model = il.zoo.tiny("llama", device=device)
    a, b = directions()
    concepts = Concepts(0)
    concepts.add("a", direction=a * 3.0)  # the norm of d must not matter
    concepts.add("b", direction=b)
    enc = model.encode(PROMPTS)
    with torch.no_grad(), model.trace(**enc):
        steer(model, concepts, strengths)
        logits = model.unembed.output.save()
    vectors = {"a": a, "b": b}
    reference = hooked_logits(model, enc, 0, [(alpha, vectors[name]) for name, alpha in strengths.items()])
    assert torch.allclose(logits, reference, atol=1e-5)
    with torch.no_grad():
        plain = model.hf(**enc).logits
    assert not torch.allclose(logits[:, -1], plain[:, -1], atol=1e-3)
    assert torch.allclose(logits[:, :-1], plain[:, :-1], atol=1e-5)  # only the last position moves


def test_a_known_residual_norm_sets_the_scale_whatever_the_steered_norm(device):
    model = il.zoo.tiny("llama", device=device)
    a, b = directions()
    concepts = Concepts(0, residual_norm=3.0)
    concepts.add("a", direction=a)
    concepts.add("b", direction=b)
    assert concepts.steering_scale == pytest.approx(UNIT * 3.0)
    enc = model.encode(PROMPTS)
    with torch.no_grad(), model.trace(**enc):
        steer(model, concepts, {"a": 1.5, "b": -0.5})
        logits = model.unembed.output.save()
    assert torch.allclose(logits, hooked_logits(model, enc, 0, [(1.5, a), (-0.5, b)], norm=3.0), atol=1e-5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e6, 51.0, "strong", True])
def test_absurd_strengths_are_refused_with_the_range(device, bad):
    model = il.zoo.tiny("llama", device=device)
    concepts = Concepts(0)
    concepts.add("a", direction=directions()[0], threshold=-1e9)
    enc = model.encode(PROMPTS)
    with pytest.raises(ValueError, match="from -50 to 50"), torch.no_grad(), model.trace(**enc):
        steer(model, concepts, {"a": bad})
    with pytest.raises(ValueError, match="from -50 to 50"):
        generate(model, "the cat", concepts, "a -> b", strength=bad)
    with pytest.raises(ValueError, match="from -50 to 50"):
        Reasoner(concepts, parse_rules("a -> b"), enc["attention_mask"], strength=bad)


def test_steer_at_the_input_site_equals_the_previous_output(device):
    model = il.zoo.tiny("llama", device=device)
    a, _ = directions()
    at_input = Concepts(1, site="input")
    at_input.add("a", direction=a)
    enc = model.encode(PROMPTS)
    with torch.no_grad(), model.trace(**enc):
        steer(model, at_input, {"a": -0.7})
        logits = model.unembed.output.save()
    assert torch.allclose(logits, hooked_logits(model, enc, 0, [(-0.7, a)]), atol=1e-5)
    with pytest.raises(KeyError, match="no concepts"), torch.no_grad(), model.trace(**enc):
        steer(model, at_input, {"zzz": 1.0})


def reference_generation(model, prompt, layer, terms, max_new_tokens):
    """Greedy decoding without a cache; the hook steers every position that was the last one at some
    step (the prompt's last token onwards), each by its own norm, as AR does step by step."""
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
    start = ids.shape[1] - 1

    def hook(module, args, out):
        out = out.clone()
        for position in range(start, out.shape[1]):
            out[:, : position + 1] = add_at_last(out[:, : position + 1], terms)
        return out

    handle = model.hf.model.layers[layer].register_forward_hook(hook) if terms else None
    try:
        for _ in range(max_new_tokens):
            with torch.no_grad():
                logits = model.hf(ids, use_cache=False).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    finally:
        if handle is not None:
            handle.remove()
    return model.tokenizer.decode(ids[0, start + 1:].tolist())


@pytest.mark.parametrize("rule,alpha", [("cat -> dog", 2.5), ("cat -> suppress dog", -2.5)])
def test_generate_matches_a_hooked_greedy_loop(device, rule, alpha):
    model = il.zoo.tiny("llama", device=device)
    a, b = directions(1)
    concepts = Concepts(0)
    concepts.add("cat", direction=a, threshold=-1e9)  # shows on every token
    concepts.add("dog", direction=b * 5.0, threshold=1e9)  # never shows: only the rules bring it in
    result = generate(model, PROMPTS[0], concepts, rule, strength=2.5, max_new_tokens=6,
                      eos_token_id=[])  # no early stop in a random model
    assert result.base == reference_generation(model, PROMPTS[0], 0, [], 6)
    assert result.steered == reference_generation(model, PROMPTS[0], 0, [(alpha, b)], 6)
    assert result.steered != result.base
    assert len(result.steps) == 6
    assert all(step["steering"] == {"dog": alpha} for step in result.steps)
    assert all(step["steering"] == {} for step in result.base_steps)  # the base row is only observed
    assert result.steps[0]["detected"] == ["cat"] and result.steps[1]["detected"] == []  # new ones only
    assert "".join(" " + s["token"] for s in result.steps).strip() == result.steered  # word-level tokens


def planted(device):
    """Block 0 passes embeddings through; 'cat' carries 3 * e_5 that no other token has."""
    model = passthrough_llama(device, {"cat": {5: 3.0}})
    e5 = torch.zeros(32)
    e5[5] = 1.0
    return model, e5


def test_concepts_stay_active_once_they_fire(device):
    model, e5 = planted(device)
    concepts = Concepts(0)
    concepts.add("cat", direction=e5, threshold=1.5)
    concepts.add("pet", direction=directions()[0], threshold=1e9)
    result = generate(model, "the cat sat on the", concepts, "cat -> pet", max_new_tokens=5, base=False,
                      eos_token_id=[])
    assert "cat" not in result.steered.split()
    assert [s["detected"] for s in result.steps] == [["cat"], [], [], [], []]
    assert all(s["facts"] == ["cat", "pet"] and s["steering"] == {"pet": 0.5} for s in result.steps)
    assert result.inference.proofs["cat"].evidence == [{"position": 1, "score": pytest.approx(3.0, abs=1e-4)}]


def test_output_scope_detects_generated_tokens_only(device):
    model = il.zoo.tiny("llama", device=device)
    concepts = Concepts(0)
    concepts.add("seen", direction=directions()[0], threshold=-1e9)
    result = generate(model, "the cat sat", concepts, "seen -> seen_twice", scope="output", max_new_tokens=3,
                      base=False, eos_token_id=[])
    assert [s["detected"] for s in result.steps] == [[], ["seen"], []]
    assert result.steps[0]["facts"] == [] and result.steps[2]["facts"] == ["seen", "seen_twice"]
    # the first generated token sits at position 3 (after the 3 prompt tokens)
    assert [e["position"] for e in result.inference.proofs["seen"].evidence] == [3, 4]


def test_reasoner_composes_with_a_users_own_generation(device):
    """The AR step inside a user's generation loop, next to the user's own reads, gives what
    generate gives."""
    model = il.zoo.tiny("llama", device=device)
    a, b = directions(1)
    concepts = Concepts(0)
    concepts.add("cat", direction=a, threshold=-1e9)
    concepts.add("dog", direction=b, threshold=1e9)
    rules = parse_rules("cat -> dog")
    enc = model.encode([PROMPTS[0]])
    reasoner = Reasoner(concepts, rules, enc["attention_mask"], strength=0.5)
    with torch.no_grad(), model.generate(**enc, max_new_tokens=4, do_sample=False, min_new_tokens=4,
                                         pad_token_id=0) as tracer:
        norms = list().save()
        for _ in tracer.iter[:4]:
            reasoner.step(model)
            norms.append(model.blocks[1].envoy.output.norm())
        out = tracer.result.save()
    expected = generate(model, PROMPTS[0], concepts, rules, max_new_tokens=4, base=False, eos_token_id=[])
    assert model.tokenizer.decode(out[0, enc["input_ids"].shape[1]:].tolist()) == expected.steered
    assert len(norms) == 4


def test_generate_checks_its_input(device):
    model = il.zoo.tiny("llama", device=device)
    concepts = Concepts(0)
    concepts.add("cat", direction=directions()[0], threshold=0.0)
    with pytest.raises(il.reasoning.UnknownConceptError):
        generate(model, "the cat", concepts, "kat -> dog")
    for bad in (0, -3, 2.5, 10**6, None):
        with pytest.raises(ValueError, match="max_new_tokens must be an integer from 1 to 4096"):
            generate(model, "the cat", concepts, "cat -> dog", max_new_tokens=bad)
    positions = model.hf.config.max_position_embeddings
    with pytest.raises(ValueError, match=f"exceed the {positions} positions"):
        generate(model, "the cat", concepts, "cat -> dog", max_new_tokens=positions)
    with pytest.raises(ValueError, match="greedily"):
        generate(model, "the cat", concepts, "cat -> dog", do_sample=True)


def test_steer_is_remote_ready(device):
    """nnsight's remote='local' serialises the trace as for NDIF and runs it in-process."""
    model = il.zoo.tiny("llama", device=device)
    a, b = directions()
    concepts = Concepts(0)
    concepts.add("a", direction=a)
    concepts.add("b", direction=b)
    enc = model.encode(PROMPTS)
    model.remote = "local"
    with torch.no_grad(), model.trace(**enc):
        steer(model, concepts, {"a": 0.5, "b": -0.25})
        logits = model.unembed.output.save()
    assert torch.allclose(logits, hooked_logits(model, enc, 0, [(0.5, a), (-0.25, b)]), atol=1e-5)


def test_generation_stops_at_end_of_sequence(device):
    model = il.zoo.tiny("llama", device=device)
    concepts = Concepts(0)
    concepts.add("cat", direction=directions()[0], threshold=-1e9)
    free = generate(model, PROMPTS[0], concepts, "cat -> pet", max_new_tokens=6, base=False, eos_token_id=[])
    stop = model.tokenizer.convert_tokens_to_ids(free.steps[2]["token"])
    assert stop not in model.tokenizer.convert_tokens_to_ids([s["token"] for s in free.steps[:2]])
    cut = generate(model, PROMPTS[0], concepts, "cat -> pet", max_new_tokens=6, base=False, eos_token_id=[stop])
    assert cut.steered == " ".join(s["token"] for s in free.steps[:2])
    assert [s["token"] for s in cut.steps] == [s["token"] for s in free.steps[:3]]  # the stop step is kept


def test_positions_count_special_tokens(device):
    """With a tokenizer that adds <s>: it is never detected, and positions include it."""
    from tokenizers import processors

    model, e5 = planted(device)
    tok = model.tokenizer
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    concepts = Concepts(0)
    concepts.add("cat", direction=e5, threshold=1.5)
    concepts.add("any", direction=directions()[0], threshold=-1e9)
    result = generate(model, "the cat sat", concepts, "cat -> pet", max_new_tokens=2, base=False, eos_token_id=[])
    evidence = result.inference.proofs
    assert [e["position"] for e in evidence["cat"].evidence] == [2]
    assert [e["position"] for e in evidence["any"].evidence] == [1, 2, 3, 4]  # not 0 (<s>); 4 = first new token
