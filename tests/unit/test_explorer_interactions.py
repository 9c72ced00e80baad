"""CircuitExplorer's interactions from Python and through its commands: rankings sent to the browser,
pins and the subgraph, groups and suggestions, verification, interventions, the per-prompt
breakdown, the JSON document (schema, round trip), non-finite metrics, kernel-owned traits, freeing."""

import json
import math

import jsonschema
import numpy as np
import pytest
import torch
import traitlets
from circuit_reference import ids_of, il_task, logit_diff, patch_reference, token_id
from test_explorer_widget import ablated_metric, tiny_task
from widget_channel import Browser, assert_freed_after_close

import interplab as il
from interplab import circuits
from interplab.widgets import explorer_document
from interplab.widgets.codecs import decode_array
from interplab.zoo.tiny import tiny


@pytest.fixture(scope="module")
def setup(device):
    return tiny_task(device)


@pytest.fixture
def explorer(setup):
    return il.CircuitExplorer(setup[0], setup[2], "atp", top_k=6)


def test_rankings_and_choices_come_from_python(explorer):
    ranked = [n.id for n, _ in explorer.attribution.ranking()]
    order = decode_array(explorer._orders["atp"]["order"])
    assert [explorer.nodes[i].id for i in order] == ranked
    share = np.abs([s for _, s in explorer.attribution.ranking()])
    np.testing.assert_allclose(decode_array(explorer._orders["atp"]["cumulative"]), np.cumsum(share) / share.sum(),
                               rtol=1e-5)
    vocab = explorer._vocab
    assert [m for m, _ in vocab["methods"]] == list(circuits.METHODS)
    assert [m for m, _ in vocab["interventions"]] == list(circuits.INTERVENTIONS)
    assert vocab["metric"]["name"] == "logit_diff" and vocab["circuit_components"] == ["attn", "mlp"]


def test_keep_share_is_the_cumulative_influence(explorer):
    share = np.abs([s for _, s in explorer.attribution.ranking()])
    cumulative = np.cumsum(share) / share.sum()
    expected = int(np.argmax(cumulative >= 0.8)) + 1
    explorer.keep_share(0.8)
    assert explorer.top_k == expected and len(explorer.circuit) == expected


def test_pins_and_the_subgraph(explorer, setup):
    model, _, task = setup
    last = task.encode(model).seq_len - 1
    listed = {(e.source.id, e.target.id): s for e, s in explorer.edges()}
    # a position-resolved edge between two graph nodes at different positions
    source, target = next((a, b) for a, b in listed if not a.startswith("embed") and not b.startswith("logits")
                          and a.split("@")[1] != b.split("@")[1])
    explorer.pin([target, source])
    explorer.pin(circuits.Node("resid", 1, None, 2))
    pinned = {source, target, "resid.1@2"}
    assert explorer.pinned == sorted(pinned, key=lambda i: circuits.nodes.node_from_id(i).sort_key())  # forward order
    sub = explorer.subgraph()
    assert [n["id"] for n in sub["nodes"]] == explorer.pinned
    scores = dict(zip((n.id for n in explorer.nodes), explorer.scores()))
    assert sub["nodes"][0]["score"] == pytest.approx(scores[explorer.pinned[0]])
    # the edges among the pinned nodes, by hand; each joins the two nodes at their positions
    among = {pair: s for pair, s in listed.items() if set(pair) <= pinned}
    assert {(e["source"], e["target"]): e["score"] for e in sub["edges"]} == pytest.approx(among)
    assert (source, target) in among
    explorer.unpin(source)
    assert explorer.subgraph()["edges"] == []
    with pytest.raises(traitlets.TraitError, match="not a node of the component-level graph"):
        explorer.pin("head.0.1@2")
    explorer.set_state({"pinned": [f"mlp.0@{last}"]})  # a ctrl-click in the browser
    assert explorer.pinned == [f"mlp.0@{last}"]


def test_head_level_subgraph_edges_leave_the_heads_layer_at_their_position(setup):
    model, _, task = setup
    ex = il.CircuitExplorer(model, task, "atp", level="head", top_k=5)
    edges = {(e.source.id, e.target.id): s for e, s in ex.edges()}
    # an edge from layer 0's attention at p (its heads' summed writes) into a head of layer 1 at q
    source, target = next((a, b) for a, b in edges if a.startswith("attn.0@") and b.startswith("head.1."))
    p = source.split("@")[1]
    ex.pin([f"head.0.2@{p}", target])
    ends = (f"attn.0@{p}", f"head.0.2@{p}", target)
    by_hand = {(a, b): s for (a, b), s in edges.items() if a in ends and b in ends}
    assert (source, target) in by_hand
    assert {(e["source"], e["target"]): e["score"] for e in ex.subgraph()["edges"]} == pytest.approx(by_hand)


def test_groups_are_checked_and_sum_their_scores(explorer):
    a, b, c = (n.id for n in explorer.attribution.top(3))
    explorer.pin([a, b])
    explorer.group("pair")
    assert explorer.groups == {"pair": sorted([a, b], key=lambda i: circuits.nodes.node_from_id(i).sort_key())}
    scores = dict(zip((n.id for n in explorer.nodes), explorer.scores()))
    assert explorer.subgraph()["groups"]["pair"]["score"] == pytest.approx(scores[a] + scores[b], rel=1e-5)
    with pytest.raises(traitlets.TraitError, match="is in group 'pair' already"):
        explorer.group("other", [a, c])
    with pytest.raises(traitlets.TraitError, match="at least two nodes"):
        explorer.group("one", [c])
    with pytest.raises(traitlets.TraitError, match="printable text"):
        explorer.group("", [c, a])
    explorer.ungroup("pair")
    assert explorer.groups == {}


def test_suggested_groups_have_similar_edges_and_can_be_accepted_or_rejected(explorer):
    explorer.keep(12)
    found = explorer.suggest_groups(0.75)
    assert found, "the circuit's nodes share components, so some profiles are alike"
    edges = explorer.edges()
    ends = list(dict.fromkeys(n for e, _ in edges for n in e))

    def profile(node_id):  # position-resolved edges into and out of the node itself, by other end
        mine = circuits.nodes.node_from_id(node_id)
        into = [sum(s for e, s in edges if e.target == mine and e.source == v) for v in ends]
        out = [sum(s for e, s in edges if e.source == mine and e.target == v) for v in ends]
        return np.array(into + out)

    for suggestion in found:
        vectors = [profile(i) for i in suggestion["nodes"]]
        for x in vectors:
            for y in vectors:
                assert x @ y / (np.linalg.norm(x) * np.linalg.norm(y)) >= 0.75 - 1e-9
    first = found[0]["nodes"]
    explorer.accept(0, name="alike")
    assert explorer.groups["alike"] == first and len(explorer.suggestions) == len(found) - 1
    if explorer.suggestions:
        explorer.reject(0)
        assert len(explorer.suggestions) == len(found) - 2
    with pytest.raises(IndexError, match="no suggestion 99"):
        explorer.reject(99)


def test_verify_is_exact_patching(explorer, setup):
    model, prompts, _ = setup
    nodes = [n.id for n in explorer.attribution.top(2)]
    explorer.pin(nodes)
    exact = explorer.verify()
    expected = patch_reference(model, prompts, [(n.component, n.layer, n.head, n.position)
                                                for n in map(circuits.nodes.node_from_id, nodes)])
    assert [exact[i] for i in nodes] == pytest.approx(expected, abs=2e-5)
    scores = dict(zip((n.id for n in explorer.nodes), explorer.scores()))
    assert explorer.verified[nodes[0]]["estimate"] == pytest.approx(scores[nodes[0]])
    assert explorer.verified[nodes[0]]["method"] == "atp"
    explorer.unpin()
    with pytest.raises(ValueError, match="no nodes to verify: pin some"):
        explorer.verify()


def test_verify_splits_each_effect_at_the_attention_patterns(explorer, setup):
    model, _, task = setup
    last = task.encode(model).seq_len - 1
    top_mlp = circuits.Node("mlp", model.anatomy.n_layers - 1, None, last)  # no attention reads it later
    early_attn = circuits.Node("attn", 0, None, last)
    explorer.verify([top_mlp, early_attn])
    mlp, attn = explorer.verified[top_mlp.id], explorer.verified[early_attn.id]
    # by hand: freezing the patterns of later layers changes nothing for the last MLP
    assert mlp["frozen"] == pytest.approx(mlp["exact"], abs=1e-6)
    assert mlp["through_patterns"] == pytest.approx(0, abs=1e-6)
    split = circuits.pattern_split(model, task, [early_attn], progress=False)
    assert attn["frozen"] == pytest.approx(split.frozen[early_attn], abs=1e-6)
    assert attn["frozen"] + attn["through_patterns"] == pytest.approx(attn["exact"], abs=1e-6)
    assert abs(attn["through_patterns"]) > 1e-6  # layer 0's output at the last position moves later queries
    jsonschema.validate(json.loads(explorer.to_json()), explorer_document.schema())
    # without the split (as on a remote model): the exact score alone
    explorer.verify([early_attn], split=False)
    assert set(explorer.verified[early_attn.id]) == {"exact", "estimate", "method"}


def test_intervene_measures_by_hand(explorer, setup):
    model, prompts, task = setup
    node = circuits.Node("mlp", 1, None, task.encode(model).seq_len - 1)
    explorer.pin([node])
    result = explorer.intervene("mean", generate=3)
    clean = np.mean([float(logit_diff(model, ids_of(model, c), a, d)) for c, _, a, d in prompts])
    assert result["before"] == pytest.approx(clean, abs=1e-4)
    assert result["after"] == pytest.approx(ablated_metric(model, prompts, "mlp", 1, node.position, "mean"), abs=1e-4)
    assert explorer.intervention["nodes"] == [node.id] and len(explorer.intervention["per_prompt"]["after"]) == 4
    generation = explorer.intervention["generation"]
    ids = ids_of(model, prompts[0][0])
    with torch.no_grad():
        for _ in range(3):
            ids = torch.cat([ids, model.hf(input_ids=ids).logits[0, -1].argmax().view(1, 1)], dim=1)
    assert generation["prompt"] == prompts[0][0] and generation["before"] == model.tokenizer.decode(ids[0, -3:])
    with pytest.raises(ValueError, match="pass factor="):
        explorer.intervene("scale")


def test_per_prompt_breakdown_is_patching_one_prompt_at_a_time(explorer, setup):
    model, prompts, _ = setup
    node = explorer.attribution.top(1)
    (node,) = node.units
    b = explorer.per_prompt(node)
    expected = [patch_reference(model, [p], [(node.component, node.layer, node.head, node.position)])[0]
                for p in prompts]  # the prompts share one length here, so the window is each prompt's own
    assert b["effect"] == pytest.approx(expected, abs=2e-5)
    assert b["exact"] == pytest.approx(np.mean(expected), abs=2e-5) and b["prompts"] == [c for c, *_ in prompts]


def test_commands_answer_and_a_success_clears_the_banner(explorer):
    browser = Browser(explorer)
    response, _ = browser.invoke("_verify", {})
    assert "no nodes to verify" in response["error"]["message"] and explorer.error is not None
    top = [n.id for n in explorer.attribution.top(2)]
    explorer.pin(top)
    response, _ = browser.invoke("_verify", {})
    assert set(response["result"]["exact"]) == set(top) and explorer.error is None
    response, _ = browser.invoke("_intervene", {"mode": "scale", "factor": 0.5})
    assert response["result"]["intervention"]["factor"] == 0.5
    response, _ = browser.invoke("_per_prompt", {"node": top[0]})
    assert response["result"]["breakdown"]["node"] == top[0]
    response, _ = browser.invoke("_suggest", {"threshold": 0.9})
    assert isinstance(response["result"]["suggestions"], list)
    response, _ = browser.invoke("_intervene", {"mode": "melt"})
    assert "unknown intervention 'melt'" in response["error"]["message"]


def test_the_document_follows_its_schema_and_restores_the_view(explorer, setup, monkeypatch):
    model, _, task = setup
    explorer.compute("relp", show=False)
    explorer.pin([n.id for n in explorer.attribution.top(3)])
    explorer.group("g", explorer.pinned[:2])
    explorer.toggle(explorer.circuit[-1])
    explorer.verify(explorer.pinned[:1])
    explorer.collapsed = {"layers": [1], "ranges": [[0, 2]]}
    explorer.colour = "rank"
    explorer.zoom = {"x0": 0.0, "y0": 10.0, "x1": 500.0, "y1": 300.0}
    text = explorer.to_json()
    data = json.loads(text)
    jsonschema.validate(data, explorer_document.schema())
    assert data["schema"] == "interplab.circuit-explorer/1" and set(data["attributions"]) == {"atp", "relp"}

    def no_model_runs(*args, **kwargs):
        raise AssertionError("from_json recomputed an attribution")
    monkeypatch.setattr(circuits, "attribute_in_parts", no_model_runs)
    monkeypatch.setattr(circuits, "attribute", no_model_runs)
    back = il.CircuitExplorer.from_json(model, task, text)
    for key in ("circuit", "ablated", "pinned", "groups", "collapsed", "colour", "zoom", "verified", "top_edges",
                "method"):
        assert getattr(back, key) == getattr(explorer, key), key
    np.testing.assert_array_equal(back.scores("relp"), explorer.scores("relp"))
    assert {e.id: s for e, s in back.edges()} == pytest.approx({e.id: s for e, s in explorer.edges()}, rel=1e-6)
    # position-resolved edges come back as such, with how many were scored and the share sent
    assert all(e.source.position is not None for e, _ in back.edges())
    assert data["edge_count"] == explorer._edges["count"]
    assert data["edge_mass"] == pytest.approx(explorer._edges["mass"])
    for key in ("positions", "count", "mass"):
        assert back._edges[key] == pytest.approx(explorer._edges[key]), key
    assert back.metric["ablated"] == pytest.approx(explorer.metric["ablated"], abs=1e-5)


def test_a_bad_document_is_refused(explorer, setup):
    model, _, task = setup
    data = explorer.to_dict()
    broken = {**data, "level": "edge"}
    with pytest.raises(ValueError, match="at level: 'edge' is not one of"):
        il.CircuitExplorer.from_json(model, task, broken)
    other = tiny("gpt2", seed=4, n_layers=3)
    with pytest.raises(ValueError, match="another model or task"):
        il.CircuitExplorer.from_json(other, task, data)


def test_non_finite_metrics_are_shown_and_json_stays_valid(setup):
    model, _, task = setup

    def broken(logits, answer, distractor):
        return torch.full((logits.shape[0],), float("nan")) + logits[:, 0] * 0

    nan_task = task.with_metric(broken)
    ex = il.CircuitExplorer(model, nan_task, top_k=3)
    assert ex.metric["clean"] == "NaN" and ex.metric["faithfulness"] == "NaN"
    text = ex.to_json()
    assert "NaN" in text and json.loads(text)["metric"]["ablated"] == "NaN"  # strings: valid JSON
    jsonschema.validate(json.loads(text), explorer_document.schema())
    assert "f=NaN" in repr(ex)


def test_the_browser_cannot_overwrite_kernel_owned_traits(explorer):
    before = dict(explorer.metric)
    explorer.set_state({"metric": {"ablated": 99.0}, "pinned": [explorer.circuit[0]]})
    assert explorer.metric == before and explorer.pinned == [explorer.circuit[0]]
    assert "cannot change metric" in explorer.error["message"]
    explorer.set_state({"collapsed": {"layers": [7]}})
    assert "collapsed layers must lie in 0..1" in explorer.error["message"] and explorer.collapsed != {"layers": [7]}


def test_quiet_positions_start_collapsed(device):
    model = tiny("gpt2", seed=4, device=device)
    shared = "the store and the"  # every pair starts with the same four tokens
    texts = [(f"{shared} cat sat on", f"{shared} dog sat on", " the", " a"),
             (f"{shared} dog was in", f"{shared} cat was in", " the", " a")]
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in texts]
    ex = il.CircuitExplorer(model, il_task(model, prompts))
    assert ex.collapsed == {"layers": [], "ranges": [[0, 3]]}


def test_a_closed_explorer_is_freed(setup):
    model, _, task = setup
    assert_freed_after_close(lambda: il.CircuitExplorer(model, task))


def test_html_page_holds_the_state(explorer, tmp_path):
    explorer.pin(explorer.circuit[:2])
    page = explorer.to_html(tmp_path / "circuit.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page and explorer.pinned[0] in page
    assert math.isfinite(len(page)) and "<script type=\"module\">" in page


@pytest.mark.parametrize("name, payload, error", [
    ("_toggle", {}, "needs the field 'node'"),
    ("_toggle", {"node": 3}, "field 'node' must be"),
    ("_set_ablated", {"nodes": "mlp.0@3"}, "field 'nodes' must be"),
    ("_compute", {"method": "relp", "colour": "red"}, "has no field(s) ['colour']"),
    ("_intervene", {"mode": "scale", "factor": "two"}, "field 'factor' must be"),
    ("_suggest", {"threshold": True}, "field 'threshold' must be"),
    ("_per_prompt", [], "takes an object"),
])
def test_malformed_explorer_commands_get_an_error_reply(explorer, name, payload, error):
    before = (list(explorer.ablated), list(explorer.circuit), explorer.method)
    response, _ = Browser(explorer).invoke(name, payload)
    assert error in response["error"]["message"], response
    assert explorer.error["command"] == name
    assert (list(explorer.ablated), list(explorer.circuit), explorer.method) == before
