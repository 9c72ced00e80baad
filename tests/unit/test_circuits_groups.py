"""Suggested supernodes: cosine similarity of edge profiles with complete linkage, on planted edges."""

import numpy as np
import pytest

from interplab.circuits import Edge, Node, similar_groups
from interplab.circuits.groups import edge_profiles, endpoint


def test_profiles_keep_incoming_and_outgoing_apart():
    a, b, c = Node("attn", 0), Node("mlp", 0), Node("attn", 1)
    edges = [(Edge(a, b), 2.0), (Edge(a, c), -1.0), (Edge(b, c), 3.0)]
    p = edge_profiles(edges, [a, b, c])
    # endpoints in order of appearance: a, b, c; columns: into a, b, c | out of a, b, c
    np.testing.assert_array_equal(p, [[0, 0, 0, 0, 2, -1], [2, 0, 0, 0, 0, 3], [-1, 3, 0, 0, 0, 0]])


def test_planted_groups():
    x = np.array([1.0, 0.0, 0.0, 0.0])
    profiles = np.stack([
        x, 3 * x,                                  # 0, 1: same direction (cosine 1)
        np.array([0.0, 1.0, 0.0, 0.0]),            # 2: alone
        np.array([0.0, 0.0, 1.0, 0.0]),            # 3 ~ 4: cosine 0.8
        np.array([0.0, 0.0, 0.8, 0.6]),
        np.zeros(4),                               # 5: no edges, never grouped
    ])
    assert similar_groups(profiles) == [([0, 1], pytest.approx(1.0)), ([3, 4], pytest.approx(0.8))]
    assert similar_groups(profiles, threshold=0.9) == [([0, 1], pytest.approx(1.0))]


def test_complete_linkage_needs_every_pair():
    # 0~1 and 1~2 reach 0.8 but 0~2 only 0.28: no group of three
    profiles = np.array([[1.0, 0.0], [0.8, 0.6], [0.28, 0.96]])
    groups = similar_groups(profiles, threshold=0.75)
    assert groups == [([0, 1], pytest.approx(0.8))] or groups == [([1, 2], pytest.approx(0.8))]
    assert len(similar_groups(profiles, threshold=0.2)[0][0]) == 3


def test_endpoints_of_nodes():
    known = {Node("attn", 2), Node("mlp", 1, None, 4)}
    assert endpoint(Node("mlp", 1, None, 4), known) == Node("mlp", 1, None, 4)
    assert endpoint(Node("attn", 2, None, 7), known) == Node("attn", 2)
    assert endpoint(Node("head", 2, 3, 7), known) == Node("attn", 2)
    assert endpoint(Node("mlp", 1, None, 3), known) is None
    with pytest.raises(ValueError, match="cosine similarity"):
        similar_groups(np.eye(2), threshold=2)
