"""Ablating position-resolved edges: what one reader sees from one source at one position is replaced.

An edge ``u@p -> v@q`` is removed from what ``v`` reads at ``q``, every other reader (and ``v`` at
other positions) still sees ``u``'s real write:

- ``v`` an MLP or the logits (``q = p``): ``v``'s input at ``p`` becomes ``input_v[p] - (write_u[p]
  - reference_u[p])``;
- ``v`` an attention layer or head at ``q``: the values it reads from ``p`` are recomputed from the
  residual stream with ``u``'s write at ``p`` replaced, ``sum_p pattern[q, p] *
  values(norm(resid[p] - removed_q[p]))``, while its pattern stays the one the layer computes from
  its unchanged input (the edges are value paths; an attention-layer target stands for all its heads).

References are the ``ablation``'s (``"mean"``, ``"zero"`` or ``"corrupt"``, as for node ablation).
To recompute values for arbitrary inputs each layer's value projection is read off by probing its
attention module with unit vectors (cached until the module's parameters change); values must be a
per-token affine map of the attention input, which is checked against the real values every time.
Cost on SmolLM2 (8 prompts): about 1 s per ablation forward.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

from ..tasks.contrast import EncodedTask
from .edges import _reader, parallel_blocks
from .nodes import Edge, Node
from .patterns import LayerPatterns, fixed_patterns, repeat_kv
from .position_edges import run_metric, source_index, taps, write_modules

__all__ = ["position_edge_metrics"]

#: relative tolerance of the check that values are an affine map of the attention input
AFFINE_TOLERANCE = 1e-3
_VALUE_MAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def position_edge_metrics(model, enc: EncodedTask, groups: Sequence[Sequence[Edge]], references: dict) -> Tensor:
    """The task's metric on the clean prompts with each group of position-resolved edges ablated
    (one stacked copy of the prompts per group, one forward). ``references``: reference writes
    ``("write", source node) -> [1 or prompts, S, d]`` (or a zero scalar), as ``ablation`` caches them."""
    n_layers, S = model.anatomy.n_layers, enc.seq_len
    copies, n = len(groups), enc.n
    rows = copies * n
    attn, reads = _masks(model, groups, S)
    used = set().union(*(_used(mask) for mask in (*attn.values(), *reads.values())))
    sources = [Node("embed", 0)] + [Node(c, layer) for layer in range(n_layers) for c in ("attn", "mlp")]
    deltas: dict[int, Tensor] = {}
    inputs: dict[int, Tensor] = {}

    def write(k: int):
        reference = references[("write", sources[k])]
        if reference.ndim and reference.shape[0] not in (1, rows):
            reference = reference.repeat(copies, 1, 1)
        scale = model.anatomy.residual_multiplier if k else 1.0  # what a sublayer adds to the stream (Granite)
        return lambda t: deltas.__setitem__(k, (t - reference) * scale)

    def read(mask: Tensor):
        by_row = mask.repeat_interleave(n, dim=0).to(model.device)  # [rows, U, S]

        def replace(x: Tensor) -> Tensor:
            for k in _used(mask):
                x = x - by_row[:, k, :, None].to(x.dtype) * deltas[k]
            return x
        return replace

    points = [(module, reads_input, write(k)) for k, (module, reads_input) in enumerate(write_modules(model))
              if k in used]
    points += [(_reader(model, Node("attn", layer))[1], True, lambda t, layer=layer: inputs.__setitem__(layer, t))
               for layer in attn]
    points += [(module, True, read(mask)) for module, mask in reads.items()]
    states = [LayerPatterns() for _ in range(n_layers)]
    handles = [model.blocks[layer].module("attn").register_forward_pre_hook(
        _prepare(model, layer, states[layer], mask, inputs, deltas, n), with_kwargs=True)
        for layer, mask in attn.items()]
    answer, distractor = enc.targets(copies)
    try:
        with torch.no_grad(), taps(points), fixed_patterns(model, states):
            metrics = run_metric(model, enc, enc.inputs(["clean"] * copies), answer, distractor)
    finally:
        for handle in handles:
            handle.remove()
    return metrics.view(copies, n).mean(1).float().cpu()


def _used(mask: Tensor) -> list[int]:
    """The sources (dimension 1) a mask ablates anywhere."""
    return torch.nonzero(mask.transpose(0, 1).flatten(1).any(1)).flatten().tolist()


def _masks(model, groups, S: int) -> tuple[dict[int, Tensor], dict]:
    """Per group, which edges are ablated: attention targets per layer ``[groups, U, Sp, H, Sq]``;
    per reading norm (MLPs, the final norm) ``[groups, U, S]`` at the reader's own position."""
    a = model.anatomy
    n_layers, n_heads = a.n_layers, a.n_heads
    U = 2 * n_layers + 1
    parallel = parallel_blocks(model)
    attn_at: dict[int, list[tuple]] = {}  # layer -> (group, source, p, head or -1 for all heads, q)
    read_at: dict[int, list[tuple]] = {}  # layer (n_layers: the logits) -> (group, source, p)
    for c, group in enumerate(groups):
        for edge in group:
            (k, p), target = _source(edge, n_layers, S), edge.target
            q, layer, component, head = target.position, target.layer, target.component, target.head
            if component in ("attn", "head") and 0 <= layer < n_layers and q is not None and p <= q < S \
                    and k <= 2 * layer and (component == "head") == (head is not None) \
                    and (head is None or 0 <= head < n_heads):
                attn_at.setdefault(layer, []).append((c, k, p, -1 if head is None else head, q))
            elif head is None and q == p and (
                    (component == "mlp" and 0 <= layer < n_layers and k <= 2 * layer + (0 if parallel else 1))
                    or (component == "logits" and layer == n_layers and q == S - 1)):
                read_at.setdefault(layer, []).append((c, k, p))
            else:
                raise ValueError(
                    f"{edge} is not a position-resolved edge of this model: targets are attn.l@q or head.l.h@q "
                    f"(reading positions p <= q through values), mlp.l@p and logits.{n_layers}@{S - 1} (reading "
                    "their own position), and a source must write before the target reads")
    attn = {}
    for layer, found in attn_at.items():
        c, k, p, h, q = torch.tensor(found).T
        mask = attn[layer] = torch.zeros(len(groups), U, S, n_heads, S, dtype=torch.bool)
        every = h < 0
        mask[c[~every], k[~every], p[~every], h[~every], q[~every]] = True
        mask.permute(0, 1, 2, 4, 3)[c[every], k[every], p[every], q[every]] = True
    reads = {}
    for layer, found in read_at.items():
        norm = model.module("final_norm") if layer == n_layers else _reader(model, Node("mlp", layer))[1]
        mask = reads[norm] = torch.zeros(len(groups), U, S, dtype=torch.bool)
        mask[tuple(torch.tensor(found).T)] = True
    return attn, reads


def _source(edge: Edge, n_layers: int, S: int) -> tuple[int, int]:
    try:
        return source_index(edge.source, n_layers, S)
    except ValueError as error:
        raise ValueError(f"{edge}: {error}") from None


def _prepare(model, layer: int, state: LayerPatterns, mask: Tensor, inputs: dict, deltas: dict, n: int):
    """A pre-hook on attention ``layer``: read off its value projection, then make its output use
    values recomputed without the ablated writes for the ablated (row, head, query position) triples.
    ``mask [copies, U, Sp, H, Sq]``: the ablated edges of each copy of the ``n`` prompts."""
    reader = _reader(model, Node("attn", layer))[1]
    # the attention's input from the stream: through its pre-norm, or the stream itself (post-norm blocks)
    norm = reader.forward if reader is not model.blocks[layer].module("attn") else (lambda x: x)
    heads = model.anatomy.n_heads
    ks = _used(mask)
    mask = mask[:, ks].to(model.device)
    if bool((mask.all(3) == mask.any(3)).all()):  # the same for every head: recompute once for all heads
        mask = mask[:, :, :, :1]

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        rows, S, d = hidden.shape

        def call(probe: Tensor) -> Tensor:
            state.capture = {}
            if args:
                module.forward(probe, *args[1:], **kwargs)
            else:
                module.forward(*args, **{**kwargs, "hidden_states": probe})
            value = state.capture["value"]
            state.capture = None
            return value.transpose(1, 2).flatten(2)  # [rows, S, kv_heads * d_head]

        weight, bias = _value_map(module, call, rows, S, d, hidden.dtype, hidden.device)

        def edit(pattern: Tensor, value: Tensor, output: Tensor) -> Tensor:
            expected = value.transpose(1, 2).flatten(2).float()
            if (hidden.float() @ weight + bias - expected).abs().max() > AFFINE_TOLERANCE * (expected.abs().max() + 1):
                raise NotImplementedError(f"the values of attention layer {layer} of this {model.family.name} model "
                                          "are not a per-token affine map of its input; position-resolved edges "
                                          "into attention cannot be ablated here")
            d_head = output.shape[-1]
            per_head = repeat_kv(weight.unflatten(1, (-1, d_head)).permute(1, 0, 2)[None], heads)[0]  # [H, d, dh]
            head_bias = repeat_kv(bias.unflatten(0, (-1, d_head))[None], heads)[0]  # [H, d_head]
            x = inputs[layer].float()
            removed_by = torch.stack([deltas[k].float() for k in ks])  # [K, rows, S, d]
            out = output.clone()
            for q in range(S):
                if not mask[..., q].any():
                    continue
                hit = mask[..., q].repeat_interleave(n, dim=0).float()  # [rows, K, Sp, H or 1]
                removed = torch.einsum("rkph,krpd->rhpd", hit, removed_by)
                normed = norm((x[:, None] - removed).to(hidden.dtype)).float()  # [rows, H or 1, Sp, d]
                weights = pattern[:, :, q, :].float()  # [rows, H, Sp]
                mixed = torch.einsum("rhp,rhpd->rhd", weights, normed.expand(-1, heads, -1, -1))
                z = torch.einsum("rhd,hde->rhe", mixed, per_head) + weights.sum(-1)[..., None] * head_bias
                touched = hit.flatten(1, 2).any(1).expand(rows, heads)  # [rows, H]
                out[:, q] = torch.where(touched[..., None], z.to(out.dtype), out[:, q])
            return out

        state.edit = edit
        return None

    return hook


def _value_map(module, call, rows: int, S: int, d: int, dtype, device) -> tuple[Tensor, Tensor]:
    """(weight ``[d, kv_heads * d_head]``, bias) of the values as a function of one token's attention
    input, read off by calling the attention on unit vectors (and one zero vector, for the bias).
    Cached per attention module until one of its parameters changes (in place or replaced)."""
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in module.parameters())
    cached = _VALUE_MAPS.get(module)
    if cached is not None and cached[0] == key:
        return cached[1]
    probes = torch.cat([torch.eye(d), torch.zeros(1, d)]).to(device=device, dtype=dtype)
    slots = rows * S
    found = []
    for start in range(0, d + 1, slots):
        chunk = probes[start:start + slots]
        batch = torch.zeros(slots, d, device=device, dtype=dtype)
        batch[:len(chunk)] = chunk
        found.append(call(batch.view(rows, S, d)).reshape(slots, -1)[:len(chunk)].float())
    values = torch.cat(found)
    bias = values[-1]
    _VALUE_MAPS[module] = (key, (values[:-1] - bias, bias))
    return _VALUE_MAPS[module][1]
