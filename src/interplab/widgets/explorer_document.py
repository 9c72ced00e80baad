"""The CircuitExplorer's JSON document: the one writer of the graph JSON, its schema, reading it back.

``explorer.schema.json`` (next to this module; ``SCHEMA_PATH``) is the published JSON Schema. The
document holds every computed method's node scores, so ``CircuitExplorer.from_json`` rebuilds the
attributions without running the model and restores the view (circuit, ablations, pins, groups,
suggestions, thresholds, semantic zoom, colour scale, zoom rectangle, verified nodes).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import circuits
from ..circuits.nodes import Edge, node_from_id
from .codecs import from_json_number, json_safe

if TYPE_CHECKING:
    from .explorer import CircuitExplorer

__all__ = ["SCHEMA", "SCHEMA_PATH", "attributions", "check_fits", "read", "restore_view", "schema", "write"]

SCHEMA = "interplab.circuit-explorer/1"
SCHEMA_PATH = Path(__file__).with_name("explorer.schema.json")
VIEW = ("top_k", "top_edges", "circuit", "ablated", "ablation", "pinned", "groups", "suggestions", "collapsed",
        "colour", "zoom")


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def write(ex: CircuitExplorer) -> dict:
    methods = sorted(ex.attributions)
    per = {m: ex.scores(m).tolist() for m in methods}
    nodes = [{"id": n.id, "component": n.component, "layer": n.layer, "head": n.head, "position": n.position,
              "token": ex.labels[n.position], "scores": {m: per[m][i] for m in methods}}
             for i, n in enumerate(ex.nodes)]
    edges = sorted(ex.edges(), key=lambda item: -abs(item[1]))
    shown = ex.edge_attributions.get(ex._edges.get("method"))
    scored = {"edge_count": shown.edge_count, "edge_mass": shown.edge_mass} if shown and shown.positions else {}
    return json_safe({
        **scored,
        "schema": SCHEMA, "model": ex.model_name, "task": ex.task_name, "n_prompts": ex.n_prompts,
        "level": ex.level, "n_layers": ex.n_layers, "n_heads": ex.n_heads, "metric_name": ex.task.metric_name,
        "labels": list(ex.labels), "method": ex.method, "edge_method": ex._edges.get("method"),
        "attributions": {m: {"clean": a.clean_metric, "corrupt": a.corrupt_metric} for m, a in ex.attributions.items()},
        "nodes": nodes,
        "edges": [{"source": e.source.id, "target": e.target.id, "score": s} for e, s in edges],
        "view": {key: getattr(ex, key) for key in VIEW},
        "verified": dict(ex.verified),
        "metric": dict(ex.metric),
    })


def read(data: str | dict) -> dict:
    """The document, checked against the schema (a ``ValueError`` says where it fails)."""
    import jsonschema

    doc = json.loads(data) if isinstance(data, str) else data
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "the top level"
        raise ValueError(f"not a CircuitExplorer document ({SCHEMA}): at {where}: {e.message}")
    return doc


def check_fits(doc: dict, model, task) -> None:
    enc = task.encode(model)
    a = model.anatomy
    mine = (doc["n_layers"], doc["n_heads"], tuple(doc["labels"]))
    theirs = (a.n_layers, a.n_heads, tuple(enc.labels))
    if mine != theirs:
        raise ValueError(f"this document is of another model or task: it has {mine[0]} layers, {mine[1]} heads and "
                         f"tokens {list(mine[2])}; this model and task have {theirs[0]}, {theirs[1]} and "
                         f"{list(theirs[2])}")


def attributions(doc: dict) -> list[circuits.Attribution]:
    """Node-level attributions of every method in the document, and the edge attribution."""
    level, n_layers, n_heads = doc["level"], doc["n_layers"], doc["n_heads"]
    seq_len = len(doc["labels"])
    out = []
    for method, metric in doc["attributions"].items():
        scores = {c: torch.zeros(n_layers, *((n_heads,) if c == "head" else ()), seq_len)
                  for c in circuits.nodes.SCORED_COMPONENTS[level]}
        for node in doc["nodes"]:
            index = (node["layer"], *(() if node["head"] is None else (node["head"],)), node["position"])
            scores[node["component"]][index] = from_json_number(node["scores"][method])
        axes = {c: ("layer", "head", "position") if c == "head" else ("layer", "position") for c in scores}
        out.append(circuits.Attribution(method, level, scores, axes, tuple(doc["labels"]), n_layers, n_heads,
                                        from_json_number(metric["clean"]), from_json_number(metric["corrupt"]),
                                        doc["model"]))
    if doc["edge_method"] is not None:
        edges = [(Edge(node_from_id(e["source"]), node_from_id(e["target"])), from_json_number(e["score"]))
                 for e in doc["edges"]]
        sources = tuple(dict.fromkeys(e.source for e, _ in edges))
        targets = tuple(dict.fromkeys(e.target for e, _ in edges))
        where = {n: i for i, n in enumerate(sources)}, {n: j for j, n in enumerate(targets)}
        rows = [where[0][e.source] for e, _ in edges]
        columns = [where[1][e.target] for e, _ in edges]
        values = torch.tensor([s for _, s in edges], dtype=torch.float32)
        extra: dict[str, Any] = {}
        if "edge_count" in doc:  # position-resolved: the kept edges, sparse, as the engine holds them
            matrix = torch.sparse_coo_tensor(torch.tensor([rows, columns], dtype=torch.long).reshape(2, -1), values,
                                             (len(sources), len(targets)), check_invariants=True).coalesce()
            extra = {"edge_count": doc["edge_count"], "edge_mass": from_json_number(doc["edge_mass"])}
        else:
            matrix = torch.full((len(sources), len(targets)), float("nan"))
            matrix[rows, columns] = values
        first = doc["attributions"][doc["method"]]
        out.append(circuits.Attribution(doc["edge_method"], "edge", {}, {}, tuple(doc["labels"]), n_layers, n_heads,
                                        from_json_number(first["clean"]), from_json_number(first["corrupt"]),
                                        doc["model"], sources=sources, targets=targets, edge_scores=matrix, **extra))
    return out


def restore_view(ex: CircuitExplorer, doc: dict) -> None:
    view: dict[str, Any] = doc["view"]
    with ex.hold_trait_notifications():
        for key in VIEW:
            if key not in ("ablation", "top_k"):
                setattr(ex, key, view[key])
        ex.verified = doc["verified"]
