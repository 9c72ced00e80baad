"""LRP rules for RelP, as gradient overrides that leave the forward pass unchanged.

``with lrp.rules(model):`` makes an ordinary backward carry LRP relevance (RelP; Rezaei Jafari et
al. 2025) through every dense block of the anatomy (``enable=`` picks the rules; by default all
but the AH-rule, as in the RelP authors' code: the AH-rule freezes every attention pattern, so
scores under it estimate patching with the patterns frozen, not activation patching):

=====================  ===========  ====================================================================
where                  rule         backward
=====================  ===========  ====================================================================
every norm (ln_attn,   LN-rule      through ``center(x) * w / s`` with the normaliser ``s`` constant
ln_mlp, Gemma 2's                   (LayerNorm: ``s = sqrt(var + eps)``, centring kept; RMSNorm:
post-norms, final)                  ``s = sqrt(mean(x^2) + eps)``; Gemma: weight ``1 + w``)
MLP activation (act)   identity     ``d out / d x = act(x) / x`` (x stabilised away from 0)
gated MLP product      half rule    the product's gradient is halved, so each factor gets half
attention softmax      AH-rule      the attention pattern is constant: relevance flows through values
linear maps            0-rule       plain gradient
=====================  ===========  ====================================================================

Mechanism: each rule passes a module's output ``y`` through a small autograd function whose
forward returns ``y`` itself (so the forward pass is exactly unchanged and costs nothing extra) and
whose backward is the rule's (the same gradient as the "detach tricks" ``y.detach() + g -
g.detach()`` with ``g`` the rule's linearisation, computed only in the backward pass). Norms and
activations get forward hooks, the gated product a pre-hook on the down projection, and attention
runs through ``interplab_relp``, an eager attention registered with transformers'
``AttentionInterface`` (GQA, scaling, masks incl. sliding windows, Gemma 2 soft-capping) that
detaches the pattern. The rules give activation gradients only (norm weights get none). They run
locally (hooks and a registered attention function), so RelP needs the model in this process.

Rules silently off is the known failure of RelP implementations: the context counts every rule
application, and ``check()`` (called by the attribution code after each RelP pass) raises if a rule
did not run on every layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

__all__ = ["ATTENTION", "DEFAULT_RULES", "RULES", "STABILISER", "ActiveRules", "attention_ah_rule", "rules"]

#: rule names: LN-rule on norms, identity rule on activations, half rule on gated products, AH-rule on softmax
RULES = ("norm", "identity", "half", "attention")
#: the rules RelP uses unless told (the RelP authors' default): the AH-rule freezes the attention
#: patterns, so with it the scores estimate patching with every pattern frozen (see docs/circuits.md)
DEFAULT_RULES = ("norm", "identity", "half")

ATTENTION = "interplab_relp"
#: keeps act(x) / x finite near x = 0
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


def ln_rule(module: nn.Module, x: Tensor, y: Tensor, kind: str) -> Tensor:
    """``y = norm(x)`` whose backward follows the LN-rule (the normaliser treated as a constant)."""
    eps = getattr(module, "eps", None)
    if eps is None:
        eps = module.variance_epsilon
    weight = module.weight
    if weight is not None:
        weight = weight.detach()
        if kind == "rmsnorm_offset":
            weight = 1.0 + weight
    return _LNRule.apply(x, y, weight, float(eps), kind == "layernorm")


def identity_rule(x: Tensor, y: Tensor) -> Tensor:
    """``y = act(x)`` whose backward passes relevance through unchanged: ``d y / d x = act(x) / x``."""
    return _IdentityRule.apply(x, y)


def half_rule(z: Tensor) -> Tensor:
    """The half rule on a product ``z = a * b``: same value, half the gradient to each factor."""
    return _HalfRule.apply(z)


def attention_ah_rule(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                      scaling: float | None = None, dropout: float = 0.0, softcap: float | None = None,
                      **kwargs) -> tuple[Tensor, Tensor]:
    """Eager attention with a constant (detached) pattern: the AH-rule."""
    counter = getattr(module, _COUNTS, None)
    if counter is not None:
        counter["attention"] += 1
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    pattern = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype).detach()
    pattern = F.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    return out, pattern


AttentionInterface.register(ATTENTION, attention_ah_rule)
AttentionMaskInterface.register(ATTENTION, eager_mask)

# The count lives on the attention module itself, not in a module global: nnsight's serialising
# backend can load a second copy of this module whose registered function would see other globals.
_COUNTS = "_interplab_relp_counts"


class ActiveRules:
    """The rules switched on for one model (``enabled``), and how often each ran (``counts``)."""

    def __init__(self, model, enable: tuple[str, ...] = DEFAULT_RULES):
        unknown = set(enable) - set(RULES)
        if unknown:
            raise ValueError(f"unknown LRP rules {sorted(unknown)}; the rules are {', '.join(RULES)}")
        self.model = model
        self.enabled = tuple(enable)
        self.counts: Counter = Counter()
        family = model.family
        n = model.anatomy.n_layers
        self.norms: list[nn.Module] = [model.module("final_norm")]
        for block in model.blocks:
            for name in ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post"):
                if block.has(name):
                    self.norms.append(block.module(name))
        self.acts = [block.module("act") for block in model.blocks if block.has("act")]
        self.gated = [block.module("mlp_out") for block in model.blocks] if family.mlp == "gated" else []
        expected = {"norm": len(self.norms), "identity": len(self.acts), "half": len(self.gated), "attention": n}
        self.expected = Counter({rule: expected[rule] for rule in self.enabled})
        if len(self.acts) != n:
            raise NotImplementedError(f"RelP needs a dense MLP with an activation module in every block; "
                                      f"this {family.name} model has one in {len(self.acts)} of {n} blocks")

    def _norm_hook(self, module, args, output):
        self.counts["norm"] += 1
        return ln_rule(module, args[0], output, self.model.family.norm)

    def _act_hook(self, module, args, output):
        self.counts["identity"] += 1
        return identity_rule(args[0], output)

    def _half_hook(self, module, args):
        self.counts["half"] += 1
        return (half_rule(args[0]), *args[1:])

    @contextmanager
    def active(self) -> Iterator[ActiveRules]:
        on = set(self.enabled)
        handles = [m.register_forward_hook(self._norm_hook) for m in self.norms if "norm" in on]
        handles += [m.register_forward_hook(self._act_hook) for m in self.acts if "identity" in on]
        handles += [m.register_forward_pre_hook(self._half_hook) for m in self.gated if "half" in on]
        config = self.model.hf.config
        previous = config._attn_implementation
        if "attention" in on:
            config._attn_implementation = ATTENTION
        attentions = [block.module("attn") for block in self.model.blocks]
        for attention in attentions:
            setattr(attention, _COUNTS, self.counts)
        try:
            yield self
        finally:
            for attention in attentions:
                delattr(attention, _COUNTS)
            config._attn_implementation = previous
            for handle in handles:
                handle.remove()

    def check(self, forwards: int = 1) -> None:
        """Raise if some rule did not run on every module it covers, ``forwards`` times."""
        missing = {rule: (self.counts[rule], count * forwards) for rule, count in self.expected.items()
                   if self.counts[rule] != count * forwards}
        if missing:
            detail = ", ".join(f"{rule}: ran {got} times, expected {want}" for rule, (got, want) in missing.items())
            raise RuntimeError(f"RelP rules did not all run on this {self.model.family.name} model ({detail}); "
                               "its scores would silently be plain gradients, so none are returned")


@contextmanager
def rules(model, *, enable: tuple[str, ...] = DEFAULT_RULES, check: bool = True) -> Iterator[ActiveRules]:
    """Switch RelP's LRP rules on for ``model`` (an ``interplab.Model``) inside the block.

    ``enable`` picks rules by name from ``RULES`` (default: ``DEFAULT_RULES``, without the AH-rule).
    With ``check`` (default), leaving the block raises if an enabled rule did not run on every layer
    in each whole-model forward pass made inside it.
    """
    if model.anatomy.moe is not None:
        raise NotImplementedError("RelP rules cover dense models; this model has MoE layers")
    ruleset = ActiveRules(model, enable)
    forwards = Counter()
    with ruleset.active():
        # one embedding call per forward pass
        handle = model.module("embed").register_forward_hook(lambda *_: forwards.update(["forward"]))
        try:
            yield ruleset
        finally:
            handle.remove()
    if check and forwards["forward"]:
        ruleset.check(forwards["forward"])
