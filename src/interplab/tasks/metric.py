"""The metric of a contrast task: one value per prompt from the last position's logits.

Every method, ablation and faithfulness computation reads the metric through ``metric_values``, so
a task's ``metric=`` is honoured everywhere. Built in (``METRICS``):

==============  ===================================================================================
``logit_diff``  ``logit[answer] - logit[distractor]`` (the default)
``prob_diff``   ``p(answer) - p(distractor)``, softmax over the vocabulary at the last position
``logprob``     ``log p(answer)``
==============  ===================================================================================

A callable ``f(logits, answer, distractor)`` (``logits [prompts, vocab]`` float32, ``answer`` and
``distractor`` ``[prompts]`` token ids) returning ``[prompts]`` values is a metric too; it must be
differentiable for the gradient methods. The task's metric is the mean over prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["METRICS", "Metric", "check_metric", "metric_name", "metric_values"]

Metric = str | Callable[[Tensor, Tensor, Tensor], Tensor]
METRICS = ("logit_diff", "prob_diff", "logprob")


def check_metric(metric: Metric) -> Metric:
    """``metric`` if it is a built-in name or a callable, else a ``ValueError`` naming the choices."""
    if callable(metric) or metric in METRICS:
        return metric
    raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}, or pass a function "
                     "f(logits [prompts, vocab], answer [prompts], distractor [prompts]) -> [prompts]")


def metric_name(metric: Metric) -> str:
    """A label for a metric: its name, or the callable's ``__name__``."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)


def metric_values(metric: Metric, logits: Tensor, answer: Tensor, distractor: Tensor) -> Tensor:
    """Per-prompt metric ``[rows]`` of last-position ``logits [rows, vocab]`` and ``[rows]`` token ids."""
    logits = logits.float()
    answer, distractor = answer.reshape(-1, 1), distractor.reshape(-1, 1)
    if metric == "logit_diff":
        return (logits.gather(1, answer) - logits.gather(1, distractor))[:, 0]
    if metric == "prob_diff":
        probs = torch.softmax(logits, dim=-1)
        return (probs.gather(1, answer) - probs.gather(1, distractor))[:, 0]
    if metric == "logprob":
        return torch.log_softmax(logits, dim=-1).gather(1, answer)[:, 0]
    values = metric(logits, answer[:, 0], distractor[:, 0])
    if not isinstance(values, Tensor) or values.shape != (logits.shape[0],):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"the task's metric function returned {shape}; it must return one value per prompt, "
                         f"a tensor of shape ({logits.shape[0]},)")
    return values.float()
