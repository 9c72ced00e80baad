"""Hand-written references for position-resolved edges and frozen attention patterns.

Plain transformers forwards with torch hooks and autograd; nothing from nnsight or
interplab.circuits. The attention here is the model family's own eager attention with its pattern
detached (``frozen_attention``), and a layer's values are recomputed from its norm's input by the
family's own projection (``value_function``), so that the value read by one query position from one
key position can be perturbed alone.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import torch
from circuit_reference import ids_of, last_metric
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

NAME = "test_frozen_reference"
STATE: dict = {}  # per attention module: {"pattern": fixed pattern or None, "values": fn(pattern) -> output}


def _repeat(value, heads):
    return value.repeat_interleave(heads // value.shape[1], dim=1)


def _attention(module, query, key, value, attention_mask, **kwargs):
    """The family's eager attention, pattern detached (or replaced by a stored one); optionally the
    output is computed by a test-supplied function of the pattern."""
    eager = sys.modules[type(module).__module__].eager_attention_forward
    _, weights = eager(module, query, key, value, attention_mask, **kwargs)
    state = STATE.get(module, {})
    pattern = state.get("pattern")
    pattern = weights.detach() if pattern is None else pattern
    state.setdefault("seen", []).append(pattern)
    if "values" in state:
        return state["values"](pattern), pattern
    return torch.matmul(pattern, _repeat(value, query.shape[1])).transpose(1, 2), pattern


AttentionInterface.register(NAME, _attention)
AttentionMaskInterface.register(NAME, eager_mask)


@contextmanager
def frozen_attention(model):
    config = model.hf.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        STATE.clear()


def attention_module(model, layer):
    return model.blocks[layer].module("attn")


def reader_module(model, layer, sublayer):
    """The module whose first input is what a sublayer reads from the stream: its pre-norm, or the
    sublayer itself in a post-norm block (OLMo 2)."""
    block = model.blocks[layer]
    pre = "ln_attn" if sublayer == "attn" else "ln_mlp"
    return block.module(pre) if block.has(pre) else block.module(sublayer)


def on_input(module, fn):
    """A pre-hook: ``fn(first input)`` -> a replacement or None, whether the input is passed by
    position or by keyword."""
    def pre(m, args, kwargs):
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
        new = fn(kwargs[key])
        return None if new is None else (args, {**kwargs, key: new})
    return module.register_forward_pre_hook(pre, with_kwargs=True)


def value_function(model, layer):
    """x (what the attention reads from the stream) -> values [..., kv_heads, d_head], per family."""
    attn = model.blocks[layer].module("attn")
    reader = reader_module(model, layer, "attn")
    norm = (lambda x: x) if reader is attn else reader
    d_head = model.anatomy.d_head
    family = model.family.name
    if family == "gpt2":
        d = model.anatomy.d_model
        return lambda x: attn.c_attn(norm(x))[..., 2 * d:].unflatten(-1, (-1, d_head))
    if family == "gpt_neox":
        return lambda x: attn.query_key_value(norm(x)).unflatten(-1, (-1, 3 * d_head))[..., 2 * d_head:]
    if family == "phi3":
        config = model.hf.config
        start = (config.num_attention_heads + config.num_key_value_heads) * d_head
        return lambda x: attn.qkv_proj(norm(x))[..., start:].unflatten(-1, (-1, d_head))
    return lambda x: attn.v_proj(norm(x)).unflatten(-1, (-1, d_head))


def writer_module(model, source: tuple[str, int]):
    """(module, reads_input) where a source writes into the residual stream."""
    component, layer = source
    if component == "embed":
        return model.hf.get_submodule(f"{model.family.layers}.0"), True
    block = model.blocks[layer]
    post = "ln_attn_post" if component == "attn" else "ln_mlp_post"
    if block.has(post):
        return block.module(post), False
    return block.module("attn_out" if component == "attn" else "mlp"), False


def source_list(model):
    return [("embed", 0)] + [(c, layer) for layer in range(model.anatomy.n_layers) for c in ("attn", "mlp")]


def stream_factor(model, source) -> float:
    """What the stream gets of a source's output: Granite adds sublayer outputs times residual_multiplier."""
    return 1.0 if source[0] == "embed" else getattr(model.hf.config, "residual_multiplier", 1.0)


def writes_of(model, ids):
    """Every source's write into the stream [S, d] in one forward (frozen attention, no gradients)."""
    from circuit_reference import hooked

    found = {}
    contexts = []
    for source in source_list(model):
        contexts.append(hooked(*writer_module(model, source),
                               lambda t, s=source: found.__setitem__(s, t[0] * stream_factor(model, s))))
    with torch.no_grad(), frozen_attention(model):
        for c in contexts:
            c.__enter__()
        try:
            model.hf(input_ids=ids, use_cache=False)
        finally:
            for c in reversed(contexts):
                c.__exit__(None, None, None)
    return found


def path_edges(model, prompts, heads: bool = False, parallel: bool = False) -> dict[tuple, float]:
    """Every position-resolved edge as the derivative of the metric with respect to a perturbation
    of that one path, with attention patterns frozen: {(source id, target id): score}.

    For source ``u`` (write delta ``D[p]``, clean minus corrupt): the MLP of layer ``l`` and the
    final norm read ``x[p] + e[p] * D[p]``; attention layer ``l``'s output at ``q`` (head ``h``) is
    ``sum_p A[h, q, p] * values(x[p] + e[q, h, p] * D[p])``. The edge is ``d metric / d e`` at
    ``e = 0``, one forward and backward per source and prompt.
    """
    window = max(ids_of(model, c).shape[1] for c, _, _, _ in prompts)
    edges: dict[tuple, float] = {}
    for clean, corrupt, answer, distractor in prompts:
        ids = ids_of(model, corrupt)
        clean_writes, corrupt_writes = writes_of(model, ids_of(model, clean)), writes_of(model, ids)
        for k, source in enumerate(source_list(model)):
            delta = clean_writes[source] - corrupt_writes[source]  # [S, d]
            found = _source_paths(model, ids, k, delta, heads, parallel,
                                  lambda logits, a=answer, d=distractor: last_metric(logits, a, d) / len(prompts))
            shift = window - ids.shape[1]
            u = f"{source[0]}.{source[1]}"
            for (p, target, q), value in found.items():
                key = (f"{u}@{p + shift}", f"{target}@{q + shift}")
                edges[key] = edges.get(key, 0.0) + value
    model.hf.zero_grad(set_to_none=True)
    return edges


def _source_paths(model, ids, k: int, delta, heads: bool, parallel: bool, metric) -> dict[tuple, float]:
    """{(p, target without position, q): d metric / d e} for source number ``k`` of one prompt."""
    n_layers, n_heads = model.anatomy.n_layers, model.anatomy.n_heads
    length = ids.shape[1]
    device = ids.device
    e_attn = {layer: torch.zeros(length, n_heads if heads else 1, length, requires_grad=True, device=device)
              for layer in range(n_layers) if k <= 2 * layer}
    e_mlp = {layer: torch.zeros(length, requires_grad=True, device=device)
             for layer in range(n_layers) if k <= 2 * layer + (0 if parallel else 1)}
    e_final = torch.zeros(length, requires_grad=True, device=device)
    handles, inputs = [], {}

    def attention(layer):
        values = value_function(model, layer)

        def output(pattern):
            x = inputs[layer]  # [S, d]
            moved = values(x[None, None] + e_attn[layer][..., None] * delta[None, None])  # [Sq, H', Sp, kv, dh]
            moved = moved.repeat_interleave(n_heads // moved.shape[-2], dim=-2)  # [Sq, H', Sp, H, dh]
            picked = torch.stack([moved[:, h if heads else 0, :, h] for h in range(n_heads)])  # [H, Sq, Sp, dh]
            return torch.einsum("hqp,hqpd->qhd", pattern[0], picked)[None]
        return output

    def record(layer):
        return lambda x: inputs.__setitem__(layer, x[0])

    def perturb(e):
        return lambda x: x + e[None, :, None] * delta[None]

    for layer in e_attn:
        handles.append(on_input(reader_module(model, layer, "attn"), record(layer)))
        STATE[attention_module(model, layer)] = {"values": attention(layer)}
    for layer, e in e_mlp.items():
        handles.append(on_input(reader_module(model, layer, "mlp"), perturb(e)))
    handles.append(on_input(model.module("final_norm"), perturb(e_final)))
    try:
        with frozen_attention(model):
            logits = model.hf(input_ids=ids, use_cache=False).logits[0, -1]
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(metric(logits), [*e_attn.values(), *e_mlp.values(), e_final], allow_unused=True,
                                materialize_grads=True)
    found = {}
    for layer, g in zip(e_attn, grads):
        for q in range(length):
            for p in range(q + 1):
                for h in range(g.shape[1]):
                    found[(p, f"head.{layer}.{h}" if heads else f"attn.{layer}", q)] = float(g[q, h, p])
    for layer, g in zip(e_mlp, grads[len(e_attn):]):
        for p in range(length):
            found[(p, f"mlp.{layer}", p)] = float(g[p])
    found[(length - 1, f"logits.{n_layers}", length - 1)] = float(grads[-1][-1])
    return found


def ablated_metric(model, prompts, removed: set[tuple[str, str]], ablation: str = "corrupt") -> float:
    """The mean metric of the clean prompts with position-resolved edges ``(source id, target id)``
    removed, each source's write replaced by the corrupted prompt's (``ablation="corrupt"``) or by
    zero (``"zero"``).

    MLPs and the final norm read ``x[p] - D[p]`` (``D``: the removed sources' writes minus their
    reference writes at ``p``); attention at ``q`` (head ``h``) is recomputed position by position
    as ``sum_p A[h, q, p] * values(x[p] - D_qh[p])`` with the layer's own (unchanged) pattern.
    """
    window = max(ids_of(model, c).shape[1] for c, _, _, _ in prompts)
    total = 0.0
    for clean, corrupt, answer, distractor in prompts:
        reference = writes_of(model, ids_of(model, corrupt))
        if ablation == "zero":
            reference = {s: torch.zeros_like(t) for s, t in reference.items()}
        logits = _ablated_logits(model, ids_of(model, clean), reference, removed, window)
        total += float(last_metric(logits, answer, distractor))
    return total / len(prompts)


def _ablated_logits(model, ids, reference: dict, removed: set, window: int):
    from circuit_reference import hooked

    n_layers, n_heads = model.anatomy.n_layers, model.anatomy.n_heads
    length = ids.shape[1]
    shift = window - length
    deltas, inputs = {}, {}

    def lost(target: str, p: int):
        """The sum of the removed sources' deltas that ``target`` (an id with position) reads at p."""
        out = 0
        for source in source_list(model):
            if (f"{source[0]}.{source[1]}@{p + shift}", target) in removed:
                out = out + deltas[source][p]
        return out

    def attention(layer):
        values = value_function(model, layer)

        def output(pattern):
            x = inputs[layer]
            out = torch.zeros(length, n_heads, model.anatomy.d_head, device=ids.device)
            for q in range(length):
                for h in range(n_heads):
                    for p in range(q + 1):
                        changed = x[p] - lost(f"attn.{layer}@{q + shift}", p) - lost(f"head.{layer}.{h}@{q + shift}", p)
                        v = values(changed)  # [kv, d_head]
                        out[q, h] += pattern[0, h, q, p] * v[h // (n_heads // v.shape[0])]
            return out[None]
        return output

    def record(layer):
        return lambda x: inputs.__setitem__(layer, x[0])

    def read(target, positions):
        def replace(x):
            x = x.clone()
            for p in positions:
                x[0, p] = x[0, p] - lost(f"{target}@{p + shift}", p)
            return x
        return replace

    contexts = [hooked(*writer_module(model, s),
                       lambda t, s=s: deltas.__setitem__(s, t[0] * stream_factor(model, s) - reference[s]))
                for s in source_list(model)]
    handles = []
    for layer in range(n_layers):
        handles.append(on_input(reader_module(model, layer, "attn"), record(layer)))
        STATE[attention_module(model, layer)] = {"values": attention(layer)}
        handles.append(on_input(reader_module(model, layer, "mlp"), read(f"mlp.{layer}", range(length))))
    handles.append(on_input(model.module("final_norm"), read(f"logits.{n_layers}", [length - 1])))
    try:
        with torch.no_grad(), frozen_attention(model):
            for c in contexts:
                c.__enter__()
            try:
                return model.hf(input_ids=ids, use_cache=False).logits[0, -1]
            finally:
                for c in reversed(contexts):
                    c.__exit__(None, None, None)
    finally:
        for h in handles:
            h.remove()


def frozen_patch(model, prompts, nodes) -> list[float]:
    """Per node (component, layer, head, position): mean over prompts of the metric of the corrupted
    run with the node's clean activation patched in and every attention pattern held at the
    corrupted run's, minus the corrupted metric. A head's (attention layer's) clean activation is
    its corrupted pattern applied to its clean values, written out head by head."""
    from circuit_reference import feature_slice, hooked, site_module

    a = model.anatomy
    window = max(ids_of(model, c).shape[1] for c, _, _, _ in prompts)
    totals = [0.0] * len(nodes)
    for clean, corrupt, answer, distractor in prompts:
        clean_ids, corrupt_ids = ids_of(model, clean), ids_of(model, corrupt)
        length = clean_ids.shape[1]
        modules = [attention_module(model, layer) for layer in range(a.n_layers)]
        with torch.no_grad(), frozen_attention(model):
            for m in modules:
                STATE[m] = {}
            base = last_metric(model.hf(input_ids=corrupt_ids, use_cache=False).logits[0, -1], answer, distractor)
            patterns = [STATE[m]["seen"][0][0] for m in modules]  # [H, S, S]
        for k, (component, layer, head, position) in enumerate(nodes):
            tokens = slice(None) if position is None else position - (window - length)
            if isinstance(tokens, int) and tokens < 0:
                continue
            found = {}
            kind = "head" if component == "head" else component
            with torch.no_grad(), frozen_attention(model), \
                    hooked(*site_module(model, kind, layer), lambda t, found=found: found.__setitem__("act", t)), \
                    hooked(reader_module(model, layer, "attn"), True,
                           lambda t, found=found: found.__setitem__("x", t[0])):
                model.hf(input_ids=clean_ids, use_cache=False)
            clean_act = found["act"]
            if component in ("head", "attn"):
                v = value_function(model, layer)(found["x"])  # [S, kv, dh]
                v = v.repeat_interleave(a.n_heads // v.shape[1], dim=1)
                z = torch.stack([patterns[layer][h] @ v[:, h] for h in range(a.n_heads)], dim=1)  # [S, H, dh]
                z = z.flatten(1)[None]
                clean_act = z if component == "head" else model.blocks[layer].module("attn_out")(z)
            features = feature_slice(model, head)

            def put(t, tokens=tokens, features=features, clean_act=clean_act):
                t = t.clone()
                t[:, tokens, features] = clean_act[:, tokens, features]
                return t
            with torch.no_grad(), frozen_attention(model), hooked(*site_module(model, kind, layer), put):
                for layer_, m in enumerate(modules):
                    STATE[m] = {"pattern": patterns[layer_][None]}
                patched = last_metric(model.hf(input_ids=corrupt_ids, use_cache=False).logits[0, -1], answer,
                                      distractor)
            totals[k] += float(patched - base)
    return [t / len(prompts) for t in totals]
