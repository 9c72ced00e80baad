"""The concept dictionary: DiffMean and SAE concepts against hand computations on planted data,
calibrated thresholds against a brute-force ROC, labelling, manual concepts, save/load."""

import itertools
import math

import pytest
import torch
from planted import passthrough_llama

import interplab as il
from interplab.reasoning import SAE, Concepts, detect, parse_example

EXAMPLES = {
    "cat": ["the [cat] sat on the mat", "a [cat] is on the mat", ("the cat and the dog", "cat")],
    "dog": ["the [dog] sat", "a [dog] was in the store", ("the cat and the dog", "dog")],
}
NEGATIVES = ["Mary gave John a drink"]
# The plain texts in the order the dictionary sees them, and the hand-labelled token positions
# (the tiny tokenizer splits on spaces and adds no special tokens).
TEXTS = ["the cat sat on the mat", "a cat is on the mat", "the cat and the dog", "the dog sat",
         "a dog was in the store", "Mary gave John a drink"]
POSITIVE = {"cat": [(0, 1), (1, 1), (2, 1)], "dog": [(2, 4), (3, 1), (4, 1)]}


def hidden(model, texts, layer):
    """Residual leaving block `layer`, straight from transformers (no interplab code involved; not
    the last block, whose hidden state transformers reports after the final norm)."""
    assert layer < model.anatomy.n_layers - 1
    out = []
    for text in texts:
        enc = model.tokenizer(text, return_tensors="pt").to(model.device)
        with torch.no_grad():
            out.append(model.hf(**enc, output_hidden_states=True).hidden_states[layer + 1][0])
    return out


def planted(device, strength=3.0):
    """A tiny llama whose block 0 passes its input through (zeroed output projections), so the residual
    leaving it is the token embedding; embeddings are small noise orthogonal to a unit vector v, and
    'cat' gets `strength * v` on top."""
    v = torch.zeros(32)
    v[5] = 1.0
    return passthrough_llama(device, {"cat": {5: strength}}), v


def test_diffmean_equals_hand_computation(device):
    model = il.zoo.tiny("llama", n_layers=3, device=device)
    concepts = Concepts.from_examples(model, 1, EXAMPLES, negatives=NEGATIVES)
    hs = hidden(model, TEXTS, 1)
    for name, positions in POSITIVE.items():
        pos = [hs[t][p] for t, p in positions]
        neg = [hs[t][p] for t in range(len(TEXTS)) for p in range(len(hs[t])) if (t, p) not in positions]
        expected = torch.stack(pos).mean(0) - torch.stack(neg).mean(0)
        assert torch.allclose(concepts[name].direction, expected.float().cpu(), atol=1e-5)
        assert concepts[name].info["positive_tokens"] == 3
    assert (concepts.layer, concepts.site) == (1, "output")


def test_lda_whitens_the_difference_of_means(device):
    model = il.zoo.tiny("llama", n_layers=3, device=device)
    concepts = Concepts.from_examples(model, 1, EXAMPLES, negatives=NEGATIVES, method="lda", shrinkage=0.1)
    hs = [h.double().cpu() for h in hidden(model, TEXTS, 1)]
    everything = torch.cat(hs)
    centred = everything - everything.mean(0)
    cov = centred.T @ centred / len(everything)
    ridge = 0.1 * cov.trace() / 32 * torch.eye(32, dtype=torch.float64)
    for name, positions in POSITIVE.items():
        pos = torch.stack([hs[t][p] for t, p in positions]).mean(0)
        neg = torch.stack([hs[t][p] for t in range(len(TEXTS)) for p in range(len(hs[t]))
                           if (t, p) not in positions]).mean(0)
        w = torch.linalg.solve(cov + ridge, pos - neg)
        assert torch.allclose(concepts[name].direction.double(), pos - neg, atol=1e-5)  # steering: DiffMean
        assert torch.allclose(concepts[name].detector.double(), w, rtol=1e-3, atol=1e-4)
        found = detect(model, TEXTS[0], concepts)
        c = concepts.names.index(name)
        assert torch.allclose(found.scores[0, :, c].double(), hs[0] @ (w / w.norm()), atol=1e-4)
    with pytest.raises(ValueError, match="'diffmean' or 'lda'"):
        Concepts.from_examples(model, 1, EXAMPLES, method="pca")


def test_diffmean_recovers_a_planted_direction(device):
    model, v = planted(device)
    concepts = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES)
    cat = concepts["cat"].direction
    assert torch.nn.functional.cosine_similarity(cat, v, dim=0) > 0.95
    found = detect(model, ["a cat and a dog", "the mat"], concepts)
    assert found.positions(0)["cat"] == [1]
    assert "cat" not in found.positions(1)


def test_sae_concepts_find_the_planted_feature(device):
    """An SAE whose feature 7 reads v (ReLU, bias -1) fires on 'cat' only; from_sae must rank it first,
    and the ranking (mean on the concept's tokens minus mean elsewhere) must equal a hand computation."""
    model, v = planted(device)
    g = torch.Generator().manual_seed(1)
    W_enc = torch.randn(32, 24, generator=g) * 0.2
    W_enc[:, 7] = 10 * v
    b_enc = torch.zeros(24)
    b_enc[7] = -1.0
    sae = SAE(W_enc, torch.randn(24, 32, generator=g), b_enc, torch.zeros(32), layer=0, centre=False)
    concepts = Concepts.from_sae(model, 0, sae, EXAMPLES, negatives=NEGATIVES, k=3)
    assert concepts["cat"].features[0] == 7
    codes = [sae.to(device).encode(h) for h in hidden(model, TEXTS, 0)]
    for name, positions in POSITIVE.items():
        pos = [codes[t][p] for t, p in positions]
        neg = [codes[t][p] for t in range(len(TEXTS)) for p in range(len(codes[t])) if (t, p) not in positions]
        gap = (torch.stack(pos).mean(0) - torch.stack(neg).mean(0)).cpu()
        top = gap.topk(10)
        got = concepts[name].info["candidates"]
        assert [c["feature"] for c in got] == top.indices.tolist()
        assert [c["gap"] for c in got] == pytest.approx(top.values.tolist(), abs=1e-5)
        weights = top.values[:3].clamp_min(0) / top.values[:3].clamp_min(0).sum()
        assert torch.allclose(concepts[name].weights, weights, atol=1e-5)
        assert torch.allclose(concepts[name].direction, weights @ sae.W_dec[top.indices[:3]].cpu(), atol=1e-5)
    single = Concepts.from_sae(model, None, sae, EXAMPLES, negatives=NEGATIVES)
    assert single["cat"].features.tolist() == [7] and single["cat"].weights.tolist() == [1.0]


def brute_force_threshold(scores, labels):
    """Try every midpoint between sorted distinct scores (and the lowest score); keep the first best."""
    values = sorted(set(scores), reverse=True)
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1]]
    best, best_t = -1.0, None
    for t in candidates:
        tp = sum(s >= t and y for s, y in zip(scores, labels))
        tn = sum(s < t and not y for s, y in zip(scores, labels))
        balanced = (tp / sum(labels) + tn / (len(labels) - sum(labels))) / 2
        if balanced > best + 1e-12:
            best, best_t = balanced, t
    return best_t, best


def test_calibrated_thresholds_match_brute_force(device):
    """Manual concepts (random directions), calibrated on the labelled texts: the local threshold is
    the best balanced-accuracy cut over token projections, the global one over per-text means."""
    model = il.zoo.tiny("llama", n_layers=3, device=device)
    concepts = Concepts(1)
    g = torch.Generator().manual_seed(4)
    for name in POSITIVE:
        concepts.add(name, direction=torch.randn(32, generator=g))
    concepts.calibrate(model, EXAMPLES, negatives=NEGATIVES)
    hs = hidden(model, TEXTS, 1)
    for name, positions in POSITIVE.items():
        d = concepts[name].direction.to(device)
        unit = d / d.norm()
        scores, labels, means, any_labels = [], [], [], []
        for t, h in enumerate(hs):
            s = (h @ unit).tolist()
            scores += s
            labels += [(t, p) in positions for p in range(len(s))]
            means.append(sum(s) / len(s))
            any_labels.append(any(tt == t for tt, _ in positions))
        threshold, balanced = brute_force_threshold(scores, labels)
        assert concepts[name].threshold == pytest.approx(threshold, abs=1e-5)
        assert concepts[name].info["local"]["balanced_accuracy"] == pytest.approx(balanced)
        global_threshold, _ = brute_force_threshold(means, any_labels)
        assert concepts[name].global_threshold == pytest.approx(global_threshold, abs=1e-5)


def test_labelled_examples():
    assert parse_example("Max is a [wumpus].") == ("Max is a wumpus.", ((9, 15),))
    assert parse_example("[a] b [c d]") == ("a b c d", ((0, 1), (4, 7)))
    assert parse_example("no marks") == ("no marks", None)
    assert parse_example(("a cat, the cat", "cat")) == ("a cat, the cat", ((2, 5), (11, 14)))
    assert parse_example(("concatenate cat", "cat")) == ("concatenate cat", ((12, 15),))
    assert parse_example(("xyz", [(0, 2)])) == ("xyz", ((0, 2),))
    assert parse_example("<<x>> y", markers=("<<", ">>")) == ("x y", ((0, 1),))
    for bad, message in [("a [b", "never closed"), ("a] b", "closes no span"), ("[a [b]]", "nest"),
                         ("a [] b", "empty span")]:
        with pytest.raises(ValueError, match=message):
            parse_example(bad)
    with pytest.raises(ValueError, match="does not occur"):
        parse_example(("a dog", "cat"))
    with pytest.raises(TypeError):
        parse_example(3)


def test_bad_dictionaries(device):
    model = il.zoo.tiny("llama", device=device)
    with pytest.raises(ValueError, match="no token of the examples is labelled"):
        Concepts.from_examples(model, 0, {"cat": ["the[ ]cat sat"], "dog": [("the dog", "dog")]})
    with pytest.raises(ValueError, match="decoder-layer index"):
        Concepts.from_examples(model, 5, EXAMPLES)
    with pytest.raises(ValueError, match="non-empty list"):
        Concepts.from_examples(model, 0, {"cat": "the [cat]"})
    concepts = Concepts(0)
    with pytest.raises(ValueError, match="no SAE"):
        concepts.add("x", features=[1])
    with pytest.raises(ValueError, match="detector must be non-zero"):
        concepts.add("x", direction=torch.ones(32), detector=torch.zeros(32))
    with pytest.raises(ValueError, match="identifiers"):
        concepts.add("not a name", direction=torch.ones(32))
    concepts.add("x", direction=torch.ones(32))
    with pytest.raises(ValueError, match="dimensions"):
        concepts.add("y", direction=torch.ones(8))
    with pytest.raises(KeyError, match="no concepts"):
        concepts.calibrate(model, {"zzz": ["[the] cat"]})


def test_manual_concepts_and_hand_thresholds(device):
    model = il.zoo.tiny("llama", device=device)
    h = hidden(model, ["the cat sat"], 0)[0]
    concepts = Concepts(0)
    concepts.add("up", direction=h[1].cpu(), threshold=0.0)
    found = detect(model, "the cat sat", concepts)
    unit = h[1] / h[1].norm()
    assert torch.allclose(found.scores[0, :, 0], (h @ unit).cpu(), atol=1e-5)
    assert found.active[0, :, 0].tolist() == (h @ unit >= 0).tolist()
    concepts.set_threshold("up", threshold=float(h[1] @ unit) + 1e-3)  # just above the cat token
    assert not detect(model, "the cat sat", concepts).active.any()
    concepts.remove("up")
    assert len(concepts) == 0


def test_save_load_round_trip(tmp_path, device):
    model, _ = planted(device)
    g = torch.Generator().manual_seed(1)
    sae = SAE(torch.randn(32, 24, generator=g), torch.randn(24, 32, generator=g), torch.randn(24, generator=g),
              torch.zeros(32), activation="topk", k=4, layer=0)
    concepts = Concepts.from_sae(model, 0, sae, EXAMPLES, negatives=NEGATIVES, k=2)
    concepts.add("manual", direction=torch.randn(32, generator=g), threshold=0.25)
    concepts.add("pair", features=[3, 9], weights=[0.7, 0.3], threshold=0.1, global_threshold=0.05)
    concepts.add("read_apart", direction=torch.randn(32, generator=g), detector=torch.randn(32, generator=g),
                 threshold=0.0)
    concepts.set_threshold("dog", threshold=-1.5)
    concepts.save(tmp_path / "concepts")
    assert (tmp_path / "concepts.safetensors").is_file() and (tmp_path / "concepts.json").is_file()
    back = Concepts.load(tmp_path / "concepts.json", device=device)
    assert back.names == concepts.names and (back.layer, back.site) == (0, "output")
    for a, b in zip(concepts, back):
        assert (a.name, a.method, a.threshold) == (b.name, b.method, b.threshold)
        assert a.global_threshold == b.global_threshold or (a.global_threshold != a.global_threshold
                                                           and b.global_threshold != b.global_threshold)
        assert torch.equal(a.direction, b.direction)
        assert a.uses_sae == b.uses_sae
        assert (a.detector is None and b.detector is None) or torch.equal(a.detector, b.detector)
        if a.uses_sae:
            assert torch.equal(a.features, b.features) and torch.equal(a.weights, b.weights)
        assert a.info == b.info
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.equal(getattr(back.sae, name).cpu(), getattr(sae, name).cpu())
    assert (back.sae.k, back.sae.activation, back.sae.layer) == (4, "topk", 0)
    texts = ["the cat sat on the mat", "a dog and a cat"]
    one, two = detect(model, texts, concepts), detect(model, texts, back)
    assert torch.equal(one.scores.nan_to_num(), two.scores.nan_to_num()) and torch.equal(one.active, two.active)
    with pytest.raises(FileNotFoundError):
        Concepts.load(tmp_path / "nothing")


def test_a_dictionary_is_refused_by_a_model_it_does_not_fit(device, tmp_path):
    """detect, reason, generate, steer, calibrate and the RuleEditor check the residual size, the
    layer and (where recorded) the model's anatomy, with an error that says what differs."""
    model = il.zoo.tiny("llama", device=device)  # d_model 32, 2 layers
    wide = Concepts(0)
    wide.add("cat", direction=torch.ones(48), threshold=0.0)
    deep = Concepts(5)
    deep.add("cat", direction=torch.ones(32), threshold=0.0)
    other = Concepts.from_examples(il.zoo.tiny("qwen2", device=device), 0, EXAMPLES, negatives=NEGATIVES)
    assert other.metadata["anatomy"]["family"] == "qwen2"
    enc = model.encode(["the cat"])
    for concepts, message in ((wide, "48-dimensional residual .* d_model 32"), (deep, "layer 5, but .* 2 layers"),
                              (other, "different model .*family qwen2 vs llama")):
        with pytest.raises(ValueError, match=message):
            detect(model, "the cat", concepts)
        with pytest.raises(ValueError, match=message):
            il.reasoning.reason(model, "the cat", concepts, "cat -> pet")
        with pytest.raises(ValueError, match=message):
            il.reasoning.generate(model, "the cat", concepts, "cat -> pet")
        with pytest.raises(ValueError, match=message), torch.no_grad(), model.trace(**enc):
            il.reasoning.steer(model, concepts, {"cat": 1.0})
        with pytest.raises(ValueError, match=message):
            il.RuleEditor(model, concepts, "cat -> pet")
    with pytest.raises(ValueError, match="48-dimensional"):
        wide.calibrate(model, {"cat": ["the [cat]"]})
    other.save(tmp_path / "other")  # the record survives the round trip
    with pytest.raises(ValueError, match="family qwen2 vs llama"):
        detect(model, "the cat", Concepts.load(tmp_path / "other"))


def write_pair(tmp_path, device):
    model, _ = planted(device)
    concepts = Concepts.from_examples(model, 0, EXAMPLES, negatives=NEGATIVES, method="lda")
    concepts.save(tmp_path / "c")
    return concepts, tmp_path / "c.json", tmp_path / "c.safetensors"


def test_save_load_keeps_sinks_norm_and_the_names_with_the_tensors(tmp_path, device):
    import json

    from safetensors import safe_open

    concepts, _, tensors_path = write_pair(tmp_path, device)
    with safe_open(str(tensors_path), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["names"]) == concepts.names and (meta["layer"], meta["site"]) == ("0", "output")
    back = Concepts.load(tmp_path / "c")
    assert (back.sink_ratio, back.residual_norm) == (concepts.sink_ratio, concepts.residual_norm)
    assert back.metadata == concepts.metadata
    no_sinks = Concepts(0, sink_ratio=math.inf)
    no_sinks.add("x", direction=torch.ones(32))
    no_sinks.save(tmp_path / "n")
    plain = Concepts.load(tmp_path / "n")
    assert plain.sink_ratio == math.inf and math.isnan(plain.residual_norm)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(layer=-1), "layer must be a decoder-layer index"),
    (lambda d: d.update(layer="2"), "layer must be a decoder-layer index"),
    (lambda d: d.update(site="middle"), "site must be one of"),
    (lambda d: d.update(concepts=d["concepts"][:1]), "the tensor file holds concepts"),
    (lambda d: d["concepts"].reverse(), "do not belong together"),
    (lambda d: d["concepts"][0].update(threshold="high"), "threshold must be a number or null"),
    (lambda d: d["concepts"][0].pop("name"), "must be an object with a name"),
    (lambda d: d.update(sink_ratio=-1), "sink_ratio must be a positive number"),
    (lambda d: d.update(slots={"g": ["nobody"]}), "slots must map a gate"),
    (lambda d: d.pop("metadata"), "lacks the fields"),
    (lambda d: d.update(format="something/9"), "not an interplab concept dictionary"),
])
def test_load_explains_a_broken_dictionary(tmp_path, device, change, message):
    import json

    _, json_path, _ = write_pair(tmp_path, device)
    doc = json.loads(json_path.read_text())
    change(doc)
    json_path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        Concepts.load(tmp_path / "c")


def test_load_explains_broken_files(tmp_path, device):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _, json_path, tensors_path = write_pair(tmp_path, device)
    text = json_path.read_text()
    json_path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="is not valid JSON"):
        Concepts.load(tmp_path / "c")
    json_path.write_text(text)
    tensors = load_file(str(tensors_path))
    with safe_open(str(tensors_path), framework="pt") as handle:
        meta = handle.metadata()
    save_file({**tensors, "directions": tensors["directions"][:, :8].contiguous()}, str(tensors_path), metadata=meta)
    with pytest.raises(ValueError, match="detectors must be shaped like directions"):
        Concepts.load(tmp_path / "c")
    save_file(tensors, str(tensors_path), metadata={**meta, "names": '["someone", "else"]'})
    with pytest.raises(ValueError, match="do not belong together"):
        Concepts.load(tmp_path / "c")
    tensors_path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Concepts.load(tmp_path / "c")
