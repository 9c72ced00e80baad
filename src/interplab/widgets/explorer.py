"""``il.CircuitExplorer(model, task)``: a contrast task's attribution as a layered graph you can act on.

The widget scores every node of ``task`` (``il.circuits.attribute`` at the component or head
level, per position) and the edges between components (``level="edge"``: summed over positions),
draws them as a graph (layers bottom to top, positions left to right, edges in a column of their
own), prunes it in the browser (top-k nodes and edges), and re-runs the model when you click a
node to ablate it: the metric with the ablated nodes, and the faithfulness of the current circuit
(the kept nodes minus the ablated ones). Everything it does is a method here too::

    explorer = il.CircuitExplorer(model, task)          # method="ig"; "patch", "atp", "relp" on request
    explorer.compute("relp")                             # switch method (the widget's method menu)
    explorer.keep(20)                                    # the circuit: top 20 nodes (the slider)
    explorer.toggle("mlp.1@16")                          # ablate a node (a click), or explorer.ablated = [...]
    explorer.metric                                      # {"ablated": m, "faithfulness": f, ...}
    explorer.circuit                                     # the kept node ids (saved with the notebook)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import traitlets

from .. import circuits
from ..circuits.nodes import CIRCUIT_COMPONENTS, SCORED_COMPONENTS, Node, node_from_id, nodes_of
from ..model import Model
from .base import Widget, command
from .codecs import encode_array

__all__ = ["COMPONENTS", "CircuitExplorer"]

COMPONENTS = ("resid", "attn", "mlp", "head")
"""Component codes of the node arrays sent to the browser (index = code)."""

NODE_LEVELS = ("component", "head")
EDGE_COMPONENTS = ("embed", "attn", "mlp", "logits")


def _short_name(name: str) -> str:
    path = Path(name)
    return path.name if path.is_absolute() and path.is_dir() else name


def _chunks(n: int, parts: int) -> list[list[int]]:
    size = math.ceil(n / parts)
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


class CircuitExplorer(Widget, bundle="explorer"):
    """An attribution graph of ``task`` (an ``il.circuits.ContrastTask``) on ``model``.

    ``method``: the first method computed ("ig", the default, "patch", "atp" or "relp"). ``level``: "component"
    (resid, attn, mlp per layer and position) or "head" (heads and MLPs per layer and position).
    ``ablation``: what an ablated node is replaced with ("mean", "zero" or "corrupt"; see
    ``il.circuits.ablate``). ``top_k``: nodes kept in the circuit at first (default: the top 10%).
    ``attributions``: attributions of this task already computed (e.g. in a notebook), reused
    instead of recomputed; node-level ones of ``level`` with positions, and edge-level ones.
    """

    model_name = traitlets.Unicode("").tag(sync=True)
    task_name = traitlets.Unicode("").tag(sync=True)
    n_prompts = traitlets.Int(0).tag(sync=True)
    level = traitlets.Unicode("component").tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_heads = traitlets.Int(0).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    method = traitlets.Unicode("ig").tag(sync=True)
    ablation = traitlets.Unicode("mean").tag(sync=True)
    top_k = traitlets.Int(0).tag(sync=True)
    top_edges = traitlets.Int(0).tag(sync=True)
    circuit = traitlets.List(traitlets.Unicode(), help="ids of the nodes kept in the circuit").tag(sync=True)
    ablated = traitlets.List(traitlets.Unicode(), help="ids of the nodes ablated by hand").tag(sync=True)
    metric = traitlets.Dict(help="metrics of the current ablations and circuit").tag(sync=True)
    _nodes = traitlets.Dict().tag(sync=True)
    _scores = traitlets.Dict().tag(sync=True)
    _edges = traitlets.Dict().tag(sync=True)

    def __init__(self, model: Model, task: circuits.ContrastTask, method: str = "ig", *, level: str = "component",
                 ablation: str = "mean", top_k: int | None = None,
                 attributions: Iterable[circuits.Attribution] = (), **kwargs: Any) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be an interplab Model (il.load(...)), got {type(model).__name__}")
        if not isinstance(task, circuits.ContrastTask):
            raise TypeError(f"task must be an il.circuits.ContrastTask, got {type(task).__name__}")
        if level not in NODE_LEVELS:
            raise ValueError(f"level must be one of {NODE_LEVELS} (edges are computed alongside); got {level!r}")
        self._check_choice("method", method, circuits.METHODS)
        self._check_choice("ablation", ablation, circuits.ABLATIONS)
        self.model = model
        self.task = task
        enc = task.encode(model)
        a = model.anatomy
        self._seq_len = enc.seq_len
        self._node_list = nodes_of(SCORED_COMPONENTS[level], a.n_layers, a.n_heads, enc.seq_len)
        self._node_index = {n.id: i for i, n in enumerate(self._node_list)}
        self._universe = nodes_of(CIRCUIT_COMPONENTS[level], a.n_layers, a.n_heads, enc.seq_len)
        self._units = set(self._universe)
        self._reference: dict[str, tuple[float, float]] = {}
        self.attributions: dict[str, circuits.Attribution] = {}
        self.edge_attributions: dict[str, circuits.Attribution] = {}
        super().__init__(model_name=_short_name(model.name), task_name=task.name, n_prompts=enc.n, level=level,
                         n_layers=a.n_layers, n_heads=a.n_heads, labels=list(enc.labels), ablation=ablation,
                         _nodes=self._node_arrays(), **kwargs)
        for att in attributions:
            self._adopt(att)
        self.compute(method)
        self.keep(max(1, len(self._universe) // 10) if top_k is None else top_k)
        self.top_edges = min(20, len(self.edges()))
        self._refresh_error: BaseException | None = None
        self.observe(self._refresh, names=["circuit", "ablated", "ablation"])
        self._refresh()
        self._ready = True

    @staticmethod
    def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")

    # --- nodes ---------------------------------------------------------------------------------
    def _node_arrays(self) -> dict:
        nodes = self._node_list
        return {
            "components": list(COMPONENTS),
            "component": encode_array([COMPONENTS.index(n.component) for n in nodes], "uint8"),
            "layer": encode_array([n.layer for n in nodes], "int32"),
            "head": encode_array([-1 if n.head is None else n.head for n in nodes], "int32"),
            "position": encode_array([n.position for n in nodes], "int32"),
        }

    @property
    def nodes(self) -> list[Node]:
        """The graph's nodes in the order of the score arrays (forward order, positions innermost)."""
        return list(self._node_list)

    def scores(self, method: str | None = None) -> np.ndarray:
        """One method's node scores (default: the current method), in the order of ``nodes``."""
        att = self.attributions.get(method or self.method)
        if att is None:
            raise KeyError(f"{method!r} is not computed yet; computed: {sorted(self.attributions)} "
                           "(call explorer.compute(method))")
        values = dict(att.node_scores())
        return np.array([values[n] for n in self._node_list], dtype=np.float32)

    # --- attribution -----------------------------------------------------------------------------
    def _adopt(self, att: circuits.Attribution) -> None:
        if not isinstance(att, circuits.Attribution):
            raise TypeError(f"attributions holds il.circuits.Attribution objects, got {type(att).__name__}")
        if att.level == "edge":
            self.edge_attributions[att.method] = att
            return
        if att.level != self.level:
            raise ValueError(f"a {att.level}-level attribution cannot be shown at the {self.level} level; "
                             f"pass level={att.level!r} or compute it at {self.level!r}")
        if any("position" not in axes for axes in att.axes.values()):
            raise ValueError("the explorer shows scores per position: compute the attribution with positions=True")
        lengths = {t.shape[-1] for t in att.scores.values()}
        if lengths != {self._seq_len} or att.n_layers != self.n_layers:
            raise ValueError(f"this attribution does not fit the task on this model: it has {att.n_layers} layers "
                             f"and positions {sorted(lengths)}, the task has {self.n_layers} and {self._seq_len}")
        self.attributions[att.method] = att
        self._scores = {**self._scores, att.method: encode_array(self.scores(att.method), "float32")}

    def _attribute_in_chunks(self, method: str, step) -> circuits.Attribution:
        """``attribute`` over chunks of the prompts, advancing the progress bar per chunk. The
        metric is a mean over prompts, so the scores are the chunks' scores weighted by size
        (exact); with prompts of different lengths the positions of chunks would not line up, so
        such a task runs in one chunk."""
        enc = self.task.encode(self.model)
        parts = 1 if enc.padded else min(4, enc.n)
        chunks = _chunks(enc.n, parts)
        total, weights = None, []
        for idx in chunks:
            task = self.task if len(chunks) == 1 else self.task.subset(idx)
            part = circuits.attribute(self.model, task, method, self.level, progress=False)
            weight = len(idx) / enc.n
            weights.append(weight)
            if total is None:
                total = {"scores": {c: t * weight for c, t in part.scores.items()},
                         "clean": part.clean_metric * weight, "corrupt": part.corrupt_metric * weight, "first": part}
            else:
                for c, t in part.scores.items():
                    total["scores"][c] = total["scores"][c] + t * weight
                total["clean"] += part.clean_metric * weight
                total["corrupt"] += part.corrupt_metric * weight
            step(1)
        return dataclasses.replace(total["first"], scores=total["scores"], clean_metric=total["clean"],
                                   corrupt_metric=total["corrupt"], labels=enc.labels)

    def compute(self, method: str, show: bool = True) -> circuits.Attribution:
        """Score the nodes with ``method`` (kept: a method is computed once) and, with ``show``,
        show it (its graph, and its top ``top_k`` nodes as the circuit)."""
        self._check_choice("method", method, circuits.METHODS)
        edge_method = "atp" if method == "patch" else method  # patching scores nodes; edges come from gradients
        enc = self.task.encode(self.model)
        steps = (0 if method in self.attributions else (1 if enc.padded else min(4, enc.n))) + (
            0 if edge_method in self.edge_attributions else 1)
        if steps:
            with self.working(f"{method}: scoring nodes and edges", total=steps) as step:
                if method not in self.attributions:
                    self._adopt(self._attribute_in_chunks(method, step))
                if edge_method not in self.edge_attributions:
                    self._adopt(circuits.attribute(self.model, self.task, edge_method, "edge", progress=False))
                    step(1)
        if show:
            with self.hold_sync():
                self.method = method
                self._edges = self._edge_arrays(edge_method)
            if getattr(self, "_ready", False):
                self.keep(self.top_k)
        return self.attributions[method]

    @property
    def attribution(self) -> circuits.Attribution:
        """The attribution shown (the current method's)."""
        return self.attributions[self.method]

    def edges(self) -> list[tuple[circuits.Edge, float]]:
        """The edges shown with their scores (from the current method; AtP's when it is patching)."""
        return self.edge_attributions["atp" if self.method == "patch" else self.method].edges()

    def _edge_arrays(self, edge_method: str) -> dict:
        att = self.edge_attributions[edge_method]
        nodes = list(dict.fromkeys((*att.sources, *att.targets)))
        index = {n: i for i, n in enumerate(nodes)}
        edges = att.edges()
        return {
            "method": edge_method,
            "nodes": [n.id for n in nodes],
            "component": encode_array([EDGE_COMPONENTS.index(n.component) for n in nodes], "uint8"),
            "layer": encode_array([n.layer for n in nodes], "int32"),
            "source": encode_array([index[e.source] for e, _ in edges], "int32"),
            "target": encode_array([index[e.target] for e, _ in edges], "int32"),
            "score": encode_array([s for _, s in edges], "float32"),
        }

    def correlation(self, a: str, b: str, components: Sequence[str] | None = None) -> float:
        """Pearson correlation of two computed methods' node scores (all nodes, or ``components``)."""
        keep = np.array([components is None or n.component in components for n in self._node_list])
        x, y = self.scores(a)[keep].astype(np.float64), self.scores(b)[keep].astype(np.float64)
        if x.std() == 0 or y.std() == 0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])

    # --- circuit and ablations -------------------------------------------------------------------
    @traitlets.validate("circuit", "ablated")
    def _check_nodes(self, proposal: dict) -> list[str]:
        out = []
        for item in proposal["value"]:
            text = item.id if isinstance(item, Node) else item
            try:
                node = node_from_id(text)
            except (ValueError, TypeError):
                raise traitlets.TraitError(f"{proposal['trait'].name}: {text!r} is not a node id "
                                           "(e.g. 'attn.1@4', 'head.2.0@16', 'mlp.0@3')") from None
            if node not in self._units:
                raise traitlets.TraitError(
                    f"{proposal['trait'].name}: {text} is not a node a circuit can keep or ablate at the {self.level} "
                    f"level ({', '.join(CIRCUIT_COMPONENTS[self.level])} at layers 0..{self.n_layers - 1}, positions "
                    f"0..{self._seq_len - 1}; resid nodes are residual-stream states, read-only)")
            out.append(node.id)
        return sorted(set(out), key=lambda i: node_from_id(i).sort_key())

    @traitlets.validate("method")
    def _check_method(self, proposal: dict) -> str:
        if proposal["value"] not in getattr(self, "attributions", {}):
            raise traitlets.TraitError(f"method {proposal['value']!r} is not computed; call explorer.compute"
                                       f"({proposal['value']!r}) to compute and show it")
        return proposal["value"]

    @traitlets.validate("ablation")
    def _check_ablation(self, proposal: dict) -> str:
        if proposal["value"] not in circuits.ABLATIONS:
            raise traitlets.TraitError(f"ablation must be one of {', '.join(circuits.ABLATIONS)}; "
                                       f"got {proposal['value']!r}")
        return proposal["value"]

    def keep(self, k: int) -> list[str]:
        """Keep the ``k`` nodes of highest absolute score (current method) as the circuit."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self._universe):
            raise ValueError(f"k must be an integer in 0..{len(self._universe)}; got {k!r}")
        with self.hold_trait_notifications():
            self.top_k = k
            self.circuit = [n.id for n in self.attribution.top(k)]
        return self.circuit

    def toggle(self, node: str | Node) -> bool:
        """Ablate ``node`` or, when it is ablated, restore it; True when it is now ablated."""
        text = node.id if isinstance(node, Node) else node
        if text in self.ablated:
            self.ablated = [n for n in self.ablated if n != text]
            return False
        self.ablated = [*self.ablated, text]
        return True

    def as_circuit(self) -> circuits.Circuit:
        """The circuit the widget evaluates: the kept nodes minus the ablated ones."""
        ablated = set(self.ablated)
        return circuits.Circuit(self.level, frozenset(node_from_id(i) for i in self.circuit if i not in ablated))

    def _refresh(self, change: dict | None = None) -> None:
        self._refresh_error = None
        try:
            self.metric = self.evaluate()
        except Exception as exc:  # an observer's error has nowhere to go but the banner
            self._refresh_error = exc
            self.record_error(exc, command="evaluate")

    def evaluate(self) -> dict:
        """The metric with the ablated nodes ablated, and the faithfulness of ``as_circuit()``, from
        one batched forward (plus one for the model's and the empty circuit's metric, once per
        ablation mode)."""
        started = time.perf_counter()
        ablated = [node_from_id(i) for i in self.ablated]
        kept = self.as_circuit().units
        outside = [n for n in self._universe if n not in kept]
        groups = [ablated, outside]
        if self.ablation not in self._reference:
            groups += [[], self._universe]
        values = circuits.ablate_many(self.model, self.task, groups, self.ablation).tolist()
        if self.ablation not in self._reference:
            self._reference[self.ablation] = (values[2], values[3])
        full, empty = self._reference[self.ablation]
        att = self.attribution
        f = None if full == empty else (values[1] - empty) / (full - empty)
        return {"clean": att.clean_metric, "corrupt": att.corrupt_metric, "full": full, "empty": empty,
                "ablated": values[0], "circuit": values[1], "faithfulness": f, "n_ablated": len(ablated),
                "size": len(kept), "total": len(self._universe), "ablation": self.ablation,
                "seconds": time.perf_counter() - started}

    # --- export ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The graph (nodes with scores of every computed method, edges), the circuit, the ablations
        and the metric."""
        methods = sorted(self.attributions)
        per = {m: self.scores(m).tolist() for m in methods}
        nodes = [{"id": n.id, "component": n.component, "layer": n.layer, "head": n.head, "position": n.position,
                  "token": self.labels[n.position], "scores": {m: per[m][i] for m in methods}}
                 for i, n in enumerate(self._node_list)]
        edges = [{"source": e.source.id, "target": e.target.id, "score": s} for e, s in self.edges()]
        return {"model": self.model_name, "task": self.task_name, "n_prompts": self.n_prompts, "level": self.level,
                "method": self.method, "edge_method": self._edges.get("method"), "labels": list(self.labels),
                "nodes": nodes, "edges": edges, "circuit": list(self.circuit), "ablated": list(self.ablated),
                "top_k": self.top_k, "metric": dict(self.metric)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # --- commands from the browser ---------------------------------------------------------------
    @command
    def _compute(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.compute(msg.get("method"), show=msg.get("show", True) is not False)
        return {"method": self.method, "computed": sorted(self.attributions)}, []

    @command
    def _toggle(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        node = msg.get("node")
        if not isinstance(node, str):
            raise ValueError(f"a toggle needs a node id; got {node!r}")
        ablated = self.toggle(node)
        if self._refresh_error is not None:
            raise self._refresh_error
        return {"node": node, "ablated": ablated, "metric": self.metric}, []

    @command
    def _set_ablated(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.ablated = list(msg.get("nodes") or [])
        return {"ablated": self.ablated}, []

    @command
    def _to_json(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"json": self.to_json()}, []

    def __repr__(self) -> str:
        f = self.metric.get("faithfulness")
        shown = "n/a" if f is None else f"{f:.3f}"
        return (f"CircuitExplorer({self.model_name}, {self.task_name}: {self.n_prompts} prompts, {self.level} level, "
                f"{self.method}; circuit {len(self.circuit)} nodes, {len(self.ablated)} ablated, f={shown})")
