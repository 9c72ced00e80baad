"""Suggested supernodes: cosine similarity of edge profiles with complete linkage, on planted edges."""

import numpy as np
import pytest

from interplab.circuits import Edge, Node, similar_groups
from interplab.circuits.groups import edge_profiles, endpoints


def test_profiles_keep_incoming_and_outgoing_apart():
    a, b, c = Node("attn", 0), Node("mlp", 0), Node("attn", 1)
    edges = [(Edge(a, b), 2.0), (Edge(a, c), -1.0), (Edge(b, c), 3.0)]
    p = edge_profiles(edges, [a, b, c])
    # every (direction, other end) pair some edge reaches, by hand: out->b, in<-a, out->c, in<-b (a: nothing in)
    by_hand = {a: {("out", b): 2.0, ("out", c): -1.0}, b: {("in", a): 2.0, ("out", c): 3.0},
               c: {("in", a): -1.0, ("in", b): 3.0}}
    keys = sorted({k for row in by_hand.values() for k in row}, key=str)
    full = np.array([[by_hand[n].get(k, 0.0) for k in keys] for n in (a, b, c)])
    assert p.shape == full.shape  # no column that every node leaves at zero
    # the same vectors up to the order of columns: equal Gram matrices and equal sorted rows
    np.testing.assert_allclose(p @ p.T, full @ full.T)
    for mine, theirs in zip(p, full):
        np.testing.assert_allclose(sorted(mine), sorted(theirs))


def test_position_resolved_profiles_tell_positions_apart():
    # the same component at two positions: identical edges but at other positions -> orthogonal profiles
    x5, x7 = Node("attn", 0, None, 5), Node("attn", 0, None, 7)
    m5, m7 = Node("mlp", 1, None, 5), Node("mlp", 1, None, 7)
    edges = [(Edge(x5, m5), 1.0), (Edge(x7, m7), 1.0)]
    p = edge_profiles(edges, [x5, x7])
    assert p[0] @ p[1] == 0 and similar_groups(p) == []
    # a head at the head level: its edges in (as a target) and out of its layer's attention at its position
    head = Node("head", 2, 1, 7)
    edges = [(Edge(m7, head), 0.5), (Edge(Node("attn", 2, None, 7), Node("mlp", 3, None, 7)), -2.0),
             (Edge(Node("attn", 2, None, 6), Node("mlp", 3, None, 6)), 9.0)]
    assert sorted(edge_profiles(edges, [head])[0]) == [-2.0, 0.5]


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
    assert endpoints(Node("mlp", 1, None, 4), known) == [Node("mlp", 1, None, 4)]
    assert endpoints(Node("attn", 2, None, 7), known) == [Node("attn", 2)]
    assert endpoints(Node("head", 2, 3, 7), known) == [Node("attn", 2)]
    assert endpoints(Node("mlp", 1, None, 3), known) == []
    # position-resolved edges into heads: a head is a target, and its layer's attention at its position a source
    known = {Node("head", 2, 3, 7), Node("attn", 2, None, 7), Node("attn", 2, None, 6)}
    assert endpoints(Node("head", 2, 3, 7), known) == [Node("head", 2, 3, 7), Node("attn", 2, None, 7)]
    with pytest.raises(ValueError, match="cosine similarity"):
        similar_groups(np.eye(2), threshold=2)
