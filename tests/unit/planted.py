"""A tiny Llama whose residual leaving block 0 is the token embedding, with planted dimensions:
the ground truth the reasoning tests check concepts, detection and steering against."""

import torch

import interplab as il


def passthrough_llama(device, words: dict[str, dict[int, float]]):
    """Block 0's output projections are zeroed, so it passes its input through. Every embedding
    row is small noise (seed 0, scale 0.2) that is zero on the planted dimensions; each word of
    ``words`` gets its ``{dimension: value}`` there."""
    model = il.zoo.tiny("llama", device=device)
    g = torch.Generator().manual_seed(0)
    dims = sorted({d for planted in words.values() for d in planted})
    with torch.no_grad():
        model.blocks[0].module("attn_out").weight.zero_()
        model.blocks[0].module("mlp_out").weight.zero_()
        emb = torch.randn(model.anatomy.vocab_size, 32, generator=g) * 0.2
        emb[:, dims] = 0.0
        for word, planted in words.items():
            row = model.tokenizer.convert_tokens_to_ids(word)
            for dim, value in planted.items():
                emb[row, dim] = value
        model.module("embed").weight.copy_(emb.to(device))
    return model
