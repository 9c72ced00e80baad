"""A tokenizer whose tokens are UTF-16 code units, for tests of token text that is hard to show.

A character outside the Basic Multilingual Plane (an emoji) becomes two tokens, each decoding on
its own to half a surrogate pair (a lone surrogate, which JSON, XML and UTF-8 cannot carry); control
characters and bidirectional overrides are tokens of their own. ``odd_model(text)`` is a tiny
random GPT-2 over such a tokenizer.
"""

from __future__ import annotations

import torch
import transformers as T

from interplab import load
from interplab.zoo.tiny import tiny_config

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
ODD_TEXT = "a\u202eb\x07c😀d\x1b\x00e"
"""A right-to-left override, a bell, an emoji (two tokens: \\ud83d, \\ude00), escape and NUL."""


def code_units(text: str) -> list[str]:
    raw = text.encode("utf-16-le", "surrogatepass")
    return [chr(int.from_bytes(raw[i:i + 2], "little")) for i in range(0, len(raw), 2)]


class CodeUnitTokenizer(T.PreTrainedTokenizer):
    """One token per UTF-16 code unit of an alphabet fixed at construction."""

    def __init__(self, alphabet: str, **kwargs):
        self.vocab = {t: i for i, t in enumerate(dict.fromkeys([*SPECIALS, *code_units(alphabet)]))}
        self.inverse = {i: t for t, i in self.vocab.items()}
        super().__init__(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>", **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return code_units(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.vocab["<unk>"])

    def _convert_id_to_token(self, index: int) -> str:
        return self.inverse.get(index, "<unk>")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        # pairs join into their character; half a pair stays a lone surrogate
        return "".join(tokens).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def odd_model(alphabet: str = ODD_TEXT):
    """A tiny random GPT-2 (seeded) over a ``CodeUnitTokenizer`` of ``alphabet``."""
    tokenizer = CodeUnitTokenizer(alphabet)
    torch.manual_seed(0)
    hf = T.AutoModelForCausalLM.from_config(tiny_config("gpt2", vocab=len(tokenizer)))
    return load(hf, tokenizer=tokenizer)
