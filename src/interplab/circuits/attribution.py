"""``attribute``: score every node (or edge) of a contrast task with patching, AtP or RelP."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..tasks.contrast import ContrastTask
from . import lrp
from .edges import edge_attribution
from .gradients import gradient_scores
from .nodes import LEVELS, SCORED_COMPONENTS, nodes_of
from .patching import patch_scores
from .position_edges import position_edge_attribution
from .result import Attribution

__all__ = ["METHODS", "attribute"]

METHODS = ("patch", "atp", "relp")


def attribute(model, task: ContrastTask, method: str = "relp", level: str = "component", *,
              positions: bool = True, batch_size: int | None = None, progress: bool = True,
              rules: Sequence[str] = lrp.RULES, heads: bool = False, keep: int | float | None = 10_000,
              ) -> Attribution:
    """Score the nodes of ``task`` on ``model`` (denoising: the change in the mean logit difference
    when a node's clean activation is put into the corrupted run).

    - ``method``: ``"patch"`` (activation patching, one node per batched copy, the ground truth),
      ``"atp"`` (attribution patching: gradient x activation difference, 2 forwards + 1 backward in
      one trace) or ``"relp"`` (AtP with LRP rules in the backward pass).
    - ``level``: ``"component"`` (resid, attn, mlp per layer), ``"head"`` (attention heads and
      MLPs) or ``"edge"`` (edges between embed, attn, mlp and logits; atp and relp only).
    - ``positions``: score each position separately (default) or each component over all positions
      (patching then patches all positions at once). Edges: position-resolved, with attention
      patterns held fixed (``position_edges``), or summed over positions (``edges``).
    - ``heads``, ``keep`` (position-resolved edges): targets are attention heads instead of
      attention layers; which edges to keep (an int: the top ``keep`` by absolute score; a float in
      (0, 1]: the fewest top edges carrying that fraction of the total absolute score; None: all).
    - ``batch_size``: nodes per forward for ``"patch"``, prompts per forward for gradient methods.
    - ``rules``: the LRP rules RelP uses (default: all of ``lrp.RULES``; e.g. without
      ``"attention"`` the backward also flows through the attention pattern).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if not isinstance(task, ContrastTask):
        raise TypeError(f"task must be an interplab.circuits.ContrastTask, got {type(task).__name__}")
    if model.anatomy.moe is not None:
        raise NotImplementedError(f"circuit attribution covers dense models; {model.name} has MoE layers "
                                  "(use interplab.experts for those)")
    if method == "relp" and model.remote:
        raise ValueError("RelP runs its LRP rules as hooks on a local model; load the model without remote= "
                         "for RelP, or use method='atp' remotely")
    enc = task.encode(model)
    a = model.anatomy
    common = dict(method=method, level=level, labels=enc.labels, n_layers=a.n_layers, n_heads=a.n_heads)
    if level == "edge":
        if method not in ("atp", "relp"):
            raise ValueError("edge scores come from gradients (edge attribution patching): use method='atp' "
                             f"or 'relp' with level='edge'; method={method!r} scores nodes")
        if positions:
            return position_edge_attribution(model, enc, relp=method == "relp", rules=tuple(rules), heads=heads,
                                             keep=keep, batch_size=batch_size, model_name=model.name, **common)
        return edge_attribution(model, enc, relp=method == "relp", rules=tuple(rules), batch_size=batch_size,
                                model_name=model.name,
                                **common)

    components = SCORED_COMPONENTS[level]
    if method == "patch":
        seq_len = enc.seq_len if positions else None
        nodes = nodes_of(components, a.n_layers, a.n_heads, seq_len)
        values, clean, corrupt = patch_scores(model, enc, nodes, batch_size=batch_size, progress=progress)
        scores = _fill(nodes, values, components, a.n_layers, a.n_heads, seq_len)
    else:
        scores, clean, corrupt = gradient_scores(model, enc, level, relp=method == "relp", rules=tuple(rules),
                                                 positions=positions,
                                                 batch_size=batch_size)
    axes = {c: _axes(c, positions) for c in components}
    return Attribution(scores={c: scores[c].float().cpu() for c in components}, axes=axes, clean_metric=clean,
                       corrupt_metric=corrupt, model=model.name, **common)


def _axes(component: str, positions: bool) -> tuple[str, ...]:
    axes = ("layer", "head") if component == "head" else ("layer",)
    return (*axes, "position") if positions else axes


def _fill(nodes, values, components, n_layers, n_heads, seq_len) -> dict[str, torch.Tensor]:
    shapes = {c: (n_layers, n_heads) if c == "head" else (n_layers,) for c in components}
    out = {c: torch.zeros(*shapes[c], *(() if seq_len is None else (seq_len,))) for c in components}
    for node, value in zip(nodes, values.tolist()):
        index = (node.layer,) + (() if node.head is None else (node.head,))
        index += () if node.position is None else (node.position,)
        out[node.component][index] = value
    return out
