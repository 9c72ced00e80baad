"""verify: exact patching of chosen nodes equals the hand-written patching loop, beside the estimate."""

import pytest
import torch
from circuit_reference import il_task, patch_reference, token_id

from interplab.circuits import Circuit, Node, attribute, verify
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
]


@pytest.fixture(scope="module")
def setup(device):
    model = tiny("gpt2", device=device)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    return model, prompts, il_task(model, prompts)


def test_verify_equals_the_patching_loop(setup):
    model, prompts, task = setup
    nodes = [Node("head", 1, 2, 8), Node("mlp", 0, None, 3), Node("resid", 1, None, 8), Node("attn", 0)]
    v = verify(model, task, nodes, progress=False)
    expected = patch_reference(model, prompts, [(n.component, n.layer, n.head, n.position) for n in nodes])
    got = [v.exact[n] for n in nodes]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=2e-5)
    assert v.estimate is None and list(v.to_frame()["node"]) == [n.id for n in sorted(nodes, key=Node.sort_key)]


def test_verify_the_top_k_of_an_attribution(setup):
    model, prompts, task = setup
    att = attribute(model, task, method="atp", level="head", progress=False)
    v = verify(model, task, 5, estimate=att, progress=False)
    top = att.top(5)
    assert set(v.nodes) == set(top.units)
    scores = dict(att.node_scores())
    assert all(v.estimate[n] == scores[n] for n in v.nodes)
    expected = patch_reference(model, prompts, [(n.component, n.layer, n.head, n.position) for n in v.nodes])
    torch.testing.assert_close(torch.tensor([v.exact[n] for n in v.nodes]), torch.tensor(expected), rtol=0, atol=2e-5)
    frame = v.to_frame()
    assert list(frame.columns) == ["node", "layer", "component", "head", "position", "estimate", "exact"]
    # ids and circuits are accepted too
    again = verify(model, task, Circuit("head", frozenset(v.nodes)), progress=False)
    assert again.exact == v.exact
    assert verify(model, task, [n.id for n in v.nodes], progress=False).exact == v.exact


def test_verify_errors_say_what_to_pass(setup):
    model, _, task = setup
    with pytest.raises(ValueError, match="estimate=att"):
        verify(model, task, 3)
    with pytest.raises(ValueError, match="no nodes"):
        verify(model, task, [])
    with pytest.raises(ValueError, match="position 40 is outside"):
        verify(model, task, [Node("mlp", 0, None, 40)], progress=False)
    with pytest.raises(ValueError, match="not a node id"):
        verify(model, task, ["mlp-0"])
