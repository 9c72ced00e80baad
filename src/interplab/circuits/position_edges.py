"""Position-resolved edges: edge attribution patching between nodes at positions, patterns held fixed.

Nodes. Sources write into the residual stream at a position ``p``: ``embed.0@p``, ``attn.l@p``,
``mlp.l@p`` (what the sublayer adds to the stream: after any post-norm, times Granite's residual
multiplier). Targets read it at a position ``q``: ``mlp.l@q`` and ``logits.L@(S-1)`` (at their
pre-norm input, or the sublayer's own input in a post-norm block, from position ``q`` only), and
``attn.l@q`` (or, with ``heads=True``, ``head.l.h@q``): the attention output at ``q``, which reads
position ``p <= q`` through its value path ``pattern[q, p] * values(norm(resid[p]))``.

Score of ``u@p -> v@q`` (denoising, first order, at the corrupted run, with every attention
pattern held at its corrupted value as RelP's attention rule does; with ``relp`` the other LRP
rules shape the backward too):

- ``v`` an MLP or the logits (``q = p``): ``delta_u[p] . d metric / d input_v[p]``, where each
  reader has its own copy of the residual stream;
- ``v`` an attention layer or head: ``sum over heads h (of v) of pattern_h[q, p] *
  (J_p delta_u[p])_h . d metric / d z_h[q]``, where ``J_p`` is the (rule-shaped) derivative of the
  values at ``p`` with respect to the layer's copy of the residual stream at ``p`` and ``z_h[q]``
  is head ``h``'s output at ``q`` (before the output projection).

With the pattern fixed, the gradient at a reader's copy of the stream at ``p`` is exactly the sum
of these value paths over ``q >= p``, so a source's outgoing edges sum to its node score (AtP or
RelP with the attention rule), which ``scores`` holds at this level.

Cost: one clean forward, one corrupted forward and backward, and per layer two small backward
passes through the layer's norm and value projection (``J_p delta`` for every source at once, by
the double-backward trick), whatever the number of positions: on SmolLM2 (30 layers, 8 prompts of
16 tokens, CPU) 1.13x one plain forward + backward (``bench/position_edges.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext

import torch
from torch import Tensor, nn

from ..tasks.contrast import EncodedTask
from . import lrp
from .edges import _reader, parallel_blocks
from .gradients import gradients_on_activations, prompt_inputs
from .nodes import Edge, Node
from .patterns import LayerPatterns, fixed_patterns
from .result import Attribution

__all__ = ["position_edge_attribution", "position_edge_units", "position_sources", "position_targets",
           "source_index"]

Tap = tuple[nn.Module, bool, Callable[[Tensor], Tensor | None]]


def position_sources(n_layers: int, seq_len: int) -> list[Node]:
    """Source nodes in forward order, positions innermost: ``embed.0@p``, ``attn.l@p``, ``mlp.l@p``."""
    kinds = [("embed", 0)] + [(c, layer) for layer in range(n_layers) for c in ("attn", "mlp")]
    return [Node(c, layer, None, p) for c, layer in kinds for p in range(seq_len)]


def source_index(node: Node, n_layers: int, seq_len: int) -> tuple[int, int]:
    """(k, p) of a source node: ``k`` 0 for ``embed``, ``1 + 2l`` for ``attn.l``, ``2 + 2l`` for ``mlp.l``."""
    kinds = {"embed": 0, "attn": 1, "mlp": 2}
    if node.component not in kinds or node.head is not None or node.position is None \
            or not 0 <= node.position < seq_len or not 0 <= node.layer < (1 if node.component == "embed" else n_layers):
        raise ValueError(f"{node} is not a source of position-resolved edges (embed.0@p, attn.l@p or mlp.l@p with "
                         f"layer < {n_layers} and position < {seq_len})")
    return (0 if node.component == "embed" else kinds[node.component] + 2 * node.layer), node.position


def position_targets(n_layers: int, n_heads: int, seq_len: int, heads: bool) -> list[Node]:
    """Target nodes in forward order: per layer the attention layer (or its heads) at every position,
    then the MLP at every position; last ``logits.n_layers@(S-1)``."""
    out = []
    for layer in range(n_layers):
        if heads:
            out += [Node("head", layer, h, q) for h in range(n_heads) for q in range(seq_len)]
        else:
            out += [Node("attn", layer, None, q) for q in range(seq_len)]
        out += [Node("mlp", layer, None, q) for q in range(seq_len)]
    out.append(Node("logits", n_layers, None, seq_len - 1))
    return out


def write_modules(model) -> list[tuple[nn.Module, bool]]:
    """(module, reads_input) where each source (``embed``, ``attn.l``, ``mlp.l``) writes to the stream."""
    out = [(model.hf.get_submodule(f"{model.family.layers}.0"), True)]
    for block in model.blocks:
        for component, post in (("attn", "ln_attn_post"), ("mlp", "ln_mlp_post")):
            if block.has(post):
                out.append((block.module(post), False))
            else:
                out.append((block.module("attn_out" if component == "attn" else "mlp"), False))
    return out


@contextmanager
def taps(points: list[Tap]) -> Iterator[None]:
    """Call ``fn`` on each module's first input (``reads_input``) or main output; a tensor it
    returns replaces that input or output."""
    def pre(fn):
        def hook(module, args, kwargs):
            if args:
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            name = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
            new = fn(kwargs[name])
            return None if new is None else (args, {**kwargs, name: new})
        return hook

    def post(fn):
        def hook(module, args, output):
            main = output[0] if isinstance(output, tuple) else output
            new = fn(main)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return hook

    handles = []
    try:
        for module, reads_input, fn in points:
            if reads_input:
                handles.append(module.register_forward_pre_hook(pre(fn), with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(post(fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_metric(model, enc: EncodedTask, inputs: dict[str, Tensor], answer: Tensor, distractor: Tensor) -> Tensor:
    """The task's metric per row of one plain forward (no cache, last position only). ``measure``
    takes the unembedding's output (it applies the model's own logit scaling or soft-cap)."""
    found = []
    with taps([(model.module("unembed"), False, found.append)]):
        model.hf(**inputs, use_cache=False, logits_to_keep=1)
    return enc.measure(found[0][:, -1], answer, distractor)


def position_edge_attribution(model, enc: EncodedTask, *, relp: bool, rules: tuple[str, ...] = lrp.RULES,
                              heads: bool = False, keep: int | float | None = 10_000, batch_size: int | None = None,
                              model_name: str = "", **meta) -> Attribution:
    """Position-resolved edge scores (see the module docstring), kept sparse.

    ``keep``: an int keeps the top ``keep`` edges by absolute score; a float in (0, 1] the fewest
    top edges whose absolute scores add up to that fraction of all; ``None`` every edge. Edges
    scoring exactly 0 (e.g. from positions where the clean and corrupted prompts agree) are never
    kept. ``scores`` holds every source's exact node score (the sum of all its edges, kept or not).
    """
    if model.remote:
        raise ValueError("position-resolved edges run hooks on a local model; load it without remote=, or use "
                         "attribute(..., level='edge', positions=False) remotely")
    _check_keep(keep)
    a = model.anatomy
    per = enc.n if batch_size is None else max(1, batch_size)
    blocks = None
    clean = corrupt = 0.0
    for start in range(0, enc.n, per):
        idx = slice(start, min(start + per, enc.n))
        part, part_clean, part_corrupt = _edge_pass(model, enc, idx, relp, rules, heads)
        weight = (idx.stop - idx.start) / enc.n
        part = [t * weight for t in part]
        blocks = part if blocks is None else [b + p for b, p in zip(blocks, part)]
        clean += part_clean * weight
        corrupt += part_corrupt * weight
    attn, mlp, logits = blocks
    sources = position_sources(a.n_layers, enc.seq_len)
    targets = position_targets(a.n_layers, a.n_heads, enc.seq_len, heads)
    rows, columns, values, node_totals = _edge_list(attn, mlp, logits, parallel_blocks(model), enc.seq_len)
    kept, mass = _keep(values, keep)
    edge_scores = torch.sparse_coo_tensor(torch.stack([rows[kept], columns[kept]]), values[kept],
                                          (len(sources), len(targets)), check_invariants=True).coalesce()
    scores = {"embed": node_totals[:1], "attn": node_totals[1::2], "mlp": node_totals[2::2]}
    return Attribution(scores=scores, axes={c: ("layer", "position") for c in scores}, clean_metric=clean,
                       corrupt_metric=corrupt, sources=tuple(sources), targets=tuple(targets), edge_scores=edge_scores,
                       edge_count=int(values.numel()), edge_mass=mass, model=model_name, **meta)


def position_edge_units(model, seq_len: int, heads: bool = False) -> list[Edge]:
    """Every position-resolved edge of ``model`` over ``seq_len`` positions, in forward order of sources."""
    a = model.anatomy
    n_layers, n_sources = a.n_layers, 2 * a.n_layers + 1
    blocks = (torch.zeros(n_layers, n_sources, seq_len, a.n_heads if heads else 1, seq_len),
              torch.zeros(n_layers, n_sources, seq_len), torch.zeros(n_sources))
    rows, columns, _, _ = _edge_list(*blocks, parallel_blocks(model), seq_len)
    order = torch.argsort(rows * len(columns) + columns)
    sources, targets = position_sources(n_layers, seq_len), position_targets(n_layers, a.n_heads, seq_len, heads)
    return [Edge(sources[i], targets[j]) for i, j in zip(rows[order].tolist(), columns[order].tolist())]


def _check_keep(keep) -> None:
    if keep is None:
        return
    if isinstance(keep, bool) or not isinstance(keep, int | float):
        raise TypeError(f"keep must be an int (top edges), a float in (0, 1] (fraction of the total absolute "
                        f"score) or None (all), got {keep!r}")
    if isinstance(keep, int) and keep < 0:
        raise ValueError(f"keep as a number of edges must be >= 0, got {keep}")
    if isinstance(keep, float) and not 0.0 < keep <= 1.0:
        raise ValueError(f"keep as a fraction of the total absolute score must lie in (0, 1], got {keep}")


def _keep(values: Tensor, keep) -> tuple[Tensor, float]:
    """Indices of the kept edges, largest absolute score first (never an exact zero), and the share of
    the total absolute score they carry."""
    magnitude = values.abs()
    order = torch.argsort(magnitude, descending=True, stable=True)
    order = order[magnitude[order] > 0]
    if not len(order):
        return order, 1.0
    cumulative = torch.cumsum(magnitude[order].double(), 0)
    if keep is None:
        count = len(order)
    elif isinstance(keep, int):
        count = min(keep, len(order))
    else:
        count = min(int(torch.searchsorted(cumulative, keep * cumulative[-1] * (1 - 1e-12))) + 1, len(order))
    return order[:count], float(cumulative[count - 1] / cumulative[-1]) if count else 0.0


def _edge_list(attn: Tensor, mlp: Tensor, logits: Tensor, parallel: bool, seq_len: int):
    """Flatten the per-target blocks into (source index, target index, score) of every edge, and the
    node score of every source ``[2L + 1, S]``.

    ``attn [L, U, Sp, H', Sq]`` (U = 2L + 1 sources, zero where a source writes after the layer),
    ``mlp [L, U, S]`` and ``logits [U]`` (both at ``q = p``; logits at the last position).
    """
    n_layers, n_sources, S, width = attn.shape[0], attn.shape[1], seq_len, attn.shape[3]
    k = torch.arange(n_sources)
    layer = torch.arange(n_layers)
    p = torch.arange(S)
    per_layer = width * S + S  # targets per layer: attention (heads) x positions, then MLP x positions
    # attention targets: source k before attn.l (k <= 2l), p <= q
    valid = (k[None, :, None, None, None] <= 2 * layer[:, None, None, None, None]) & \
            (p[None, None, :, None, None] <= p[None, None, None, None, :])
    valid = valid.expand(attn.shape)
    li, ki, pi, hi, qi = valid.nonzero(as_tuple=True)
    rows = [ki * S + pi]
    columns = [li * per_layer + hi * S + qi]
    values = [attn[valid]]
    # MLP targets: source k before mlp.l (k <= 2l + 1, or k <= 2l with parallel blocks), q = p
    last = 2 * layer + (0 if parallel else 1)
    valid = (k[None, :, None] <= last[:, None, None]).expand(mlp.shape)
    mlp = torch.where(valid, mlp, 0.0)
    li, ki, pi = valid.nonzero(as_tuple=True)
    rows.append(ki * S + pi)
    columns.append(li * per_layer + width * S + pi)
    values.append(mlp[valid])
    # logits: every source at the last position
    rows.append(k * S + S - 1)
    columns.append(torch.full((n_sources,), n_layers * per_layer))
    values.append(logits)
    node_totals = attn.sum((0, 3, 4)) + mlp.sum(0)
    node_totals[:, -1] += logits
    return torch.cat(rows), torch.cat(columns), torch.cat(values), node_totals


def _edge_pass(model, enc: EncodedTask, idx: slice, relp: bool, rules: tuple[str, ...], heads: bool,
               ) -> tuple[list[Tensor], float, float]:
    """Edge blocks (see ``_edge_list``) and the clean and corrupt metrics of some prompts."""
    a = model.anatomy
    n_layers = a.n_layers
    answer, distractor = enc.answer_ids[idx], enc.distractor_ids[idx]
    writers = write_modules(model)
    readers = [_reader(model, Node(c, layer))[1] for layer in range(n_layers) for c in ("attn", "mlp")]
    readers.append(model.module("final_norm"))

    def recorder(store: list) -> Callable[[Tensor], None]:
        return lambda t: store.append(t)

    clean_writes: list[Tensor] = []
    with torch.no_grad(), taps([(m, i, recorder(clean_writes)) for m, i in writers]), \
            fixed_patterns(model, [LayerPatterns() for _ in range(n_layers)]):
        clean_metric = run_metric(model, enc, prompt_inputs(enc, "clean", idx), answer, distractor).mean()

    writes: list[Tensor] = []
    copies: list[Tensor] = []

    def private(x: Tensor) -> Tensor:
        copy = x.clone()
        copies.append(copy)
        return copy

    states = [LayerPatterns(capture={}) for _ in range(n_layers)]
    ruleset = lrp.RuleSet(model, tuple(r for r in rules if r != "attention")) if relp else None
    ruled = lrp.hooks(ruleset) if ruleset else nullcontext(None)
    with ExitStack() as stack:
        stack.enter_context(gradients_on_activations(model))
        counts = stack.enter_context(ruled)
        stack.enter_context(fixed_patterns(model, states))
        stack.enter_context(taps([(model.module("embed"), False, lambda t: t.detach().requires_grad_(True))] +
                                 [(m, i, recorder(writes)) for m, i in writers] +
                                 [(m, True, private) for m in readers]))
        metric = run_metric(model, enc, prompt_inputs(enc, "corrupt", idx), answer, distractor).mean()
    if ruleset is not None:
        ruleset.check(counts)
    scale = model.anatomy.residual_multiplier  # what a sublayer adds to the stream (Granite scales its output)
    deltas = torch.stack([(c - w.detach()) * (scale if k else 1.0)
                          for k, (c, w) in enumerate(zip(clean_writes, writes))]).float()  # [2L+1, n, S, d]
    outputs = [s.capture["output"] for s in states]
    with gradients_on_activations(model):
        grads = torch.autograd.grad(metric, outputs + copies[1::2] + copies[-1:], retain_graph=True,
                                    allow_unused=True, materialize_grads=True)
        attn_blocks = []
        for layer in range(n_layers):
            capture = states[layer].capture
            attn_blocks.append(_value_paths(capture["value"], copies[2 * layer], capture["pattern"],
                                            grads[layer], deltas, 2 * layer + 1, heads))
    reads = grads[n_layers:]  # d metric / d input of mlp.0 .. mlp.L-1, then of the final norm
    by_position = deltas.permute(2, 0, 1, 3).flatten(2)  # [S, U, n * d]
    mlp = torch.stack([torch.bmm(by_position, g.float().transpose(0, 1).flatten(1)[..., None])[..., 0].T
                       for g in reads[:-1]])  # [L, U, S]: delta_u[p] . d metric / d input[p], summed over prompts
    logits_block = by_position[-1] @ reads[-1][:, -1].float().flatten()
    return [torch.stack(attn_blocks), mlp.cpu(), logits_block.cpu()], float(clean_metric), float(metric.detach())


def _value_paths(value: Tensor, copy: Tensor, pattern: Tensor, grad: Tensor, deltas: Tensor, n_sources: int,
                 heads: bool) -> Tensor:
    """Value-path edges into one attention layer: ``[U, Sp, H', Sq]`` (zero for sources after the layer).

    ``J delta`` for every source at once: ``g = J^T w`` is built with ``w`` as a variable
    (``create_graph``), and its derivative with respect to ``w`` along ``delta`` is ``J delta``.
    """
    w = torch.zeros_like(value, requires_grad=True)
    (transposed,) = torch.autograd.grad(value, copy, grad_outputs=w, create_graph=True)
    sources = deltas[:n_sources].to(transposed.dtype)
    (moved,) = torch.autograd.grad(transposed, w, grad_outputs=sources, is_grads_batched=True)  # [U, n, kv, S, dh]
    # only positions where some source's write differs between the runs have non-zero edges
    active = torch.nonzero(sources.abs().amax((0, 1, 3)) > 0).flatten().to(moved.device)
    kv = moved.shape[2]
    groups = pattern.shape[1] // kv
    # pattern [n, H, Sq, Sp] times the output gradient [n, Sq, H, dh], heads split as (kv head, group)
    weighted = pattern.float()[..., active].unflatten(1, (kv, groups))[..., None] * \
        grad.float().unflatten(2, (kv, groups)).permute(0, 2, 3, 1, 4)[:, :, :, :, None]  # [n, kv, g, Sq, Sa, dh]
    paths = torch.einsum("knvpd,nvgqpd->kpvgq", moved[:, :, :, active].float(), weighted).flatten(2, 3)
    if not heads:
        paths = paths.sum(2, keepdim=True)  # [U, Sa, H', Sq]
    out = torch.zeros(deltas.shape[0], pattern.shape[-1], *paths.shape[2:])
    out[:n_sources, active.cpu()] = paths.cpu()
    return out
