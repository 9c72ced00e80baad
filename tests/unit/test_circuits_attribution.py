"""Activation patching and AtP/RelP against hand-written references (torch hooks, no nnsight)."""

import itertools

import pytest
import torch
from circuit_reference import atp_reference, ig_reference, il_task, patch_reference, token_id
from families import DENSE_FAMILIES
from lrp_reference import rules as reference_rules

import interplab as il
from interplab.circuits import Node, attribute
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("a dog was in the store , it was", "a cat was in the store , it was", " on", " in"),
]
# prompts of different lengths: positions are right-aligned
RAGGED = [
    ("the cat sat on the mat", "the dog sat on the mat", " and", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("a dog was", "a cat was", " on", " in"),
]


def prompts_for(model, texts):
    return [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in texts]


@pytest.fixture(scope="module", params=DENSE_FAMILIES)
def family_model(request, device):
    return tiny(request.param, device=device)


def test_patch_matches_a_hand_written_patching_loop(family_model):
    model = family_model
    prompts = prompts_for(model, RAGGED)
    att = attribute(model, il_task(model, prompts), method="patch", batch_size=7, progress=False)
    window = len(att.labels)
    assert window == 9
    # lengths 6, 9, 3: positions 0 and 3 are padding for some prompts, 6 starts the shortest, 8 is the last
    nodes = [(c, layer, None, p) for c in ("resid", "attn", "mlp") for layer in range(2) for p in (0, 3, 5, 6, 8)]
    expected = patch_reference(model, prompts, nodes)
    got = [float(att.scores[c][layer, p]) for c, layer, _, p in nodes]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=2e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])  # gemma3: head_dim 16 != d_model / heads
def test_head_patch_matches_the_loop_per_head_and_position(family, device):
    model = tiny(family, device=device)
    prompts = prompts_for(model, TEXTS[:2])
    att = attribute(model, il_task(model, prompts), method="patch", level="head", progress=False)
    nodes = [("head", layer, head, p) for layer in range(2) for head in range(4) for p in (0, 4, 8)]
    expected = patch_reference(model, prompts, nodes)
    got = [float(att.scores["head"][layer, head, p]) for _, layer, head, p in nodes]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=2e-5)
    whole = attribute(model, il_task(model, prompts), method="patch", level="head", positions=False, progress=False)
    (expected,) = patch_reference(model, prompts, [("head", 1, 2, None)])
    assert float(whole.scores["head"][1, 2]) == pytest.approx(expected, abs=2e-5)
    assert whole.axes["head"] == ("layer", "head")


def test_atp_matches_hand_written_autograd(family_model):
    model = family_model
    prompts = prompts_for(model, RAGGED)
    task = il_task(model, prompts)
    sites = [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("resid", "attn", "mlp")]
    expected = atp_reference(model, prompts, sites)
    att = attribute(model, task, method="atp")
    for component, layer in sites:
        torch.testing.assert_close(att.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    heads = attribute(model, task, method="atp", level="head")
    expected = atp_reference(model, prompts, [("head", 1)])
    torch.testing.assert_close(heads.scores["head"][1], expected[("head", 1)].cpu(), rtol=1e-4, atol=1e-6)


def test_relp_is_the_same_product_with_the_rules_in_the_backward(family_model):
    """RelP through nnsight = (clean - corrupt) x gradient of a plain torch backward under the rules
    (by default the LN, identity and half rules: the AH-rule is off unless asked for)."""
    model = family_model
    prompts = prompts_for(model, TEXTS)
    sites = [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("resid", "attn", "mlp")]
    with reference_rules(model, enable=("norm", "identity", "half")):
        expected = atp_reference(model, prompts, sites)
    att = attribute(model, il_task(model, prompts), method="relp")
    plain = attribute(model, il_task(model, prompts), method="atp")
    for component, layer in sites:
        torch.testing.assert_close(att.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    assert not torch.allclose(att.scores["resid"], plain.scores["resid"], rtol=1e-3, atol=1e-6)


def test_scores_summed_over_positions(family_model):
    model = family_model
    task = il_task(model, prompts_for(model, TEXTS))
    per = attribute(model, task, method="atp")
    whole = attribute(model, task, method="atp", positions=False)
    for component in ("resid", "attn", "mlp"):
        torch.testing.assert_close(whole.scores[component], per.scores[component].sum(-1), rtol=1e-5, atol=1e-6)
    # patching a component at every position at once is its own quantity; check one against the loop
    model_prompts = prompts_for(model, TEXTS)
    patched = attribute(model, task, method="patch", positions=False, progress=False)
    (expected,) = patch_reference(model, model_prompts, [("mlp", 0, None, None)])
    assert float(patched.scores["mlp"][0]) == pytest.approx(expected, abs=2e-5)


@pytest.mark.parametrize("family", DENSE_FAMILIES)
def test_dead_components_score_zero_with_every_method(family, device):
    model = tiny(family, device=device, seed=1)
    with torch.no_grad():
        model.blocks[0].module("attn_out").weight.zero_()
        model.blocks[1].module("mlp_out").weight.zero_()
    task = il_task(model, prompts_for(model, TEXTS))
    for method in ("patch", "atp", "relp"):
        # gradient scores are exactly 0 (no activation difference); a patched copy and the unpatched
        # baseline are different rows of one batch, equal up to the last bit of float rounding
        tol = 1e-6 if method == "patch" else 0.0
        att = attribute(model, task, method=method, progress=False)
        heads = attribute(model, task, method=method, level="head", progress=False)
        for scores in (att.scores["attn"][0], att.scores["mlp"][1], heads.scores["head"][0], heads.scores["mlp"][1]):
            assert scores.abs().max() <= tol, method
        live = att.scores["attn"][1].abs().max(), att.scores["mlp"][0].abs().max()
        assert min(live) > 1e-4, method


def test_runs_through_nnsights_serialising_backend():
    """remote='local' serialises each trace like NDIF would: the scores must not change."""
    base = tiny("gpt2")
    remote = il.load(base.hf, tokenizer=base.tokenizer, remote="local")
    prompts = prompts_for(base, TEXTS)
    runs = (("atp", "component", {}), ("patch", "head", {}), ("atp", "edge", {"positions": False}),
            ("ig", "component", {}), ("ig", "head", {}), ("ig", "edge", {"positions": False}),
            ("ig", "component", {"interpolate": "activations"}))
    for method, level, options in runs:
        here = attribute(base, il_task(base, prompts), method=method, level=level, progress=False, **options)
        there = attribute(remote, il_task(remote, prompts), method=method, level=level, progress=False, **options)
        for component in here.scores:
            torch.testing.assert_close(there.scores[component], here.scores[component])
    with pytest.raises(ValueError, match=r"attention rule \(AH-rule\) runs an attention function of this process"):
        attribute(remote, il_task(remote, prompts), method="relp", rules=("norm", "attention"))
    with pytest.raises(ValueError, match="position-resolved edges run hooks on a local model"):
        attribute(remote, il_task(remote, prompts), method="atp", level="edge")


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_relp_runs_through_nnsights_serialising_backend(family):
    """RelP's rules are interventions inside the trace: remote='local' gives the local scores, with
    each rule alone, the default rules at every level, and the rules on integrated gradients."""
    base = tiny(family)
    remote = il.load(base.hf, tokenizer=base.tokenizer, remote="local")
    prompts = prompts_for(base, TEXTS)
    runs = [("relp", "component", {"rules": (rule,)}) for rule in ("norm", "identity", "half")]
    runs += [("relp", "component", {}), ("relp", "head", {}), ("relp", "edge", {"positions": False}),
             ("ig", "component", {"rules": ("norm", "identity", "half"), "steps": 3})]
    for method, level, options in runs:
        here = attribute(base, il_task(base, prompts), method=method, level=level, progress=False, **options)
        there = attribute(remote, il_task(remote, prompts), method=method, level=level, progress=False, **options)
        assert there.corrupt_metric == pytest.approx(here.corrupt_metric, abs=1e-6)
        for component in here.scores:
            torch.testing.assert_close(there.scores[component], here.scores[component], rtol=0, atol=0)
        if level == "edge":
            torch.testing.assert_close(there.edge_scores, here.edge_scores, rtol=0, atol=0, equal_nan=True)


def test_the_final_logits_map_travels_through_the_serialising_backend():
    """Granite's logits_scaling is applied inside the trace: remote='local' gives the same scores."""
    base = tiny("granite")
    remote = il.load(base.hf, tokenizer=base.tokenizer, remote="local")
    prompts = prompts_for(base, TEXTS)
    here = attribute(base, il_task(base, prompts), method="atp", level="edge", positions=False)
    there = attribute(remote, il_task(remote, prompts), method="atp", level="edge", positions=False)
    assert there.clean_metric == pytest.approx(here.clean_metric, abs=1e-6)
    torch.testing.assert_close(there.edge_scores, here.edge_scores, equal_nan=True)


def test_bad_arguments_are_clear_errors():
    model = tiny("gpt2")
    task = il_task(model, prompts_for(model, TEXTS))
    with pytest.raises(ValueError, match="unknown method 'eap'"):
        attribute(model, task, method="eap")
    with pytest.raises(ValueError, match="unknown level"):
        attribute(model, task, level="neuron")
    with pytest.raises(ValueError, match="edge scores come from gradients"):
        attribute(model, task, method="patch", level="edge")
    with pytest.raises(TypeError, match="ContrastTask"):
        attribute(model, ["the cat"], method="atp")
    moe = tiny("mixtral")
    with pytest.raises(NotImplementedError, match="MoE"):
        attribute(moe, task)
    with pytest.raises(ValueError, match="at least 2"):
        attribute(model, task, method="ig", steps=1)
    with pytest.raises(ValueError, match="interpolate must be one of inputs, activations"):
        attribute(model, task, method="ig", interpolate="weights")
    with pytest.raises(ValueError, match="method 'atp' has none"):
        attribute(model, task, method="atp", rules=("norm",))
    with pytest.raises(ValueError, match="path of method 'ig', not of 'relp'"):
        attribute(model, task, method="relp", steps=8)


def test_prompt_batches_give_the_same_scores():
    model = tiny("qwen2")
    task = il_task(model, prompts_for(model, RAGGED))
    whole = attribute(model, task, method="relp")
    split = attribute(model, task, method="relp", batch_size=2)
    for component in whole.scores:
        torch.testing.assert_close(split.scores[component], whole.scores[component], rtol=1e-4, atol=1e-6)
    assert split.clean_metric == pytest.approx(whole.clean_metric, abs=1e-6)


def test_relp_with_a_chosen_rule_set():
    model = tiny("llama")
    prompts = prompts_for(model, TEXTS)
    task = il_task(model, prompts)
    sites = [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("resid", "attn", "mlp")]
    chosen = ("norm", "identity", "half")  # no AH-rule: the backward also flows through the pattern
    with reference_rules(model, enable=chosen):
        expected = atp_reference(model, prompts, sites)
    att = attribute(model, task, method="relp", rules=chosen)
    for component, layer in sites:
        torch.testing.assert_close(att.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    plain = attribute(model, task, method="atp", level="edge", positions=False)
    none = attribute(model, task, method="relp", level="edge", rules=(), positions=False)
    torch.testing.assert_close(none.edge_scores, plain.edge_scores, equal_nan=True)
    with pytest.raises(ValueError, match="unknown LRP rules"):
        attribute(model, task, method="relp", rules=("softmax",))


@pytest.mark.parametrize("family", DENSE_FAMILIES)
def test_each_rule_subset_matches_the_hook_implementation(family, device):
    """The rules as trace interventions against the previous implementation (torch hooks with
    hand-written autograd functions, ``lrp_reference``) around AtP's own pass, for every subset of
    the LN, identity and half rules (edges: ``test_edges_match_a_hand_written_eap``)."""
    model = tiny(family, device=device, seed=4)
    task = il_task(model, prompts_for(model, RAGGED))
    base = ("norm", "identity", "half")
    for chosen in [r for k in (1, 2, 3) for r in itertools.combinations(base, k)]:
        att = attribute(model, task, method="relp", rules=chosen)
        with reference_rules(model, enable=chosen):
            expected = attribute(model, task, method="atp")
        for component in att.scores:
            torch.testing.assert_close(att.scores[component], expected.scores[component], rtol=1e-5, atol=1e-7)


# the trapezoid rule on 4 points of [0, 1], written out
TRAPEZOID4 = ([0, 1 / 3, 2 / 3, 1], [1 / 6, 1 / 3, 1 / 3, 1 / 6])


@pytest.mark.parametrize("metric", ["logit_diff", "logprob"])
def test_ig_matches_hand_written_integrated_gradients(family_model, metric):
    model = family_model
    prompts = prompts_for(model, RAGGED)
    task = il_task(model, prompts, metric=metric)
    sites = [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("resid", "attn", "mlp")]
    expected = ig_reference(model, prompts, sites, *TRAPEZOID4, metric=metric)
    att = attribute(model, task, method="ig", steps=4)
    for component, layer in sites:
        torch.testing.assert_close(att.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    heads = attribute(model, task, method="ig", level="head", steps=4)
    expected = ig_reference(model, prompts, [("head", 0), ("head", 1)], *TRAPEZOID4, metric=metric)
    for layer in range(2):
        torch.testing.assert_close(heads.scores["head"][layer], expected[("head", layer)].cpu(), rtol=1e-4,
                                   atol=1e-6)


def test_ig_on_the_activation_path_and_with_rules():
    model = tiny("llama")
    prompts = prompts_for(model, RAGGED)
    task = il_task(model, prompts)
    sites = [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("resid", "attn", "mlp")]
    held = attribute(model, task, method="ig", steps=4, interpolate="activations")
    expected = ig_reference(model, prompts, sites, *TRAPEZOID4, held=True)
    for component, layer in sites:
        torch.testing.assert_close(held.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    chosen = ("norm", "identity", "half")
    ruled = attribute(model, task, method="ig", steps=4, rules=chosen)
    with reference_rules(model, enable=chosen):
        expected = ig_reference(model, prompts, sites, *TRAPEZOID4)
    for component, layer in sites:
        torch.testing.assert_close(ruled.scores[component][layer], expected[(component, layer)].cpu(),
                                   rtol=1e-4, atol=1e-6)
    plain = attribute(model, task, method="ig", steps=4)
    assert not torch.allclose(ruled.scores["resid"], plain.scores["resid"], rtol=1e-3, atol=1e-6)


def test_ig_converges_to_the_total_effect_at_the_embeddings():
    """Completeness: the embedding's IG scores sum to the metric's change from corrupt to clean."""
    model = tiny("gpt2")
    task = il_task(model, prompts_for(model, TEXTS))
    att = attribute(model, task, method="ig", steps=24)
    total = float(att.scores["resid"][0].sum())
    assert total == pytest.approx(att.clean_metric - att.corrupt_metric, rel=1e-3, abs=1e-5)


def test_patching_skips_the_nodes_before_the_first_difference(monkeypatch):
    """Causal skip: every prompt agrees up to the first differing position (4 here: the first prompt
    starts at position 3 and differs at its second token), so nodes there are exactly 0, unpatched."""
    from interplab.circuits import patching

    model = tiny("llama")
    prompts = prompts_for(model, RAGGED)
    task = il_task(model, prompts)
    enc = task.encode(model)
    assert enc.first_difference == 4
    copies = []
    real = patching.replaced_metrics

    def counted(model, enc, inputs, *args):
        copies.append(inputs["input_ids"].shape[0] // enc.n)
        return real(model, enc, inputs, *args)
    monkeypatch.setattr(patching, "replaced_metrics", counted)
    nodes = [Node(c, layer, None, p) for c in ("resid", "mlp") for layer in range(2) for p in range(9)]
    skipped, clean, corrupt = patching.patch_scores(model, enc, nodes, progress=False)
    assert copies == [2 + 2 * 2 * 5]  # clean, corrupt, and the nodes at positions 4..8 only
    early = [i for i, n in enumerate(nodes) if n.position < 4]
    assert skipped[early].eq(0).all()  # exactly zero
    full, clean_all, _ = patching.patch_scores(model, enc, nodes, progress=False, causal_skip=False)
    assert copies[-1] == 2 + len(nodes)
    torch.testing.assert_close(skipped, full, rtol=0, atol=2e-6)
    expected = patch_reference(model, prompts, [(n.component, n.layer, None, n.position) for n in nodes])
    torch.testing.assert_close(skipped, torch.tensor(expected), rtol=0, atol=2e-5)
    only_early, clean_only, corrupt_only = patching.patch_scores(model, enc, [nodes[i] for i in early], progress=False)
    assert only_early.eq(0).all() and copies[-1] == 2  # nothing to patch: one forward for the metrics
    assert (clean_only, corrupt_only) == pytest.approx((clean, corrupt), abs=1e-6)
    assert clean == pytest.approx(clean_all, abs=1e-6)
