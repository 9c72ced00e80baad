"""evaluate: one batched forward for the ablated metric and the circuit, against ablate / faithfulness."""

import math

import pytest
import torch
from circuit_reference import il_task, token_id

from interplab.circuits import Circuit, Node, ablate, attribute, evaluate, faithfulness
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John", "John gave a drink to Mary", " and", " the"),
]


@pytest.fixture(scope="module")
def setup(device):
    model = tiny("gpt2", seed=5, device=device)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    task = il_task(model, prompts)
    return model, task, attribute(model, task, "atp", progress=False)


def test_evaluate_equals_ablate_and_faithfulness(setup):
    model, task, att = setup
    circuit = att.top(6)
    gone = sorted(circuit.units, key=Node.sort_key)[:2]
    e = evaluate(model, task, circuit, ablated=gone, ablation="mean")
    assert e.ablated == pytest.approx(ablate(model, task, gone, "mean"), abs=1e-5)
    rest = Circuit("component", frozenset(circuit.units - set(gone)))
    assert e.faithfulness == pytest.approx(faithfulness(model, task, rest, "mean"), abs=1e-5)
    assert e.full == pytest.approx(ablate(model, task, [], "mean"), abs=1e-5)
    assert (e.size, e.n_ablated, e.total) == (4, 2, 2 * model.anatomy.n_layers * task.encode(model).seq_len)
    # ids work, the cached references give the same numbers
    again = evaluate(model, task, [n.id for n in circuit.units], ablated=[n.id for n in gone], ablation="mean")
    assert (again.ablated, again.circuit, again.faithfulness) == pytest.approx((e.ablated, e.circuit, e.faithfulness))


def test_full_and_empty_circuits(setup):
    model, task, att = setup
    everything = att.top(10**6)
    assert evaluate(model, task, everything, ablation="zero").faithfulness == pytest.approx(1.0, abs=1e-6)
    assert evaluate(model, task, [], level="component", ablation="zero").faithfulness == pytest.approx(0.0, abs=1e-6)


def test_a_constant_metric_has_no_faithfulness(setup):
    model, task, _ = setup
    flat = task.with_metric(lambda logits, answer, distractor: torch.zeros(logits.shape[0]))
    e = evaluate(model, flat, [Node("mlp", 0, None, 2)])
    assert e.full == e.empty == 0.0 and math.isnan(e.faithfulness)


def test_bad_nodes_are_refused(setup):
    model, task, _ = setup
    with pytest.raises(ValueError, match="not a component-level circuit node"):
        evaluate(model, task, [Node("mlp", 0, None, 99)])
    with pytest.raises(ValueError, match="needs level="):
        evaluate(model, task, [])
    with pytest.raises(ValueError, match="unknown ablation"):
        evaluate(model, task, [], level="head", ablation="noise")
