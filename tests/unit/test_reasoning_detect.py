"""Detection against a hand-written per-token loop; scopes, global detection, facts, frames."""

import math

import pytest
import torch
from conftest import ALL_FAMILIES

import interplab as il
from interplab.reasoning import SAE, Concepts, detect


@pytest.fixture(scope="module")
def setup(device):
    model = il.zoo.tiny("llama", n_layers=3, device=device)
    g = torch.Generator().manual_seed(0)
    sae = SAE(torch.randn(32, 40, generator=g) * 0.4, torch.randn(40, 32, generator=g), torch.randn(40, generator=g),
              torch.randn(32, generator=g) * 0.1, activation="topk", k=5, layer=1)
    concepts = Concepts(1, sae=sae)
    concepts.add("d1", direction=torch.randn(32, generator=g), threshold=0.2, global_threshold=-0.1)
    concepts.add("f1", features=[int(i) for i in torch.randperm(40, generator=g)[:3]], weights=[0.5, 0.3, 0.2],
                 threshold=0.05, global_threshold=0.02)
    concepts.add("d2", direction=torch.randn(32, generator=g), threshold=-0.3)  # no global threshold
    concepts.add("f2", features=[int(torch.randint(40, (1,), generator=g))], threshold=0.0)
    return model, sae, concepts


def per_token_reference(model, sae, concepts, text):
    """Score every (token, concept) one at a time, from transformers' hidden states."""
    enc = model.tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        h = model.hf(**enc, output_hidden_states=True).hidden_states[2][0].cpu()  # leaving block 1
    sae = sae.to("cpu")
    rows = []
    for position in range(h.shape[0]):
        row = []
        codes = None
        for concept in concepts:
            if concept.uses_sae:
                if codes is None:
                    pre = (h[position] - sae.b_dec) @ sae.W_enc + sae.b_enc
                    top = sorted(range(len(pre)), key=lambda i: -float(pre[i]))[: sae.k]
                    codes = {i: max(float(pre[i]), 0.0) for i in top}
                score = sum(w * codes.get(int(i), 0.0) for i, w in zip(concept.features, concept.weights.tolist()))
            else:
                d = concept.direction
                score = float(h[position] @ d) / float(d.norm())
            row.append(score)
        rows.append(row)
    return rows


def test_detection_equals_a_per_token_loop(setup):
    model, sae, concepts = setup
    texts = ["the cat sat on the mat", "Mary gave John a drink", "a dog"]
    found = detect(model, texts, concepts, batch_size=2)
    assert found.concepts == ["d1", "f1", "d2", "f2"]
    for t, text in enumerate(texts):
        reference = per_token_reference(model, sae, concepts, text)
        n = len(reference)
        assert found.tokens[t] == text.split()
        assert torch.allclose(found.scores[t, :n], torch.tensor(reference), atol=1e-4)
        assert torch.isnan(found.scores[t, n:]).all()
        for p in range(n):
            for c, concept in enumerate(concepts):
                assert bool(found.active[t, p, c]) == (reference[p][c] >= concept.threshold)
        for c, concept in enumerate(concepts):
            mean = sum(r[c] for r in reference) / n
            assert float(found.mean_scores[t, c]) == pytest.approx(mean, abs=1e-4)
            expected = mean >= concept.global_threshold if not math.isnan(concept.global_threshold) else False
            assert bool(found.global_active[t, c]) == expected


def test_scopes_on_prompt_completion_pairs(setup):
    model, _, concepts = setup
    pair = ("the cat sat", " on the mat")
    full = detect(model, "the cat sat on the mat", concepts, scope="input")
    for scope, part in [("input", slice(0, 3)), ("output", slice(3, 6)), ("all", slice(0, 6))]:
        found = detect(model, pair, concepts, scope=scope)
        assert found.in_scope[0].nonzero().squeeze(-1).tolist() == list(range(6))[part]
        assert torch.allclose(found.scores, full.scores, atol=1e-5)  # same tokens, same residuals
        assert torch.equal(found.active[0, part], full.active[0, part])
        assert not found.active[0, [i for i in range(6) if i not in range(6)[part]]].any()
        frame = found.to_frame()
        assert len(frame) == len(range(6)[part]) * len(concepts)
        assert set(frame["part"]) == {"input", "output"} if scope == "all" else {scope}
    with pytest.raises(ValueError, match="scope"):
        detect(model, pair, concepts, scope="middle")


def test_facts_carry_token_evidence(setup):
    model, _, concepts = setup
    found = detect(model, ["the cat sat on the mat"], concepts)
    facts = found.facts(0)
    positions = found.positions(0)
    assert set(facts) == set(positions)
    for name, evidence in facts.items():
        c = concepts.names.index(name)
        assert [e["position"] for e in evidence] == positions[name]
        assert positions[name] == found.active[0, :, c].nonzero().squeeze(-1).tolist()
        for e in evidence:
            assert e["token"] == ["the", "cat", "sat", "on", "the", "mat"][e["position"]]
            assert e["score"] == pytest.approx(float(found.scores[0, e["position"], c]), abs=1e-5)
    global_facts = found.facts(0, "global")
    assert set(global_facts) == {concepts.names[c] for c in found.global_active[0].nonzero().squeeze(-1).tolist()}
    both = found.facts(0, "both")
    assert set(both) == set(facts) | set(global_facts)
    with pytest.raises(ValueError, match="level"):
        found.facts(0, "everything")


def test_special_tokens_are_never_detected():
    """A tokenizer that adds <s>: its position is out of scope, whatever its score."""
    from tokenizers import processors

    model = il.zoo.tiny("llama")
    tok = model.tokenizer
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    concepts = Concepts(0)
    concepts.add("anything", direction=torch.ones(32), threshold=-1e9)
    found = detect(model, "the cat", concepts)
    assert found.tokens[0][0] == "<s>"
    assert found.in_scope[0].tolist() == [False, True, True]
    assert found.positions(0) == {"anything": [1, 2]}


def test_detection_is_remote_ready(setup):
    """nnsight's remote='local' serialises the trace as for NDIF and runs it in-process."""
    model, _, concepts = setup
    texts = ["the cat sat on the mat", "a dog"]
    here = detect(model, texts, concepts)
    model.remote = "local"
    try:
        there = detect(model, texts, concepts)
    finally:
        model.remote = False
    assert torch.allclose(here.scores.nan_to_num(), there.scores.nan_to_num(), atol=1e-6)
    assert torch.equal(here.active, there.active)


def test_scores_from_precomputed_codes(setup):
    _, sae, concepts = setup
    h = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(9)).to(sae.device)
    assert torch.allclose(concepts.score(h, sae.encode(h)), concepts.score(h), atol=1e-6)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_every_family_reads_the_residual_after_the_block(family, device):
    model = il.zoo.tiny(family, device=device)
    concepts = Concepts(0)
    d = torch.randn(32, generator=torch.Generator().manual_seed(3))
    concepts.add("x", direction=d, threshold=0.0)
    enc = model.tokenizer("the cat sat on the mat", return_tensors="pt").to(device)
    with torch.no_grad():
        h = model.hf(**enc, output_hidden_states=True).hidden_states[1][0].cpu()  # leaving block 0
    found = detect(model, "the cat sat on the mat", concepts)
    assert torch.allclose(found.scores[0, :, 0], h @ (d / d.norm()), atol=1e-4)
