"""Activation patching, batched: many nodes patched in one forward.

Each forward stacks copies of the prompts: ``[clean | corrupt | corrupt x P]``. Copy ``2 + j``
patches node ``j`` of the chunk: at that node's site, its rows take the clean activation from the
clean rows of the same forward (which nothing patches), so no activations are stored between
forwards. The unpatched corrupt copy in the same forward is the baseline, so a node whose clean and
corrupt activations are equal scores exactly zero.

Causal skip: a node at a position before the task's first difference between clean and corrupted
prompts (``EncodedTask.first_difference``) has the same activation in both runs, since attention
is causal, so its score is exactly zero without running it. Those nodes are not patched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..tasks.contrast import EncodedTask
from .nodes import Node, check_node, rows_mask, site_envoy, site_masks

__all__ = ["patch_scores", "replaced_metrics"]

#: tokens (rows x positions) per forward when the caller gives no batch size
TOKENS_PER_FORWARD = 16384


def replaced_metrics(model, enc: EncodedTask, inputs: dict[str, Tensor], masks: dict[tuple[int, str], Tensor],
                     values: dict[tuple[int, str], Tensor] | None, answer: Tensor, distractor: Tensor,
                     ) -> Tensor:
    """One forward with replacements; the task's metric (mean over prompts) of each copy of its prompts.

    ``masks[(layer, kind)]`` (``[copies, S, heads or 1]``) says which rows and positions of a site
    are replaced; the replacement is ``values[(layer, kind)]`` (broadcastable to the site's
    activation) or, without ``values``, the activation of the first copy of the same prompt.
    """
    n = enc.n
    copies = inputs["input_ids"].shape[0] // n
    d_head = model.anatomy.d_head
    steps = []
    for (layer, kind), mask in masks.items():
        envoy, reads_input = site_envoy(model, layer, kind)
        value = None if values is None else values[(layer, kind)]
        steps.append((envoy, reads_input, rows_mask(mask, n, d_head), value))
    source = torch.arange(copies * n, device=answer.device) % n
    unembed = model.unembed
    with torch.no_grad(), model.trace(**inputs, logits_to_keep=1):
        for envoy, reads_input, mask, value in steps:
            h = envoy.input if reads_input else envoy.output
            new = torch.where(mask, h[source], h) if value is None else torch.where(mask, value.to(h.dtype), h)
            if reads_input:
                envoy.input = new
            else:
                envoy.output = new
        logits = unembed.output[:, -1].float()
        metrics = enc.measure(logits, answer, distractor).view(copies, n).mean(1).save()
    return metrics


def nodes_per_forward(enc: EncodedTask, batch_size: int | None) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 node per forward, got {batch_size}")
        return batch_size
    return max(1, TOKENS_PER_FORWARD // (enc.n * enc.seq_len) - 2)


def patch_scores(model, enc: EncodedTask, nodes: Sequence[Node], *, batch_size: int | None = None,
                 progress: bool = True, causal_skip: bool = True) -> tuple[Tensor, float, float]:
    """Denoising activation patching of each node: (scores ``[len(nodes)]``, clean metric, corrupt metric).

    ``batch_size`` is the number of nodes patched per forward (default: as many as fit in about
    16k tokens per forward). ``causal_skip``: nodes before the first difference score 0 unpatched.
    """
    per = nodes_per_forward(enc, batch_size)
    a = model.anatomy
    for node in nodes:
        check_node(node, a.n_layers, a.n_heads, enc.seq_len)
    first = enc.first_difference if causal_skip else 0
    run = [i for i, node in enumerate(nodes) if node.position is None or node.position >= first]
    chunks = [run[i:i + per] for i in range(0, len(run), per)] or [[]]  # no node to run: still the metrics
    scores = torch.zeros(len(nodes))
    clean = corrupt = float("nan")
    for chunk in tqdm(chunks, desc="patching", unit="forward", disable=not progress or len(chunks) < 2):
        groups = [[], [], *([nodes[i]] for i in chunk)]
        masks = site_masks(groups, a.n_layers, a.n_heads, enc.seq_len, model.device)
        inputs = enc.inputs(["clean"] + ["corrupt"] * (len(chunk) + 1))
        answer, distractor = enc.targets(len(groups))
        metrics = replaced_metrics(model, enc, inputs, masks, None, answer, distractor).float().cpu()
        clean, corrupt = float(metrics[0]), float(metrics[1])
        scores[chunk] = metrics[2:] - metrics[1]
    return scores, clean, corrupt
