"""Each LRP rule on one-block models: forward unchanged, backward exactly the rule's (hand-written)."""

import os
import subprocess
import sys
from collections import Counter
from unittest import mock

import nnsight
import pytest
import torch
from families import DENSE_FAMILIES
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from interplab.anatomy import FAMILIES
from interplab.circuits import attribute, lrp
from interplab.tasks import ContrastTask
from interplab.zoo.tiny import tiny, tiny_config

GATED = [f for f in DENSE_FAMILIES if FAMILIES[f].mlp == "gated"]
# families whose tiny config mixes sliding-window and global attention layers
MIXED_ATTENTION = [f for f in DENSE_FAMILIES if len(set(getattr(tiny_config(f), "layer_types", None) or ())) > 1]


@pytest.fixture(scope="module", params=DENSE_FAMILIES)
def one_block(request, device):
    return sharpened(tiny(request.param, n_layers=1, device=device, seed=2))


def sharpened(model):
    """The model in eager attention with its random attention patterns (nearly uniform at init)
    sharpened, so that the pattern's gradient matters; q/k norms (Qwen3, Gemma 3, OLMo 2) undo the
    projections' scale and are left as they are."""
    model.hf.config._attn_implementation = "eager"
    for block in model.blocks:
        keep = {id(p) for name in ("attn_out", "q_norm", "k_norm") if block.has(name)
                for p in block.module(name).parameters()}
        with torch.no_grad():
            for p in block.module("attn").parameters():
                if id(p) not in keep:
                    p.mul_(6.0)
    return model


def norms_of(model):
    block = model.blocks[0]
    names = [n for n in ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post") if block.has(n)]
    return [block.module(n) for n in names] + [model.module("final_norm")]


def test_all_rules_leave_the_forward_unchanged_and_all_run(one_block):
    """The rules in the trace (an empty invoke after the model's inputs) and the AH-rule around it."""
    model = one_block
    ids = model.encode(["the cat sat on the mat", "a dog was"])  # padded batch: masks matter
    ruleset = lrp.RuleSet(model, lrp.RULES)
    attention = Counter()
    with torch.no_grad():
        with model.trace(**ids):
            plain = model.unembed.output.save()
        with lrp.ah_rule(model, attention), model.trace() as tracer:
            with tracer.invoke(**ids):
                ruled = model.unembed.output.save()
            with tracer.invoke():
                applied = nnsight.save(lrp.apply(ruleset.plan))
    torch.testing.assert_close(ruled, plain, rtol=0, atol=1e-6)
    ruleset.check(applied + list(attention.elements()))
    counts = Counter(applied) + attention
    assert counts == ruleset.expected
    assert counts["attention"] == 1 and counts["identity"] == 1
    assert counts["norm"] == len(norms_of(model))
    assert counts["half"] == (1 if model.family.mlp == "gated" else 0)
    with pytest.raises(RuntimeError, match="norm: ran 1 times, expected"):
        ruleset.check(applied[-1:] + list(attention.elements()))


def test_ln_rule_treats_the_normaliser_as_constant(one_block):
    model = one_block
    d = model.anatomy.d_model
    torch.manual_seed(0)
    sites = lrp.RuleSet(model, ("norm",)).plan
    assert {id(site.module) for site in sites} == {id(norm) for norm in norms_of(model)}
    for site in sites:
        norm = site.module
        x = (torch.randn(2, 5, d, device=model.device) * 3 + 1).requires_grad_()
        v = torch.randn(2, 5, d, device=model.device)
        plain_y = norm(x)
        plain_grad, = torch.autograd.grad((plain_y * v).sum(), x)
        y = lrp.ln_rule(x, norm(x), norm.weight, site.eps, site.kind)
        grad, = torch.autograd.grad((y * v).sum(), x)
        assert torch.equal(y, plain_y)
        # hand-written LN-rule backward: through centring and scaling, not through the normaliser
        eps = getattr(norm, "eps", None) or norm.variance_epsilon
        weight = norm.weight.detach()
        if model.family.norm == "layernorm":
            s = torch.sqrt(x.detach().var(-1, unbiased=False, keepdim=True) + eps)
            u = weight * v / s
            expected = u - u.mean(-1, keepdim=True)
        else:
            s = torch.sqrt(x.detach().pow(2).mean(-1, keepdim=True) + eps)
            scale = 1 + weight if model.family.norm == "rmsnorm_offset" else weight
            expected = scale * v / s
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(grad, plain_grad, atol=1e-4)


def test_identity_rule_passes_relevance_through_the_activation(one_block):
    model = one_block
    act = model.blocks[0].module("act")
    torch.manual_seed(0)
    x = torch.randn(3, 7, 16, device=model.device)
    x = (x + 0.1 * torch.sign(x)).requires_grad_()  # keep away from 0
    v = torch.randn_like(x)
    plain_y = act(x)
    plain_grad, = torch.autograd.grad((plain_y * v).sum(), x)
    with lrp.hooks(lrp.RuleSet(model, ("identity",))) as counts:
        y = act(x)
    assert counts == {"identity": 1}
    grad, = torch.autograd.grad((y * v).sum(), x)
    assert torch.equal(y, plain_y)
    expected = v * plain_y.detach() / x.detach()  # relevance x * grad in = relevance out
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grad, plain_grad, atol=1e-3)


@pytest.mark.parametrize("family", GATED)
def test_half_rule_splits_the_gated_product(family, device):
    model = tiny(family, n_layers=1, device=device, seed=3)
    block = model.blocks[0]
    mlp = block.module("mlp")
    if block.has("mlp_gate_up"):  # fused (Phi-3): the gate is the first half of the outputs
        gate, up = block.module("mlp_gate_up").weight.detach().chunk(2, dim=0)
    else:
        gate, up = block.module("mlp_gate").weight.detach(), block.module("mlp_in").weight.detach()
    down = model.blocks[0].module("mlp_out").weight.detach()
    act = model.blocks[0].module("act")
    torch.manual_seed(0)
    x = torch.randn(2, 5, model.anatomy.d_model, device=device, requires_grad=True)
    v = torch.randn(2, 5, model.anatomy.d_model, device=device)
    plain_y = mlp(x)
    plain_grad, = torch.autograd.grad((plain_y * v).sum(), x)
    with lrp.hooks(lrp.RuleSet(model, ("half",))):
        y = mlp(x)
    grad, = torch.autograd.grad((y * v).sum(), x)
    assert torch.equal(y, plain_y)
    torch.testing.assert_close(grad, 0.5 * plain_grad, rtol=1e-5, atol=1e-7)
    # with the identity rule too: each factor gets half of the product's relevance
    with lrp.hooks(lrp.RuleSet(model, ("half", "identity"))):
        y = mlp(x)
    grad, = torch.autograd.grad((y * v).sum(), x)
    a = x.detach() @ gate.T
    b = x.detach() @ up.T
    g = v @ down  # gradient at the product
    ratio = act(a) / (a + lrp.STABILISER * torch.where(a >= 0, 1.0, -1.0))  # act(a) / a, kept finite
    expected = (0.5 * g * b * ratio) @ gate + (0.5 * g * act(a)) @ up
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_ah_rule_holds_the_attention_pattern_constant(one_block):
    """Reference: the family's own eager attention with softmax's output detached."""
    model = one_block
    if model.family.name == "gemma2":
        model.hf.config.sliding_window = 3  # layer 0 is a sliding-window layer: exercise that mask
    check_ah_rule(model)


@pytest.mark.parametrize("family", MIXED_ATTENTION)
def test_ah_rule_on_sliding_window_and_global_layers(family, device):
    """Both kinds of layer in one model (Gemma 2/3): each gets its own mask under the rule."""
    model = sharpened(tiny(family, device=device, seed=2))
    assert {"sliding_attention", "full_attention"} <= set(model.hf.config.layer_types)
    ids = model.encode("the cat sat on the mat and")
    with torch.no_grad():
        wide = model.hf(**ids).logits
        model.hf.config.sliding_window = 3  # shorter than the prompts: the window changes the outputs
        assert not torch.allclose(model.hf(**ids).logits, wide, atol=1e-5)
    check_ah_rule(model)


def check_ah_rule(model):
    enc = model.encode(["the cat sat on the mat and", "a dog was on"])
    torch.manual_seed(0)
    embeds = torch.randn(*enc["input_ids"].shape, model.anatomy.d_model, device=model.device)
    readout = torch.randn(model.anatomy.vocab_size, device=model.device)

    def gradient():
        e = embeds.clone().requires_grad_()
        logits = model.hf(inputs_embeds=e, attention_mask=enc["attention_mask"]).logits
        return logits, torch.autograd.grad((logits[:, -1] * readout).sum(), e)[0]

    plain_logits, plain_grad = gradient()
    counts = Counter()
    with lrp.ah_rule(model, counts):
        logits, grad = gradient()
    assert counts["attention"] == model.anatomy.n_layers
    softmax = torch.nn.functional.softmax
    with mock.patch("torch.nn.functional.softmax", lambda *a, **k: softmax(*a, **k).detach()):
        ref_logits, expected = gradient()
    torch.testing.assert_close(logits, plain_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(ref_logits, plain_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    assert (grad - plain_grad).norm() > 0.01 * plain_grad.norm()


def test_a_rule_that_does_not_run_is_an_error(monkeypatch):
    """The known failure of RelP implementations: a rule silently off. Here attention bypasses it."""
    model = tiny("llama")
    task = ContrastTask.build(model, ["the cat sat on the mat"], ["the dog sat on the mat"], " and", " is")
    monkeypatch.setitem(AttentionInterface._global_mapping, lrp.ATTENTION, sdpa_attention_forward)
    with pytest.raises(RuntimeError, match=r"attention: ran 0 times, expected [1-9]"):
        attribute(model, task, method="relp", rules=lrp.RULES)


def test_a_rule_whose_module_does_not_run_in_the_trace_is_an_error(monkeypatch):
    """An activation computed without going through its module: the rule's intervention never gets
    its value, and the trace fails instead of returning plain gradients."""
    model = tiny("llama")
    task = ContrastTask.build(model, ["the cat sat on the mat"], ["the dog sat on the mat"], " and", " is")
    act = model.blocks[1].module("act")
    monkeypatch.setattr(act, "forward", torch.nn.functional.silu)  # the module runs but nnsight sees nothing
    with pytest.raises(Exception, match=r"layers\.1\.mlp\.act_fn"):
        attribute(model, task, method="relp")


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown LRP rules"):
        lrp.RuleSet(tiny("gpt2"), ("softmax",))


def test_importing_interplab_registers_no_attention_function():
    """The AH-rule's and the fixed patterns' attention functions are registered on first use only."""
    code = ("import interplab, interplab.circuits\n"
            "from transformers import AttentionInterface\n"
            "from transformers.masking_utils import AttentionMaskInterface\n"
            "names = set(AttentionInterface()) | set(AttentionMaskInterface())\n"
            "print(sorted(n for n in names if n.startswith('interplab')))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    model = tiny("gpt2")
    lrp.register_attention(lrp.ATTENTION, lrp.attention_ah_rule)
    assert lrp.ATTENTION in AttentionInterface()
    with lrp.ah_rule(model, Counter()):
        assert model.hf.config._attn_implementation == lrp.ATTENTION
    assert model.hf.config._attn_implementation != lrp.ATTENTION
