"""Ablating nodes or edges: the metric of the clean prompts with parts of the model replaced.

What is replaced, per level:

- component level (``attn``/``mlp`` nodes): the sublayer's output (before any post-norm) at the
  node's position, or at every position for a node without one;
- head level (``head``/``mlp`` nodes): a head's slice of the attention output projection's input
  (its output before W_O), the MLP's output as above;
- edge level (edges ``u -> d``): only what ``d`` reads from ``u``: ``d``'s private copy of the
  residual stream (its pre-norm input, or the sublayer's input in a post-norm block) becomes
  ``input_d - (write_u - reference_u)``, at every position; other readers still see ``u``'s real
  write (a sublayer's write is its output times ``Anatomy.residual_multiplier``, Granite).

Replacement values (``ablation``): ``"zero"``; ``"mean"``: the mean over the task's clean prompts
of the same activation at the same (right-aligned) position, over the prompts that have a real
token there; ``"corrupt"``: the activation from the prompt's corrupted partner. References are
computed by one forward and cached per task, model and ablation.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence

import nnsight
import torch
from torch import Tensor

from ..tasks.contrast import ContrastTask, EncodedTask
from .edges import _reader, _writer, edge_nodes, is_edge, parallel_blocks
from .nodes import Edge, Node, site_envoy, site_masks
from .patching import replaced_metrics
from .result import Circuit

__all__ = ["ABLATIONS", "ablate", "ablate_many", "all_units", "level_of"]

ABLATIONS = ("mean", "zero", "corrupt")
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def level_of(units: Iterable) -> str | None:
    """The level of a set of units: 'edge', 'head' or 'component' (None if empty)."""
    units = list(units)
    if not units:
        return None
    if all(isinstance(u, Edge) for u in units):
        return "edge"
    if not all(isinstance(u, Node) for u in units):
        raise TypeError("a circuit holds either Nodes or Edges (interplab.circuits.Node / Edge), not a mix")
    bad = [u for u in units if u.component not in ("attn", "mlp", "head")]
    if bad:
        raise ValueError(f"cannot ablate {bad[0]}: circuits keep or remove attn, mlp and head nodes (or edges); "
                         "a resid node is a residual-stream state, the sum of everything before it")
    return "head" if any(u.component == "head" for u in units) else "component"


def all_units(model, level: str, seq_len: int | None) -> list:
    """Every unit a circuit of this level can hold (positions resolved when ``seq_len`` is given)."""
    from .nodes import CIRCUIT_COMPONENTS, nodes_of

    a = model.anatomy
    if level == "edge":
        sources, targets = edge_nodes(model)
        parallel = parallel_blocks(model)
        return [Edge(s, t) for s in sources for t in targets if is_edge(s, t, parallel)]
    return nodes_of(CIRCUIT_COMPONENTS[level], a.n_layers, a.n_heads, seq_len)


def ablate(model, task: ContrastTask, units: Iterable | Circuit, ablation: str = "mean") -> float:
    """The task's metric on the clean prompts with ``units`` (nodes or edges) ablated."""
    return float(ablate_many(model, task, [units], ablation)[0])


def ablate_many(model, task: ContrastTask, groups: Sequence[Iterable | Circuit], ablation: str = "mean",
                copies_per_forward: int | None = None) -> Tensor:
    """``ablate`` for several groups, batched: one forward per ``copies_per_forward`` groups."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    groups = [list(g.units) if isinstance(g, Circuit) else list(g) for g in groups]
    levels = {level_of(g) for g in groups} - {None}
    if len(levels) > 1:
        raise ValueError(f"groups mix levels {sorted(levels)}: ablate nodes of one level, or edges, at a time")
    level = levels.pop() if levels else "component"
    enc = task.encode(model)
    per = copies_per_forward or max(1, 8192 // (enc.n * enc.seq_len))
    out = []
    for start in range(0, len(groups), per):
        chunk = groups[start:start + per]
        if level == "edge":
            out.append(_edge_metrics(model, task, enc, chunk, ablation))
        else:
            out.append(_node_metrics(model, task, enc, chunk, ablation))
    return torch.cat(out)


def _node_metrics(model, task, enc: EncodedTask, groups, ablation: str) -> Tensor:
    a = model.anatomy
    masks = site_masks(groups, a.n_layers, a.n_heads, enc.seq_len, model.device)
    refs = _references(model, task, enc, ablation)
    copies = len(groups)
    values = {key: _tile(refs[key], copies) for key in masks}
    inputs = enc.inputs(["clean"] * copies)
    answer, distractor = enc.targets(copies)
    return replaced_metrics(model, enc, inputs, masks, values, answer, distractor).float().cpu()


def _tile(ref: Tensor, copies: int) -> Tensor:
    return ref if ref.ndim == 0 or ref.shape[0] == 1 or copies == 1 else ref.repeat(copies, 1, 1)


def _references(model, task, enc: EncodedTask, ablation: str) -> dict:
    """Reference activations per site: (layer, kind) for nodes, ("write", node) for edge sources."""
    key = (id(model.hf), str(model.device), ablation)
    per_task = _CACHE.setdefault(task, {})
    if key in per_task:
        return per_task[key]
    locations = _reference_locations(model)
    part = "corrupt" if ablation == "corrupt" else "clean"
    n = enc.n
    weights = enc.attention_mask.float()[:, :, None]  # real tokens only
    with torch.no_grad(), model.trace(**enc.inputs([part]), logits_to_keep=1):
        refs = {}
        for names, envoy, reads_input in locations:
            h = envoy.input if reads_input else envoy.output
            for name in names:
                refs[name] = h
        if ablation == "mean":
            means = {}
            for name in refs:
                total = (refs[name].float() * weights).sum(0, keepdim=True)
                means[name] = (total / weights.sum(0, keepdim=True).clamp(min=1)).to(refs[name].dtype)
            refs = means
        saved = nnsight.save({})
        for name in refs:
            saved[name] = refs[name]
    result = {k: torch.zeros((), dtype=v.dtype, device=v.device) if ablation == "zero" else v for k, v in saved.items()}
    assert all(v.shape[0] in (1, n) for v in result.values() if v.ndim)
    per_task[key] = result
    return result


def _reference_locations(model) -> list[tuple[list, object, bool]]:
    """(names, envoy, reads_input) for every node site and edge write, in forward order; a location
    that is both (the attention output, the MLP output) is read once under both names."""
    sources, _ = edge_nodes(model)
    writes = {s: _writer(model, s) for s in sources}
    locations = [([("write", sources[0])], *writes[sources[0]])]
    for layer in range(model.anatomy.n_layers):
        for kind, source in (("z", None), ("attn", Node("attn", layer)), ("mlp", Node("mlp", layer))):
            envoy, reads_input = site_envoy(model, layer, kind)
            locations.append(([(layer, kind)], envoy, reads_input))
            if source is None:
                continue
            write_envoy, write_input = writes[source]
            if write_envoy is envoy and write_input == reads_input:
                locations[-1][0].append(("write", source))
            else:
                locations.append(([("write", source)], *writes[source]))
    return locations


def _edge_metrics(model, task, enc: EncodedTask, groups, ablation: str) -> Tensor:
    sources, targets = edge_nodes(model)
    copies, n = len(groups), enc.n
    index = {s: i for i, s in enumerate(sources)}, {t: j for j, t in enumerate(targets)}
    ablated = torch.zeros(copies, len(sources), len(targets), dtype=torch.bool)
    parallel = parallel_blocks(model)
    for c, group in enumerate(groups):
        for edge in group:
            if edge.source not in index[0] or edge.target not in index[1] or not is_edge(*edge, parallel):
                raise ValueError(f"{edge} is not an edge of this model (sources: embed, attn.l, mlp.l; targets: "
                                 "attn.l, mlp.l, logits; a source must write before the target reads)")
            ablated[c, index[0][edge.source], index[1][edge.target]] = True
    refs = _references(model, task, enc, ablation)
    # per reader: the sources it loses (with per-row weights), in forward order
    plan_reads = []
    for j, target in enumerate(targets):
        lost = []
        for i in range(len(sources)):
            if ablated[:, i, j].any():
                rows = ablated[:, i, j].to(model.dtype).repeat_interleave(n)[:, None, None].to(model.device)
                lost.append((i, rows))
        plan_reads.append((_reader(model, target)[0], lost))
    plan_writes = []
    for i, source in enumerate(sources):
        envoy, reads_input = _writer(model, source)
        needed = bool(ablated[:, i, :].any())
        plan_writes.append((envoy, reads_input, needed, _tile(refs[("write", source)], copies)))
    steps = [("write", 0)]
    for layer in range(model.anatomy.n_layers):
        steps += [("read", 2 * layer), ("write", 1 + 2 * layer), ("read", 2 * layer + 1), ("write", 2 + 2 * layer)]
    steps.append(("read", len(targets) - 1))
    inputs = enc.inputs(["clean"] * copies)
    answer, distractor = enc.targets(copies)
    unembed = model.unembed
    with torch.no_grad(), model.trace(**inputs, logits_to_keep=1):
        changes = {}
        for what, k in steps:
            if what == "write":
                envoy, reads_input, needed, ref = plan_writes[k]
                if needed:  # the change in what the source adds to the stream (Granite scales sublayer writes)
                    h = envoy.input if reads_input else envoy.output
                    changes[k] = (h - ref) * (model.anatomy.residual_multiplier if k else 1.0)
            else:
                envoy, lost = plan_reads[k]
                if lost:
                    h = envoy.input
                    for i, rows in lost:
                        h = h - rows * changes[i]
                    envoy.input = h
        logits = unembed.output[:, -1].float()
        metrics = enc.measure(logits, answer, distractor).view(copies, n).mean(1).save()
    return metrics.float().cpu()
