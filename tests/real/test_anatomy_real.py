"""The anatomy of the two real models against their published shapes (written out here by hand), and
the per-head split of attention where head_dim is not d_model / heads (Gemma 3 270M: 4 x 256 vs 640)."""

import pytest
import torch

from interplab.model import output_tensor

# family, layers, query heads, key/value heads, head_dim, d_model, vocabulary (the models' cards)
EXPECTED = {
    "smollm2": ("llama", 30, 9, 3, 64, 576, 49152),
    "gemma3": ("gemma3", 18, 4, 1, 256, 640, 262144),
}
NORMS = ("ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post", "q_norm", "k_norm")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_anatomy(name, request):
    model = request.getfixturevalue(name)
    a = model.anatomy
    assert (a.family, a.n_layers, a.n_heads, a.n_kv_heads, a.d_head, a.d_model, a.vocab_size) == EXPECTED[name]
    assert a.moe is None and not a.parallel and a.residual_multiplier == 1.0
    assert f"{a.n_heads} heads ({a.n_kv_heads} key/value), head_dim {a.d_head}, d_model {a.d_model}" in str(a)
    assert model.head_weights(0).shape == (a.n_heads, a.d_head, a.d_model)
    # every norm module of a block has a standard name (Gemma 3: four around the sublayers and q/k norms)
    layer = model.hf.get_submodule(f"{model.family.layers}.0")
    found = {id(m) for _, m in layer.named_modules() if "Norm" in type(m).__name__}
    block = model.blocks[0]
    assert found == {id(block.module(n)) for n in NORMS if block.has(n)}
    assert len(found) == (6 if name == "gemma3" else 2)


def test_real_head_outputs_sum_to_attention_output(real_model):
    """One short forward: per-head outputs through W_O per head add up to the attention output, and
    the unembedding's output through final_logits is the model's logits."""
    model = real_model
    layer = model.anatomy.n_layers // 2
    block = model.blocks[layer]
    enc = model.encode("The cat sat on the mat because it was")
    with torch.no_grad(), model.trace(**enc, logits_to_keep=1):
        z = block.attn_out.input.save()
        attn = block.attn.output.save()
        out = model.unembed.output.save()
        logits = model.nn.output.logits.save()
    a = model.anatomy
    per_head = torch.einsum("bshd,hdm->bshm", z.reshape(*z.shape[:2], a.n_heads, a.d_head), model.head_weights(layer))
    torch.testing.assert_close(per_head.sum(dim=2), output_tensor(attn), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.final_logits(out), logits)
