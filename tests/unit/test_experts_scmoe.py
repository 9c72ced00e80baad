"""SCMoE decoding against a hand-written two-pass reference (plain torch, no cache, one prompt at a time)."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import MOE_FAMILIES
from experts_reference import routers

import interplab as il
from interplab.experts.scmoe import _last_logits
from interplab.zoo.tiny import tiny

PROMPTS = ["the cat sat on the", "Mary gave a drink to", "a dog"]


def loud(family, device):
    """A tiny model whose experts matter (scaled up), so that strong and weak routing differ."""
    model = tiny(family, device=device)
    with torch.no_grad():
        for layer in model.anatomy.moe.moe_layers:
            model.blocks[layer].module("experts").down_proj *= 100
    return model


def weak_router_output(family: str, router, hidden: torch.Tensor, rank: int):
    h = hidden.reshape(-1, router.weight.shape[1])
    if family == "deepseek_v3":
        logits = F.linear(h.float(), router.weight.float())
        order = logits.sigmoid().argsort(dim=-1, descending=True)
    else:
        logits = F.linear(h, router.weight, getattr(router, "bias", None))
        order = torch.softmax(logits.float(), dim=-1).argsort(dim=-1, descending=True)
    indices = order[:, rank - 1:rank]
    return logits, torch.ones(indices.shape, dtype=h.dtype, device=h.device), indices


def reference(model, family, prompt, *, beta, alpha, rank, steps):
    ids = model.encode([prompt])["input_ids"]
    eos = model.tokenizer.eos_token_id
    out = []
    for _ in range(steps):
        with torch.no_grad():
            strong = torch.log_softmax(model.hf(input_ids=ids).logits[0, -1].float(), dim=-1)
            hooks = [r.register_forward_hook(lambda m, a, o: weak_router_output(family, m, a[0], rank))
                     for r in routers(model).values()]
            try:
                weak = torch.log_softmax(model.hf(input_ids=ids).logits[0, -1].float(), dim=-1)
            finally:
                for h in hooks:
                    h.remove()
        score = (1 + beta) * strong - beta * weak
        score[strong < math.log(alpha) + strong.max()] = float("-inf")
        token = int(score.argmax())
        if token == eos:
            break
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]], device=ids.device)], dim=1)
    return model.tokenizer.decode(out, skip_special_tokens=True)


@pytest.mark.parametrize("family", ["mixtral", "deepseek_v3", "gpt_oss", "granitemoe"])
def test_scmoe_matches_a_two_pass_reference(family, device):
    model = loud(family, device)
    expected = [reference(model, family, p, beta=0.5, alpha=0.1, rank=2, steps=5) for p in PROMPTS]
    cached = il.experts.scmoe_generate(model, PROMPTS, max_new_tokens=5)
    uncached = il.experts.scmoe_generate(model, PROMPTS, max_new_tokens=5, cache=False, batch_size=2)
    assert cached == expected
    assert uncached == expected
    greedy = il.experts.generate(model, PROMPTS, max_new_tokens=5)
    assert greedy != expected                     # the contrast changes the decoding here
    assert il.experts.scmoe_generate(model, PROMPTS, max_new_tokens=5, beta=0.0) == greedy


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_scmoe_contrasts_the_models_own_logits(family, device):
    """The strong pass reads the model's logits, after any final map (GraniteMoE's logits_scaling)."""
    model = tiny(family, device=device)
    enc = model.encode(PROMPTS)
    strong = _last_logits(model, enc, None, None)
    with torch.no_grad():
        expected = model.hf(**enc).logits[:, -1].float()
    torch.testing.assert_close(strong, expected, rtol=1e-5, atol=1e-6)


def test_scmoe_weak_rank_and_arguments(device):
    model = loud("olmoe", device)
    rank3 = [reference(model, "olmoe", p, beta=1.0, alpha=0.05, rank=3, steps=4) for p in PROMPTS[:2]]
    assert il.experts.scmoe_generate(model, PROMPTS[:2], beta=1.0, alpha=0.05, weak_rank=3,
                                     max_new_tokens=4) == rank3
    with pytest.raises(ValueError, match="alpha"):
        il.experts.scmoe_generate(model, PROMPTS, alpha=0)
    with pytest.raises(ValueError, match="beta"):
        il.experts.scmoe_generate(model, PROMPTS, beta=-1)
    with pytest.raises(ValueError, match="weak_rank"):
        il.experts.scmoe_generate(model, PROMPTS, weak_rank=9)
