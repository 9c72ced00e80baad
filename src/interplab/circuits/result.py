"""Result objects: ``Attribution`` (scores with named axes) and ``Circuit`` (a set of nodes or edges)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor

from .nodes import CIRCUIT_COMPONENTS, Edge, Node, node_from_id

__all__ = ["Attribution", "Circuit"]

Unit = Node | Edge


@dataclass(frozen=True)
class Circuit:
    """A set of nodes (component and head levels) or edges (edge level)."""

    level: str
    units: frozenset = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        kind = Edge if self.level == "edge" else Node
        units = frozenset(self.units)
        for unit in units:
            if not isinstance(unit, kind):
                raise TypeError(f"a {self.level}-level circuit holds {kind.__name__}s, got {unit!r}")
        object.__setattr__(self, "units", units)

    def __contains__(self, unit) -> bool:
        return unit in self.units

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[Unit]:
        key = (lambda e: (e.source.sort_key(), e.target.sort_key())) if self.level == "edge" else Node.sort_key
        return iter(sorted(self.units, key=key))

    @property
    def nodes(self) -> frozenset[Node]:
        """The nodes of the circuit (for an edge circuit: the nodes its edges touch)."""
        if self.level != "edge":
            return self.units
        return frozenset(n for e in self.units for n in e)

    def to_json(self) -> str:
        return json.dumps({"level": self.level, "units": [u.id for u in self]})

    @classmethod
    def from_json(cls, text: str) -> Circuit:
        data = json.loads(text)
        if data["level"] == "edge":
            units = [Edge(*(node_from_id(p) for p in u.split("->"))) for u in data["units"]]
        else:
            units = [node_from_id(u) for u in data["units"]]
        return cls(data["level"], frozenset(units))

    def __repr__(self) -> str:
        shown = ", ".join(u.id for u in list(self)[:8])
        more = f", ... ({len(self)} in all)" if len(self) > 8 else ""
        return f"Circuit({self.level}: {shown}{more})"


@dataclass(frozen=True)
class Attribution:
    """Scores of a contrast task's nodes (and edges), following the denoising convention.

    ``scores[component]`` is a tensor whose axes are named by ``axes[component]`` (``layer``,
    ``head``, ``position``). At the edge level, ``edge_scores[i, j]`` scores the edge
    ``sources[i] -> targets[j]`` and ``scores`` holds the node scores of the sources (the sums of
    their outgoing edges). Edges summed over positions (``positions=False``): a dense matrix, NaN
    where there is no such edge. Position-resolved edges (the default): sources and targets carry
    positions, and ``edge_scores`` is a sparse COO matrix holding the kept edges only;
    ``edge_count`` is the number of edges scored before pruning and ``edge_mass`` the fraction of
    their total absolute score that the kept edges carry.
    """

    method: str
    level: str
    scores: dict[str, Tensor]
    axes: dict[str, tuple[str, ...]]
    labels: tuple[str, ...]
    n_layers: int
    n_heads: int
    clean_metric: float
    corrupt_metric: float
    model: str = ""
    sources: tuple[Node, ...] = ()
    targets: tuple[Node, ...] = ()
    edge_scores: Tensor | None = None
    edge_count: int = 0
    edge_mass: float = 1.0

    # --- nodes and edges with their scores -----------------------------------------------------
    def node_scores(self, components: Iterable[str] | None = None) -> list[tuple[Node, float]]:
        """Every scored node of these components (default: all) with its score, in forward order."""
        out = []
        for component in self.scores if components is None else components:
            if component not in self.scores:
                raise ValueError(f"this {self.level}-level attribution scores {', '.join(self.scores)}, "
                                 f"not {component!r}")
            values = self.scores[component]
            axes = self.axes[component]
            for index in torch.cartesian_prod(*(torch.arange(s) for s in values.shape)).reshape(-1, values.ndim):
                named = dict(zip(axes, (int(i) for i in index)))
                node = Node(component, named["layer"], named.get("head"), named.get("position"))
                out.append((node, float(values[tuple(index)])))
        return sorted(out, key=lambda item: item[0].sort_key())

    @property
    def positions(self) -> bool:
        """Whether the nodes (and edges) of this attribution are resolved by position."""
        if self.level == "edge":
            return bool(self.sources) and self.sources[0].position is not None
        return all("position" in axes for axes in self.axes.values())

    def edges(self) -> list[tuple[Edge, float]]:
        """Every (kept) edge with its score, sources in forward order (edge level only)."""
        self._need_edges()
        if self.edge_scores.is_sparse:
            matrix = self.edge_scores.coalesce()
            (rows, columns), values = matrix.indices().tolist(), matrix.values().tolist()
            return [(Edge(self.sources[i], self.targets[j]), v) for i, j, v in zip(rows, columns, values)]
        out = []
        for i, source in enumerate(self.sources):
            for j, target in enumerate(self.targets):
                value = float(self.edge_scores[i, j])
                if value == value:  # NaN marks a pair that is not an edge
                    out.append((Edge(source, target), value))
        return out

    def _need_edges(self) -> None:
        if self.level != "edge":
            raise ValueError(f"this is a {self.level}-level attribution; edges need attribute(..., level='edge')")

    # --- circuits ------------------------------------------------------------------------------
    def ranking(self, components: Sequence[str] | None = None, by: str = "abs") -> list[tuple[Unit, float]]:
        """Circuit units (nodes, or edges at the edge level) from most to least important.

        ``by="abs"`` ranks by absolute score, ``"signed"`` by score. Node levels rank the circuit
        components (attn/mlp, or head/mlp) unless ``components`` says otherwise.
        """
        if by not in ("abs", "signed"):
            raise ValueError(f"by must be 'abs' or 'signed', got {by!r}")
        units = self.edges() if self.level == "edge" else self.node_scores(components or CIRCUIT_COMPONENTS[self.level])
        key = (lambda item: -abs(item[1])) if by == "abs" else (lambda item: -item[1])
        return sorted(units, key=key)

    def top(self, k: int, components: Sequence[str] | None = None, by: str = "abs") -> Circuit:
        """The ``k`` most important nodes (edges at the edge level) as a circuit."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        return Circuit(self.level, frozenset(unit for unit, _ in self.ranking(components, by)[:k]))

    def threshold(self, x: float, components: Sequence[str] | None = None, by: str = "abs") -> Circuit:
        """Nodes (edges) whose score is at least ``x`` (in absolute value with ``by="abs"``)."""
        ranked = self.ranking(components, by)
        keep = [u for u, s in ranked if (abs(s) if by == "abs" else s) >= x]
        return Circuit(self.level, frozenset(keep))

    # --- plain data ----------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per scored node: layer, component, head (or NA), position (or NA), score; at the
        edge level one row per (kept) edge, as ``edge_frame``."""
        if self.level == "edge":
            return self.edge_frame()
        rows = [(n.layer, n.component, n.head, n.position, s) for n, s in self.node_scores()]
        frame = pd.DataFrame(rows, columns=["layer", "component", "head", "position", "score"])
        for column in ("head", "position"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def edge_frame(self) -> pd.DataFrame:
        """One row per (kept) edge: source, target (node ids), then for each end its layer, component,
        head and position (NA where there is none), and the score."""
        columns = ["source", "target"] + [f"{end}_{field}" for end in ("source", "target")
                                          for field in ("layer", "component", "head", "position")] + ["score"]
        def fields(n: Node) -> tuple:
            return n.layer, n.component, n.head, n.position

        rows = [(e.source.id, e.target.id, *fields(e.source), *fields(e.target), s) for e, s in self.edges()]
        frame = pd.DataFrame(rows, columns=columns)
        for column in columns:
            if column.endswith(("_head", "_position")):
                frame[column] = frame[column].astype("Int64")
        return frame

    def to_json(self) -> str:
        data = {
            "method": self.method, "level": self.level, "model": self.model,
            "n_layers": self.n_layers, "n_heads": self.n_heads, "labels": list(self.labels),
            "metric": {"clean": self.clean_metric, "corrupt": self.corrupt_metric},
            "scores": {c: {"axes": list(self.axes[c]), "values": t.tolist()} for c, t in self.scores.items()},
        }
        if self.level == "edge":
            data["nodes"] = [n.id for n in dict.fromkeys((*self.sources, *self.targets))]
            data["edges"] = [{"source": e.source.id, "target": e.target.id, "score": s} for e, s in self.edges()]
            data["sources"] = [n.id for n in self.sources]
            data["targets"] = [n.id for n in self.targets]
            data["positions"] = self.positions
            if self.positions:
                data["edge_count"], data["edge_mass"] = self.edge_count, self.edge_mass
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Attribution:
        data = json.loads(text)
        scores = {c: torch.tensor(v["values"]) for c, v in data["scores"].items()}
        axes = {c: tuple(v["axes"]) for c, v in data["scores"].items()}
        extra = {}
        if data["level"] == "edge":
            sources = tuple(node_from_id(n) for n in data["sources"])
            targets = tuple(node_from_id(n) for n in data["targets"])
            where = {n: i for i, n in enumerate(data["sources"])}, {n: j for j, n in enumerate(data["targets"])}
            index = torch.tensor([[where[0][e["source"]] for e in data["edges"]],
                                  [where[1][e["target"]] for e in data["edges"]]], dtype=torch.long).reshape(2, -1)
            values = torch.tensor([float(e["score"]) for e in data["edges"]])
            shape = (len(sources), len(targets))
            extra = {"sources": sources, "targets": targets}
            if data.get("positions"):
                matrix = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
                extra.update(edge_count=data["edge_count"], edge_mass=data["edge_mass"])
            else:
                matrix = torch.full(shape, float("nan"))
                matrix[index[0], index[1]] = values
            extra["edge_scores"] = matrix
        return cls(data["method"], data["level"], scores, axes, tuple(data["labels"]), data["n_layers"],
                   data["n_heads"], data["metric"]["clean"], data["metric"]["corrupt"], data["model"], **extra)

    def __repr__(self) -> str:
        parts = ", ".join(f"{c}{list(t.shape)}" for c, t in self.scores.items())
        edges = ""
        if self.level == "edge":
            kept = self.edge_scores._nnz() if self.edge_scores.is_sparse else len(self.edges())
            edges = f", {kept} of {self.edge_count} edges" if self.edge_scores.is_sparse else f", {kept} edges"
        return (f"Attribution({self.method}, {self.level}: {parts}{edges}; metric clean {self.clean_metric:.3f}, "
                f"corrupt {self.corrupt_metric:.3f})")
