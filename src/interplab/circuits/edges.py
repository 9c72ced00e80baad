"""Edge attribution patching (EAP): scores on edges between components, with plain or RelP gradients.

Node set. Upstream (sources) are what writes into the residual stream: ``embed`` (the residual
entering block 0), ``attn.l`` and ``mlp.l`` (the sublayer outputs as added to the stream, i.e.
after Gemma 2's post-norms). Downstream (targets) are what reads it: ``attn.l`` and ``mlp.l``
(the input of the sublayer's pre-norm) and ``logits`` (the input of the final norm). An edge
``u -> d`` exists when ``u`` writes before ``d`` reads: any earlier layer, and ``attn.l -> mlp.l``
unless the block runs attention and MLP in parallel (GPT-NeoX ``use_parallel_residual``).

Score of ``u -> d`` (summed over prompts and positions; the metric is a mean over prompts):
``(write_u(clean) - write_u(corrupt)) . d metric / d input_d`` at the corrupted run, where the
gradient reaches ``input_d`` only through ``d`` (each reader gets its own copy of the residual
stream). Since the stream is a sum of writes, a source's outgoing edges sum to its AtP (RelP)
node score, which is what ``scores`` holds at this level. With integrated gradients (EAP-IG) the
gradient is the average over the interpolated copies of ``gradients``' path, each source's write
held on the path too when the path interpolates activations.
"""

from __future__ import annotations

import nnsight
import torch
from torch import Tensor

from ..tasks.contrast import EncodedTask
from . import lrp
from .gradients import (
    IntegratedGradients,
    clean_run,
    copies_summed,
    gradients_on_activations,
    inner,
    on_path,
    path_inputs,
    path_objective,
    path_points,
    path_start,
    rules_for,
)
from .nodes import Node
from .result import Attribution

__all__ = ["edge_attribution", "edge_nodes", "is_edge"]


def parallel_blocks(model) -> bool:
    return model.anatomy.parallel


def edge_nodes(model) -> tuple[list[Node], list[Node]]:
    """(sources, targets) of the edge level, in forward order."""
    n = model.anatomy.n_layers
    sources = [Node("embed", 0)]
    targets = []
    for layer in range(n):
        sources += [Node("attn", layer), Node("mlp", layer)]
        targets += [Node("attn", layer), Node("mlp", layer)]
    targets.append(Node("logits", n))
    return sources, targets


def is_edge(source: Node, target: Node, parallel: bool) -> bool:
    """Whether ``source`` writes to the residual stream before ``target`` reads it."""
    if source.component == "embed" or target.component == "logits":
        return True
    if source.layer != target.layer:
        return source.layer < target.layer
    return source.component == "attn" and target.component == "mlp" and not parallel


def _writer(model, node: Node):
    """(envoy, reads_input) where a source's write to the residual stream is read."""
    if node.component == "embed":
        return model.blocks[0].envoy, True
    block = model.blocks[node.layer]
    post = "ln_attn_post" if node.component == "attn" else "ln_mlp_post"
    if block.has(post):
        return getattr(block, post), False
    return (block.attn_out, False) if node.component == "attn" else (block.mlp, False)


def _reader(model, node: Node):
    """The module whose input is a target's private copy of the residual stream: its pre-norm, or
    the sublayer itself in a post-norm block."""
    if node.component == "logits":
        return model.final_norm, model.module("final_norm")
    name = model.family.reads(node.component)
    block = model.blocks[node.layer]
    return getattr(block, name), block.module(name)


def edge_attribution(model, enc: EncodedTask, *, rules: tuple[str, ...] | None = None,
                     ig: IntegratedGradients | None = None, batch_size: int | None = None, model_name: str = "",
                     **meta) -> Attribution:
    sources, targets = edge_nodes(model)
    parallel = parallel_blocks(model)
    valid = torch.tensor([[is_edge(s, t, parallel) for t in targets] for s in sources])
    per = enc.n if batch_size is None else max(1, batch_size)
    total = torch.zeros(len(sources), len(targets))
    clean = corrupt = 0.0
    for start in range(0, enc.n, per):
        idx = slice(start, min(start + per, enc.n))
        part, part_clean, part_corrupt = _edge_pass(model, enc, idx, sources, targets, rules, ig)
        weight = (idx.stop - idx.start) / enc.n
        total += part * weight
        clean += part_clean * weight
        corrupt += part_corrupt * weight
    total[~valid] = float("nan")
    node_totals = torch.nan_to_num(total).sum(1)
    scores = {"embed": node_totals[:1], "attn": node_totals[1::2], "mlp": node_totals[2::2]}
    return Attribution(scores=scores, axes={c: ("layer",) for c in scores}, clean_metric=clean,
                       corrupt_metric=corrupt, sources=tuple(sources), targets=tuple(targets), edge_scores=total,
                       model=model_name, **meta)


def _edge_pass(model, enc: EncodedTask, idx: slice, sources, targets, rules: tuple[str, ...] | None,
               ig: IntegratedGradients | None) -> tuple[Tensor, float, float]:
    n = idx.stop - idx.start
    answer = enc.answer_ids[idx][:, None]
    distractor = enc.distractor_ids[idx][:, None]
    # forward order: per layer, the attn reader, the attn write, the mlp reader, the mlp write
    steps = [(True, *_writer(model, sources[0]))]
    readers = [_reader(model, t) for t in targets]
    for layer in range(model.anatomy.n_layers):
        steps += [(False, readers[2 * layer][0], True), (True, *_writer(model, sources[1 + 2 * layer])),
                  (False, readers[2 * layer + 1][0], True), (True, *_writer(model, sources[2 + 2 * layer]))]
    steps.append((False, readers[-1][0], True))
    embed, unembed = model.embed, model.unembed
    writes = [step for step in steps if step[0]]
    k, alpha, weights = path_points(ig, n, model.device)
    held = ig is not None and ig.interpolate == "activations"
    ruleset, counts, ah = rules_for(model, rules)
    plan = ruleset.plan if ruleset else []
    with gradients_on_activations(model), ah, model.session():
        if ig is None:
            cleans, clean_metric = clean_run(model, enc, idx, [(envoy, is_input) for _, envoy, is_input in writes])
        with model.trace(logits_to_keep=1, **inner(model)) as tracer:
            with tracer.invoke(**path_inputs(enc, idx, k)):
                start = path_start(embed.output, n, alpha)
                if start is not None:
                    embed.output = start
                deltas = []
                reads = []
                for is_write, envoy, is_input in steps:
                    h = envoy.input if is_input else envoy.output
                    if is_write:  # what the write adds to the stream: Granite scales sublayer outputs
                        scale = model.anatomy.residual_multiplier if deltas else 1.0
                        if ig is None:
                            deltas.append((cleans[len(deltas)] - h.detach()) * scale)
                        else:
                            delta, held_h = on_path(h, n, alpha)
                            deltas.append(delta * scale)
                            if held:  # the write on the path; the gradient through the module that computed it
                                if is_input:
                                    envoy.input = held_h
                                else:
                                    envoy.output = held_h
                    else:  # the reader's private copy of the stream
                        h = h.clone()
                        envoy.input = h
                        reads.append(h)
                stacked = torch.stack(deltas).float()
                logits = unembed.output[:, -1].float()
                values = enc.measure(logits, answer.repeat(k, 1), distractor.repeat(k, 1)).view(k, n).mean(1)
                objective, metrics = path_objective(values, weights, clean_metric if ig is None else None)
                metrics = metrics.save()
                columns = nnsight.save([])
                with objective.backward():
                    for j in range(len(reads) - 1, -1, -1):
                        columns.append(torch.einsum("unsd,nsd->u", stacked,
                                                    copies_summed(reads[j].grad.float(), k, n)))
            with tracer.invoke():  # after the reads: a norm's rule reads its private copy
                applied = nnsight.save(lrp.apply(plan))
    if ruleset is not None:
        ruleset.check(applied + list(counts.elements()), attention_forwards=1 if ig else 2)
    matrix = torch.stack(columns[::-1], dim=1).cpu()
    return matrix, float(metrics[0]), float(metrics[1])
