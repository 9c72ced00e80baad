"""Per-token readings of a text: how likely the model finds each token, and what it predicts next.

    lp = il.tokens.next_token_logprobs(model, "When Mary and John went to the store")
    lp.values[i]          # log p(token i | tokens 0..i-1); NaN for token 0, which has no context
    preds = il.tokens.top_predictions(model, text, k=5)
    preds.at(3)           # the model's 5 likeliest tokens to follow token 3: [(token, id, logprob), ...]

Both come from one forward pass (``token_predictions``), run through nnsight so that
``model.remote`` works as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from . import run
from .model import Model

__all__ = ["Predictions", "TokenPredictions", "TokenValues", "next_token_logprobs", "token_predictions",
           "tokenize", "top_predictions"]

LOGPROB_LABEL = "log p(token | tokens before it)"


def tokenize(model: Model, text: str) -> tuple[Tensor, list[str]]:
    """The token ids of ``text`` (as the model's tokenizer makes them, special tokens included) and
    each token decoded on its own."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: give at least one token's worth of text")
    ids = torch.tensor(run.token_ids(model, text)[0], dtype=torch.long)
    run.check_lengths(model, [len(ids)], "the text")
    return ids, run.decode_each(model, ids)


@dataclass
class TokenValues:
    """One value per token of a text: ``values[i]`` belongs to ``tokens[i]`` (NaN: no value)."""

    ids: Tensor  # [seq] long
    tokens: list[str]
    values: Tensor  # [seq] float32
    label: str

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"position": range(len(self.tokens)), "id": self.ids.tolist(), "token": self.tokens,
                             "value": self.values.tolist()})


@dataclass
class Predictions:
    """The model's ``k`` likeliest next tokens after each position of a text.

    Row ``i`` is the distribution over the token that follows ``tokens[i]`` (given tokens 0..i).
    """

    model: Model
    ids: Tensor  # [seq, k] long, likeliest first
    logprobs: Tensor  # [seq, k] float32

    @property
    def k(self) -> int:
        return self.ids.shape[1]

    def at(self, position: int) -> list[tuple[str, int, float]]:
        """``[(token, id, logprob), ...]`` for the token after ``position``."""
        n = self.ids.shape[0]
        if not -n <= position < n:
            raise IndexError(f"position {position} is outside the text's {n} tokens")
        ids = self.ids[position]
        return list(zip(run.decode_each(self.model, ids), ids.tolist(), self.logprobs[position].tolist()))

    def to_frame(self) -> pd.DataFrame:
        seq, k = self.ids.shape
        return pd.DataFrame({
            "position": torch.arange(seq).repeat_interleave(k).tolist(),
            "rank": list(range(1, k + 1)) * seq,
            "id": self.ids.reshape(-1).tolist(),
            "token": run.decode_each(self.model, self.ids),
            "logprob": self.logprobs.reshape(-1).tolist(),
        })


@dataclass
class TokenPredictions:
    """Both readings of one forward pass: ``logprobs`` (a TokenValues) and ``predictions``."""

    logprobs: TokenValues
    predictions: Predictions


def token_predictions(model: Model, text: str, *, k: int = 5) -> TokenPredictions:
    """One forward pass over ``text``: the log-probability of each actual token given the tokens
    before it, and the top-``k`` next-token predictions at every position."""
    ids, tokens = tokenize(model, text)
    vocab = model.anatomy.vocab_size
    if not 1 <= k <= vocab:
        raise ValueError(f"k={k} must be between 1 and the vocabulary size {vocab}")
    input_ids = ids[None].to(model.device)
    with torch.no_grad(), model.trace(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)):
        logp = model.anatomy.final_logits(model.unembed.output[0].float()).log_softmax(-1)  # Granite, Gemma 2
        actual = logp[:-1].gather(-1, input_ids[0, 1:, None])[:, 0].save()
        top = logp.topk(k, dim=-1)
        top_logprobs = top.values.save()
        top_ids = top.indices.save()
    values = torch.cat([torch.tensor([float("nan")]), actual.cpu()])
    return TokenPredictions(
        logprobs=TokenValues(ids=ids, tokens=tokens, values=values, label=LOGPROB_LABEL),
        predictions=Predictions(model=model, ids=top_ids.cpu(), logprobs=top_logprobs.cpu()),
    )


def next_token_logprobs(model: Model, text: str) -> TokenValues:
    """``values[i]`` = log p(token i | tokens 0..i-1) under the model; NaN for the first token."""
    return token_predictions(model, text, k=1).logprobs


def top_predictions(model: Model, text: str, *, k: int = 5) -> Predictions:
    """The model's ``k`` likeliest next tokens after every position of ``text``."""
    return token_predictions(model, text, k=k).predictions
