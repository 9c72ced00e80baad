"""Attribution patching (AtP) and RelP scores of nodes: one forward and one backward for all nodes.

One nnsight session holds two traces: the clean prompts without gradients (their activations stay
where the model runs, remote or not), then the corrupted prompts, whose metric (mean logit
difference) is back-propagated. Each node scores ``sum over features of (clean - corrupt) *
d metric / d activation`` at the corrupted run, the first-order estimate of denoising patching;
the products are reduced inside the trace, so only the scores come back. RelP is the same pass
with the LRP rules of ``lrp`` switched on, so the backward carries relevance instead of the plain
gradient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import nnsight
import torch
from torch import Tensor

from ..tasks.contrast import EncodedTask
from . import lrp
from .nodes import site_envoy

__all__ = ["gradient_scores", "gradients_on_activations", "prompt_inputs", "session"]


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


def gradient_scores(model, enc: EncodedTask, level: str, *, relp: bool, positions: bool = True,
                    batch_size: int | None = None, rules: tuple[str, ...] = lrp.RULES,
                    ) -> tuple[dict[str, Tensor], float, float]:
    """Per component, scores ``[layers, (heads,) positions]`` (or without positions), and the
    clean and corrupt metrics. ``batch_size`` = prompts per forward (default: all)."""
    sites = _sites(model, level)
    a = model.anatomy
    per = enc.n if batch_size is None else max(1, batch_size)
    totals: list[Tensor] | None = None
    clean = corrupt = 0.0
    for start in range(0, enc.n, per):
        idx = slice(start, min(start + per, enc.n))
        part_totals, part_clean, part_corrupt = _one_pass(model, enc, idx, sites, relp, rules)
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


def session(model):
    """An nnsight session with the model's ``remote`` setting (passed only when set, like ``Model.trace``)."""
    return model.nn.session(**({"remote": model.remote} if model.remote else {}))


def prompt_inputs(enc: EncodedTask, part: str, idx: slice) -> dict[str, Tensor]:
    """Model inputs of some clean or corrupted prompts."""
    ids = enc.clean_ids if part == "clean" else enc.corrupt_ids
    return {"input_ids": ids[idx], "attention_mask": enc.attention_mask[idx], "position_ids": enc.position_ids[idx]}


def _one_pass(model, enc: EncodedTask, idx: slice, sites, relp: bool,
              rules: tuple[str, ...]) -> tuple[list[Tensor], float, float]:
    """One nnsight session: a clean forward without gradients, then the corrupted forward and backward."""
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
    ruled = lrp.rules(model, enable=rules) if relp else nullcontext()
    with gradients_on_activations(model), ruled, session(model):
        with torch.no_grad(), model.nn.trace(**prompt_inputs(enc, "clean", idx), logits_to_keep=1):
            cleans = []
            for envoy, reads_input, _ in reads:
                cleans.append(envoy.input if reads_input else envoy.output)
            logits = unembed.output[:, -1].float()
            clean_metric = enc.measure(logits, answer, distractor).mean()
        with model.nn.trace(**prompt_inputs(enc, "corrupt", idx), logits_to_keep=1):
            first = embed.output
            if not first.requires_grad:
                first.requires_grad_(True)
            acts = []
            deltas = []
            for i in range(len(reads)):
                envoy, reads_input, _ = reads[i]
                h = envoy.input if reads_input else envoy.output
                acts.append(h)
                deltas.append(cleans[i] - h.detach())
            logits = unembed.output[:, -1].float()
            metric = enc.measure(logits, answer, distractor).mean()
            metrics = torch.stack([clean_metric, metric.detach()]).save()
            totals = nnsight.save([])
            with metric.backward():
                for i in range(len(acts) - 1, -1, -1):
                    product = deltas[i].float() * acts[i].grad.float()
                    if reads[i][2]:
                        product = product.view(n, product.shape[1], heads, d_head)
                    totals.append(product.sum(-1).sum(0).float())
    return totals[::-1], float(metrics[0]), float(metrics[1])
