"""Position-resolved edges against a hand-written path derivative (torch hooks and autograd, no nnsight)."""

import pytest
import torch
from circuit_reference import il_task, token_id
from position_reference import ablated_metric, path_edges

from interplab.circuits import ablate_many, attribute
from interplab.circuits.ablation import all_units
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("the cat sat on the mat", "the dog sat on the mat", " and", " is"),  # shorter: left-padded
]


def prompts_for(model):
    return [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "gemma2"])
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


@pytest.mark.parametrize(("family", "ablation"), [("gpt2", "corrupt"), ("llama", "zero"), ("gemma2", "zero")])
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
