"""Tiny random models of every supported family, for tests, coverage and quick experiments.

``tiny("llama")`` builds a 2-layer random model from the family table's ``tiny`` config factory, with a
small word-level tokenizer (words ``w0`` .. ``wN`` plus a few English words). Nothing is downloaded.
"""

from __future__ import annotations

import torch
import transformers as T

from ..anatomy import FAMILIES, TinySize
from ..model import Model, load

WORDS = ("the", "a", "cat", "dog", "sat", "on", "mat", "and", "is", "was", "to", "of", "in", "it", "Mary",
         "John", "store", "gave", "drink", ".", ",", "?", "!")
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")  # ids 0..3, as TinySize.dims expects


def word_tokenizer(words: list[str] | tuple[str, ...], extra_tokens: tuple[str, ...] = ()) -> T.PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over ``words`` (ids follow SPECIALS then words)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(dict.fromkeys((*SPECIALS, *words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation apart, as the demo models
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                     bos_token="<s>", eos_token="</s>")
    if extra_tokens:
        fast.add_tokens(list(extra_tokens))
    return fast


def tiny_config(family: str, n_layers: int = 2, vocab: int = 128, n_experts: int = 8, top_k: int = 2):
    """A tiny transformers config of ``family`` (the names of interplab's anatomy tables), made by the
    family table's ``tiny`` factory."""
    table = FAMILIES.get(family)
    if table is None or table.tiny is None:
        choices = sorted(name for name, f in FAMILIES.items() if f.tiny is not None)
        raise ValueError(f"no tiny config for {family!r}; choose one of {choices}")
    return table.tiny(TinySize(n_layers=n_layers, vocab=vocab, n_experts=n_experts, top_k=top_k))


def tiny(family: str, *, seed: int = 0, n_layers: int = 2, device: str | None = None,
         dtype: torch.dtype | None = None, **config_kwargs) -> Model:
    """A tiny random ``family`` model with a word-level tokenizer, as an ``interplab.Model``."""
    config = tiny_config(family, n_layers=n_layers, **config_kwargs)
    words = [*WORDS, *(f"w{i}" for i in range(config.vocab_size - len(SPECIALS) - len(WORDS)))]
    torch.manual_seed(seed)
    hf = T.AutoModelForCausalLM.from_config(config)
    return load(hf, tokenizer=word_tokenizer(words), device=device, dtype=dtype)
