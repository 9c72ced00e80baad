"""``verify``: exact activation patching of chosen nodes, beside any attribution's estimate of them.

    v = il.circuits.verify(model, task, att.top(10))          # or a list of nodes / node ids
    v = il.circuits.verify(model, task, 10, estimate=att)     # the top 10 of att (by |score|)
    v.to_frame()      # node, layer, component, head, position, estimate, exact
    v.exact           # {node: exact denoising score}

Cheap next to patching every node: one batched forward per chunk of the chosen nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..tasks.contrast import ContrastTask
from .nodes import Node, node_from_id
from .patching import patch_scores
from .result import Attribution, Circuit

__all__ = ["Verification", "verify"]


@dataclass(frozen=True)
class Verification:
    """Exact scores (activation patching) of some nodes, and an attribution's estimates of them."""

    nodes: tuple[Node, ...]
    exact: dict[Node, float]
    estimate: dict[Node, float] | None
    method: str | None
    clean_metric: float
    corrupt_metric: float

    def to_frame(self) -> pd.DataFrame:
        rows = [(n.id, n.layer, n.component, n.head, n.position,
                 None if self.estimate is None else self.estimate[n], self.exact[n]) for n in self.nodes]
        frame = pd.DataFrame(rows, columns=["node", "layer", "component", "head", "position", "estimate", "exact"])
        for column in ("head", "position"):
            frame[column] = frame[column].astype("Int64")
        frame["estimate"] = frame["estimate"].astype(float)
        return frame

    def __repr__(self) -> str:
        return (f"Verification({len(self.nodes)} nodes by activation patching"
                f"{'' if self.method is None else f' against {self.method}'})")


def verify(model, task: ContrastTask, nodes: Iterable[Node | str] | Circuit | int,
           estimate: Attribution | None = None, *, batch_size: int | None = None,
           progress: bool = True) -> Verification:
    """Activation patching (denoising) of ``nodes``, with ``estimate``'s scores of them side by side.

    ``nodes``: nodes, node ids (``"head.3.1@7"``), a node circuit, or an int ``k`` for the top ``k``
    circuit nodes of ``estimate`` by absolute score. A node without a position is patched at every
    position at once.
    """
    if isinstance(nodes, bool):
        raise TypeError("nodes must be nodes, node ids, a Circuit or a number k of top nodes")
    if isinstance(nodes, int):
        if estimate is None:
            raise ValueError("verify(model, task, k) verifies the top k nodes of an attribution: pass estimate=att")
        if nodes < 1:
            raise ValueError(f"k must be at least 1, got {nodes}")
        chosen = list(estimate.top(nodes).units)
    else:
        units = nodes.units if isinstance(nodes, Circuit) else nodes
        chosen = [node_from_id(u) if isinstance(u, str) else u for u in units]
    if not chosen:
        raise ValueError("no nodes to verify: pass at least one node")
    bad = [u for u in chosen if not isinstance(u, Node)]
    if bad:
        raise TypeError(f"verify patches nodes, not {type(bad[0]).__name__}s ({bad[0]!r})")
    chosen = sorted(dict.fromkeys(chosen), key=Node.sort_key)
    enc = task.encode(model)
    values, clean, corrupt = patch_scores(model, enc, chosen, batch_size=batch_size, progress=progress)
    exact = {node: float(v) for node, v in zip(chosen, values.tolist())}
    estimates = None
    if estimate is not None:
        if estimate.level == "edge":
            raise ValueError("estimate is an edge-level attribution; verify compares node scores")
        if len(estimate.labels) != enc.seq_len:
            raise ValueError(f"estimate scores a window of {len(estimate.labels)} positions, but this task has "
                             f"{enc.seq_len}: pass the attribution of the same task")
        known = dict(estimate.node_scores([c for c in estimate.scores if any(n.component == c for n in chosen)]))
        missing = [n for n in chosen if n not in known]
        if missing:
            raise ValueError(f"estimate has no score for {missing[0].id} (it scores {', '.join(estimate.scores)}"
                             f"{'' if 'position' in next(iter(estimate.axes.values())) else ' without positions'})")
        estimates = {n: known[n] for n in chosen}
    return Verification(tuple(chosen), exact, estimates, None if estimate is None else estimate.method, clean, corrupt)
