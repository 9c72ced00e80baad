"""The residual stream at a concept site: the stream leaving (``"output"``) or entering (``"input"``)
decoder block ``layer``. Reading and writing go through the block's nnsight envoy, so they work
inside any trace, including a user's own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..model import Model

__all__ = ["SINK_RATIO", "Site", "check_site", "read", "residuals", "sink_mask", "special_mask", "tokenize", "write"]

Site = Literal["output", "input"]  # the residual leaving decoder block `layer`, or entering it

# A token is an attention sink where its residual norm exceeds this multiple of its text's median.
# Measured: SmolLM2-135M (no BOS): the first token reaches 100-180x the median at layers 11-27 and
# 6-10x at layers 2-8 (where the first " the" also reaches 8x); every other token stays under 2.8x at
# every layer. Gemma 3 270M: <bos> (special anyway) 13x, other tokens under 2.1x past layer 0. The
# ontology demo model's delimiters ("." and "All") reach 3.6-4.5x and are kept. See docs/reasoning.md,
# "Attention sinks".
SINK_RATIO = 6.0


def check_site(model: Model, layer: int, site: Site = "output") -> None:
    n = model.anatomy.n_layers
    if not isinstance(layer, int) or not -n <= layer < n:
        raise ValueError(f"layer must be a decoder-layer index of this {n}-layer model (0..{n - 1}), got {layer!r}")
    if site not in ("output", "input"):
        raise ValueError(f"site must be 'output' (residual leaving block {layer}) or 'input', got {site!r}")


def read(model: Model, layer: int, site: Site = "output"):
    """Inside a trace: the residual ``[batch, seq, d_model]`` at the site."""
    return getattr(model.blocks[layer].envoy, site)


def write(model: Model, layer: int, site: Site, value) -> None:
    """Inside a trace: replace the residual at the site."""
    setattr(model.blocks[layer].envoy, site, value)


def tokenize(model: Model, texts: Sequence[str], *, offsets: bool = False) -> dict[str, Tensor]:
    """Right-padded token ids and attention mask on the model's device (right padding keeps every
    real token at its own position, so padded and unpadded runs agree); ``offsets=True`` adds
    ``offset_mapping`` and ``special_tokens_mask`` (on the CPU, see ``special_mask``) for labelling
    tokens by characters."""
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings")
    tok = model.tokenizer
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = tok(texts, return_tensors="pt", padding=True, return_offsets_mapping=offsets)
    except NotImplementedError as err:  # slow tokenizers have no offsets
        raise ValueError("labelling tokens by character spans needs a fast (Rust) tokenizer") from err
    finally:
        tok.padding_side = side
    out = {key: enc[key].to(model.device) for key in ("input_ids", "attention_mask")}
    if offsets:
        out["offset_mapping"] = enc["offset_mapping"]
        out["special_tokens_mask"] = special_mask(tok, enc["input_ids"])
    return out


def special_mask(tokenizer, input_ids: Tensor) -> Tensor:
    """Where the ids are special tokens (<bos>, <pad>, ...; the unknown-word token is not special
    here): their residuals are outliers that no concept is read from."""
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return torch.isin(input_ids, torch.tensor(sorted(special), dtype=input_ids.dtype, device=input_ids.device))


def sink_mask(h: Tensor, keep: Tensor, ratio: float = SINK_RATIO, typical: Tensor | None = None) -> Tensor:
    """The attention sinks among the tokens ``keep`` ``[batch, seq]`` of residuals ``h``
    ``[batch, seq, d]``: tokens whose residual norm exceeds ``ratio`` times ``typical`` (per text,
    ``[batch]``; default: the median norm of the text's kept tokens). Sinks (the first token of a
    model without BOS, some delimiters) carry norms tens to hundreds of times the others' and
    would dominate any mean they enter ("massive activations", Sun et al. 2024)."""
    norms = h.detach().float().norm(dim=-1)
    keep = keep.to(norms.device).bool()
    if typical is None:
        typical = median_norm(norms, keep)
    return keep & (norms > ratio * typical.to(norms.device).unsqueeze(-1))


def median_norm(norms: Tensor, keep: Tensor) -> Tensor:
    """Per text, the median of ``norms`` ``[batch, seq]`` over the ``keep`` tokens (NaN for none)."""
    return torch.where(keep, norms, torch.nan).nanmedian(dim=-1).values


def residuals(model: Model, input_ids: Tensor, attention_mask: Tensor, layer: int,
              site: Site = "output") -> Tensor:
    """The residual at the site for a batch, in one trace that stops there."""
    with torch.no_grad(), model.trace(input_ids=input_ids, attention_mask=attention_mask) as tracer:
        h = read(model, layer, site).save()
        tracer.stop()
    return h
