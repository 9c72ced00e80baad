"""``pattern_split``: how much of a node's patching effect acts through attention patterns.

    split = il.circuits.pattern_split(model, task, att.top(10))
    split.to_frame()    # node, layer, component, head, position, total, frozen, through_patterns

Per node (denoising, like ``verify``):

- ``total``: activation patching, ``m(corrupt with node := clean) - m(corrupt)``;
- ``frozen``: the same patch with every attention pattern held at the corrupted run's. A head or
  attention node's clean activation is then its corrupted pattern applied to its clean values, so
  no pattern changes anywhere, its own included;
- ``through_patterns = total - frozen``: the part that acts through where attention looks (queries
  and keys), downstream of the node or, for a head, in the head itself.

Position-resolved edges hold patterns fixed, so they can only show ``frozen``: a node with a large
``through_patterns`` works by moving attention (e.g. on SmolLM2's IOI the residual stream at the
repeated name). Cost: two batched patching forwards per chunk of nodes (as many nodes per forward
as ``verify``), plus one clean and one corrupted forward.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import nnsight
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..tasks.contrast import ContrastTask
from .gradients import prompt_inputs
from .nodes import SITE_KINDS, Node, node_from_id, site_envoy, site_masks
from .patching import nodes_per_forward, replaced_metrics
from .patterns import LayerPatterns, fixed_patterns, repeat_kv
from .position_edges import run_metric
from .result import Circuit

__all__ = ["PatternSplit", "pattern_split"]

_SITE = {"resid": "resid", "head": "z", "attn": "attn", "mlp": "mlp"}


@dataclass(frozen=True)
class PatternSplit:
    """Per node: patching effect (``total``), the same with attention patterns frozen (``frozen``),
    and their difference (``through_patterns``)."""

    nodes: tuple[Node, ...]
    total: dict[Node, float]
    frozen: dict[Node, float]
    clean_metric: float
    corrupt_metric: float

    @property
    def through_patterns(self) -> dict[Node, float]:
        return {n: self.total[n] - self.frozen[n] for n in self.nodes}

    def to_frame(self) -> pd.DataFrame:
        rows = [(n.id, n.layer, n.component, n.head, n.position, self.total[n], self.frozen[n],
                 self.total[n] - self.frozen[n]) for n in self.nodes]
        frame = pd.DataFrame(rows, columns=["node", "layer", "component", "head", "position", "total", "frozen",
                                            "through_patterns"])
        for column in ("head", "position"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def __repr__(self) -> str:
        return f"PatternSplit({len(self.nodes)} nodes: patching, and patching with attention patterns frozen)"


def pattern_split(model, task: ContrastTask, nodes: Iterable[Node | str] | Circuit, *, batch_size: int | None = None,
                  progress: bool = True) -> PatternSplit:
    """Patch each node as is and with every attention pattern frozen at the corrupted run's (see the
    module docstring). ``nodes``: resid, attn, head or mlp nodes (or their ids), or a node circuit."""
    units = nodes.units if isinstance(nodes, Circuit) else nodes
    chosen = [node_from_id(u) if isinstance(u, str) else u for u in units]
    if not chosen:
        raise ValueError("no nodes to split: pass at least one node")
    bad = [u for u in chosen if not isinstance(u, Node) or u.component not in _SITE]
    if bad:
        raise ValueError(f"pattern_split patches resid, attn, head and mlp nodes, not {bad[0]!r}")
    if model.remote:
        raise ValueError("pattern_split holds attention patterns with a local attention function: load the model "
                         "without remote=")
    chosen = sorted(dict.fromkeys(chosen), key=Node.sort_key)
    a = model.anatomy
    enc = task.encode(model)
    sites = sorted({(n.layer, _SITE[n.component]) for n in chosen}, key=lambda s: (s[0], SITE_KINDS.index(s[1])))
    site_masks([[n] for n in chosen], a.n_layers, a.n_heads, enc.seq_len, model.device)  # checks layers, heads
    clean_acts, clean_values, corrupt_patterns = _runs(model, enc, sites)
    frozen_acts = dict(clean_acts)
    for layer, kind in sites:  # a head's (attention's) clean output under its corrupted pattern
        if kind in ("z", "attn"):
            z = torch.matmul(corrupt_patterns[layer], repeat_kv(clean_values[layer], a.n_heads)).transpose(1, 2)
            z = z.flatten(2).to(clean_acts[(layer, kind)].dtype)
            frozen_acts[(layer, kind)] = z if kind == "z" else model.blocks[layer].module("attn_out")(z)
    per = nodes_per_forward(enc, batch_size)
    chunks = [chosen[i:i + per] for i in range(0, len(chosen), per)]
    total, frozen = {}, {}
    clean = corrupt = float("nan")
    for chunk in tqdm(chunks, desc="pattern split", unit="chunk", disable=not progress or len(chunks) < 2):
        groups = [[], *([node] for node in chunk)]
        masks = site_masks(groups, a.n_layers, a.n_heads, enc.seq_len, model.device)
        inputs = enc.inputs(["corrupt"] * len(groups))
        answer, distractor = enc.targets(len(groups))
        for out, acts, patterns in ((total, clean_acts, None), (frozen, frozen_acts, corrupt_patterns)):
            values = {key: acts[key].repeat(len(groups), 1, 1) for key in masks}
            states = [LayerPatterns(pattern=None if patterns is None else patterns[layer])
                      for layer in range(a.n_layers)]
            with fixed_patterns(model, states):
                metrics = replaced_metrics(model, enc, inputs, masks, values, answer, distractor).float().cpu()
            out.update({node: float(m - metrics[0]) for node, m in zip(chunk, metrics[1:])})
        corrupt = float(metrics[0])
    with torch.no_grad(), fixed_patterns(model, [LayerPatterns() for _ in range(a.n_layers)]):
        clean = float(run_metric(model, enc, enc.inputs(["clean"]), enc.answer_ids, enc.distractor_ids).mean())
    return PatternSplit(tuple(chosen), total, frozen, clean, corrupt)


def _runs(model, enc, sites):
    """Clean activations at ``sites``, clean values per layer, corrupted patterns per layer."""
    n_layers = model.anatomy.n_layers
    clean_states = [LayerPatterns(capture={}) for _ in range(n_layers)]
    corrupt_states = [LayerPatterns(capture={}) for _ in range(n_layers)]
    every = slice(0, enc.n)
    with torch.no_grad():
        with fixed_patterns(model, clean_states), model.trace(**prompt_inputs(enc, "clean", every), logits_to_keep=1):
            saved = nnsight.save({})
            for layer, kind in sites:
                envoy, reads_input = site_envoy(model, layer, kind)
                saved[(layer, kind)] = envoy.input if reads_input else envoy.output
        with fixed_patterns(model, corrupt_states):
            model.hf(**prompt_inputs(enc, "corrupt", every), use_cache=False, logits_to_keep=1)
    values = [state.capture["value"] for state in clean_states]
    patterns = [state.capture["pattern"] for state in corrupt_states]
    return dict(saved), values, patterns
