"""Attention patterns held fixed: the attention implementation behind position-resolved edges and
``pattern_split``.

``with fixed_patterns(model, states):`` runs every attention layer through ``interplab_patterns``,
an eager attention registered with transformers on first use (the pattern computation is RelP's,
``lrp``), whose behaviour per layer comes from ``states[layer]`` (a ``LayerPatterns``):

- ``pattern``: a pattern ``[prompts, heads, S, S]`` to use instead of the one the layer computes
  (row ``r`` of a batch of stacked copies uses prompt ``r % prompts``);
- ``capture``: a dict that receives the layer's ``value`` (as the attention got it, grouped-query
  heads not repeated, still in the autograd graph), its ``pattern`` (detached) and its ``output``
  (``[rows, S, heads, d_head]``, in the graph);
- ``edit``: ``edit(pattern, value, output) -> output``, a change of the layer's output made with
  its (fixed) pattern.

A computed pattern is always detached (RelP's attention rule): gradients flow through values only,
which is what makes position-resolved edge scores decompose exactly. Outside these modes the
forward pass is the model's own attention up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import lrp

__all__ = ["ATTENTION", "LayerPatterns", "fixed_patterns", "repeat_kv"]

ATTENTION = "interplab_patterns"
_STATE = "_interplab_patterns"


@dataclass
class LayerPatterns:
    """What one attention layer does under ``fixed_patterns`` (see the module docstring)."""

    pattern: Tensor | None = None
    capture: dict | None = None
    edit: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
    calls: int = field(default=0, init=False)


def repeat_kv(value: Tensor, heads: int) -> Tensor:
    """Key/value heads ``[rows, kv_heads, ...]`` repeated so that query head ``h`` reads ``h // groups``."""
    groups = heads // value.shape[1]
    return value if groups == 1 else value.repeat_interleave(groups, dim=1)


def attention_with_fixed_patterns(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                                  attention_mask: Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                                  softcap: float | None = None, **kwargs) -> tuple[Tensor, Tensor]:
    state: LayerPatterns | None = getattr(module, _STATE, None)
    if state is None:
        raise RuntimeError(f"{ATTENTION} attention ran outside interplab.circuits.patterns.fixed_patterns")
    state.calls += 1
    if state.pattern is None:
        output, pattern = lrp.attention_ah_rule(module, query, key, value, attention_mask, scaling, dropout, softcap)
    else:
        rows = query.shape[0]
        stored = state.pattern.to(device=query.device, dtype=query.dtype)
        if rows % stored.shape[0] or stored.shape[1:] != (query.shape[1], query.shape[2], key.shape[2]):
            raise ValueError(f"a fixed pattern of shape {tuple(stored.shape)} does not fit this attention call "
                             f"(query {tuple(query.shape)}, key {tuple(key.shape)})")
        pattern = stored.repeat(rows // stored.shape[0], 1, 1, 1)
        output = torch.matmul(pattern, repeat_kv(value, query.shape[1])).transpose(1, 2)
    if state.edit is not None:
        output = state.edit(pattern, value, output)
    if state.capture is not None:
        state.capture.update(value=value, pattern=pattern.detach(), output=output)
    return output, pattern


@contextmanager
def fixed_patterns(model, states: Sequence[LayerPatterns]) -> Iterator[Sequence[LayerPatterns]]:
    """Run ``model``'s attention layers through ``interplab_patterns`` with one state per layer.

    Leaving the block raises if a layer's attention did not run through it (a family whose
    attention ignores transformers' attention interface would otherwise silently keep moving
    its patterns).
    """
    n = model.anatomy.n_layers
    if len(states) != n:
        raise ValueError(f"give one LayerPatterns per layer ({n}), got {len(states)}")
    lrp.register_attention(ATTENTION, attention_with_fixed_patterns)
    config = model.hf.config
    previous = config._attn_implementation
    modules = [block.module("attn") for block in model.blocks]
    for module, state in zip(modules, states):
        setattr(module, _STATE, state)
    config._attn_implementation = ATTENTION
    try:
        yield states
    finally:
        config._attn_implementation = previous
        for module in modules:
            delattr(module, _STATE)
    calls = [state.calls for state in states]
    if any(calls) and not all(calls):
        raise RuntimeError(f"attention with fixed patterns ran {calls} times per layer: this {model.family.name} "
                           "model's attention does not go through transformers' attention interface in every layer")
