"""Attribution and Circuit as plain data: frames, top/threshold, JSON, against hand-built expectations."""

import json

import pandas as pd
import pytest
import torch

from interplab.circuits import Attribution, Circuit, Edge, Node

# 2 layers x 3 positions; hand-picked scores
RESID = [[0.5, -0.1, 0.0], [0.2, 0.0, 0.9]]
ATTN = [[0.0, 0.3, -0.7], [0.1, 0.0, 0.05]]
MLP = [[0.0, -0.2, 0.4], [0.0, 0.01, -0.6]]


def component_attribution() -> Attribution:
    scores = {"resid": torch.tensor(RESID), "attn": torch.tensor(ATTN), "mlp": torch.tensor(MLP)}
    axes = {c: ("layer", "position") for c in scores}
    return Attribution("atp", "component", scores, axes, ("the", "cat", "sat"), 2, 4, 1.5, -0.5, "m")


def edge_attribution() -> Attribution:
    sources = (Node("embed", 0), Node("attn", 0), Node("mlp", 0))
    targets = (Node("attn", 0), Node("mlp", 0), Node("logits", 1))
    nan = float("nan")
    matrix = torch.tensor([[0.1, -0.4, 0.2], [nan, 0.3, -0.05], [nan, nan, 0.6]])
    scores = {"embed": torch.tensor([-0.1]), "attn": torch.tensor([0.25]), "mlp": torch.tensor([0.6])}
    return Attribution("relp", "edge", scores, {c: ("layer",) for c in scores}, ("a",), 1, 4, 1.0, 0.0, "m",
                       sources, targets, matrix)


def test_to_frame_has_one_row_per_node_with_na_heads():
    frame = component_attribution().to_frame()
    assert list(frame.columns) == ["layer", "component", "head", "position", "score"]
    assert len(frame) == 18
    row = frame[(frame.layer == 0) & (frame.component == "attn") & (frame.position == 2)]
    assert row.score.item() == pytest.approx(-0.7)
    assert frame["head"].isna().all() and str(frame["head"].dtype) == "Int64"
    # forward order: layer, then resid < attn < mlp, then position
    assert list(frame.component[:9]) == ["resid"] * 3 + ["attn"] * 3 + ["mlp"] * 3


def test_top_and_threshold_rank_circuit_components_by_absolute_score():
    att = component_attribution()
    assert set(att.top(3)) == {Node("attn", 0, None, 2), Node("mlp", 1, None, 2), Node("mlp", 0, None, 2)}
    assert set(att.top(1, by="signed")) == {Node("mlp", 0, None, 2)}
    # resid is a state, not a circuit component, unless asked for
    assert set(att.top(1, components=["resid"])) == {Node("resid", 1, None, 2)}
    assert set(att.threshold(0.3)) == {Node("attn", 0, None, 1), Node("attn", 0, None, 2), Node("mlp", 1, None, 2),
                                       Node("mlp", 0, None, 2)}
    assert len(att.threshold(10.0)) == 0
    with pytest.raises(ValueError, match="not 'head'"):
        att.top(2, components=["head"])


def test_edges_frame_top_and_json():
    att = edge_attribution()
    edges = dict(att.edges())
    assert len(edges) == 6  # NaN marks pairs that are not edges
    assert edges[Edge(Node("mlp", 0), Node("logits", 1))] == pytest.approx(0.6)
    frame = att.edge_frame()
    assert list(frame.columns[:2]) == ["source", "target"] and len(frame) == 6
    assert set(frame.source) == {"embed.0", "attn.0", "mlp.0"}
    top = att.top(2)
    assert top.level == "edge"
    assert set(top) == {Edge(Node("mlp", 0), Node("logits", 1)), Edge(Node("embed", 0), Node("mlp", 0))}
    assert top.nodes == {Node("mlp", 0), Node("logits", 1), Node("embed", 0)}
    data = json.loads(att.to_json())
    assert {"source": "attn.0", "target": "logits.1", "score": pytest.approx(-0.05)} in data["edges"]
    assert data["nodes"] == ["embed.0", "attn.0", "mlp.0", "logits.1"]
    back = Attribution.from_json(att.to_json())
    assert dict(back.edges()) == pytest.approx(edges)
    with pytest.raises(ValueError, match="edges need"):
        component_attribution().edges()


def test_json_round_trip_and_contents():
    att = component_attribution()
    data = json.loads(att.to_json())
    assert data["method"] == "atp" and data["level"] == "component" and data["labels"] == ["the", "cat", "sat"]
    assert data["scores"]["attn"]["axes"] == ["layer", "position"]
    torch.testing.assert_close(torch.tensor(data["scores"]["attn"]["values"]), torch.tensor(ATTN))
    assert data["metric"] == {"clean": 1.5, "corrupt": -0.5}
    back = Attribution.from_json(att.to_json())
    pd.testing.assert_frame_equal(back.to_frame(), att.to_frame())


def test_circuit_ids_and_json():
    nodes = [Node("head", 2, 1, 7), Node("mlp", 0, None, 4), Node("attn", 3)]
    assert [n.id for n in nodes] == ["head.2.1@7", "mlp.0@4", "attn.3"]
    circuit = Circuit("head", frozenset(nodes[:2]))
    assert list(circuit) == [Node("mlp", 0, None, 4), Node("head", 2, 1, 7)]  # forward order
    assert Circuit.from_json(circuit.to_json()) == circuit
    assert Node("head", 2, 1, 7) in circuit and len(circuit) == 2
    edge_circuit = Circuit("edge", frozenset({Edge(Node("embed", 0), Node("logits", 2))}))
    assert Circuit.from_json(edge_circuit.to_json()) == edge_circuit
    with pytest.raises(TypeError, match="holds Edges"):
        Circuit("edge", frozenset(nodes))


def position_edge_attribution() -> Attribution:
    """Edges between nodes at positions, kept sparse: 3 of the 5 edges scored."""
    sources = (Node("embed", 0, None, 0), Node("embed", 0, None, 1), Node("attn", 0, None, 0),
               Node("attn", 0, None, 1))
    targets = (Node("head", 0, 1, 0), Node("head", 0, 1, 1), Node("logits", 1, None, 1))
    index = torch.tensor([[0, 1, 3], [1, 1, 2]])
    matrix = torch.sparse_coo_tensor(index, torch.tensor([0.5, -0.25, 2.0]), (4, 3))
    scores = {"embed": torch.tensor([[0.5, -0.2]]), "attn": torch.tensor([[0.0, 2.0]])}
    return Attribution("atp", "edge", scores, {c: ("layer", "position") for c in scores}, ("a", "b"), 1, 2, 1.0,
                       0.0, "m", sources, targets, matrix, edge_count=5, edge_mass=0.9)


def test_position_edges_frame_ranking_and_json_round_trip():
    att = position_edge_attribution()
    assert att.positions and not edge_attribution().positions
    edges = dict(att.edges())
    assert edges == {Edge(Node("embed", 0, None, 0), Node("head", 0, 1, 1)): 0.5,
                     Edge(Node("embed", 0, None, 1), Node("head", 0, 1, 1)): -0.25,
                     Edge(Node("attn", 0, None, 1), Node("logits", 1, None, 1)): 2.0}
    frame = att.to_frame()
    pd.testing.assert_frame_equal(frame, att.edge_frame())
    assert list(frame.columns) == ["source", "target", "source_layer", "source_component", "source_head",
                                   "source_position", "target_layer", "target_component", "target_head",
                                   "target_position", "score"]
    first = frame.iloc[0]
    assert (first.source, first.target, first.source_position, first.target_head, first.target_position) == \
        ("embed.0@0", "head.0.1@1", 0, 1, 1)
    assert frame.source_head.isna().all() and str(frame.target_position.dtype) == "Int64"
    assert list(att.top(1)) == [Edge(Node("attn", 0, None, 1), Node("logits", 1, None, 1))]
    data = json.loads(att.to_json())
    assert data["positions"] is True and data["edge_count"] == 5 and data["edge_mass"] == 0.9
    assert {"source": "embed.0@1", "target": "head.0.1@1", "score": -0.25} in data["edges"]
    assert data["sources"][3] == "attn.0@1" and data["targets"][0] == "head.0.1@0"
    back = Attribution.from_json(att.to_json())
    assert back.edge_scores.is_sparse and dict(back.edges()) == edges
    assert (back.edge_count, back.edge_mass, back.targets) == (5, 0.9, att.targets)
    assert "3 of 5 edges" in repr(back)
    assert json.loads(edge_attribution().to_json())["positions"] is False
