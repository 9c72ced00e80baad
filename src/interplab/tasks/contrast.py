"""Contrast tasks: clean and corrupted prompts with an answer and a distractor token per prompt.

A task holds text (or token ids); ``task.encode(model)`` tokenises it for one model, checks it
(see ``EncodedTask``) and caches the result.

Positions: prompts are left-padded to the longest one, so every prompt ends at the last position
(right-aligned). When all prompts have the same length, position ``p`` is token ``p`` of every
prompt; otherwise position ``p`` is token ``p - (S - length)`` of a prompt of ``length`` tokens in a
window of ``S`` positions, and a shorter prompt has padding at the first positions (padding is
masked out of attention, so patching it changes nothing and its scores are zero). A clean prompt and
its corrupted partner must tokenise to the same length so that their positions line up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import run
from .metric import Metric, check_metric, metric_name, metric_values

Prompt = str | Sequence[int]
Target = str | int

__all__ = ["ContrastTask", "EncodedTask", "TaskError"]


class TaskError(ValueError):
    """A contrast task that cannot be used as given (the message says what to change)."""


@dataclass(frozen=True)
class EncodedTask:
    """A task tokenised for one model: left-padded ids on the model's device.

    ``clean_ids``/``corrupt_ids``: ``[n, seq_len]``; ``attention_mask`` (shared by a pair, since
    partners have equal lengths) and ``position_ids`` (0 at each prompt's first real token);
    ``answer_ids``/``distractor_ids``: ``[n]``; ``lengths``: real tokens per prompt; ``labels``: one
    label per position (the tokens of the first longest clean prompt); ``final_logits``: the model's
    own map from its unembedding's output to its logits (``Anatomy.final_logits``: Granite's
    scaling, Gemma's soft-capping), applied by ``measure``.
    """

    clean_ids: Tensor
    corrupt_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    answer_ids: Tensor
    distractor_ids: Tensor
    lengths: tuple[int, ...]
    labels: tuple[str, ...]
    metric: Metric = "logit_diff"
    final_logits: Callable[[Tensor], Tensor] | None = None

    @property
    def n(self) -> int:
        return self.clean_ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.clean_ids.shape[1]

    @property
    def padded(self) -> bool:
        return min(self.lengths) != max(self.lengths)

    @property
    def first_difference(self) -> int:
        """The first position where some clean prompt and its corrupted partner differ (``seq_len``
        if none do). Every activation before it is the same in both runs (attention is causal)."""
        differs = (self.clean_ids != self.corrupt_ids).any(0).nonzero()
        return int(differs[0, 0]) if len(differs) else self.seq_len

    def inputs(self, parts: Sequence[str]) -> dict[str, Tensor]:
        """Model inputs stacking copies of the clean / corrupt prompts, e.g. ``("clean", "corrupt")``.

        Rows are copy-major: row ``c * n + i`` is prompt ``i`` of copy ``c``.
        """
        ids = {"clean": self.clean_ids, "corrupt": self.corrupt_ids}
        k = len(parts)
        return {
            "input_ids": torch.cat([ids[p] for p in parts]),
            "attention_mask": self.attention_mask.repeat(k, 1),
            "position_ids": self.position_ids.repeat(k, 1),
        }

    def measure(self, logits: Tensor, answer: Tensor, distractor: Tensor) -> Tensor:
        """The task's metric per row of the unembedding's last-position output ``[rows, vocab]`` (see
        ``interplab.tasks.metric``), taken of the model's logits (``final_logits`` applied)."""
        if self.final_logits is not None:
            logits = self.final_logits(logits.float())
        return metric_values(self.metric, logits, answer, distractor)

    def targets(self, copies: int) -> tuple[Tensor, Tensor]:
        """Answer and distractor ids for ``copies`` stacked copies of the prompts: ``[copies * n, 1]``."""
        return self.answer_ids.repeat(copies)[:, None], self.distractor_ids.repeat(copies)[:, None]


@dataclass(frozen=True, eq=False)
class ContrastTask:
    """Clean prompts, corrupted prompts, and per prompt an answer and a distractor.

    The metric (``metric=``) is computed at the last position and averaged over prompts:
    ``"logit_diff"`` (answer minus distractor, the default), ``"prob_diff"``, ``"logprob"`` or a
    function of the logits, answers and distractors (see ``interplab.tasks.metric``). Prompts are
    strings or lists of token ids; answers and distractors are strings (each must be one token,
    usually with its leading space: ``" Mary"``) or token ids, one per prompt or a single one for all.
    Build with ``ContrastTask(...)`` (checked when first encoded for a model) or
    ``ContrastTask.build(model, ...)`` (checked at once).
    """

    clean: tuple[Prompt, ...]
    corrupt: tuple[Prompt, ...]
    answer: tuple[Target, ...]
    distractor: tuple[Target, ...]
    name: str = "contrast"
    metric: Metric = "logit_diff"
    _encoded: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        clean = _prompt_list("clean", self.clean)
        corrupt = _prompt_list("corrupt", self.corrupt)
        if len(clean) != len(corrupt):
            raise TaskError(f"clean has {len(clean)} prompts but corrupt has {len(corrupt)}: give exactly one "
                            "corrupted prompt per clean prompt, in the same order")
        check_metric(self.metric)
        answer = _target_list("answer", self.answer, len(clean))
        distractor = _target_list("distractor", self.distractor, len(clean))
        for name, value in (("clean", clean), ("corrupt", corrupt), ("answer", answer), ("distractor", distractor)):
            object.__setattr__(self, name, value)

    @classmethod
    def build(cls, model, clean, corrupt, answer, distractor, name: str = "contrast",
              metric: Metric = "logit_diff") -> ContrastTask:
        """A task checked against ``model``'s tokenizer now (errors name the offending prompt)."""
        task = cls(clean, corrupt, answer, distractor, name=name, metric=metric)
        task.encode(model)
        return task

    def __len__(self) -> int:
        return len(self.clean)

    def encode(self, model) -> EncodedTask:
        """Tokenise for ``model`` (cached per tokenizer, its size and device), with the checks described above."""
        key = (id(model.tokenizer), len(model.tokenizer), model.anatomy.vocab_size, str(model.device))
        if key not in self._encoded:
            self._encoded[key] = _encode(self, model)
        return self._encoded[key]

    def subset(self, indices: Sequence[int]) -> ContrastTask:
        """The task restricted to some prompts."""
        pick = [int(i) for i in indices]
        return ContrastTask(tuple(self.clean[i] for i in pick), tuple(self.corrupt[i] for i in pick),
                            tuple(self.answer[i] for i in pick), tuple(self.distractor[i] for i in pick),
                            name=self.name, metric=self.metric)

    def with_metric(self, metric: Metric) -> ContrastTask:
        """The same prompts measured by another metric."""
        return ContrastTask(self.clean, self.corrupt, self.answer, self.distractor, name=self.name, metric=metric)

    @property
    def metric_name(self) -> str:
        return metric_name(self.metric)


def _prompt_list(name: str, prompts: Any) -> tuple[Prompt, ...]:
    if isinstance(prompts, Tensor):
        if prompts.ndim != 2:
            raise TaskError(f"{name} as a tensor must be 2-D [prompts, tokens], got shape {tuple(prompts.shape)}")
        prompts = prompts.tolist()
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = tuple(prompts)
    if not prompts:
        raise TaskError(f"{name} is empty: give at least one prompt")
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if not p.strip():
                raise TaskError(f"{name} prompt {i} is an empty string: every prompt needs text")
        elif isinstance(p, Tensor | Sequence):
            ids = p.tolist() if isinstance(p, Tensor) else list(p)
            if not ids or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
                raise TaskError(f"{name} prompt {i} must be a string or a non-empty list of token ids, got {p!r}")
        else:
            raise TaskError(f"{name} prompt {i} must be a string or a list of token ids, got {type(p).__name__}")
    return tuple(p if isinstance(p, str) else tuple(p.tolist() if isinstance(p, Tensor) else p) for p in prompts)


def _target_list(name: str, targets: Any, n: int) -> tuple[Target, ...]:
    if isinstance(targets, Tensor):
        targets = targets.tolist()
    if isinstance(targets, str | int):
        targets = [targets] * n
    targets = tuple(targets)
    if not targets:
        raise TaskError(f"{name} is empty: give one {name} token per prompt (or a single one for all)")
    if len(targets) != n:
        raise TaskError(f"{name} has {len(targets)} entries but there are {n} prompts: give one per prompt "
                        "(or a single one for all)")
    for i, t in enumerate(targets):
        if not isinstance(t, str | int) or isinstance(t, bool):
            raise TaskError(f"{name} {i} must be a string or a token id, got {t!r}")
    return targets


def _token_ids(model, prompt: Prompt) -> list[int]:
    if isinstance(prompt, str):
        return list(model.tokenizer(prompt, add_special_tokens=True)["input_ids"])
    return list(prompt)


def _show(model, ids: Sequence[int]) -> list[str]:
    return run.decode_each(model, ids)


def _unknown(model, text: str, ids: Sequence[int]) -> bool:
    """Whether the tokenizer mapped some of ``text`` to its unknown-word token (word-level tokenizers
    do this for words outside their vocabulary): such text would be scored as ``<unk>``."""
    unk = model.tokenizer.unk_token_id
    return unk is not None and unk in ids and model.tokenizer.unk_token not in text


def _target_id(model, name: str, i: int, target: Target) -> int:
    vocab = model.anatomy.vocab_size
    if isinstance(target, int):
        if not 0 <= target < vocab:
            raise TaskError(f"{name} {i} is token id {target}, outside the model's vocabulary (0..{vocab - 1})")
        return target
    ids = model.tokenizer(target, add_special_tokens=False)["input_ids"]
    if _unknown(model, target, ids):
        raise TaskError(f"{name} {i} {target!r} is not in this tokenizer's vocabulary (it becomes "
                        f"{model.tokenizer.unk_token!r}): choose a word the model knows")
    if len(ids) != 1:
        hint = ""
        if not target.startswith(" "):
            hint = f" (a continuation usually starts with a space: {' ' + target!r})"
        raise TaskError(
            f"{name} {i} {target!r} is {len(ids)} tokens {_show(model, ids)}, but the metric reads one logit: "
            f"choose a {name} that is a single token for this tokenizer{hint}, or pass its token id"
        )
    return ids[0]


def _encode(task: ContrastTask, model) -> EncodedTask:
    clean = [_token_ids(model, p) for p in task.clean]
    corrupt = [_token_ids(model, p) for p in task.corrupt]
    vocab = model.anatomy.vocab_size
    for name, prompts in (("clean", clean), ("corrupt", corrupt)):
        for i, ids in enumerate(prompts):
            if not ids:
                raise TaskError(f"{name} prompt {i} {getattr(task, name)[i]!r} tokenises to no tokens")
            bad = [t for t in ids if not 0 <= t < vocab]
            if bad:
                raise TaskError(f"{name} prompt {i} has token ids {bad} outside the vocabulary (0..{vocab - 1})")
            text = getattr(task, name)[i]
            if isinstance(text, str) and _unknown(model, text, ids):
                words = [w for w, t in zip(_show(model, ids), ids) if t == model.tokenizer.unk_token_id]
                raise TaskError(f"{name} prompt {i} {text!r} has words outside this tokenizer's vocabulary (they "
                                f"become {words[0]!r}, as {_show(model, ids)} shows): use words the model knows")
    for i, (a, b) in enumerate(zip(clean, corrupt)):
        if len(a) != len(b):
            raise TaskError(
                f"pair {i}: the clean prompt tokenises to {len(a)} tokens but its corrupted partner to {len(b)}.\n"
                f"  clean:   {task.clean[i]!r} -> {_show(model, a)}\n"
                f"  corrupt: {task.corrupt[i]!r} -> {_show(model, b)}\n"
                "Positions must line up between a clean prompt and its corruption: make them the same number "
                "of tokens (e.g. swap a word for another single-token word)."
            )
    answer = [_target_id(model, "answer", i, t) for i, t in enumerate(task.answer)]
    distractor = [_target_id(model, "distractor", i, t) for i, t in enumerate(task.distractor)]
    for i, (a, d) in enumerate(zip(answer, distractor)):
        if a == d:
            raise TaskError(f"prompt {i}: answer and distractor are the same token {_show(model, [a])}, so the "
                            "logit difference is always 0: give a distractor different from the answer")

    lengths = [len(ids) for ids in clean]
    run.check_lengths(model, lengths, "a prompt of this task")
    pad, device = model.tokenizer.pad_token_id, model.device
    clean_batch, corrupt_batch = run.pad(clean, "left", pad, device), run.pad(corrupt, "left", pad, device)
    longest = clean[lengths.index(max(lengths))]
    return EncodedTask(
        clean_ids=clean_batch.input_ids, corrupt_ids=corrupt_batch.input_ids,
        attention_mask=clean_batch.attention_mask, position_ids=clean_batch.position_ids,
        answer_ids=torch.tensor(answer, device=device), distractor_ids=torch.tensor(distractor, device=device),
        lengths=tuple(lengths), labels=tuple(_show(model, longest)), metric=task.metric,
        final_logits=model.anatomy.final_logits,
    )
