"""The anatomy tables on tiny random models of every family (built from config classes, no download).

Expected values are read off the transformers configs and modules, or computed by hand from the
named modules' weights, never from the anatomy code itself.
"""

import copy

import pytest
import torch
import transformers as T
from conftest import ALL_FAMILIES, MOE_FAMILIES

import interplab as il
from interplab.anatomy import FAMILIES, Family, UnsupportedModelError, register
from interplab.model import output_tensor
from interplab.zoo.tiny import tiny, tiny_config, word_tokenizer

MODEL_NAMES = ("embed", "final_norm", "unembed")
NORM_NAMES = ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post", "q_norm", "k_norm")


@pytest.fixture(scope="module", params=ALL_FAMILIES)
def model(request, device):
    return tiny(request.param, device=device)


def expected_dense_layers(cfg) -> set[int]:
    """Dense layers of a MoE config, as its transformers config says."""
    return set(getattr(cfg, "mlp_only_layers", None) or []) | set(range(getattr(cfg, "first_k_dense_replace", 0) or 0))


def test_anatomy_reports_counts(model):
    a = model.anatomy
    cfg = model.hf.config
    assert a.family == model.family.name
    assert a.n_layers == cfg.num_hidden_layers == len(model.blocks)
    assert a.n_heads == 4 and a.d_model == 32
    assert a.n_kv_heads == (getattr(cfg, "num_key_value_heads", None) or 4)
    # what each head hands the output projection: DeepSeek's value head size, else head_dim or d_model / heads
    assert a.d_head == (getattr(cfg, "v_head_dim", None) or getattr(cfg, "head_dim", None) or 32 // 4)
    assert f"{a.n_heads} heads" in str(a) and f"head_dim {a.d_head}" in str(a)
    assert (f"({a.n_kv_heads} key/value)" in str(a)) == (a.n_kv_heads != a.n_heads)
    if not model.family.is_moe:
        assert a.moe is None
    else:
        assert a.moe.n_experts == 8 and a.moe.top_k == 2
        assert set(a.moe.moe_layers) == set(range(a.n_layers)) - expected_dense_layers(cfg)
        shared = getattr(cfg, "shared_expert_intermediate_size", None) or getattr(cfg, "n_shared_experts", None)
        assert a.moe.shared_experts == bool(shared)


def test_standard_names_resolve(model):
    for name in MODEL_NAMES:
        assert isinstance(model.module(name), torch.nn.Module), name
    for name in model.family.block:
        present = [b.index for b in model.blocks if b.has(name)]
        assert present, f"{name} resolves in no block of {model.family.name}"
    for block in model.blocks:
        for name in ("attn", "attn_out", "mlp", model.family.reads("attn"), model.family.reads("mlp")):
            assert block.has(name)
    with pytest.raises(AttributeError, match="not a standard block name"):
        model.blocks[0].path("nonsense")


def test_every_norm_of_a_block_is_in_the_table(model):
    """Each norm module of a block (found by class name) has a standard name, and the names are norms."""
    for block in model.blocks:
        layer = model.hf.get_submodule(f"{model.family.layers}.{block.index}")
        found = {id(m) for _, m in layer.named_modules() if "Norm" in type(m).__name__}
        named = {id(block.module(n)) for n in NORM_NAMES if block.has(n)}
        assert found == named, model.family.name
    assert "Norm" in type(model.module("final_norm")).__name__


def reference_norm(norm, kind: str, x):
    """A norm's output written out by hand for its kind."""
    eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", None)
    if kind == "layernorm":
        centred = x - x.mean(-1, keepdim=True)
        return centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * norm.weight + norm.bias
    scale = 1 + norm.weight if kind == "rmsnorm_offset" else norm.weight
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale


def test_norms_are_of_the_kind_the_table_says(model):
    torch.manual_seed(0)
    block = model.blocks[0]
    norms = [block.module(n) for n in ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post") if block.has(n)]
    for norm in [*norms, model.module("final_norm")]:
        norm = copy.deepcopy(norm)
        with torch.no_grad():
            norm.weight.copy_(torch.randn_like(norm.weight))
        x = torch.randn(3, 5, model.anatomy.d_model, device=model.device) * 2 + 0.5
        with torch.no_grad():
            torch.testing.assert_close(norm(x), reference_norm(norm, model.family.norm, x), rtol=1e-5, atol=1e-5)


def test_mlp_is_the_kind_the_table_says(model):
    """A dense block's MLP output recomputed by hand from the named projections and activation."""
    torch.manual_seed(0)
    for block in model.blocks:
        if block.has("router"):
            continue
        x = torch.randn(2, 5, model.anatomy.d_model, device=model.device)
        act = block.module("act")
        with torch.no_grad():
            if model.family.mlp == "plain":
                expected = block.module("mlp_out")(act(block.module("mlp_in")(x)))
            elif block.has("mlp_gate_up"):
                gate, up = block.module("mlp_gate_up")(x).chunk(2, dim=-1)
                expected = block.module("mlp_out")(act(gate) * up)
            else:
                gate, up = block.module("mlp_gate")(x), block.module("mlp_in")(x)
                expected = block.module("mlp_out")(act(gate) * up)
            got = output_tensor(block.module("mlp")(x))
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        y = act(torch.linspace(-3, 3, 7, device=model.device))
        assert not torch.allclose(y, torch.linspace(-3, 3, 7, device=model.device))


def _capture(model, ids):
    """Plain torch hooks on block 0: its input and output, each sublayer's reader input and write."""
    block = model.blocks[0]
    family = model.family
    seen = {}

    def first_input(key):
        def hook(module, args, kwargs):
            seen[key] = args[0] if args else next(iter(kwargs.values()))
        return hook

    def output(key):
        return lambda module, args, out: seen.__setitem__(key, output_tensor(out))

    layer = model.hf.get_submodule(f"{family.layers}.0")
    handles = [layer.register_forward_pre_hook(first_input("in"), with_kwargs=True),
               layer.register_forward_hook(output("out"))]
    for sub in ("attn", "mlp"):
        handles.append(block.module(family.reads(sub)).register_forward_pre_hook(first_input(f"read_{sub}"),
                                                                                 with_kwargs=True))
        post = f"ln_{sub}_post"
        writer = post if block.has(post) else ("attn_out" if sub == "attn" else "mlp")
        handles.append(block.module(writer).register_forward_hook(output(f"write_{sub}")))
    try:
        with torch.no_grad():
            model.hf(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_readers_and_writes_add_up_to_the_residual_stream(model):
    """What the edge level assumes: attention reads the block input; the MLP reads it plus
    attention's write (unless parallel); the block adds both writes, each times the config's
    residual multiplier (Granite)."""
    cfg = model.hf.config
    ids = model.encode("the cat sat on the mat and the dog")["input_ids"]
    seen = _capture(model, ids)
    scale = getattr(cfg, "residual_multiplier", 1.0)
    parallel = bool(getattr(cfg, "use_parallel_residual", False))
    assert model.anatomy.residual_multiplier == scale and model.anatomy.parallel == parallel
    x = seen["in"]
    torch.testing.assert_close(seen["read_attn"], x)
    read_mlp = x if parallel else x + scale * seen["write_attn"]
    torch.testing.assert_close(seen["read_mlp"], read_mlp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seen["out"], x + scale * (seen["write_attn"] + seen["write_mlp"]), rtol=1e-5, atol=1e-6)


def test_final_logits_map_the_unembedding_to_the_models_logits(model):
    cfg = model.hf.config
    enc = model.encode(["the cat sat on the mat", "a dog was on it"])
    with torch.no_grad(), model.trace(**enc):
        out = model.unembed.output.save()
        logits = model.nn.output.logits.save()
    torch.testing.assert_close(model.anatomy.final_logits(out), logits, rtol=1e-6, atol=1e-7)
    assert model.anatomy.final_logits.divisor == getattr(cfg, "logits_scaling", 1.0)
    assert model.anatomy.final_logits.softcap == getattr(cfg, "final_logit_softcapping", None)


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


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_recomputed_routing_in_bfloat16(family):
    """Routers that compute in float32 and cast back (GraniteMoE) or stay in the model dtype: the
    recomputed logits and weights keep the model's own dtypes and values."""
    model = tiny(family, dtype=torch.bfloat16)
    layer = model.anatomy.moe.moe_layers[-1]
    router = model.blocks[layer].module("router")
    hidden = torch.randn(20, model.anatomy.d_model, dtype=torch.bfloat16)
    logits, weights, indices = router(hidden)
    rule = model.anatomy.moe.rule
    my_logits = rule.logits(router, hidden)
    assert my_logits.dtype == logits.dtype and torch.equal(my_logits, logits)
    my_weights, my_indices = rule.select(router, my_logits)
    mine, theirs = torch.sort(my_indices, dim=-1), torch.sort(indices, dim=-1)
    assert torch.equal(mine.values, theirs.values)
    assert my_weights.dtype == weights.dtype
    assert torch.equal(my_weights.gather(1, mine.indices), weights.gather(1, theirs.indices))


def test_every_built_in_family_has_a_tiny_config_and_its_own_model_types():
    assert set(ALL_FAMILIES) == set(FAMILIES)
    model_types = [t for f in FAMILIES.values() for t in f.model_types]
    assert len(model_types) == len(set(model_types))
    for name in ("gemma3", "phi3", "olmo2", "granite", "granitemoe", "qwen3", "mistral"):
        assert name in FAMILIES
    assert tiny_config("qwen3").model_type == "qwen3" and tiny_config("mistral").model_type == "mistral"


def test_a_family_is_one_register_call():
    class MyConfig(T.LlamaConfig):
        model_type = "my_llama"

    family = Family(name="my_llama", model_types=("my_llama",), layers="model.layers", embed="model.embed_tokens",
                    final_norm="model.norm", unembed="lm_head", block=FAMILIES["llama"].block, norm="rmsnorm",
                    mlp="gated", tiny=lambda t: MyConfig(**t.dims))
    register(family)
    try:
        hf = T.LlamaForCausalLM(tiny_config("my_llama"))
        model = il.load(hf, tokenizer=word_tokenizer(["the", "cat"]))
        assert model.anatomy.family == "my_llama" and model.anatomy.n_kv_heads == 2
    finally:
        del FAMILIES["my_llama"]
    with pytest.raises(UnsupportedModelError, match="my_llama"):
        il.load(hf, tokenizer=word_tokenizer(["the", "cat"]))


def test_a_table_with_unknown_names_is_refused():
    base = dict(model_types=("x",), layers="model.layers", embed="model.embed_tokens", final_norm="model.norm",
                unembed="lm_head", norm="rmsnorm", mlp="gated")
    with pytest.raises(ValueError, match=r"block names \['attention'\] are not in the vocabulary"):
        Family(name="x", block={"attention": "self_attn", "attn_out": "o", "mlp": "mlp"}, **base)
    with pytest.raises(ValueError, match="needs"):
        Family(name="x", block={"attn": "self_attn"}, **base)


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
