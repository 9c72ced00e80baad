"""``intervene``: change some nodes' activations and measure the task per prompt, and generate.

    r = il.circuits.intervene(model, task, nodes, "mean")          # ablate: "mean" | "zero" | "corrupt"
    r = il.circuits.intervene(model, task, nodes, "patch")         # clean activations into the corrupted run
    r = il.circuits.intervene(model, task, nodes, "scale", factor=2.0)   # multiply them in the clean run
    r.before, r.after          # the metric per prompt without and with the change ([prompts])
    r.effect                   # after - before per prompt; for "patch" of one node, its exact score per prompt
    il.circuits.generate_with(model, task, nodes, "scale", factor=0.0, max_new_tokens=8)

What runs: the clean prompts for the ablations and for ``scale``; the corrupted prompts for
``patch`` (each takes its clean partner's activation at the nodes, from the same batched forward).
A node is replaced at its position of the task's window (every position when it has none); the
ablation references are ``il.circuits.ablate``'s (mean over clean prompts, zero, corrupted run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..tasks.contrast import ContrastTask, EncodedTask
from .ablation import ABLATIONS
from .ablation import _references as ablation_references
from .nodes import Node, node_from_id, rows_mask, site_envoy, site_masks

__all__ = ["INTERVENTIONS", "Generation", "Intervention", "generate_with", "intervene"]

INTERVENTIONS = (*ABLATIONS, "patch", "scale")
MAX_FACTOR = 1e3
MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class Intervention:
    """The task's metric per prompt without (``before``) and with (``after``) an intervention."""

    nodes: tuple[Node, ...]
    mode: str
    factor: float | None
    run: str  # the prompts that ran: "clean" or "corrupt"
    before: Tensor
    after: Tensor

    @property
    def effect(self) -> Tensor:
        return self.after - self.before

    @property
    def metric_before(self) -> float:
        return float(self.before.mean())

    @property
    def metric_after(self) -> float:
        return float(self.after.mean())

    def __repr__(self) -> str:
        how = f"scale x{self.factor:g}" if self.mode == "scale" else self.mode
        return (f"Intervention({how} of {len(self.nodes)} nodes on the {self.run} prompts: "
                f"{self.metric_before:.4g} -> {self.metric_after:.4g})")


@dataclass(frozen=True)
class Generation:
    """Greedy continuations of one prompt without and with an intervention."""

    prompt: str
    before: str
    after: str


def _check(model, task: ContrastTask, nodes: Iterable[Node | str], mode: str, factor: float | None,
           ) -> tuple[EncodedTask, list[Node], float]:
    if mode not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {mode!r}; choose one of {', '.join(INTERVENTIONS)}")
    if mode == "scale":
        if factor is None or isinstance(factor, bool) or not isinstance(factor, int | float):
            raise ValueError("mode='scale' multiplies the nodes' activations: pass factor=<number>, e.g. factor=2.0")
        if not math.isfinite(factor) or abs(factor) > MAX_FACTOR:
            raise ValueError(f"factor must be a finite number in [-{MAX_FACTOR:g}, {MAX_FACTOR:g}], got {factor!r}")
    elif factor is not None:
        raise ValueError(f"factor= goes with mode='scale', not {mode!r}")
    chosen = [node_from_id(n) if isinstance(n, str) else n for n in nodes]
    if not chosen:
        raise ValueError("no nodes to intervene on: pass at least one node")
    bad = [n for n in chosen if not isinstance(n, Node) or n.component not in ("resid", "attn", "mlp", "head")]
    if bad:
        raise ValueError(f"cannot intervene on {bad[0]!r}: nodes are resid, attn, mlp or head nodes")
    if mode in ABLATIONS:
        resid = [n for n in chosen if n.component == "resid"]
        if resid:
            raise ValueError(f"cannot ablate {resid[0]}: a resid node is a residual-stream state; ablate attn, mlp "
                             "or head nodes, or patch / scale the resid node")
    chosen = sorted(dict.fromkeys(chosen), key=Node.sort_key)
    return task.encode(model), chosen, 1.0 if factor is None else float(factor)


def _plan(model, task, enc: EncodedTask, nodes: list[Node], mode: str, rows: Sequence[int], copies: int):
    """Per site: (envoy, reads_input, mask [copies, S, heads or 1], value or None) changing the last copy.

    ``rows``: which prompts each copy holds (the same for every copy)."""
    a = model.anatomy
    groups = [[] for _ in range(copies - 1)] + [nodes]
    masks = site_masks(groups, a.n_layers, a.n_heads, enc.seq_len, model.device)
    refs = ablation_references(model, task, enc, mode) if mode in ABLATIONS else {}
    plan = []
    for (layer, kind), mask in masks.items():
        envoy, reads_input = site_envoy(model, layer, kind)
        value = None
        if mode in ABLATIONS:
            ref = refs[(layer, kind)]
            if ref.ndim and ref.shape[0] > 1:  # per prompt (corrupted run): the rows that run
                ref = ref[list(rows)].repeat(copies, 1, 1)
            value = ref
        plan.append((envoy, reads_input, mask, value))
    return plan


def _last_logits(model, inputs: dict[str, Tensor], plan, rows: int, mode: str, factor: float, window: int,
                 ) -> Tensor:
    """One forward with ``plan`` applied to the first ``window`` positions; last-position logits."""
    length = inputs["input_ids"].shape[1]
    d_head = model.anatomy.d_head
    steps = []
    for envoy, reads_input, mask, value in plan:
        mask = rows_mask(mask, rows, d_head)
        if length > window:  # generated tokens: never replaced
            mask = torch.cat([mask, mask.new_zeros(mask.shape[0], length - window, mask.shape[2])], dim=1)
            if value is not None and value.ndim:
                value = torch.cat([value, value.new_zeros(value.shape[0], length - window, value.shape[2])], dim=1)
        steps.append((envoy, reads_input, mask, value))
    source = torch.arange(inputs["input_ids"].shape[0], device=model.device) % rows
    with torch.no_grad(), model.trace(**inputs, logits_to_keep=1):
        for envoy, reads_input, mask, value in steps:
            h = envoy.input if reads_input else envoy.output
            if mode == "patch":
                new = torch.where(mask, h[source], h)
            elif mode == "scale":
                new = torch.where(mask, h * factor, h)
            else:
                new = torch.where(mask, value.to(h.dtype), h)
            if reads_input:
                envoy.input = new
            else:
                envoy.output = new
        logits = model.unembed.output[:, -1].float().save()
    return logits


def _parts(mode: str) -> list[str]:
    """The copies of the prompts a forward stacks; the last one is changed, the one before is the baseline."""
    return ["clean", "corrupt", "corrupt"] if mode == "patch" else ["clean", "clean"]


def intervene(model, task: ContrastTask, nodes: Iterable[Node | str], mode: str = "mean", *,
              factor: float | None = None) -> Intervention:
    """The task's metric per prompt before and after changing ``nodes`` (see the module docstring)."""
    enc, chosen, scale = _check(model, task, nodes, mode, factor)
    parts = _parts(mode)
    plan = _plan(model, task, enc, chosen, mode, range(enc.n), len(parts))
    logits = _last_logits(model, enc.inputs(parts), plan, enc.n, mode, scale, enc.seq_len)
    answer, distractor = enc.targets(len(parts))
    metrics = enc.measure(logits, answer[:, 0], distractor[:, 0]).view(len(parts), enc.n).cpu()
    return Intervention(tuple(chosen), mode, factor if mode == "scale" else None,
                        "corrupt" if mode == "patch" else "clean", metrics[-2], metrics[-1])


def generate_with(model, task: ContrastTask, nodes: Iterable[Node | str], mode: str = "mean", *,
                  factor: float | None = None, prompt: int = 0, max_new_tokens: int = 8) -> Generation:
    """Greedy continuations of prompt ``prompt`` (its corrupted version for ``"patch"``) without and
    with the intervention, which applies to the prompt's positions at every step."""
    enc, chosen, scale = _check(model, task, nodes, mode, factor)
    steps = max_new_tokens
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be an integer in 1..{MAX_NEW_TOKENS}, got {max_new_tokens!r}")
    if isinstance(prompt, bool) or not isinstance(prompt, int) or not 0 <= prompt < enc.n:
        raise ValueError(f"prompt must be a prompt index in 0..{enc.n - 1}, got {prompt!r}")
    parts = _parts(mode)
    plan = _plan(model, task, enc, chosen, mode, [prompt], len(parts))
    ids = torch.cat([(enc.clean_ids if p == "clean" else enc.corrupt_ids)[prompt:prompt + 1] for p in parts])
    mask = enc.attention_mask[prompt:prompt + 1].repeat(len(parts), 1)
    positions = enc.position_ids[prompt:prompt + 1].repeat(len(parts), 1)
    for _ in range(max_new_tokens):
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        logits = _last_logits(model, inputs, plan, 1, mode, scale, enc.seq_len)
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True).to(ids.device)], dim=1)
        mask = torch.cat([mask, mask.new_ones(len(parts), 1)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    decode = model.tokenizer.decode
    text = (task.corrupt if mode == "patch" else task.clean)[prompt]
    shown = text if isinstance(text, str) else decode(list(text))
    return Generation(shown, decode(ids[-2, enc.seq_len:].tolist()), decode(ids[-1, enc.seq_len:].tolist()))
