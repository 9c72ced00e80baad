"""Interventions on the real models (padded IOI prompts, grouped-query attention, Gemma's post-norms):
patching one node alone is its exact score (two separate code paths), scaling by 1 changes nothing,
scaling by 0 is zero-ablating, and the continuation before any change is the model's own."""

import pytest
import torch

import interplab as il
from interplab.circuits import Node


@pytest.fixture(scope="module")
def task(real_model):
    return il.tasks.ioi(real_model, n=4, seed=0)


def test_patching_a_node_is_its_exact_score(real_model, task):
    last = task.encode(real_model).seq_len - 1
    node = Node("head", real_model.anatomy.n_layers - 2, 0, last)
    r = il.circuits.intervene(real_model, task, [node], "patch")
    exact = il.circuits.verify(real_model, task, [node], progress=False).exact[node]
    assert float(r.effect.mean()) == pytest.approx(exact, abs=1e-3)


def test_scaling_by_one_and_by_zero(real_model, task):
    nodes = [Node("mlp", 1, None, task.encode(real_model).seq_len - 1), Node("attn", 2)]
    same = il.circuits.intervene(real_model, task, nodes, "scale", factor=1.0)
    torch.testing.assert_close(same.after, same.before, rtol=0, atol=1e-3)
    zero = il.circuits.intervene(real_model, task, nodes, "zero")
    scaled = il.circuits.intervene(real_model, task, nodes, "scale", factor=0.0)
    torch.testing.assert_close(scaled.after, zero.after, rtol=0, atol=1e-3)


def test_the_continuation_before_is_the_models_own(real_model, task):
    g = il.circuits.generate_with(real_model, task, [Node("mlp", 0)], "zero", prompt=1, max_new_tokens=3)
    ids = torch.tensor([real_model.tokenizer(task.clean[1])["input_ids"]], device=real_model.device)
    with torch.no_grad():
        for _ in range(3):
            ids = torch.cat([ids, real_model.hf(input_ids=ids).logits[0, -1].argmax().view(1, 1)], dim=1)
    assert g.before == real_model.tokenizer.decode(ids[0, -3:].tolist())
