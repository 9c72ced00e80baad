"""An independent reference for RelP's LN, identity and half rules: torch hooks with custom autograd
functions whose forward returns the module's own output and whose backward is the rule's, written
out by hand (the implementation interplab used before the rules moved into the nnsight trace).

``with rules(model, enable=...):`` makes plain torch backward passes of ``model.hf`` carry them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

STABILISER = 1e-6


class _LNRule(torch.autograd.Function):
    """Forward: the norm's own output. Backward: through ``center(x) * weight / s`` with ``s`` constant."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, weight: Tensor | None, eps: float, centred: bool) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.eps, ctx.centred = eps, centred
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        xf = x.float()
        if ctx.centred:
            xf = xf - xf.mean(-1, keepdim=True)
        scale = torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + ctx.eps)
        g = grad.float() / scale
        if weight is not None:
            g = g * weight.float()
        if ctx.centred:
            g = g - g.mean(-1, keepdim=True)
        return g.to(x.dtype), None, None, None, None


class _IdentityRule(torch.autograd.Function):
    """Forward: ``act(x)``. Backward: ``grad * act(x) / x`` (x kept away from 0 by ``STABILISER``)."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(x, y)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, y = ctx.saved_tensors
        stable = x + torch.where(x >= 0, STABILISER, -STABILISER).to(x.dtype)
        return grad * (y / stable), None


class _HalfRule(torch.autograd.Function):
    """Forward: the product ``a * b``. Backward: half the gradient, so each factor gets half."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return 0.5 * grad


def _norm_hook(kind: str):
    def hook(module, args, output):
        eps = getattr(module, "eps", None)
        eps = module.variance_epsilon if eps is None else eps
        weight = module.weight
        if weight is not None:
            weight = weight.detach()
            if kind == "rmsnorm_offset":
                weight = 1.0 + weight
        return _LNRule.apply(args[0], output, weight, float(eps), kind == "layernorm")
    return hook


@contextmanager
def rules(model, enable: tuple[str, ...] = ("norm", "identity", "half")) -> Iterator[None]:
    """The rules in ``enable`` (of norm, identity, half) as hooks on ``model``'s modules."""
    norms = [model.module("final_norm")]
    for block in model.blocks:
        norms += [block.module(n) for n in ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post") if block.has(n)]
    handles = []
    if "norm" in enable:
        handles += [m.register_forward_hook(_norm_hook(model.family.norm)) for m in norms]
    if "identity" in enable:
        handles += [block.module("act").register_forward_hook(lambda m, a, y: _IdentityRule.apply(a[0], y))
                    for block in model.blocks]
    if "half" in enable and model.family.mlp == "gated":
        handles += [block.module("mlp_out").register_forward_pre_hook(lambda m, a: (_HalfRule.apply(a[0]), *a[1:]))
                    for block in model.blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
