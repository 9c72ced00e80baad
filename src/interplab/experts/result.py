"""Result objects of the experts instrument: plain tensors with named axes, to pandas and to JSON.

Every ``[n_layers, ...]`` axis is indexed by the decoder-layer number; rows of dense layers hold
NaN (floats) or -1 (expert indices).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor

from ..checks import check_count

__all__ = ["SCORES", "SCORE_MAPS", "ExpertScan", "Routing", "SetStats"]


def _nan_to_none(values: list) -> list:
    if values and isinstance(values[0], list):
        return [_nan_to_none(v) for v in values]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


@dataclass
class Routing:
    """How a model routed every real token of a set of prompts (padding never appears).

    ``indices``/``weights``: ``[tokens, n_layers, top_k]``, each token's selected experts sorted
    by weight (largest first) with the weight the MoE block used; ``-1``/NaN in dense layers.
    ``prompt``/``position``: ``[tokens]``, which prompt a token belongs to and its position in it.
    ``probabilities``: ``[tokens, n_layers, n_experts]``, the router's own distribution over all
    experts before any off/on masks (softmax, or sigmoid for DeepSeek-V3), when asked for.
    """

    prompts: list[str]
    indices: Tensor
    weights: Tensor
    prompt: Tensor
    position: Tensor
    token_ids: Tensor
    tokens: list[str]
    moe_layers: tuple[int, ...]
    n_experts: int
    probabilities: Tensor | None = None
    off: list[tuple[int, int]] = field(default_factory=list)
    on: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.indices.shape[0]

    @property
    def n_layers(self) -> int:
        return self.indices.shape[1]

    @property
    def top_k(self) -> int:
        return self.indices.shape[2]

    def selected(self, layer: int, expert: int) -> Tensor:
        """``[tokens]`` bool: which tokens routed to ``expert`` in decoder layer ``layer``."""
        return (self.indices[:, layer] == expert).any(dim=-1)

    def counts(self) -> Tensor:
        """``[n_layers, n_experts]``: how many tokens selected each expert (NaN rows: dense)."""
        counts = torch.full((self.n_layers, self.n_experts), float("nan"))
        for layer in self.moe_layers:
            counts[layer] = torch.bincount(self.indices[:, layer].flatten().cpu(), minlength=self.n_experts).float()
        return counts

    def tokens_of(self, prompt: int) -> Tensor:
        """Row numbers of the tokens of prompt ``prompt``, in order."""
        return torch.nonzero(self.prompt == prompt).flatten()

    def to_frame(self) -> pd.DataFrame:
        """One row per (token, MoE layer, rank): token, prompt, position, text, layer, rank, expert, weight."""
        layers = list(self.moe_layers)
        n, k = len(self), self.top_k
        idx = self.indices[:, layers].cpu()
        w = self.weights[:, layers].cpu()
        token = torch.arange(n).repeat_interleave(len(layers) * k)
        return pd.DataFrame({
            "token": token.numpy(),
            "prompt": self.prompt.cpu()[token].numpy(),
            "position": self.position.cpu()[token].numpy(),
            "text": [self.tokens[i] for i in token.tolist()],
            "layer": torch.tensor(layers).repeat_interleave(k).repeat(n).numpy(),
            "rank": torch.arange(k).repeat(n * len(layers)).numpy(),
            "expert": idx.flatten().numpy(),
            "weight": w.flatten().numpy(),
        })

    def to_dict(self) -> dict:
        out = {
            "prompts": self.prompts, "moe_layers": list(self.moe_layers), "n_layers": self.n_layers,
            "n_experts": self.n_experts, "top_k": self.top_k, "off": self.off, "on": self.on,
            "prompt": self.prompt.tolist(), "position": self.position.tolist(),
            "token_ids": self.token_ids.tolist(), "tokens": self.tokens,
            "indices": self.indices.tolist(), "weights": _nan_to_none(self.weights.tolist()),
        }
        if self.probabilities is not None:
            out["probabilities"] = _nan_to_none(self.probabilities.tolist())
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        return (f"Routing({len(self.prompts)} prompts, {len(self)} tokens, MoE layers {list(self.moe_layers)}, "
                f"{self.n_experts} experts, top-{self.top_k})")


@dataclass
class SetStats:
    """Routing statistics of one prompt set (behaviour or control), over its counted tokens.

    ``selection_rate[l, e]``: the fraction of counted tokens that selected expert ``e`` in layer
    ``l`` (SteerMoE's A/N). ``mean_weight[l, e]``: the mean over prompts of each prompt's
    activation map, the routing weight of ``e`` summed over the prompt's counted tokens divided
    by their number (MoTE's per-prompt map averaged over the set). NaN rows: dense layers.
    """

    n_prompts: int
    n_tokens: int
    selection_rate: Tensor
    mean_weight: Tensor


SCORES = ("contrast", "risk_diff")

#: the per-set map (a ``SetStats`` field) each score is the behaviour-minus-control difference of
SCORE_MAPS = {"contrast": "mean_weight", "risk_diff": "selection_rate"}


@dataclass
class ExpertScan:
    """An fTRI scan: per (layer, expert) how much more the behaviour set routes to it than the control set.

    ``contrast = behaviour.mean_weight - control.mean_weight`` (MoTE) and
    ``risk_diff = behaviour.selection_rate - control.selection_rate`` (SteerMoE) are both kept;
    ``scores`` is the one chosen with ``score=``. ``tokens`` says which tokens were counted.
    """

    behaviour: SetStats
    control: SetStats
    score: str
    tokens: str
    moe_layers: tuple[int, ...]
    n_experts: int
    top_k: int
    model: str = ""

    def _difference(self, score: str) -> Tensor:
        field = SCORE_MAPS[score]
        return getattr(self.behaviour, field) - getattr(self.control, field)

    @property
    def contrast(self) -> Tensor:
        return self._difference("contrast")

    @property
    def risk_diff(self) -> Tensor:
        return self._difference("risk_diff")

    @property
    def scores(self) -> Tensor:
        """``[n_layers, n_experts]``, NaN rows for dense layers."""
        return self._difference(self.score)

    @property
    def n_layers(self) -> int:
        return self.behaviour.selection_rate.shape[0]

    def top(self, k: int = 10, *, largest: bool = True) -> list[tuple[int, int, float]]:
        """The ``k`` highest-scoring ``(layer, expert, score)`` (lowest with ``largest=False``)."""
        k = check_count("k", k, 1)
        flat = self.scores.flatten()
        valid = torch.nonzero(~torch.isnan(flat)).flatten()
        order = torch.argsort(flat[valid], descending=largest, stable=True)[:k]
        picked = valid[order].tolist()
        return [(i // self.n_experts, i % self.n_experts, float(flat[i])) for i in picked]

    def to_frame(self) -> pd.DataFrame:
        """One row per (MoE layer, expert): score, contrast, risk_diff and both sets' maps."""
        layers = list(self.moe_layers)
        e = self.n_experts

        def col(t: Tensor):
            return t[layers].flatten().cpu().numpy()

        return pd.DataFrame({
            "layer": torch.tensor(layers).repeat_interleave(e).numpy(),
            "expert": torch.arange(e).repeat(len(layers)).numpy(),
            "score": col(self.scores), "contrast": col(self.contrast), "risk_diff": col(self.risk_diff),
            "behaviour_rate": col(self.behaviour.selection_rate), "control_rate": col(self.control.selection_rate),
            "behaviour_weight": col(self.behaviour.mean_weight), "control_weight": col(self.control.mean_weight),
        })

    def to_dict(self) -> dict:
        def stats(s: SetStats) -> dict:
            return {"n_prompts": s.n_prompts, "n_tokens": s.n_tokens,
                    "selection_rate": _nan_to_none(s.selection_rate.tolist()),
                    "mean_weight": _nan_to_none(s.mean_weight.tolist())}

        return {"model": self.model, "score": self.score, "tokens": self.tokens, "n_layers": self.n_layers,
                "n_experts": self.n_experts, "top_k": self.top_k, "moe_layers": list(self.moe_layers),
                "scores": _nan_to_none(self.scores.tolist()),
                "behaviour": stats(self.behaviour), "control": stats(self.control)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        best = ", ".join(f"L{layer}E{e} {s:+.3f}" for layer, e, s in self.top(3))
        return (f"ExpertScan({self.score} over {self.tokens} tokens; behaviour {self.behaviour.n_prompts} prompts, "
                f"control {self.control.n_prompts}; top: {best})")
