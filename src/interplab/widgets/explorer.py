"""``il.CircuitExplorer(model, task)``: a contrast task's attribution as a layered graph you can act on.

The widget scores every node of ``task`` (``il.circuits.attribute`` at the component or head
level, per position) and the position-resolved edges between them (``level="edge"``,
``positions=True``: ``u@p -> v@q``, attention patterns held fixed), draws them as a graph (layers
bottom to top, positions left to right, each edge between the two node boxes it joins), prunes it
in the browser from rankings computed here, and re-runs the model when you act on it.

Edges. Position-resolved edges come from one gradient (AtP or RelP): integrated gradients and
patching have none, so each node method draws the edges of ``EDGE_METHODS[method]`` (ig -> RelP,
patch -> AtP), which the header and the edge legend name. At most ``MAX_EDGES`` non-zero edges,
the strongest by |score|, are kept and sent (as binary arrays, ranked once here, with their
cumulative share of |score|); a remote model, where position-resolved edges cannot run, gets edges
summed over positions instead (``REMOTE_EDGE_METHODS``; endpoints such as ``attn.3``). Everything
it does is a method here too::

    explorer = il.CircuitExplorer(model, task)          # method="ig"; "patch", "atp", "relp" on request
    explorer.compute("relp")                             # switch method (the widget's method menu)
    explorer.keep(20)                                    # the circuit: top 20 nodes (the size box)
    explorer.toggle("mlp.1@16")                          # ablate a node (a click), or explorer.ablated = [...]
    explorer.metric                                      # {"ablated": m, "faithfulness": f, ...}
    explorer.pin(["head.3.1@16"]); explorer.subgraph()   # ctrl/cmd-click; pinned nodes and their edges
    explorer.group("movers", explorer.pinned)            # a supernode; explorer.suggest_groups()
    explorer.verify()                                    # exact patching of the pinned nodes
    explorer.intervene("scale", factor=2.0)              # on the pinned nodes: metric and generation
    explorer.to_html("circuit.html"); explorer.to_json() # share; CircuitExplorer.from_json(model, task, text)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import traitlets
from tqdm.auto import tqdm

from .. import circuits
from ..circuits.groups import edge_profiles, endpoints
from ..circuits.nodes import CIRCUIT_COMPONENTS, SCORED_COMPONENTS, Edge, Node, node_from_id, nodes_of
from ..model import Model
from . import explorer_document as document
from .base import Widget, command
from .codecs import encode_array, json_safe

__all__ = ["COMPONENTS", "EDGE_METHODS", "MAX_EDGES", "CircuitExplorer"]

COMPONENTS = ("resid", "attn", "mlp", "head")
"""Component codes of the node arrays sent to the browser (index = code)."""

NODE_LEVELS = ("component", "head")
COLOURS = {"log": "log |score|", "linear": "|score|", "rank": "rank"}
METHOD_LABELS = {"ig": "integrated gradients", "patch": "activation patching", "atp": "attribution patching (AtP)",
                 "relp": "RelP"}
INTERVENTION_LABELS = {"mean": "mean-ablate", "zero": "zero-ablate", "corrupt": "corrupt-ablate",
                       "patch": "patch in clean", "scale": "scale by"}
METRIC_LABELS = {"logit_diff": "logit difference (answer − distractor)",
                 "prob_diff": "probability difference (answer − distractor)",
                 "logprob": "log-probability of the answer"}
EDGE_METHODS = {"ig": "relp", "patch": "atp", "atp": "atp", "relp": "relp"}
"""The method of the position-resolved edges drawn with each node method: AtP and RelP have an edge
pass per position, integrated gradients and patching do not (ig -> RelP: like IG it corrects AtP's
linearisation, with LRP rules instead of a path integral; patch -> AtP, its first-order estimate)."""
REMOTE_EDGE_METHODS = {"ig": "ig", "patch": "atp", "atp": "atp", "relp": "relp"}
"""Edges summed over positions on a remote model (position-resolved edges run local hooks)."""
MAX_EDGES = 20_000
"""Most edges kept and sent to the browser: the strongest non-zero ones by |score|."""
GENERATED_TOKENS = 8
MAX_NAME = 40


def _short_name(name: str) -> str:
    path = Path(name)
    return path.name if path.is_absolute() and path.is_dir() else name


def _ids(nodes: Iterable[Node | str] | Node | str) -> list[str]:
    if isinstance(nodes, Node | str):
        nodes = [nodes]
    return [n.id if isinstance(n, Node) else n for n in nodes]


class CircuitExplorer(Widget, bundle="explorer"):
    """An attribution graph of ``task`` (an ``il.circuits.ContrastTask``) on ``model``.

    ``method``: the first method computed ("ig", the default, "patch", "atp" or "relp"). ``level``: "component"
    (resid, attn, mlp per layer and position) or "head" (heads and MLPs per layer and position).
    ``ablation``: what an ablated node is replaced with ("corrupt", the default, "mean" or "zero";
    see ``il.circuits.ablate``). The default matches what every method scores (a node's clean
    activation put into the corrupted run), so a circuit is judged by the same counterfactual.
    ``top_k``: nodes kept in the circuit at first (default: the top 10%).
    ``attributions``: attributions of this task already computed (e.g. in a notebook), reused
    instead of recomputed; node-level ones of ``level`` with positions, and edge-level ones.
    """

    model_name = traitlets.Unicode("").tag(sync=True)
    task_name = traitlets.Unicode("").tag(sync=True)
    n_prompts = traitlets.Int(0).tag(sync=True)
    level = traitlets.Enum(NODE_LEVELS, default_value="component").tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_heads = traitlets.Int(0).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    method = traitlets.Enum(circuits.METHODS, default_value="ig").tag(sync=True)
    ablation = traitlets.Enum(circuits.ABLATIONS, default_value="corrupt").tag(sync=True)
    colour = traitlets.Enum(tuple(COLOURS), default_value="log", help="how node colours encode scores").tag(sync=True)
    top_k = traitlets.Int(0, help="nodes kept in the circuit").tag(sync=True)
    top_edges = traitlets.Int(0, help="edges drawn (the top ones by |score|)").tag(sync=True)
    circuit = traitlets.List(traitlets.Unicode(), help="ids of the nodes kept in the circuit").tag(sync=True)
    ablated = traitlets.List(traitlets.Unicode(), help="ids of the nodes ablated by hand").tag(sync=True)
    pinned = traitlets.List(traitlets.Unicode(), help="ids of the pinned nodes (ctrl/cmd-click)").tag(sync=True)
    groups = traitlets.Dict(help="supernodes: name -> node ids").tag(sync=True)
    suggestions = traitlets.List(traitlets.Dict(), help="suggested groups: {nodes, similarity}").tag(sync=True)
    collapsed = traitlets.Dict(help="semantic zoom: {layers: [l], ranges: [[first, last]]}").tag(sync=True)
    zoom = traitlets.Dict(help="the graph rectangle in view: {x0, y0, x1, y1} (saved view)").tag(sync=True)
    metric = traitlets.Dict(help="metrics of the current ablations and circuit").tag(sync=True)
    verified = traitlets.Dict(help="node id -> {exact, estimate, method}").tag(sync=True)
    intervention = traitlets.Dict(help="the last intervention on pinned nodes").tag(sync=True)
    breakdown = traitlets.Dict(help="a node's exact score per prompt").tag(sync=True)
    _vocab = traitlets.Dict().tag(sync=True)
    _nodes = traitlets.Dict().tag(sync=True)
    _scores = traitlets.Dict().tag(sync=True)
    _orders = traitlets.Dict().tag(sync=True)
    _edges = traitlets.Dict().tag(sync=True)

    _browser_writable = frozenset({"circuit", "top_k", "top_edges", "ablated", "ablation", "colour", "pinned",
                                   "groups", "suggestions", "collapsed", "zoom"})

    def __init__(self, model: Model, task: circuits.ContrastTask, method: str = "ig", *, level: str = "component",
                 ablation: str = "corrupt", top_k: int | None = None,
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
        self._ready = False
        enc = task.encode(model)
        a = model.anatomy
        self._seq_len = enc.seq_len
        self._node_list = nodes_of(SCORED_COMPONENTS[level], a.n_layers, a.n_heads, enc.seq_len)
        self._node_index = {n.id: i for i, n in enumerate(self._node_list)}
        self._universe = nodes_of(CIRCUIT_COMPONENTS[level], a.n_layers, a.n_heads, enc.seq_len)
        self._units = set(self._universe)
        self.attributions: dict[str, circuits.Attribution] = {}
        self.edge_attributions: dict[str, circuits.Attribution] = {}
        self._edge_lists: dict[str, list[tuple[Edge, float]]] = {}
        self._refresh_error: BaseException | None = None
        super().__init__(model_name=_short_name(model.name), task_name=task.name, n_prompts=enc.n, level=level,
                         n_layers=a.n_layers, n_heads=a.n_heads, labels=list(enc.labels), ablation=ablation,
                         _vocab=self._vocabulary(level), _nodes=self._node_arrays(), **kwargs)
        for att in attributions:
            self._adopt(att)
        self.compute(method)
        self.keep(max(1, len(self._universe) // 10) if top_k is None else top_k)
        self.top_edges = min(40, len(self.edges()))
        if "collapsed" not in kwargs:
            self.collapsed = {"layers": [], "ranges": self._quiet_ranges()}
        self.observe(self._refresh, names=["circuit", "ablated", "ablation"])
        self._refresh()
        self._ready = True

    @staticmethod
    def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")

    def _vocabulary(self, level: str) -> dict:
        """The enumerations the browser offers, with their labels (the one list of them)."""
        name = self.task.metric_name
        return {
            "methods": [[m, METHOD_LABELS.get(m, m)] for m in circuits.METHODS],
            "ablations": [[m, m if m != "corrupt" else "corrupted"] for m in circuits.ABLATIONS],
            "interventions": [[m, INTERVENTION_LABELS.get(m, m)] for m in circuits.INTERVENTIONS],
            "colours": [[k, v] for k, v in COLOURS.items()],
            "components": list(COMPONENTS),
            "circuit_components": list(CIRCUIT_COMPONENTS[level]),
            "metric": {"name": name, "label": METRIC_LABELS.get(name, name)},
        }

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
            self._edge_lists[att.method] = att.edges()
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
        scores = self.scores(att.method)
        ranked = [self._node_index[n.id] for n, _ in att.ranking()]
        share = np.abs(scores[ranked]).astype(np.float64)
        cumulative = np.cumsum(share) / share.sum() if share.sum() > 0 else np.zeros(len(ranked))
        self._scores = {**self._scores, att.method: encode_array(scores, "float32")}
        self._orders = {**self._orders, att.method: {"order": encode_array(ranked, "int32"),
                                                     "cumulative": encode_array(cumulative, "float32")}}

    @contextmanager
    def _steps(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """Progress: in the widget once it is shown, in a notebook progress bar while it is built."""
        if self._ready:
            with self.working(label, total) as step:
                yield step
            return
        with tqdm(total=total, desc=label, leave=False) as bar:
            yield bar.update

    def compute(self, method: str, show: bool = True) -> circuits.Attribution:
        """Score the nodes with ``method`` (kept: a method is computed once) and, with ``show``,
        show it (its graph, and its top ``top_k`` nodes as the circuit). Progress: one step per
        part of the prompts (``il.circuits.attribute_in_parts``) and one for the edges."""
        self._check_choice("method", method, circuits.METHODS)
        edge_method = self.edge_method(method)
        enc = self.task.encode(self.model)
        parts = min(enc.n, 8 if method == "patch" else 4)
        steps = (0 if method in self.attributions else parts) + (0 if edge_method in self._edge_lists else 1)
        if steps:
            with self._steps(f"{method}: scoring nodes and edges", steps) as step:
                if method not in self.attributions:
                    self._adopt(circuits.attribute_in_parts(self.model, self.task, method, self.level, parts=parts,
                                                            observer=lambda done, total: step(1)))
                if edge_method not in self._edge_lists:
                    self._adopt(circuits.attribute(self.model, self.task, edge_method, "edge",
                                                   positions=not self.model.remote, heads=self.level == "head",
                                                   keep=MAX_EDGES, progress=False))
                    step(1)
        if show:
            with self.hold_sync():
                self.method = method
                self._edges = self._edge_arrays(edge_method)
            if self._ready:
                self.keep(self.top_k)
        return self.attributions[method]

    def _quiet_ranges(self) -> list[list[int]]:
        """Runs of two or more positions where every node scores exactly 0 (e.g. a prefix that clean
        and corrupted prompts share): shown collapsed at first, one column each."""
        scores = self.scores()
        positions = np.array([n.position for n in self._node_list])
        quiet = [bool(np.all(scores[positions == p] == 0)) for p in range(self._seq_len)]
        ranges, start = [], None
        for p, q in enumerate([*quiet, False]):
            if q and start is None:
                start = p
            elif not q and start is not None:
                if p - 1 > start:
                    ranges.append([start, p - 1])
                start = None
        return ranges

    @property
    def attribution(self) -> circuits.Attribution:
        """The attribution shown (the current method's)."""
        return self.attributions[self.method]

    def edge_method(self, method: str | None = None) -> str:
        """The method whose edges are drawn with node method ``method`` (default: the current one):
        ``EDGE_METHODS`` (``REMOTE_EDGE_METHODS`` on a remote model)."""
        return (REMOTE_EDGE_METHODS if self.model.remote else EDGE_METHODS)[method or self.method]

    def edges(self) -> list[tuple[Edge, float]]:
        """The edges shown with their scores (``edge_method()``'s): position-resolved, ``u@p -> v@q``
        (on a remote model: summed over positions), the strongest ``MAX_EDGES`` at most."""
        return self._edge_lists[self.edge_method()]

    def _edge_arrays(self, edge_method: str) -> dict:
        """Edges ranked by |score| (the browser's edge order), between endpoint ids: nodes at
        positions (``head.3.1@5``; at the head level ``attn.3@5``, its heads' summed writes, as a
        source), or whole components (``attn.3``) where edges are summed over positions. ``count``:
        edges scored; ``mass``: the share of their total |score| that the edges sent carry."""
        att = self.edge_attributions[edge_method]
        listed = self._edge_lists[edge_method]
        ranked = sorted(range(len(listed)), key=lambda k: -abs(listed[k][1]))
        edges = [listed[k] for k in ranked]
        ends = list(dict.fromkeys(n for e, _ in edges for n in e))
        index = {n: i for i, n in enumerate(ends)}
        share = np.abs([s for _, s in edges], dtype=np.float64)
        cumulative = np.cumsum(share) / share.sum() if len(share) and share.sum() > 0 else np.zeros(len(edges))
        return {
            "method": edge_method,
            "label": METHOD_LABELS.get(edge_method, edge_method),
            "positions": att.positions,
            "count": att.edge_count if att.positions else len(listed),
            "mass": att.edge_mass if att.positions else 1.0,
            "ends": [n.id for n in ends],
            "source": encode_array([index[e.source] for e, _ in edges], "int32"),
            "target": encode_array([index[e.target] for e, _ in edges], "int32"),
            "score": encode_array([s for _, s in edges], "float32"),
            "cumulative": encode_array(cumulative, "float32"),
        }

    def correlation(self, a: str, b: str, components: Sequence[str] | None = None) -> float:
        """Pearson correlation of two computed methods' node scores (all nodes, or ``components``)."""
        keep = np.array([components is None or n.component in components for n in self._node_list])
        x, y = self.scores(a)[keep].astype(np.float64), self.scores(b)[keep].astype(np.float64)
        if x.std() == 0 or y.std() == 0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])

    # --- validation ------------------------------------------------------------------------------
    def _node_ids(self, name: str, items: Iterable, units: set[Node] | None = None) -> list[str]:
        """Checked node ids in forward order; ``units``: the nodes allowed (default: every graph node)."""
        allowed = self._node_index if units is None else None
        out = []
        for item in items:
            text = item.id if isinstance(item, Node) else item
            try:
                node = node_from_id(text)
            except (ValueError, TypeError):
                raise traitlets.TraitError(f"{name}: {text!r} is not a node id "
                                           "(e.g. 'attn.1@4', 'head.2.0@16', 'mlp.0@3')") from None
            ok = node.id in allowed if allowed is not None else node in units
            if not ok:
                what = ", ".join(CIRCUIT_COMPONENTS[self.level] if units is not None else SCORED_COMPONENTS[self.level])
                extra = "; resid nodes are residual-stream states, read-only" if units is not None else ""
                raise traitlets.TraitError(
                    f"{name}: {text} is not a node {'a circuit can keep or ablate' if units is not None else 'of'} "
                    f"the {self.level}-level graph ({what} at layers 0..{self.n_layers - 1}, positions "
                    f"0..{self._seq_len - 1}{extra})")
            out.append(node.id)
        return sorted(set(out), key=lambda i: node_from_id(i).sort_key())

    @traitlets.validate("circuit", "ablated")
    def _check_circuit_nodes(self, proposal: dict) -> list[str]:
        return self._node_ids(proposal["trait"].name, proposal["value"], self._units)

    @traitlets.validate("pinned")
    def _check_pinned(self, proposal: dict) -> list[str]:
        return self._node_ids("pinned", proposal["value"])

    @traitlets.validate("groups")
    def _check_groups(self, proposal: dict) -> dict:
        out, owner = {}, {}
        for name, members in proposal["value"].items():
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
                raise traitlets.TraitError(f"a group name is printable text of 1..{MAX_NAME} characters, got {name!r}")
            ids = self._node_ids(f"group {name!r}", members)
            if len(ids) < 2:
                raise traitlets.TraitError(f"group {name!r} needs at least two nodes, got {ids}")
            for i in ids:
                if i in owner:
                    raise traitlets.TraitError(f"{i} is in group {owner[i]!r} already: a node is in one group at most")
                owner[i] = name
            out[name] = ids
        return out

    @traitlets.validate("suggestions")
    def _check_suggestions(self, proposal: dict) -> list[dict]:
        return [{"nodes": self._node_ids("suggestion", s.get("nodes", [])), "similarity": s.get("similarity")}
                for s in proposal["value"]]

    @traitlets.validate("collapsed")
    def _check_collapsed(self, proposal: dict) -> dict:
        value = proposal["value"]
        unknown = set(value) - {"layers", "ranges"}
        if unknown:
            raise traitlets.TraitError(f"collapsed has keys 'layers' and 'ranges', not {sorted(unknown)}")
        try:
            layers = sorted({int(v) for v in value.get("layers", [])})
            ranges = sorted([int(a), int(b)] for a, b in value.get("ranges", []))
        except (TypeError, ValueError):
            raise traitlets.TraitError("collapsed holds layer numbers and [first, last] position pairs, "
                                       f"got {value!r}") from None
        if any(not 0 <= v < self.n_layers for v in layers):
            raise traitlets.TraitError(f"collapsed layers must lie in 0..{self.n_layers - 1}, got {layers}")
        for k, (a, b) in enumerate(ranges):
            if not 0 <= a < b < self._seq_len or (k and a <= ranges[k - 1][1]):
                raise traitlets.TraitError(f"collapsed ranges are disjoint [first, last] position pairs with first < "
                                           f"last in 0..{self._seq_len - 1}, got {ranges}")
        return {"layers": layers, "ranges": ranges}

    @traitlets.validate("method")
    def _check_method(self, proposal: dict) -> str:
        if proposal["value"] not in getattr(self, "attributions", {}):
            raise traitlets.TraitError(f"method {proposal['value']!r} is not computed; call explorer.compute"
                                       f"({proposal['value']!r}) to compute and show it")
        return proposal["value"]

    @traitlets.validate("level")
    def _check_level(self, proposal: dict) -> str:
        if getattr(self, "_ready", False) and proposal["value"] != self.level:
            raise traitlets.TraitError("the level is fixed when the explorer is made: make another explorer "
                                       f"with level={proposal['value']!r}")
        return proposal["value"]

    # --- circuit and ablations -------------------------------------------------------------------
    def keep(self, k: int) -> list[str]:
        """Keep the ``k`` nodes of highest absolute score (current method) as the circuit."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self._universe):
            raise ValueError(f"k must be an integer in 0..{len(self._universe)}; got {k!r}")
        with self.hold_trait_notifications():
            self.top_k = k
            self.circuit = [n.id for n in self.attribution.top(k)]
        return self.circuit

    def keep_share(self, share: float) -> list[str]:
        """Keep the fewest top nodes whose |scores| sum to ``share`` of all (cumulative influence)."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be a fraction in [0, 1]; got {share!r}")
        ranked = np.abs([s for _, s in self.attribution.ranking()])
        total = ranked.sum()
        k = 0 if share == 0 or total == 0 else int(np.searchsorted(np.cumsum(ranked) / total, share - 1e-12) + 1)
        return self.keep(min(k, len(ranked)))

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
        """The metric with the ablated nodes ablated, and the faithfulness of ``as_circuit()``
        (``il.circuits.evaluate``: one batched forward)."""
        e = circuits.evaluate(self.model, self.task, self.circuit, self.ablated, self.ablation, level=self.level)
        att = self.attribution
        return json_safe({"clean": att.clean_metric, "corrupt": att.corrupt_metric, **e.to_dict()})

    # --- pins, groups, verification, interventions ----------------------------------------------
    def pin(self, nodes: Iterable[Node | str] | Node | str) -> list[str]:
        """Add nodes to ``pinned`` (a ctrl/cmd-click); returns the pinned ids."""
        self.pinned = [*self.pinned, *_ids(nodes)]
        return self.pinned

    def unpin(self, nodes: Iterable[Node | str] | Node | str | None = None) -> list[str]:
        """Remove nodes from ``pinned`` (all of them without an argument)."""
        drop = set(self.pinned if nodes is None else _ids(nodes))
        self.pinned = [n for n in self.pinned if n not in drop]
        return self.pinned

    def _describe(self, node_id: str) -> dict:
        i = self._node_index[node_id]
        n = self._node_list[i]
        return {"id": n.id, "component": n.component, "layer": n.layer, "head": n.head, "position": n.position,
                "token": self.labels[n.position], "score": float(self.scores()[i])}

    def subgraph(self) -> dict:
        """The pinned nodes and the edges among them: ``{"nodes": [...], "edges": [...], "groups": {...}}``.

        An edge's endpoints are as the edge attribution gives them (``il.circuits.groups.endpoints``):
        nodes at positions (``mlp.2@5 -> head.4.1@7``; an edge leaves a head's layer at its position,
        ``attn.3@7``, which counts as pinned when a head of it there is), or, summed over positions
        on a remote model, whole components (``attn.3``: pinned when any node of it is).
        """
        pinned = [node_from_id(i) for i in self.pinned]
        edges = self.edges()
        known = {n for e, _ in edges for n in e}
        covered = {end for n in pinned for end in endpoints(n, known)}
        groups = {name: {"nodes": ids, "score": float(sum(self.scores()[self._node_index[i]] for i in ids))}
                  for name, ids in self.groups.items() if set(ids) & set(self.pinned)}
        return json_safe({
            "nodes": [self._describe(i) for i in self.pinned],
            "edges": [{"source": e.source.id, "target": e.target.id, "score": s} for e, s in edges
                      if e.source in covered and e.target in covered],
            "groups": groups,
        })

    def group(self, name: str, nodes: Iterable[Node | str] | None = None) -> list[str]:
        """Make ``nodes`` (default: the pinned ones) a supernode called ``name``: drawn as one node
        whose score and edges are its members' sums. A name already used is replaced."""
        ids = _ids(self.pinned if nodes is None else nodes)
        self.groups = {**{k: v for k, v in self.groups.items() if k != name}, name: ids}
        return self.groups[name]

    def ungroup(self, name: str) -> None:
        if name not in self.groups:
            raise KeyError(f"no group {name!r}; groups: {sorted(self.groups)}")
        self.groups = {k: v for k, v in self.groups.items() if k != name}

    def suggest_groups(self, threshold: float = 0.75) -> list[dict]:
        """Suggested groups among the circuit's nodes: nodes whose edge profiles have cosine
        similarity >= ``threshold`` (``il.circuits.similar_groups``); each to accept or reject."""
        candidates = [node_from_id(i) for i in self.circuit if not any(i in g for g in self.groups.values())]
        found = circuits.similar_groups(edge_profiles(self.edges(), candidates), threshold)
        self.suggestions = [{"nodes": [candidates[k].id for k in members], "similarity": sim} for members, sim in found]
        return list(self.suggestions)

    def accept(self, index: int, name: str | None = None) -> list[str]:
        """Make suggestion ``index`` a group (named ``name``, or ``group N``)."""
        suggestion = self._suggestion(index)
        taken = set(self.groups)
        name = name or next(f"group {k}" for k in range(1, len(taken) + 2) if f"group {k}" not in taken)
        with self.hold_trait_notifications():
            self.group(name, suggestion["nodes"])
            self.suggestions = [s for k, s in enumerate(self.suggestions) if k != index]
        return self.groups[name]

    def reject(self, index: int) -> None:
        """Drop suggestion ``index``."""
        self._suggestion(index)
        self.suggestions = [s for k, s in enumerate(self.suggestions) if k != index]

    def _suggestion(self, index: int) -> dict:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.suggestions):
            raise IndexError(f"no suggestion {index!r}: there are {len(self.suggestions)} (call suggest_groups())")
        return self.suggestions[index]

    def _chosen(self, nodes: Iterable[Node | str] | Node | str | None, what: str) -> list[str]:
        ids = self._node_ids("nodes", _ids(self.pinned if nodes is None else nodes))
        if not ids:
            raise ValueError(f"no nodes to {what}: pin some (ctrl/cmd-click, or explorer.pin([...])) or pass nodes=")
        return ids

    def verify(self, nodes: Iterable[Node | str] | Node | str | None = None, split: bool = True) -> dict[str, float]:
        """Exact activation patching of ``nodes`` (default: the pinned ones) beside the shown
        method's estimate (``il.circuits.verify``): ``{node id: exact score}``. The nodes are marked
        verified in the graph, with both scores in their tooltips. With ``split`` (on a local model),
        also how much of each exact score acts through attention patterns (queries and keys) and how
        much with every pattern frozen (``il.circuits.pattern_split``; two more batched forwards)."""
        ids = self._chosen(nodes, "verify")
        split = split and not self.model.remote
        with self.working(f"verifying {len(ids)} node{'s' if len(ids) != 1 else ''} by patching",
                          total=2 if split else 1) as step:
            v = circuits.verify(self.model, self.task, ids, estimate=self.attribution, progress=False)
            step(1)
            frozen = {}
            if split:
                frozen = circuits.pattern_split(self.model, self.task, ids, progress=False).frozen
                step(1)
        found = {n.id: {"exact": v.exact[n], "estimate": v.estimate[n], "method": v.method,
                        **({"frozen": frozen[n], "through_patterns": v.exact[n] - frozen[n]} if n in frozen else {})}
                 for n in v.nodes}
        self.verified = json_safe({**self.verified, **found})
        return {n.id: v.exact[n] for n in v.nodes}

    def intervene(self, mode: str = "mean", nodes: Iterable[Node | str] | Node | str | None = None, *,
                  factor: float | None = None, generate: int = GENERATED_TOKENS, prompt: int = 0) -> dict:
        """Act on ``nodes`` (default: the pinned ones): ablate ("mean", "zero", "corrupt"), "patch"
        in their clean activations, or "scale" them by ``factor`` (``il.circuits.intervene``). Shows
        the metric before and after (per prompt too) and, with ``generate`` > 0, greedy continuations
        of prompt ``prompt`` before and after (``il.circuits.generate_with``)."""
        ids = self._chosen(nodes, "intervene on")
        with self.working(f"{mode}: {len(ids)} node{'s' if len(ids) != 1 else ''}", total=2 if generate else 1) as step:
            r = circuits.intervene(self.model, self.task, ids, mode, factor=factor)
            step(1)
            g = None
            if generate:
                g = circuits.generate_with(self.model, self.task, ids, mode, factor=factor, prompt=prompt,
                                           max_new_tokens=generate)
                step(1)
        result = {"mode": mode, "factor": r.factor, "nodes": ids, "run": r.run, "before": r.metric_before,
                  "after": r.metric_after, "per_prompt": {"before": r.before.tolist(), "after": r.after.tolist()},
                  "generation": None if g is None else {"prompt": g.prompt, "before": g.before, "after": g.after}}
        self.intervention = json_safe(result)
        return result

    def per_prompt(self, node: Node | str) -> dict:
        """``node``'s exact score per prompt (patching it alone into each corrupted prompt), beside
        the shown method's estimate of its mean: which prompts carry it."""
        (node_id,) = self._node_ids("node", _ids(node))
        with self.working(f"{node_id}: exact score per prompt"):
            r = circuits.intervene(self.model, self.task, [node_id], "patch")
        texts = [t if isinstance(t, str) else " ".join(map(str, t)) for t in self.task.clean]
        self.breakdown = json_safe({"node": node_id, "prompts": texts, "effect": r.effect.tolist(),
                                    "exact": float(r.effect.mean()), "method": self.method,
                                    "estimate": float(self.scores()[self._node_index[node_id]])})
        return dict(self.breakdown)

    # --- export ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The explorer as a JSON document (``explorer.schema.json``): graph, scores of every computed
        method, edges, and the view (circuit, ablations, pins, groups, thresholds)."""
        return document.write(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, model: Model, task: circuits.ContrastTask, data: str | dict, **kwargs: Any) -> CircuitExplorer:
        """An explorer showing the view saved by ``to_json`` (no recomputation: the scores and edges
        come from ``data``), checked against ``model`` and ``task``."""
        doc = document.read(data)
        document.check_fits(doc, model, task)
        explorer = cls(model, task, doc["method"], level=doc["level"], ablation=doc["view"]["ablation"],
                       top_k=doc["view"]["top_k"], attributions=document.attributions(doc), **kwargs)
        document.restore_view(explorer, doc)
        return explorer

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """One self-contained page with the graph, pins, groups and thresholds: hovering works
        without a kernel; ablations and interventions say they need one."""
        from .report import Section, write_report

        title = title or f"{self.model_name} · {self.task_name}: circuit"
        meta = (f"{self.n_prompts} prompts · {self.level} level · {METHOD_LABELS.get(self.method, self.method)} · "
                f"{self.task.metric_name}; hovering works here, ablating and intervening need the notebook")
        return write_report(path, [Section("circuit explorer", widgets=[self])], title=title, meta=meta)

    # --- commands from the browser ---------------------------------------------------------------
    @command(method=str, show=(bool, None))
    def _compute(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.compute(msg.get("method"), show=msg.get("show", True) is not False)
        return {"method": self.method, "computed": sorted(self.attributions)}, []

    @command(node=str)
    def _toggle(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        node = msg.get("node")
        if not isinstance(node, str):
            raise ValueError(f"a toggle needs a node id; got {node!r}")
        ablated = self.toggle(node)
        if self._refresh_error is not None:
            raise self._refresh_error
        return {"node": node, "ablated": ablated, "metric": self.metric}, []

    @command(nodes=list)
    def _set_ablated(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        self.ablated = list(msg.get("nodes") or [])
        return {"ablated": self.ablated}, []

    @command(nodes=(list, None))
    def _verify(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"exact": json_safe(self.verify(msg.get("nodes")))}, []

    @command(mode=str, factor=(int, float, None), nodes=(list, None))
    def _intervene(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        factor = msg.get("factor")
        self.intervene(str(msg.get("mode")), msg.get("nodes"), factor=None if factor is None else float(factor))
        return {"intervention": self.intervention}, []

    @command(node=str)
    def _per_prompt(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"breakdown": self.per_prompt(str(msg.get("node")))}, []

    @command(threshold=(int, float, None))
    def _suggest(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        threshold = msg.get("threshold")
        return {"suggestions": self.suggest_groups(0.75 if threshold is None else float(threshold))}, []

    @command()
    def _to_json(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        return {"json": self.to_json()}, []

    def __repr__(self) -> str:
        f = self.metric.get("faithfulness")
        shown = f"{f:.3f}" if isinstance(f, float) and math.isfinite(f) else str(f)
        return (f"CircuitExplorer({self.model_name}, {self.task_name}: {self.n_prompts} prompts, {self.level} level, "
                f"{self.method}; circuit {len(self.circuit)} nodes, {len(self.ablated)} ablated, "
                f"{len(self.pinned)} pinned, f={shown})")
