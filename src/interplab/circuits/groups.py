"""Supernodes: groups of nodes whose edges look alike, as circuit-tracer suggests them.

A node's edge profile is the vector of its edge scores to every node of the graph, incoming and
outgoing kept apart. Two nodes are similar when the cosine of their profiles is at least
``threshold`` (circuit-tracer: 0.75). Groups are built by complete linkage: start from single
nodes and merge, most similar first, two groups whose least similar pair still reaches the
threshold. Nodes without any edge have no profile and are never grouped.

Edge endpoints are nodes at positions (position-resolved edges), or whole components (``attn.3``:
every position of that layer's attention; at the head level, every head of it) for edges summed
over positions. ``endpoints(node, known)`` says which endpoints of an edge list stand for a node:
at the head level a head at ``q`` is a target itself, while edges leave its layer's attention at
``q`` (``attn.l@q``, the sum of the heads' writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .nodes import Edge, Node

__all__ = ["edge_profiles", "endpoints", "similar_groups"]

SIMILARITY = 0.75


def endpoints(node: Node, known: set[Node]) -> list[Node]:
    """The edge endpoints standing for ``node`` among ``known``: itself, its component over all
    positions, and (a head) its layer's attention at its position or over all positions."""
    attention = [Node("attn", node.layer, None, node.position), Node("attn", node.layer)] \
        if node.component == "head" else []
    return [c for c in dict.fromkeys((node, node._replace(position=None), *attention)) if c in known]


def edge_profiles(edges: Iterable[tuple[Edge, float]], nodes: Sequence[Node]) -> np.ndarray:
    """``[len(nodes), columns]``: per node, the scores of the edges into and out of its endpoints,
    one column per (direction, other endpoint) that some node's edges reach (columns no node
    touches are left out: they change no cosine, and a graph has thousands of endpoints)."""
    edges = [(e, s) for e, s in edges if np.isfinite(s)]
    known = {n for e, _ in edges for n in e}
    rows_of: dict[Node, list[int]] = {}
    for r, node in enumerate(nodes):
        for end in endpoints(node, known):
            rows_of.setdefault(end, []).append(r)
    columns: dict[tuple[str, Node], int] = {}
    entries = []
    for (source, target), score in edges:
        for direction, mine, other in (("out", source, target), ("in", target, source)):
            for r in rows_of.get(mine, ()):
                entries.append((r, columns.setdefault((direction, other), len(columns)), score))
    profiles = np.zeros((len(nodes), len(columns)))
    for r, c, score in entries:
        profiles[r, c] += score
    return profiles


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
