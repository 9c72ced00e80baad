"""Gradient scores of nodes: attribution patching (AtP), RelP and integrated gradients (IG).

One nnsight session holds two traces. AtP: the clean prompts without gradients (their activations
stay where the model runs, remote or not), then the corrupted prompts, whose metric is
back-propagated. Each node scores ``sum over features of (clean - corrupt) * d metric / d
activation`` at the corrupted run, the first-order estimate of denoising patching; the products
are reduced inside the trace, so only the scores come back. RelP is the same pass with the LRP
rules of ``lrp`` switched on, so the backward carries relevance instead of the plain gradient: the
pass with gradients reads its activations in one ``tracer.invoke`` and applies the rules in an
empty one after it (whole batch, after the reads' edits), so they run wherever the trace runs.
Every trace goes through ``model.session()`` and ``model.trace``, with the model's ``remote``.

Integrated gradients (``IntegratedGradients``) replace the gradient at the corrupted run by its
average along a straight path from the corrupted to the clean run (EAP-IG; Hanna et al. 2024), by
the trapezoid rule on ``steps`` evenly spaced points, the corrupted and the clean run included.
One trace runs every point as a copy of the prompts (the corrupted ones, the last copy the clean
ones, whose embeddings give the path) and back-propagates the weighted sum of their metrics, so
each activation's gradient, summed over the copies, is the path integral; the clean and corrupted
activations come from the end copies of the same forward. The path interpolates the embeddings
(``interpolate="inputs"``: every later activation is the model's own function of the interpolated
input) or every scored activation as well (``"activations"``: each is held at its own
interpolation ``corrupt + a (clean - corrupt)`` while the gradient still flows through the module
that computed it). The rules of ``lrp`` may be on during the pass too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import nnsight
import torch
from torch import Tensor

from ..tasks.contrast import EncodedTask
from . import lrp
from .nodes import site_envoy

__all__ = ["INTERPOLATIONS", "IntegratedGradients", "copies_summed", "gradient_scores", "gradients_on_activations",
           "inner", "on_path", "path_inputs", "path_objective", "path_points", "path_start", "prompt_inputs",
           "rules_for"]

INTERPOLATIONS = ("inputs", "activations")


@dataclass(frozen=True)
class IntegratedGradients:
    """The path of integrated gradients: ``steps`` points (both ends included) and what is interpolated."""

    steps: int = 5
    interpolate: str = "inputs"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 2:
            raise ValueError(f"steps must be a number of points on the path, both ends included (at least 2), "
                             f"got {self.steps!r}")
        if self.interpolate not in INTERPOLATIONS:
            raise ValueError(f"interpolate must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolate!r}")

    def points(self) -> tuple[Tensor, Tensor]:
        """(alphas, weights) ``[steps]`` each: evenly spaced from 0 (corrupt) to 1 (clean), trapezoid weights."""
        alphas = torch.linspace(0, 1, self.steps)
        weights = torch.full((self.steps,), 1 / (self.steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights


@contextmanager
def gradients_on_activations(model) -> Iterator[None]:
    """Grad mode on, parameters frozen: the backward computes activation gradients only (half the
    work of a training backward). Traces make the embedding output require grad instead."""
    params = [p for p in model.hf.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _sites(model, level: str) -> list[tuple[str, int, str]]:
    """(component, layer, site kind) read by a level, in forward order."""
    kinds = {"component": (("resid", "resid"), ("attn", "attn"), ("mlp", "mlp")),
             "head": (("head", "z"), ("mlp", "mlp"))}[level]
    return [(component, layer, kind) for layer in range(model.anatomy.n_layers) for component, kind in kinds]


def gradient_scores(model, enc: EncodedTask, level: str, *, rules: tuple[str, ...] | None = None,
                    ig: IntegratedGradients | None = None, positions: bool = True, batch_size: int | None = None,
                    ) -> tuple[dict[str, Tensor], float, float]:
    """Per component, scores ``[layers, (heads,) positions]`` (or without positions), and the
    clean and corrupt metrics. ``rules``: LRP rules on in the backward (none: plain gradients);
    ``ig``: integrated gradients along this path (``None``: the gradient at the corrupted run,
    i.e. AtP or RelP). ``batch_size`` = prompts per forward (default: all)."""
    sites = _sites(model, level)
    a = model.anatomy
    per = enc.n if batch_size is None else max(1, batch_size)
    totals: list[Tensor] | None = None
    clean = corrupt = 0.0
    for start in range(0, enc.n, per):
        idx = slice(start, min(start + per, enc.n))
        part_totals, part_clean, part_corrupt = _one_pass(model, enc, idx, sites, rules, ig)
        weight = (idx.stop - idx.start) / enc.n
        clean += part_clean * weight
        corrupt += part_corrupt * weight
        part_totals = [t * weight for t in part_totals]
        totals = part_totals if totals is None else [t + p for t, p in zip(totals, part_totals)]
    scores: dict[str, list[Tensor]] = {}
    for (component, _, _), total in zip(sites, totals):
        scores.setdefault(component, []).append(total)
    out = {}
    for component, per_layer in scores.items():
        stacked = torch.stack(per_layer)  # [layers, S] or [layers, S, H]
        if component == "head":
            stacked = stacked.permute(0, 2, 1)  # [layers, H, S]
        out[component] = stacked if positions else stacked.sum(-1)
    assert all(t.shape[0] == a.n_layers for t in out.values())
    return out, clean, corrupt


def inner(model) -> dict:
    """Keyword arguments of a trace inside ``model.session()``: the session carries ``remote``."""
    return {"remote": False} if model.remote else {}


def rules_for(model, rules: tuple[str, ...] | None,
              ) -> tuple[lrp.RuleSet | None, Counter, AbstractContextManager]:
    """(the rule set or None, the AH-rule's call count, the context that runs the AH-rule) of a pass
    with ``rules`` on."""
    counts: Counter = Counter()
    ruleset = lrp.RuleSet(model, rules) if rules else None
    ah = lrp.ah_rule(model, counts) if ruleset and "attention" in ruleset.enabled else nullcontext()
    return ruleset, counts, ah


def clean_run(model, enc: EncodedTask, idx: slice, sites: list[tuple]) -> tuple[list, Tensor]:
    """AtP's and RelP's clean forward, inside the pass's session: each site's clean activation
    (``sites``: (envoy, reads its input) pairs) and the mean clean metric. It builds no graph: the
    parameters are frozen and nothing in this trace requires grad."""
    answer = enc.answer_ids[idx][:, None]
    distractor = enc.distractor_ids[idx][:, None]
    with model.trace(**prompt_inputs(enc, "clean", idx), logits_to_keep=1, **inner(model)):
        cleans = []
        for envoy, reads_input in sites:
            cleans.append(envoy.input if reads_input else envoy.output)
        logits = model.unembed.output[:, -1].float()
        clean_metric = enc.measure(logits, answer, distractor).mean()
    return cleans, clean_metric


def prompt_inputs(enc: EncodedTask, part: str, idx: slice, copies: int = 1) -> dict[str, Tensor]:
    """Model inputs of some clean or corrupted prompts (``copies`` stacked copies of them)."""
    ids = enc.clean_ids if part == "clean" else enc.corrupt_ids
    inputs = {"input_ids": ids[idx], "attention_mask": enc.attention_mask[idx], "position_ids": enc.position_ids[idx]}
    return {key: value.repeat(copies, 1) for key, value in inputs.items()} if copies > 1 else inputs


def path_inputs(enc: EncodedTask, idx: slice, copies: int) -> dict[str, Tensor]:
    """Model inputs of the pass with gradients: the corrupted prompts, ``copies`` times, the last
    copy the clean prompts when there are several (the ends of the integrated-gradients path)."""
    parts = [prompt_inputs(enc, "corrupt", idx, copies - 1), prompt_inputs(enc, "clean", idx)] if copies > 1 else [
        prompt_inputs(enc, "corrupt", idx)]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def path_points(ig: IntegratedGradients | None, n: int, device) -> tuple[int, Tensor | None, Tensor | None]:
    """(copies, alpha per row ``[copies * n, 1, 1]`` copy-major, weight per copy) of the pass with
    gradients: one copy at the corrupted run without ``ig``."""
    if ig is None:
        return 1, None, None
    alphas, weights = ig.points()
    return ig.steps, alphas.to(device).repeat_interleave(n)[:, None, None], weights.to(device)


def on_path(h: Tensor, n: int, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """(clean - corrupt, value on the path) of an activation ``h`` of the path's copies: the
    difference of the last and first copies, and ``corrupt + alpha (clean - corrupt)`` for every
    copy, whose gradient still flows into ``h``."""
    copies = h.shape[0] // n
    corrupt = h[:n].detach()
    delta = h[-n:].detach() - corrupt
    return delta, corrupt.repeat(copies, *[1] * (h.ndim - 1)) + alpha * delta.repeat(copies, *[1] * (h.ndim - 1)) + (
        h - h.detach())


def path_start(first: Tensor, n: int, alpha: Tensor | None) -> Tensor | None:
    """The embeddings to put in the model for the pass with gradients: the path's (IG), or None
    after making the corrupted run's own embedding output require grad (AtP; parameters are frozen)."""
    if alpha is None:
        if not first.requires_grad:
            first.requires_grad_(True)
        return None
    return on_path(first, n, alpha)[1].detach().requires_grad_(True)


def path_objective(values: Tensor, weights: Tensor | None, clean_metric: Tensor | None) -> tuple[Tensor, Tensor]:
    """(what to back-propagate, [clean, corrupt] metrics) from the metric of each copy ``[copies]``:
    the corrupted run's metric (AtP), or the path integral's weighted sum (IG, whose end copies are
    the corrupted and the clean run)."""
    if weights is None:
        return values[0], torch.stack([clean_metric, values[0].detach()])
    return (weights * values).sum(), torch.stack([values[-1], values[0]]).detach()


def copies_summed(grad: Tensor, copies: int, n: int) -> Tensor:
    """A gradient of the copies' rows summed over the copies (the weights are in the objective)."""
    return grad if copies == 1 else grad.view(copies, n, *grad.shape[1:]).sum(0)


def _one_pass(model, enc: EncodedTask, idx: slice, sites, rules: tuple[str, ...] | None,
              ig: IntegratedGradients | None) -> tuple[list[Tensor], float, float]:
    """One nnsight session. AtP/RelP: a clean forward without gradients, then the corrupted
    forward and backward. IG: one forward and backward of the path's copies."""
    n = idx.stop - idx.start
    answer = enc.answer_ids[idx][:, None]
    distractor = enc.distractor_ids[idx][:, None]
    a = model.anatomy
    heads, d_head = a.n_heads, a.d_head
    reads = []
    for component, layer, kind in sites:
        envoy, reads_input = site_envoy(model, layer, kind)
        reads.append((envoy, reads_input, component == "head"))
    embed, unembed = model.embed, model.unembed
    copies, alpha, weights = path_points(ig, n, model.device)
    held = ig is not None and ig.interpolate == "activations"
    ruleset, counts, ah = rules_for(model, rules)
    plan = ruleset.plan if ruleset else []
    with gradients_on_activations(model), ah, model.session():
        if ig is None:
            cleans, clean_metric = clean_run(model, enc, idx, [(envoy, reads_input) for envoy, reads_input, _ in reads])
        with model.trace(logits_to_keep=1, **inner(model)) as tracer:
            with tracer.invoke(**path_inputs(enc, idx, copies)):
                start = path_start(embed.output, n, alpha)
                if start is not None:
                    embed.output = start
                acts = []
                deltas = []
                for i in range(len(reads)):
                    envoy, reads_input, _ = reads[i]
                    h = envoy.input if reads_input else envoy.output
                    if ig is None:
                        delta = cleans[i] - h.detach()
                    else:
                        delta, held_h = on_path(h, n, alpha)
                        if held:
                            h = held_h
                            if reads_input:
                                envoy.input = h
                            else:
                                envoy.output = h
                    acts.append(h)
                    deltas.append(delta)
                logits = unembed.output[:, -1].float()
                values = enc.measure(logits, answer.repeat(copies, 1), distractor.repeat(copies, 1)).view(copies, n)
                objective, metrics = path_objective(values.mean(1), weights, clean_metric if ig is None else None)
                metrics = metrics.save()
                totals = nnsight.save([])
                with objective.backward():
                    for i in range(len(acts) - 1, -1, -1):
                        product = deltas[i].float() * copies_summed(acts[i].grad.float(), copies, n)
                        if reads[i][2]:
                            product = product.view(n, product.shape[1], heads, d_head)
                        totals.append(product.sum(-1).sum(0).float())
            with tracer.invoke():  # after the reads: the rules see what they set
                applied = nnsight.save(lrp.apply(plan))
    if ruleset is not None:
        ruleset.check(applied + list(counts.elements()), attention_forwards=1 if ig else 2)
    return totals[::-1], float(metrics[0]), float(metrics[1])
