"""Position-resolved edges against a hand-written path derivative (torch hooks and autograd, no nnsight)."""

import pytest
import torch
from circuit_reference import ids_of, il_task, patch_reference, token_id
from position_reference import ablated_metric, frozen_patch, path_edges

from interplab.circuits import Edge, Node, ablate_many, attribute, attribute_in_parts, faithfulness, pattern_split
from interplab.circuits.ablation import all_units
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("the cat sat on the mat", "the dog sat on the mat", " and", " is"),  # shorter: left-padded
]


def prompts_for(model):
    return [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "gemma2", "phi3", "olmo2", "granite"])
@pytest.mark.parametrize("heads", [False, True])
def test_edges_equal_the_derivative_of_each_path(family, heads, device):
    model = tiny(family, device=device, seed=5)
    prompts = prompts_for(model)
    att = attribute(model, il_task(model, prompts), method="atp", level="edge", heads=heads, keep=None)
    got = {(e.source.id, e.target.id): s for e, s in att.edges()}
    expected = path_edges(model, prompts, heads=heads, parallel=family == "gpt_neox")
    assert set(got) <= set(expected)  # every kept edge is an edge
    keys = sorted(expected)
    want = torch.tensor([expected[k] for k in keys])
    have = torch.tensor([got.get(k, 0.0) for k in keys])
    assert want.abs().max() > 1e-3  # the check has something to check
    torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-6)
    assert att.edge_count == len(expected)


@pytest.mark.parametrize(("family", "ablation"), [("gpt2", "corrupt"), ("llama", "zero"), ("gemma2", "zero"),
                                                   ("olmo2", "zero"), ("granite", "zero")])
@pytest.mark.parametrize("heads", [False, True])
def test_ablating_edges_equals_a_hand_written_path_ablation(family, ablation, heads):
    model = tiny(family, seed=7)
    prompts = prompts_for(model)
    task = il_task(model, prompts)
    universe = all_units(model, "edge", task.encode(model).seq_len, heads)
    generator = torch.Generator().manual_seed(0)
    picks = [[u for u in universe if torch.rand(1, generator=generator) < fraction] for fraction in (0.05, 0.3)]
    picks.append([u for u in universe if u.target.component in ("attn", "head")
                  and u.source.position < u.target.position])  # cross-position paths only
    got = ablate_many(model, task, picks, ablation=ablation)
    expected = [ablated_metric(model, prompts, {(e.source.id, e.target.id) for e in group}, ablation)
                for group in picks]
    full = ablated_metric(model, prompts, set())
    assert max(abs(e - full) for e in expected) > 1e-3  # the ablations change the metric
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "granite"])
def test_a_sources_edges_sum_to_its_node_score_with_patterns_fixed(family):
    """Patterns fixed, the gradient at a reader's copy of the stream is the sum of its value paths, so a
    source's outgoing edges add up to its AtP node score with the attention rule (RelP's AH-rule only),
    and with every RelP rule to its RelP node score."""
    model = tiny(family, seed=6)
    task = il_task(model, prompts_for(model))
    for method, rules in (("atp", ("attention",)), ("relp", ("norm", "identity", "half", "attention"))):
        nodes = attribute(model, task, method="relp", rules=rules)  # node scores with the nnsight trace
        ruled = {"rules": rules} if method == "relp" else {}  # AtP's edges hold the patterns fixed by themselves
        edges = attribute(model, task, method=method, level="edge", keep=None, **ruled)
        sums = {}
        for edge, score in edges.edges():
            sums[edge.source] = sums.get(edge.source, 0.0) + score
        for component in ("attn", "mlp"):
            expected = nodes.scores[component]
            got = torch.zeros_like(expected)
            for (layer, position) in torch.cartesian_prod(*(torch.arange(s) for s in expected.shape)).tolist():
                got[layer, position] = sums.get(Node(component, layer, None, position), 0.0)
            assert expected.abs().max() > 1e-5
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-8)
            torch.testing.assert_close(edges.scores[component], expected, rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(edges.scores["embed"][0], nodes.scores["resid"][0], rtol=1e-4, atol=1e-8)


def test_heads_split_the_attention_targets_and_patterns_are_always_fixed():
    model = tiny("llama", seed=6)
    task = il_task(model, prompts_for(model))
    layers = attribute(model, task, method="relp", level="edge", keep=None)
    heads = attribute(model, task, method="relp", level="edge", keep=None, heads=True)
    merged = {}
    for edge, score in heads.edges():
        target = edge.target._replace(component="attn", head=None) if edge.target.component == "head" else edge.target
        merged[(edge.source, target)] = merged.get((edge.source, target), 0.0) + score
    plain = {(e.source, e.target): s for e, s in layers.edges()}
    assert set(plain) <= set(merged)
    torch.testing.assert_close(torch.tensor([merged[k] for k in plain]), torch.tensor(list(plain.values())),
                               rtol=1e-4, atol=1e-7)
    # 9 positions: attn.0 reads embed at p <= q (45 pairs), mlp.0 embed and attn.0 at p = q, attn.1 three
    # sources (45 pairs each), mlp.1 four, the logits all five at the last position
    assert layers.edge_count == 45 + 2 * 9 + 3 * 45 + 4 * 9 + 5
    assert heads.edge_count == 4 * 45 + 2 * 9 + 4 * 3 * 45 + 4 * 9 + 5
    # the attention rule is implied: leaving it out of rules changes nothing at this level
    unruled = attribute(model, task, method="relp", level="edge", keep=None, rules=("norm", "identity", "half"))
    assert dict(unruled.edges()) == pytest.approx(dict(layers.edges()))


def test_keep_prunes_by_count_or_by_share_of_the_total():
    model = tiny("gpt2", seed=6)
    task = il_task(model, prompts_for(model))
    every = attribute(model, task, method="atp", level="edge", keep=None)
    magnitudes = sorted((abs(s) for _, s in every.edges()), reverse=True)
    assert all(m > 0 for m in magnitudes) and every.edge_mass == 1.0
    top = attribute(model, task, method="atp", level="edge", keep=7)
    assert sorted((abs(s) for _, s in top.edges()), reverse=True) == pytest.approx(magnitudes[:7])
    assert top.edge_mass == pytest.approx(sum(magnitudes[:7]) / sum(magnitudes), rel=1e-5)
    share = attribute(model, task, method="atp", level="edge", keep=0.5)
    count = next(i + 1 for i in range(len(magnitudes)) if sum(magnitudes[:i + 1]) >= 0.5 * sum(magnitudes) * (1 - 1e-6))
    assert len(share.edges()) == count
    torch.testing.assert_close(share.scores["attn"], every.scores["attn"])  # node scores count every edge
    for bad, error in ((1.5, ValueError), (0.0, ValueError), (-3, ValueError), ("all", TypeError), (True, TypeError)):
        with pytest.raises(error, match="keep"):
            attribute(model, task, method="atp", level="edge", keep=bad)


def test_bad_position_edges_are_clear_errors():
    model = tiny("gpt2", seed=6)
    task = il_task(model, prompts_for(model))
    bad = [Edge(Node("mlp", 0, None, 3), Node("attn", 0, None, 3)),  # the MLP writes after attention reads
           Edge(Node("attn", 0, None, 4), Node("attn", 1, None, 2)),  # a later position cannot be read
           Edge(Node("attn", 0, None, 2), Node("mlp", 1, None, 4)),  # an MLP reads its own position only
           Edge(Node("attn", 0, None, 8), Node("logits", 2, None, 7))]  # the logits read the last position
    for edge in bad:
        with pytest.raises(ValueError, match="not a position-resolved edge"):
            ablate_many(model, task, [[edge]])
    with pytest.raises(ValueError, match="not a source of position-resolved edges"):
        ablate_many(model, task, [[Edge(Node("resid", 0, None, 2), Node("mlp", 1, None, 2))]])
    with pytest.raises(ValueError, match="mix position-resolved"):
        ablate_many(model, task, [[Edge(Node("attn", 0, None, 2), Node("mlp", 1, None, 2)),
                                   Edge(Node("attn", 0), Node("mlp", 1))]])
    with pytest.raises(ValueError, match="mixes position-resolved edges"):
        faithfulness(model, task, [Edge(Node("attn", 0, None, 2), Node("mlp", 1, None, 2)),
                                   Edge(Node("attn", 0), Node("mlp", 1))])


@pytest.mark.parametrize(("family", "seed"), [("gpt2", 4), ("llama", 5), ("granite", 6)])
def test_pattern_split_equals_hand_written_patching_with_patterns_frozen(family, seed):
    model = tiny(family, seed=seed)
    prompts = prompts_for(model)
    nodes = [("resid", 1, None, 1), ("attn", 0, None, 8), ("head", 1, 2, 8), ("head", 0, 1, None), ("mlp", 0, None, 1),
             ("resid", 0, None, 0)]
    split = pattern_split(model, il_task(model, prompts), [Node(*n) for n in nodes])
    total = patch_reference(model, prompts, nodes)
    frozen = frozen_patch(model, prompts, nodes)
    got = [split.total[Node(*n)] for n in nodes], [split.frozen[Node(*n)] for n in nodes]
    torch.testing.assert_close(torch.tensor(got[0]), torch.tensor(total), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(torch.tensor(got[1]), torch.tensor(frozen), rtol=1e-4, atol=1e-7)
    assert max(abs(t - f) for t, f in zip(total, frozen)) > 1e-4  # freezing the patterns matters here
    assert split.through_patterns[Node(*nodes[2])] == pytest.approx(total[2] - frozen[2], abs=1e-6)
    assert total[-1] == frozen[-1] == 0  # position 0 is the same in every clean and corrupted prompt
    clean = sum(float(model.hf(input_ids=ids_of(model, c)).logits[0, -1, a] - model.hf(input_ids=ids_of(model, c))
                      .logits[0, -1, d]) for c, _, a, d in prompts) / len(prompts)
    assert split.clean_metric == pytest.approx(clean, abs=1e-5)
    frame = split.to_frame()
    assert list(frame.columns) == ["node", "layer", "component", "head", "position", "total", "frozen",
                                   "through_patterns"]
    with pytest.raises(ValueError, match=r"not .*logits"):
        pattern_split(model, il_task(model, prompts), [Node("logits", 2)])


def test_prompt_batches_add_up_to_one_pass():
    model = tiny("llama", seed=6)
    task = il_task(model, prompts_for(model))
    whole = attribute(model, task, method="relp", level="edge", keep=None)
    parts = attribute(model, task, method="relp", level="edge", keep=None, batch_size=2)
    assert whole.clean_metric == pytest.approx(parts.clean_metric) and len(whole.edges()) == len(parts.edges())
    torch.testing.assert_close(parts.edge_scores.to_dense(), whole.edge_scores.to_dense(), rtol=1e-4, atol=1e-7)


def test_attribute_in_parts_runs_position_resolved_edges_in_one_part():
    model = tiny("gpt2", seed=6)
    task = il_task(model, prompts_for(model)[:2])  # one length: summed edges would be split
    assert not task.encode(model).padded
    seen = []
    mine = attribute_in_parts(model, task, "atp", "edge", parts=2, observer=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 1)] and mine.positions
    assert dict(mine.edges()) == pytest.approx(dict(attribute(model, task, "atp", "edge").edges()))
    seen.clear()
    attribute_in_parts(model, task, "atp", "edge", parts=2, positions=False, observer=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
