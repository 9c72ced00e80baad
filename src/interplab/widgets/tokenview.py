"""``il.TokenView(model, text)``: the tokens of a text, coloured by one value per token.

By default the value of token ``i`` is the model's log-probability of that token given the tokens
before it (the first token has none). Hovering a token shows its id, its value and the model's
top next-token predictions after it (computed in the kernel); clicking selects it
(``view.selected``). The view follows the model: after its weights or its tokenizer change, the
next hover computes the predictions again (and the default values with them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from ..model import Model
from ..run import decode_each
from ..tokens import Predictions, token_predictions, tokenize
from .base import Widget, command
from .codecs import decode_array, encode_array, encode_reply_array, to_numpy

__all__ = ["LOGPROB_ENDS", "TokenView"]

LOGPROB_ENDS = ("less likely", "more likely")
"""What the two ends of the colour scale mean for the default values (log-probabilities)."""


class TokenView(Widget, bundle="tokenview"):
    """The tokens of ``text`` coloured by ``values`` (default: log p(token | tokens before it)).

    ``values``: one number per token (list, numpy array or tensor; NaN for "no value"), with
    ``label`` saying what they are and ``ends`` what a low and a high value mean (shown at the
    ends of the legend; for the default values "less likely" and "more likely"). ``k``: how many
    next-token predictions the tooltip lists.
    """

    _browser_writable = frozenset({"selected"})

    tokens = traitlets.List(traitlets.Unicode(), help="the tokens as decoded one by one").tag(sync=True)
    label = traitlets.Unicode("", help="what the values are").tag(sync=True)
    ends = traitlets.Tuple(traitlets.Unicode(), traitlets.Unicode(), default_value=("", ""),
                           help="what a low and a high value mean").tag(sync=True)
    selected = traitlets.Int(None, allow_none=True, help="the clicked token's index, or None").tag(sync=True)
    _token_ids = traitlets.Dict().tag(sync=True)
    _values = traitlets.Dict().tag(sync=True)
    _predictions = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)

    def __init__(self, model: Model, text: str, values: Any = None, *, label: str | None = None,
                 ends: tuple[str, str] | None = None, k: int = 5, **kwargs: Any):
        self.model = model
        self.text = text
        self.k = k
        self._own_values = values is None  # the model's log-probabilities, recomputed with the predictions
        self._cached: Predictions | None = None
        self._cached_key: tuple | None = None
        if self._own_values:
            readings = self._read()
            ids, tokens = readings.logprobs.ids, readings.logprobs.tokens
            values, label = readings.logprobs.values, label or readings.logprobs.label
            ends = LOGPROB_ENDS if ends is None else ends
        else:
            ids, tokens = tokenize(model, text)
        super().__init__(tokens=tokens, _token_ids=encode_array(ids, "int32"),
                         _values=encode_array(self._checked(values, tokens)), label=label or "value",
                         ends=ends or ("", ""), **kwargs)

    # --- data -------------------------------------------------------------------------------------
    @property
    def token_ids(self) -> np.ndarray:
        return decode_array(self._token_ids)

    @property
    def values(self) -> np.ndarray:
        """The value of each token (float32; NaN where there is none)."""
        return decode_array(self._values)

    @values.setter
    def values(self, values: Any) -> None:
        self._values = encode_array(self._checked(values, self.tokens))
        self._own_values = False

    @staticmethod
    def _checked(values: Any, tokens: list[str]) -> np.ndarray:
        array = to_numpy(values).astype(np.float32)
        if array.ndim != 1:
            raise ValueError(f"values must be one number per token (1-D), got an array of shape {list(array.shape)}")
        if len(array) != len(tokens):
            shown = tokens if len(tokens) <= 12 else [*tokens[:12], "..."]
            raise ValueError(
                f"values has {len(array)} entries but the text has {len(tokens)} tokens {shown}: give one value per "
                "token (il.tokens.tokenize(model, text) shows the tokens)"
            )
        return array

    @traitlets.validate("selected")
    def _check_selected(self, proposal: dict) -> int | None:
        i = proposal["value"]
        if i is not None and (isinstance(i, bool) or not 0 <= i < len(self.tokens)):
            raise traitlets.TraitError(f"selected={i!r} is not a token index: choose 0..{len(self.tokens) - 1} or None")
        return i

    def _read(self):
        """One forward pass over the text: log-probabilities and predictions, kept with the model's
        state key (see ``predictions``)."""
        key = self.model.state_key()
        readings = token_predictions(self.model, self.text, k=self.k)
        self._cached, self._cached_key = readings.predictions, key
        return readings

    def predictions(self) -> Predictions:
        """The model's top-``k`` next tokens at every position: kept, and computed again once the
        weights or the tokenizer changed (``Model.state_key``); the default values follow."""
        if self._cached is not None and self._cached_key == self.model.state_key():
            return self._cached
        with self.working("computing next-token predictions"):
            readings = self._read()
        now = readings.logprobs
        if len(now.tokens) != len(self.tokens) and not self._own_values:
            raise ValueError(f"the tokenizer now splits the text into {len(now.tokens)} tokens (it gave "
                             f"{len(self.tokens)} when the view was made), so the values no longer fit: make a new "
                             "view")
        if self._own_values or now.tokens != self.tokens:
            with self.hold_sync():
                self.tokens = now.tokens
                self._token_ids = encode_array(now.ids, "int32")
                if self._own_values:
                    self._values = encode_array(now.values)
        return self._cached

    def preload_predictions(self) -> None:
        """Send the predictions of every position to the browser now, so hovering needs no kernel
        (for static snapshots such as ``interplab tour`` reports; they do not follow later edits)."""
        predictions = self.predictions()
        self._predictions = {
            "tokens": decode_each(self.model, predictions.ids),
            "ids": encode_array(predictions.ids, "int32"),
            "logprobs": encode_array(predictions.logprobs, "float32"),
        }

    # --- commands from the browser ----------------------------------------------------------------
    @command(position=int)
    def _top_k(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        predictions = self.predictions()
        position = msg["position"]
        if not 0 <= position < len(self.tokens):
            raise ValueError(f"position {position!r} is not a token index of this view (0..{len(self.tokens) - 1})")
        rows = predictions.at(position)
        out: list[bytes] = []
        reply = {
            "position": position,
            "tokens": [token for token, _, _ in rows],
            "ids": encode_reply_array([i for _, i, _ in rows], out, "int32"),
            "logprobs": encode_reply_array([lp for _, _, lp in rows], out, "float32"),
        }
        return reply, out

    def __repr__(self) -> str:
        return f"TokenView({len(self.tokens)} tokens, label={self.label!r}, selected={self.selected})"
