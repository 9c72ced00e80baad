"""``attribute``: score every node (or edge) of a contrast task with patching, AtP, RelP or integrated gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..tasks.contrast import ContrastTask
from . import lrp
from .edges import edge_attribution
from .gradients import IntegratedGradients, gradient_scores
from .nodes import LEVELS, SCORED_COMPONENTS, nodes_of
from .patching import patch_scores
from .position_edges import position_edge_attribution
from .result import Attribution

__all__ = ["DEFAULT_METHOD", "IG_STEPS", "METHODS", "attribute"]

METHODS = ("patch", "atp", "relp", "ig")
#: what ``attribute`` (and the explorer) use unless told: the fast method closest to patching on real models
DEFAULT_METHOD = "ig"
#: points on the integrated-gradients path (each one forward + backward of the prompts, batched)
IG_STEPS = 5
#: LRP rules each method uses unless told (RelP: the RelP authors' default, without the AH-rule)
DEFAULT_RULES = {"relp": lrp.DEFAULT_RULES, "ig": ()}


def attribute(model, task: ContrastTask, method: str = DEFAULT_METHOD, level: str = "component", *,
              positions: bool = True, batch_size: int | None = None, progress: bool = True,
              rules: Sequence[str] | None = None, steps: int | None = None,
              interpolate: str = "inputs", heads: bool = False, keep: int | float | None = 10_000) -> Attribution:
    """Score the nodes of ``task`` on ``model`` (denoising: the change in the task's metric when a
    node's clean activation is put into the corrupted run).

    - ``method``: ``"patch"`` (activation patching, one node per batched copy, the ground truth),
      ``"atp"`` (attribution patching: gradient x activation difference, 2 forwards + 1 backward in
      one trace), ``"relp"`` (AtP with LRP rules in the backward pass) or ``"ig"`` (the default:
      integrated gradients, the gradient averaged over ``steps`` points on the path from the
      corrupted to the clean run, batched: 2 forwards + ``steps`` forwards and backwards).
    - ``level``: ``"component"`` (resid, attn, mlp per layer), ``"head"`` (attention heads and
      MLPs) or ``"edge"`` (edges between embed, attn, mlp and logits; gradient methods only).
    - ``positions``: score each position separately (default) or each component over all positions
      (patching then patches all positions at once). Edges: position-resolved, with attention
      patterns held fixed (``position_edges``; atp and relp), or summed over positions (``edges``).
    - ``heads``, ``keep`` (position-resolved edges): targets are attention heads instead of
      attention layers; which edges to keep (an int: the top ``keep`` by absolute score; a float in
      (0, 1]: the fewest top edges carrying that fraction of the total absolute score; None: all).
    - ``batch_size``: nodes per forward for ``"patch"``, prompts per forward for gradient methods.
    - ``rules``: the LRP rules in the backward of ``"relp"`` (default ``lrp.DEFAULT_RULES``: norm,
      identity, half) or ``"ig"`` (default: none); ``"attention"`` (the AH-rule) freezes the
      attention patterns, so the scores estimate patching with every pattern frozen. The rules run
      inside the trace, so remotely too (``remote=``), except the AH-rule (a local attention function).
    - ``steps``, ``interpolate``: the path of ``"ig"`` (default 5 points; ``"inputs"``, the
      embeddings, or ``"activations"``, every scored activation; see ``gradients``).
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
    if rules is not None and method not in DEFAULT_RULES:
        raise ValueError(f"rules= sets the LRP rules of method 'relp' or 'ig'; method {method!r} has none")
    if (steps is not None or interpolate != "inputs") and method != "ig":
        raise ValueError(f"steps= and interpolate= set the path of method 'ig', not of {method!r}")
    rules = tuple(DEFAULT_RULES[method] if rules is None else rules) if method in DEFAULT_RULES else None
    if rules:
        lrp.RuleSet(model, rules)  # unknown rules are an error before anything runs
    ig = IntegratedGradients(IG_STEPS if steps is None else steps, interpolate) if method == "ig" else None
    enc = task.encode(model)
    a = model.anatomy
    common = dict(method=method, level=level, labels=enc.labels, n_layers=a.n_layers, n_heads=a.n_heads)
    if level == "edge":
        if method == "patch":
            raise ValueError("edge scores come from gradients (edge attribution patching): use method='atp', "
                             "'relp' or 'ig' with level='edge'; method='patch' scores nodes")
        if positions:
            if method == "ig":
                raise ValueError("position-resolved edges hold the attention patterns fixed and come from one "
                                 "gradient: use method='atp' or 'relp' for them, or positions=False for integrated "
                                 "gradients on edges summed over positions")
            return position_edge_attribution(model, enc, relp=method == "relp", rules=rules or (), heads=heads,
                                             keep=keep, batch_size=batch_size, model_name=model.name, **common)
        return edge_attribution(model, enc, rules=rules, ig=ig, batch_size=batch_size, model_name=model.name,
                                **common)

    components = SCORED_COMPONENTS[level]
    if method == "patch":
        seq_len = enc.seq_len if positions else None
        nodes = nodes_of(components, a.n_layers, a.n_heads, seq_len)
        values, clean, corrupt = patch_scores(model, enc, nodes, batch_size=batch_size, progress=progress)
        scores = _fill(nodes, values, components, a.n_layers, a.n_heads, seq_len)
    else:
        scores, clean, corrupt = gradient_scores(model, enc, level, rules=rules, ig=ig, positions=positions,
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
