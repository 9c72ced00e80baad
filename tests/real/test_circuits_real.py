"""Circuit methods on the real models, against activation patching computed here (il.circuits.verify,
which the unit tests check against a hand-written patching loop). Few prompts, few patched nodes.

What they guard (measured in full by bench/real_models.py): on IOI with the repeated name replaced
by a third name, patching the residual stream at that name recovers most of the logit difference
through the early layers; AtP misses it (attention saturation), integrated gradients do not; and
IG's largest node scores agree with patching at the head level and on factual recall.
"""

import pytest
import torch

import interplab as il
from interplab.circuits import Node, attribute, verify


def pearson(a: list[float], b: list[float]) -> float:
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


@pytest.fixture(scope="module")
def ioi(real_model):
    return il.tasks.ioi(real_model, n=4, seed=0, corruption="third")


def test_ig_finds_the_residual_effect_at_the_repeated_name_that_atp_misses(real_model, ioi):
    enc = ioi.encode(real_model)
    repeated = enc.first_difference  # the only position where clean and corrupt differ
    assert (enc.clean_ids != enc.corrupt_ids).any(0).nonzero()[:, 0].tolist() == [repeated]
    nodes = [Node("resid", layer, None, repeated) for layer in (0, real_model.anatomy.n_layers // 4)]
    exact = verify(real_model, ioi, nodes, progress=False)
    ig = dict(attribute(real_model, ioi, method="ig").node_scores(["resid"]))
    atp = dict(attribute(real_model, ioi, method="atp").node_scores(["resid"]))
    total = exact.clean_metric - exact.corrupt_metric
    for node in nodes:
        assert exact.exact[node] > 0.75 * total > 3  # the whole effect flows through this one state
        assert abs(ig[node] - exact.exact[node]) < 0.3 * exact.exact[node], node
        assert atp[node] < 0.5 * exact.exact[node], node  # saturated attention: the gradient misses it
    # nodes before the first difference are exactly zero by causality, for patching and for IG
    early = [Node("resid", 3, None, repeated - 1), Node("mlp", 0, None, 0)]
    assert all(v == 0.0 for v in verify(real_model, ioi, early, progress=False).exact.values())
    assert all(abs(ig[n]) < 1e-6 for n in early if n.component == "resid")


def test_ig_top_heads_agree_with_patching(real_model, ioi):
    heads = attribute(real_model, ioi, method="ig", level="head")
    v = verify(real_model, ioi, 12, estimate=heads, progress=False)
    estimate, exact = [v.estimate[n] for n in v.nodes], [v.exact[n] for n in v.nodes]
    assert pearson(estimate, exact) > 0.9
    big = [n for n in v.nodes if abs(v.exact[n]) > 0.5]
    assert len(big) >= 6 and all((v.estimate[n] > 0) == (v.exact[n] > 0) for n in big)


def test_ig_top_nodes_agree_with_patching_on_factual_recall(real_model):
    task = il.tasks.landmarks(real_model, n=4, seed=0)
    att = attribute(real_model, task, method="ig")
    v = verify(real_model, task, 12, estimate=att, progress=False)
    assert v.clean_metric > 3 and v.corrupt_metric < -3  # the model knows these landmarks
    assert pearson([v.estimate[n] for n in v.nodes], [v.exact[n] for n in v.nodes]) > 0.9


def test_landmark_pairs_line_up_and_swap_the_city(real_model):
    from interplab.tasks.landmarks import LANDMARKS, TEMPLATE

    city = dict(LANDMARKS)
    task = il.tasks.landmarks(real_model, n=16, seed=0)
    enc = task.encode(real_model)  # equal token lengths per pair, or TaskError
    subjects = {TEMPLATE.format(s): s for s in city}
    for clean, corrupt, answer, distractor in zip(task.clean, task.corrupt, task.answer, task.distractor):
        assert answer == " " + city[subjects[clean]] and distractor == " " + city[subjects[corrupt]]
        assert answer != distractor
    assert len(set(zip(task.clean, task.corrupt))) == 16 and enc.first_difference >= 1
    assert task.clean != il.tasks.landmarks(real_model, n=16, seed=1).clean
    with pytest.raises(il.tasks.TaskError, match="ask for n <="):
        il.tasks.landmarks(real_model, n=10_000)


def test_relp_rules_in_the_trace_match_the_hook_implementation_and_run_remotely(real_model, ioi):
    """RelP's rules as interventions inside the trace give the previous implementation's scores
    (torch hooks with hand-written autograd functions around AtP's pass), and the same scores
    through nnsight's serialising backend (remote='local')."""
    from tests.unit.lrp_reference import rules as reference_rules

    att = attribute(real_model, ioi, method="relp")
    with reference_rules(real_model):
        expected = attribute(real_model, ioi, method="atp")
    remote = il.load(real_model.hf, tokenizer=real_model.tokenizer, remote="local")
    there = attribute(remote, ioi, method="relp")
    for component in att.scores:
        scale = float(expected.scores[component].abs().max())
        torch.testing.assert_close(att.scores[component], expected.scores[component], rtol=0, atol=1e-5 * scale)
        torch.testing.assert_close(there.scores[component], att.scores[component], rtol=0, atol=0)
