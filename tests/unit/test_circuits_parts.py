"""attribute_in_parts: parts of the prompts combined equal one pass, padded tasks included."""

import pytest
import torch
from circuit_reference import il_task, token_id

from interplab.circuits import attribute, attribute_in_parts
from interplab.circuits.parts import split
from interplab.zoo.tiny import tiny

# three lengths: parts have narrower windows than the task
TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John", "John gave a drink to Mary", " and", " the"),
    ("a dog was in the store , it was", "a cat was in the store , it was", " on", " in"),
    ("the dog sat in the store", "the cat sat in the store", " and", " is"),
]


@pytest.fixture(scope="module")
def setup(device):
    model = tiny("gpt2", seed=6, device=device)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    return model, il_task(model, prompts)


@pytest.mark.parametrize(("method", "level"), [("atp", "component"), ("relp", "head"), ("patch", "component")])
def test_parts_equal_one_pass(setup, method, level):
    model, task = setup
    assert task.encode(model).padded
    seen = []
    mine = attribute_in_parts(model, task, method, level, parts=3, observer=lambda d, t: seen.append((d, t)))
    whole = attribute(model, task, method, level, progress=False)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for c in whole.scores:
        torch.testing.assert_close(mine.scores[c], whole.scores[c], rtol=1e-4, atol=2e-5)
    assert mine.clean_metric == pytest.approx(whole.clean_metric, abs=1e-5)
    assert mine.corrupt_metric == pytest.approx(whole.corrupt_metric, abs=1e-5)
    assert mine.labels == whole.labels


def test_edges_of_a_padded_task_run_in_one_part(setup):
    model, task = setup
    seen = []
    mine = attribute_in_parts(model, task, "atp", "edge", parts=4, observer=lambda d, t: seen.append((d, t)))
    whole = attribute(model, task, "atp", "edge", progress=False)
    assert seen == [(1, 1)]
    torch.testing.assert_close(mine.edge_scores, whole.edge_scores, equal_nan=True)


def test_split_covers_every_prompt_once():
    assert split(10, 4) == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert split(2, 4) == [[0], [1]]
    with pytest.raises(ValueError, match="at least 1"):
        split(3, 0)
