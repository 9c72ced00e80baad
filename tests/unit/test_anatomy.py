"""The anatomy tables on tiny random models of every family (built from config classes, no download)."""

import pytest
import torch
import transformers as T
from conftest import ALL_FAMILIES, DENSE_FAMILIES, MOE_FAMILIES

import interplab as il
from interplab.anatomy import UnsupportedModelError
from interplab.model import output_tensor
from interplab.zoo.tiny import tiny, tiny_config

# What each family's anatomy must report (independent of the code: read off the configs used).
EXPECTED_MOE_LAYERS = {"mixtral": (0, 1), "olmoe": (0, 1), "qwen2_moe": (1, 2), "qwen3_moe": (1, 2),
                       "deepseek_v3": (1, 2), "gpt_oss": (0, 1)}
MODEL_NAMES = ("embed", "final_norm", "unembed")


@pytest.fixture(scope="module", params=ALL_FAMILIES)
def model(request, device):
    return tiny(request.param, device=device)


def test_anatomy_reports_counts(model):
    a = model.anatomy
    cfg = model.hf.config
    assert a.family == model.family.name
    assert a.n_layers == cfg.num_hidden_layers == len(model.blocks)
    assert a.n_heads == 4 and a.d_model == 32
    if a.family in DENSE_FAMILIES:
        assert a.moe is None
    else:
        assert a.moe.n_experts == 8 and a.moe.top_k == 2
        assert a.moe.moe_layers == EXPECTED_MOE_LAYERS[a.family]
        assert a.moe.shared_experts == (a.family in ("qwen2_moe", "deepseek_v3"))


def test_standard_names_resolve(model):
    for name in MODEL_NAMES:
        assert isinstance(model.module(name), torch.nn.Module), name
    for name in model.family.block:
        present = [b.index for b in model.blocks if b.has(name)]
        assert present, f"{name} resolves in no block of {model.family.name}"
    for block in model.blocks:
        for name in ("attn", "attn_out", "ln_attn", "ln_mlp", "mlp"):
            assert block.has(name)
    with pytest.raises(AttributeError, match="not a standard block name"):
        model.blocks[0].path("nonsense")


def test_norms_and_activation_are_what_the_table_says(model):
    block = model.blocks[0]
    norm = block.module("ln_attn")
    kind = type(norm).__name__
    if model.family.norm == "layernorm":
        assert isinstance(norm, torch.nn.LayerNorm)
    else:
        assert "RMSNorm" in kind
    if block.has("act"):
        x = torch.linspace(-3, 3, 7, device=model.device)
        y = block.module("act")(x)
        assert y.shape == x.shape and not torch.allclose(x, y)


def test_head_outputs_sum_to_attention_output(model):
    """Per-head outputs (input of the output projection) through W_O per head, summed, plus bias."""
    enc = model.encode(["the cat sat on the mat", "a dog was on it"])
    layer = model.anatomy.n_layers - 1
    block = model.blocks[layer]
    with torch.no_grad(), model.trace(**enc):
        z = block.attn_out.input.save()
        attn = block.attn.output.save()
    a = model.anatomy
    z = z.reshape(*z.shape[:2], a.n_heads, a.d_head)
    W = model.head_weights(layer)
    per_head = torch.einsum("bshd,hdm->bshm", z, W)
    bias = block.module("attn_out").bias
    total = per_head.sum(dim=2) + (bias if bias is not None else 0)
    torch.testing.assert_close(total, output_tensor(attn), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_recomputed_routing_equals_the_models_own(family, device):
    model = tiny(family, device=device)
    rule = model.anatomy.moe.rule
    enc = model.encode(["the cat sat on the mat and the dog sat", "Mary gave a drink to John"])
    layers = model.anatomy.moe.moe_layers
    saved = []
    with torch.no_grad(), model.trace(**enc):
        for i in layers:
            saved.append((model.router(i).input.save(), model.router(i).output.save()))
    for i, (hidden, (logits, weights, indices)) in zip(layers, saved):
        router = model.blocks[i].module("router")
        my_logits = rule.logits(router, hidden)
        my_weights, my_indices = rule.select(router, my_logits)
        assert torch.equal(my_logits, logits)
        # same set of experts per token (order within top-k may differ when unsorted)
        mine = torch.sort(my_indices, dim=-1)
        theirs = torch.sort(indices, dim=-1)
        assert torch.equal(mine.values, theirs.values)
        assert torch.equal(my_weights.gather(1, mine.indices), weights.gather(1, theirs.indices))
        assert my_weights.dtype == weights.dtype


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_routing_masks_off_and_on(family, device):
    model = tiny(family, device=device)
    rule = model.anatomy.moe.rule
    layer = model.anatomy.moe.moe_layers[-1]
    router = model.blocks[layer].module("router")
    hidden = torch.randn(50, model.anatomy.d_model, device=device)
    logits = rule.logits(router, hidden)
    _, base = rule.select(router, logits)
    popular = int(torch.mode(base.flatten()).values)
    off = torch.zeros(model.anatomy.moe.n_experts, dtype=torch.bool, device=device)
    off[popular] = True
    _, i_off = rule.select(router, logits, off=off)
    assert not (i_off == popular).any()
    assert i_off.shape == base.shape
    rare = int(torch.bincount(base.flatten(), minlength=8).argmin())
    on = torch.zeros_like(off)
    on[rare] = True
    w_on, i_on = rule.select(router, logits, on=on)
    assert (i_on == rare).any(dim=-1).all()
    # the forced expert carries the top weight of every token
    forced_w = (w_on * (i_on == rare)).sum(-1)
    assert torch.all(forced_w >= w_on.max(dim=-1).values - 1e-6)


def test_unsupported_architecture_error_lists_families():
    cfg = T.BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                       vocab_size=64)
    hf = T.BertForMaskedLM(cfg)
    with pytest.raises(UnsupportedModelError) as err:
        il.load(hf, tokenizer=None)
    message = str(err.value)
    for family in ALL_FAMILIES:
        assert family in message
    assert "register" in message and "families.py" in message


def test_tiny_config_rejects_unknown_family():
    with pytest.raises(ValueError, match="choose one of"):
        tiny_config("bert")
