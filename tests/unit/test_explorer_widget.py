"""CircuitExplorer without a browser: buffers, chunked attribution, circuit and ablation traits,
the metric against hand-written hooks, commands, errors, export."""

import json

import numpy as np
import pytest
import torch
import traitlets
from circuit_reference import hooked, ids_of, il_task, logit_diff, site_module, token_id
from widget_channel import Browser

import interplab as il
from interplab.circuits import Node, attribute, faithfulness
from interplab.circuits.nodes import node_from_id
from interplab.circuits.position_edges import position_edge_units
from interplab.widgets import explorer as explorer_module
from interplab.widgets.codecs import decode_array
from interplab.zoo.tiny import tiny

# equal lengths (one token per word in the tiny vocabulary), so attribution runs in chunks
TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("a dog was in the store , it was", "a cat was in the store , it was", " on", " in"),
    ("the dog sat in the store and the cat", "the cat sat in the store and the dog", " sat", " is"),
]


def tiny_task(device):
    """A tiny GPT-2, the prompts as (clean, corrupt, answer id, distractor id), and the task."""
    model = tiny("gpt2", seed=4, device=device)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    return model, prompts, il_task(model, prompts)


@pytest.fixture(scope="module")
def setup(device):
    return tiny_task(device)


@pytest.fixture
def explorer(setup):
    model, _, task = setup
    return il.CircuitExplorer(model, task, "atp", top_k=5)


def test_nodes_and_scores_travel_as_typed_buffers(explorer, setup):
    model, _, task = setup
    a = model.anatomy
    seq = task.encode(model).seq_len
    nodes = explorer._nodes
    component = decode_array(nodes["component"])
    assert component.dtype == np.uint8 and decode_array(nodes["position"]).dtype == np.int32
    # resid, attn, mlp at every layer and position
    assert len(component) == 3 * a.n_layers * seq
    names = [nodes["components"][c] for c in component]
    assert names.count("resid") == names.count("attn") == names.count("mlp") == a.n_layers * seq
    assert list(decode_array(nodes["position"])[:seq]) == list(range(seq))  # positions innermost
    assert isinstance(explorer._scores["atp"]["data"], bytes)


def test_chunked_scores_equal_one_pass_of_the_engine(setup):
    model, _, task = setup
    assert not task.encode(model).padded  # the chunked path runs
    progress = []
    ex = il.CircuitExplorer(model, task, method="relp")
    ex.observe(lambda c: progress.append(c["new"]), names="progress")
    ex.compute("patch", show=False)
    for method in ("relp", "patch"):
        reference = attribute(model, task, method, progress=False).to_frame()
        mine = decode_array(ex._scores[method])
        frame = reference.set_index(["layer", "component", "position"])["score"]
        expected = [frame[(n.layer, n.component, n.position)] for n in ex.nodes]
        np.testing.assert_allclose(mine, expected, rtol=1e-4, atol=1e-5)
    # one step per chunk of prompts (4 prompts: 4 chunks) and one for the AtP edges patching borrows
    steps = [p for p in progress if p]
    assert steps[-1]["done"] == steps[-1]["total"] == 5 and steps[0]["label"].startswith("patch")
    assert progress[-1] is None
    assert ex.method == "relp"  # show=False leaves the graph as it was


def test_keep_takes_the_top_k_by_absolute_score(explorer):
    scores = explorer.scores()
    circuit_nodes = [i for i, n in enumerate(explorer.nodes) if n.component in ("attn", "mlp")]
    order = sorted(circuit_nodes, key=lambda i: -abs(scores[i]))
    explorer.keep(7)
    assert set(explorer.circuit) == {explorer.nodes[i].id for i in order[:7]}
    assert explorer.top_k == 7 and explorer.metric["size"] == 7


def ablated_metric(model, prompts, component, layer, position, ablation):
    """Mean logit difference on the clean prompts with one site ablated at one position (hooks):
    "mean" puts the site's mean over the clean prompts there, "corrupt" each prompt's corrupted value."""
    module, reads_input = site_module(model, component, layer)
    seen = []
    with hooked(module, reads_input, lambda t: seen.append(t.detach().clone())), torch.no_grad():
        for clean, corrupt, *_ in prompts:
            model.hf(input_ids=ids_of(model, corrupt if ablation == "corrupt" else clean))
    values = seen if ablation == "corrupt" else [torch.cat(seen).mean(0, keepdim=True)] * len(prompts)

    total = 0.0
    for (clean, _, answer, distractor), value in zip(prompts, values):
        def put(t, value=value):
            t = t.clone()
            t[0, position] = value[0, position]
            return t

        with hooked(module, reads_input, put), torch.no_grad():
            total += float(logit_diff(model, ids_of(model, clean), answer, distractor))
    return total / len(prompts)


def test_a_click_ablates_a_node_and_the_metric_follows_by_hand(explorer, setup):
    model, prompts, task = setup
    browser = Browser(explorer)
    node = Node("mlp", 1, None, task.encode(model).seq_len - 1)
    assert explorer.ablation == "corrupt"  # the default: the counterfactual the methods score
    response, _ = browser.invoke("_toggle", {"node": node.id})
    assert response["result"]["ablated"] is True and explorer.ablated == [node.id]
    expected = ablated_metric(model, prompts, "mlp", 1, node.position, "corrupt")
    assert explorer.metric["ablated"] == pytest.approx(expected, abs=1e-4)
    assert response["result"]["metric"]["ablated"] == pytest.approx(expected, abs=1e-4)
    # the circuit's faithfulness, as the engine computes it for the kept nodes minus the ablated one
    circuit = explorer.as_circuit()
    assert node not in circuit
    assert explorer.metric["faithfulness"] == pytest.approx(faithfulness(model, task, circuit, "corrupt"), abs=1e-5)
    # the ablation menu: mean ablation, by hand too
    explorer.ablation = "mean"
    mean = ablated_metric(model, prompts, "mlp", 1, node.position, "mean")
    assert explorer.metric["ablated"] == pytest.approx(mean, abs=1e-4) and abs(mean - expected) > 1e-3
    # a second click restores it
    response, _ = browser.invoke("_toggle", {"node": node.id})
    assert response["result"]["ablated"] is False and explorer.ablated == []
    clean_metric = np.mean([float(logit_diff(model, ids_of(model, c), a, d)) for c, _, a, d in prompts])
    assert explorer.metric["ablated"] == pytest.approx(clean_metric, abs=1e-4)


def test_full_and_empty_circuits_have_faithfulness_one_and_zero(explorer):
    explorer.keep(explorer.metric["total"])
    assert explorer.metric["faithfulness"] == pytest.approx(1.0, abs=1e-6)
    explorer.keep(0)
    assert explorer.metric["faithfulness"] == pytest.approx(0.0, abs=1e-6)


def test_circuit_set_from_the_browser_is_checked_and_read_back(explorer, setup):
    model, _, task = setup
    last = task.encode(model).seq_len - 1
    explorer.set_state({"circuit": [f"attn.0@{last}", f"mlp.1@{last}"]})  # what a synced change does
    assert explorer.circuit == [f"attn.0@{last}", f"mlp.1@{last}"]
    assert explorer.metric["size"] == 2
    for bad, says in ((["resid.0@1"], "read-only"), (["attn.9@0"], "layers 0.."), (["attn.0@99"], "positions"),
                      (["nonsense"], "not a node id")):
        with pytest.raises(traitlets.TraitError, match=says):
            explorer.circuit = bad
    assert explorer.circuit == [f"attn.0@{last}", f"mlp.1@{last}"]


def test_errors_reach_the_banner_and_the_widget_stays_usable(explorer):
    browser = Browser(explorer)
    response, _ = browser.invoke("_toggle", {"node": "resid.0@0"})
    assert "read-only" in response["error"]["message"] and explorer.error["command"] == "_toggle"
    response, _ = browser.invoke("_compute", {"method": "magic"})
    assert "method must be one of patch, atp, relp, ig" in response["error"]["message"]
    response, _ = browser.invoke("_toggle", {"node": explorer.circuit[0]})
    assert response["result"]["ablated"] is True


def test_method_switch_recomputes_and_keeps_k(explorer):
    explorer.keep(4)
    explorer.compute("relp")
    assert explorer.method == "relp" and set(explorer._scores) == {"atp", "relp"}
    relp = explorer.scores("relp")
    top = sorted((i for i, n in enumerate(explorer.nodes) if n.component != "resid"), key=lambda i: -abs(relp[i]))[:4]
    assert set(explorer.circuit) == {explorer.nodes[i].id for i in top}
    assert explorer._edges["method"] == "relp"
    with pytest.raises(traitlets.TraitError, match=r"call explorer.compute\('patch'\)"):
        explorer.method = "patch"


def test_correlation_is_pearson_of_the_engines_frames(explorer, setup):
    model, _, task = setup
    explorer.compute("relp", show=False)
    a = attribute(model, task, "atp").to_frame()["score"].to_numpy()
    b = attribute(model, task, "relp").to_frame()["score"].to_numpy()
    assert explorer.correlation("atp", "relp") == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-4)


def test_edges_are_position_resolved_and_those_of_the_engine(explorer, setup):
    model, _, task = setup
    # independently: every non-zero position-resolved AtP edge, from the engine's frame
    frame = attribute(model, task, "atp", "edge", positions=True, keep=None).to_frame()
    frame = frame[frame["score"] != 0]
    expected = {(f"{r.source_component}.{r.source_layer}@{r.source_position}",
                 f"{r.target_component}.{r.target_layer}@{r.target_position}"): r.score for r in frame.itertuples()}
    assert 0 < len(expected) <= explorer_module.MAX_EDGES
    edges = explorer._edges
    assert edges["method"] == "atp" and edges["positions"] is True and edges["mass"] == pytest.approx(1.0)
    a, seq = model.anatomy, task.encode(model).seq_len
    assert edges["count"] == len(position_edge_units(model, seq))  # every edge scored, zero or not
    ends, scores = edges["ends"], decode_array(edges["score"])
    sent = {(ends[s], ends[t]): v for s, t, v in zip(decode_array(edges["source"]), decode_array(edges["target"]),
                                                     scores)}
    assert sent.keys() == expected.keys()
    assert all(sent[k] == pytest.approx(expected[k], rel=1e-4, abs=1e-7) for k in expected)
    # an edge joins nodes at positions, never later to earlier; its ends are graph nodes, embed or logits
    graph = {n.id for n in explorer.nodes}
    for source, target in sent:
        s, t = node_from_id(source), node_from_id(target)
        assert s.position <= t.position and s.layer <= t.layer
        assert source in graph or s.component == "embed"
        assert target in graph or target == f"logits.{a.n_layers}@{seq - 1}"
    # ranked by |score| (the browser draws the first top_edges), with the cumulative share of |score|
    assert np.all(np.diff(np.abs(scores)) <= 0)
    by_hand = sorted((abs(v) for v in expected.values()), reverse=True)
    np.testing.assert_allclose(decode_array(edges["cumulative"]), np.cumsum(by_hand) / sum(by_hand), rtol=1e-4)


def test_only_the_strongest_edges_are_sent(setup, monkeypatch):
    model, _, task = setup
    monkeypatch.setattr(explorer_module, "MAX_EDGES", 7)
    ex = il.CircuitExplorer(model, task, "atp", top_k=5)
    every = sorted((abs(s) for _, s in attribute(model, task, "atp", "edge", keep=None).edges()), reverse=True)
    scores = decode_array(ex._edges["score"])
    np.testing.assert_allclose(np.abs(scores), every[:7], rtol=1e-4)
    assert ex._edges["mass"] == pytest.approx(sum(every[:7]) / sum(every), rel=1e-4)


def test_to_json_holds_graph_circuit_ablations_and_metric(explorer):
    explorer.toggle(explorer.circuit[0])
    data = json.loads(explorer.to_json())
    assert len(data["nodes"]) == len(explorer.nodes) and data["view"]["circuit"] == explorer.circuit
    assert data["view"]["ablated"] == explorer.ablated and data["metric"]["n_ablated"] == 1
    node = data["nodes"][0]
    assert node["token"] == explorer.labels[node["position"]] and "atp" in node["scores"]


def test_attributions_given_are_reused_and_checked(setup):
    model, _, task = setup
    atp = attribute(model, task, "atp")
    ex = il.CircuitExplorer(model, task, attributions=[atp])
    assert ex.attributions["atp"] is atp
    with pytest.raises(ValueError, match="positions=True"):
        il.CircuitExplorer(model, task, attributions=[attribute(model, task, "atp", positions=False)])
    with pytest.raises(ValueError, match="head-level"):
        il.CircuitExplorer(model, task, attributions=[attribute(model, task, "atp", "head")])
    with pytest.raises(ValueError, match="level must be one of"):
        il.CircuitExplorer(model, task, level="edge")
    with pytest.raises(TypeError, match="ContrastTask"):
        il.CircuitExplorer(model, ["not a task"])
    with pytest.raises(ValueError, match="ablation must be one of"):
        il.CircuitExplorer(model, task, ablation="noise")


def test_head_level_nodes(setup):
    model, _, task = setup
    ex = il.CircuitExplorer(model, task, level="head", top_k=3)
    a = model.anatomy
    seq = task.encode(model).seq_len
    assert len(ex.nodes) == a.n_layers * (a.n_heads + 1) * seq
    assert sum(n.component == "head" for n in ex.nodes) == a.n_layers * a.n_heads * seq
    assert len(ex.circuit) == 3 and all(c.startswith(("head.", "mlp.")) for c in ex.circuit)
    # integrated gradients has no position-resolved edges: the explorer draws RelP's, heads as targets
    assert ex.edge_method() == "relp" and ex._edges["label"] == "RelP"
    reference = attribute(model, task, "relp", "edge", heads=True, keep=None).edges()
    assert {e.id: s for e, s in ex.edges()} == pytest.approx({e.id: s for e, s in reference if s != 0}, rel=1e-4)
    assert any(e.target.component == "head" for e, _ in ex.edges())
