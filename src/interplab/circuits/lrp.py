"""LRP rules for RelP, as interventions inside the nnsight trace that leave the forward pass unchanged.

RelP (Rezaei Jafari et al. 2025) is AtP whose backward carries LRP relevance instead of the plain
gradient. Each rule replaces a value ``y`` of the forward pass by ``y.detach() + (g - g.detach())``
with ``g`` the rule's linearisation: the value is exactly ``y`` (``g - g.detach()`` is exactly
zero), and an ordinary backward goes through ``g`` instead of the module's own graph:

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

By default all but the AH-rule are on, as in the RelP authors' code: the AH-rule freezes every
attention pattern, so scores under it estimate patching with the patterns frozen, not activation
patching.

Where: ``RuleSet(model, enable).plan`` lists the modules in forward order, and ``apply(plan)``,
called inside a trace (in its own empty ``tracer.invoke()``, after the invoke that reads and sets
activations, so it sees their edits), rewrites the norm outputs, activation outputs and the down
projection's input of gated MLPs through envoys. It reads weights through the envoys too, so the
rules run wherever the trace runs: locally or remotely (``remote=``). The AH-rule needs the
pattern, which transformers' fused attention never forms: it runs an eager attention with the
pattern detached, registered with transformers (on first use, not at import) and switched on by
``ah_rule(model, counts)`` around a local run only. ``hooks(ruleset)`` applies the same rules with
torch hooks to plain forward passes (position-resolved edges, which run the model without nnsight).
The rules give activation gradients only (norm weights get none).

Rules silently off is the known failure of RelP implementations: ``apply`` returns the rules it
applied (save it), the AH-rule and the hooks count their calls, and ``RuleSet.check`` raises unless
every rule ran on every module it covers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ATTENTION", "DEFAULT_RULES", "RULES", "STABILISER", "RuleSet", "Site", "ah_rule", "apply",
           "attention_ah_rule", "half_rule", "hooks", "identity_rule", "ln_rule", "register_attention"]

#: rule names: LN-rule on norms, identity rule on activations, half rule on gated products, AH-rule on softmax
RULES = ("norm", "identity", "half", "attention")
#: the rules RelP uses unless told (the RelP authors' default): the AH-rule freezes the attention
#: patterns, so with it the scores estimate patching with every pattern frozen (see docs/circuits.md)
DEFAULT_RULES = ("norm", "identity", "half")

ATTENTION = "interplab_relp"
#: keeps act(x) / x finite near x = 0
STABILISER = 1e-6
# The AH-rule's count lives on the attention module itself, not in a module global.
_COUNTS = "_interplab_relp_counts"


def ln_rule(x: Tensor, y: Tensor, weight: Tensor | None, eps: float, kind: str) -> Tensor:
    """``y = norm(x)`` whose backward treats the normaliser as a constant (the LN-rule). ``kind``:
    the family's norm (``layernorm`` keeps the centring; ``rmsnorm_offset`` scales by ``1 + w``)."""
    xf = x.detach().float()
    if kind == "layernorm":
        xf = xf - xf.mean(-1, keepdim=True)
    factor = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        factor = factor * (1.0 + weight.detach().float() if kind == "rmsnorm_offset" else weight.detach().float())
    moved = x - x.detach()  # exactly zero, with x's gradient
    if kind == "layernorm":
        moved = moved - moved.mean(-1, keepdim=True)
    return y.detach() + moved * factor.to(x.dtype)


def identity_rule(x: Tensor, y: Tensor) -> Tensor:
    """``y = act(x)`` whose backward passes relevance through unchanged: ``d y / d x = act(x) / x``."""
    stable = x.detach() + torch.where(x.detach() >= 0, STABILISER, -STABILISER).to(x.dtype)
    return y.detach() + (x - x.detach()) * (y.detach() / stable)


def half_rule(p: Tensor) -> Tensor:
    """The half rule on a product ``p = a * b``: same value, half the gradient to each factor."""
    return p.detach() + 0.5 * (p - p.detach())


@dataclass(frozen=True)
class Site:
    """Where one rule applies: ``envoy`` (nnsight) and ``module`` (torch) of a norm (``"norm"``: output
    rewritten), an activation (``"identity"``: output) or a gated MLP's down projection (``"half"``:
    input); for norms, ``eps``, ``kind`` and whether it has a weight."""

    rule: str
    envoy: Any
    module: nn.Module
    eps: float = 0.0
    kind: str = ""
    weighted: bool = False


class RuleSet:
    """The rules switched on for one model (``enabled``), where they apply (``plan``, in forward
    order) and how often each must run per forward pass (``expected``)."""

    def __init__(self, model, enable: tuple[str, ...] = DEFAULT_RULES):
        unknown = set(enable) - set(RULES)
        if unknown:
            raise ValueError(f"unknown LRP rules {sorted(unknown)}; the rules are {', '.join(RULES)}")
        if model.anatomy.moe is not None:
            raise NotImplementedError("RelP rules cover dense models; this model has MoE layers")
        self.model = model
        self.enabled = tuple(enable)
        family = model.family
        n = model.anatomy.n_layers
        acts = sum(block.has("act") for block in model.blocks)
        if acts != n:
            raise NotImplementedError(f"RelP needs a dense MLP with an activation module in every block; "
                                      f"this {family.name} model has one in {acts} of {n} blocks")
        # forward order within a block: pre- and post-norms around attention, then the MLP's
        order = (("ln_attn", "norm"), ("ln_attn_post", "norm"), ("ln_mlp", "norm"), ("act", "identity"),
                 ("mlp_out", "half"), ("ln_mlp_post", "norm"))
        self.plan: list[Site] = []
        for block in model.blocks:
            for name, rule in order:
                if rule == "half" and family.mlp != "gated":
                    continue
                if block.has(name):
                    self.plan.append(self._site(rule, getattr(block, name), block.module(name)))
        self.plan.append(self._site("norm", model.final_norm, model.module("final_norm")))
        self.plan = [site for site in self.plan if site.rule in self.enabled]
        modules = [id(site.module) for site in self.plan]
        if len(set(modules)) != len(modules):
            raise NotImplementedError(f"this {family.name} model calls one module at several places: RelP's "
                                      "rules need a module per norm, activation and projection")
        self.expected = Counter(site.rule for site in self.plan)
        if "attention" in self.enabled:
            self.expected["attention"] = n

    def _site(self, rule: str, envoy, module: nn.Module) -> Site:
        if rule != "norm":
            return Site(rule, envoy, module)
        eps = getattr(module, "eps", None)
        eps = module.variance_epsilon if eps is None else eps
        weighted = getattr(module, "weight", None) is not None
        return Site(rule, envoy, module, float(eps), self.model.family.norm, weighted)

    def check(self, counts: Counter | list[str], forwards: int = 1, attention_forwards: int | None = None) -> None:
        """Raise unless each enabled rule ran on every module it covers, ``forwards`` times (the
        AH-rule ``attention_forwards`` times: it holds for every forward pass inside ``ah_rule``)."""
        counts = Counter(counts)
        times = {rule: attention_forwards if rule == "attention" and attention_forwards is not None else forwards
                 for rule in self.expected}
        missing = {rule: (counts[rule], count * times[rule]) for rule, count in self.expected.items()
                   if counts[rule] != count * times[rule]}
        if missing:
            detail = ", ".join(f"{rule}: ran {got} times, expected {want}" for rule, (got, want) in missing.items())
            raise RuntimeError(f"RelP rules did not all run on this {self.model.family.name} model ({detail}); "
                               "its scores would silently be plain gradients, so none are returned")


def apply(plan: list[Site]) -> list[str]:
    """Inside a trace (an empty ``tracer.invoke()`` of its own): put the rules of ``plan`` into this
    forward pass. Returns the rule of each site rewritten, in order (save it, then ``check`` it)."""
    applied = []
    for site in plan:
        envoy = site.envoy
        if site.rule == "half":
            envoy.input = half_rule(envoy.input)
        elif site.rule == "identity":
            x = envoy.input
            envoy.output = identity_rule(x, envoy.output)
        else:
            x = envoy.input
            weight = envoy.weight if site.weighted else None
            envoy.output = ln_rule(x, envoy.output, weight, site.eps, site.kind)
        applied.append(site.rule)
    return applied


@contextmanager
def hooks(ruleset: RuleSet) -> Iterator[Counter]:
    """The rules of ``ruleset.plan`` as torch hooks on the model's modules, for forward passes run
    without nnsight. Yields the count of each rule's applications (``ruleset.check`` them)."""
    counts: Counter = Counter()

    def post(site: Site) -> Callable:
        def hook(module, args, output):
            counts[site.rule] += 1
            if site.rule == "identity":
                return identity_rule(args[0], output)
            return ln_rule(args[0], output, module.weight if site.weighted else None, site.eps, site.kind)
        return hook

    def pre(module, args):
        counts["half"] += 1
        return (half_rule(args[0]), *args[1:])

    handles = [site.module.register_forward_pre_hook(pre) if site.rule == "half"
               else site.module.register_forward_hook(post(site)) for site in ruleset.plan]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


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


def register_attention(name: str, function: Callable) -> None:
    """Register an eager attention function (and the eager mask) with transformers under ``name``,
    once, when first needed: importing interplab registers nothing."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    if name not in AttentionInterface():
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, eager_mask)


@contextmanager
def ah_rule(model, counts: Counter) -> Iterator[None]:
    """Run ``model``'s attention through ``interplab_relp`` (the AH-rule) inside the block, counting
    its calls into ``counts``. Local models only: the rule is an attention function of this process."""
    if model.remote:
        raise ValueError("RelP's attention rule (AH-rule) runs an attention function of this process, so it "
                         "needs a local model; remotely, use the other rules (rules=lrp.DEFAULT_RULES, the "
                         "default), or hold attention patterns fixed with position-resolved edges on a local model")
    register_attention(ATTENTION, attention_ah_rule)
    config = model.hf.config
    previous = config._attn_implementation
    attentions = [block.module("attn") for block in model.blocks]
    for attention in attentions:
        setattr(attention, _COUNTS, counts)
    config._attn_implementation = ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = previous
        for attention in attentions:
            delattr(attention, _COUNTS)
