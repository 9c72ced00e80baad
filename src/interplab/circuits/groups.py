"""Supernodes: groups of nodes whose edges look alike, as circuit-tracer suggests them.

A node's edge profile is the vector of its edge scores to every node of the graph, incoming and
outgoing kept apart. Two nodes are similar when the cosine of their profiles is at least
``threshold`` (circuit-tracer: 0.75). Groups are built by complete linkage: start from single
nodes and merge, most similar first, two groups whose least similar pair still reaches the
threshold. Nodes without any edge have no profile and are never grouped.

Edges may join nodes at positions, or whole components (``attn.3``: every position of that
layer's attention; at the head level, every head of it): ``endpoint(node, known)`` says which
endpoint of an edge list stands for a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .nodes import Edge, Node

__all__ = ["edge_profiles", "endpoint", "similar_groups"]

SIMILARITY = 0.75


def endpoint(node: Node, known: set[Node]) -> Node | None:
    """The edge endpoint standing for ``node``: itself, its component over all positions, or (a
    head) its layer's attention, whichever the edge list has; None if none."""
    for candidate in (node, node._replace(position=None),
                      Node("attn", node.layer, None, node.position) if node.component == "head" else None,
                      Node("attn", node.layer) if node.component == "head" else None):
        if candidate is not None and candidate in known:
            return candidate
    return None


def edge_profiles(edges: Iterable[tuple[Edge, float]], nodes: Sequence[Node]) -> np.ndarray:
    """``[len(nodes), 2 * endpoints]``: per node, the scores of the edges into and out of its endpoint."""
    edges = list(edges)
    ends = list(dict.fromkeys(n for e, _ in edges for n in e))
    index = {n: i for i, n in enumerate(ends)}
    matrix = np.zeros((len(ends), 2 * len(ends)))
    for (source, target), score in edges:
        if np.isfinite(score):
            matrix[index[source], len(ends) + index[target]] += score  # out of source
            matrix[index[target], index[source]] += score  # into target
    known = set(ends)
    rows = [endpoint(n, known) for n in nodes]
    return np.stack([matrix[index[r]] if r is not None else np.zeros(2 * len(ends)) for r in rows]) if rows else \
        np.zeros((0, 2 * len(ends)))


def similar_groups(profiles: np.ndarray, threshold: float = SIMILARITY) -> list[tuple[list[int], float]]:
    """Groups (of row indices, at least two) whose every pair of profiles has cosine >= ``threshold``,
    with each group's smallest pairwise cosine; most similar groups first."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    norms = np.linalg.norm(profiles, axis=1)
    live = [i for i in range(len(profiles)) if norms[i] > 0]
    if len(live) < 2:
        return []
    unit = profiles[live] / norms[live, None]
    cosine = np.clip(unit @ unit.T, -1.0, 1.0)
    groups: dict[int, list[int]] = {k: [k] for k in range(len(live))}
    link = cosine.copy()  # complete linkage: the least similar pair between two groups
    np.fill_diagonal(link, -np.inf)
    while len(groups) > 1:
        a, b = np.unravel_index(np.argmax(link), link.shape)
        if link[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        groups[a] += groups.pop(b)
        link[a, :] = link[:, a] = np.minimum(link[a, :], link[b, :])
        link[a, a] = -np.inf
        link[b, :] = link[:, b] = -np.inf
    out = []
    for g in groups.values():
        if len(g) > 1:
            sub = cosine[np.ix_(g, g)]
            out.append((sorted(live[k] for k in g), float(sub[~np.eye(len(g), dtype=bool)].min())))
    return sorted(out, key=lambda item: (-item[1], item[0]))
