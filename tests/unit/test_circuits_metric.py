"""The task's metric (logit_diff, prob_diff, logprob, a function) is honoured by every method,
against hand-written references (torch hooks and a hand-written softmax)."""

import pytest
import torch
from circuit_reference import atp_reference, il_task, logit_diff, patch_reference, token_id

import interplab as il
from interplab.circuits import Node, ablate, attribute, faithfulness
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
]


@pytest.fixture(scope="module")
def model(device):
    return tiny("llama", device=device)


@pytest.fixture(scope="module")
def prompts(model):
    return [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]


def _clean_reference(model, prompts, metric):
    with torch.no_grad():
        values = [logit_diff(model, torch.tensor([model.tokenizer(c)["input_ids"]]), a, d, metric)
                  for c, _, a, d in prompts]
    return float(torch.stack(values).mean())


@pytest.mark.parametrize("metric", il.tasks.METRICS)
def test_each_metric_is_the_hand_computation(model, prompts, metric):
    task = il_task(model, prompts, metric)
    assert ablate(model, task, []) == pytest.approx(_clean_reference(model, prompts, metric), abs=1e-5)
    nodes = [("resid", 1, None, 3), ("mlp", 0, None, 8), ("attn", 1, None, 8)]
    att = attribute(model, task, method="patch", progress=False)
    got = [float(att.scores[c][layer, p]) for c, layer, _, p in nodes]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(patch_reference(model, prompts, nodes, metric)),
                               rtol=0, atol=2e-6)
    atp = attribute(model, task, method="atp", progress=False)
    reference = atp_reference(model, prompts, [("mlp", 0), ("attn", 1)], metric=metric)
    torch.testing.assert_close(atp.scores["mlp"][0], reference[("mlp", 0)], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(atp.scores["attn"][1], reference[("attn", 1)], rtol=1e-4, atol=1e-6)


def test_a_metric_function_is_used_everywhere(model, prompts):
    def answer_logit(logits, answer, distractor):
        return logits.gather(1, answer[:, None])[:, 0]

    task = il_task(model, prompts, answer_logit)
    with torch.no_grad():
        logits = [model.hf(input_ids=torch.tensor([model.tokenizer(c)["input_ids"]])).logits[0, -1, a]
                  for c, _, a, _ in prompts]
    expected = float(torch.stack(logits).mean())
    assert ablate(model, task, []) == pytest.approx(expected, abs=1e-5)
    assert task.metric_name == "answer_logit"
    edges = attribute(model, task, method="atp", level="edge", positions=False)
    nodes = attribute(model, task, method="atp", positions=False)
    # a source's outgoing edges sum to its node score (the same metric in both)
    torch.testing.assert_close(edges.scores["mlp"][0], nodes.scores["mlp"][0], rtol=1e-4, atol=1e-5)
    f = faithfulness(model, task, [Node("mlp", 0), Node("attn", 1)], ablation="zero")
    assert f == f  # finite


def test_bad_metrics_are_refused(model, prompts):
    with pytest.raises(ValueError, match="logit_diff, prob_diff, logprob"):
        il_task(model, prompts, "accuracy")

    task = il_task(model, prompts, lambda logits, a, d: logits.sum())
    with pytest.raises(ValueError, match="one value per prompt"):
        ablate(model, task, [])
