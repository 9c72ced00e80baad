"""Contrast tasks for a given model: ``ioi(model, n, seed)`` builds IOI prompts in its vocabulary.

The prompts come from ``interplab.tasks.ioi_prompts.ioi_prompts`` (text only; see that module for the
templates, the train/held-out split and the corruption). Clean: "When Mary and John went to the
store, John gave a drink to" -> " Mary"; corrupt: the second mention of the subject becomes the
other name ("..., Mary gave a drink to"); the distractor is the other name (" John") in both
runs, so the logit difference answer minus distractor is positive on clean prompts and negative
on corrupted ones for a model that does IOI. With ``corruption="third"`` the second mention of the
subject becomes a third name instead ("..., Bob gave a drink to"), which leaves no name repeated.

A prompt is usable for a model when its two names are one known token each (with their leading
space; not the unknown token) and its clean and corrupted versions tokenise to the same length.
Unusable prompts are skipped; more are drawn (deterministically, from the same seeded stream)
until ``n`` are found.
"""

from __future__ import annotations

from .contrast import ContrastTask, TaskError
from .ioi_prompts import CORRUPTIONS, IOIPrompt, ioi_prompts

__all__ = ["ioi"]

#: candidates drawn per requested prompt before giving up
MAX_DRAWS_PER_PROMPT = 64


def _single_tokens(tokenizer, texts: set[str]) -> set[str]:
    ordered = sorted(texts)
    encoded = tokenizer(ordered, add_special_tokens=False)["input_ids"]
    unknown = tokenizer.unk_token_id
    return {text for text, ids in zip(ordered, encoded) if len(ids) == 1 and ids[0] != unknown}


def _usable(tokenizer, prompts: list[IOIPrompt], single: set[str]) -> list[IOIPrompt]:
    named = [p for p in prompts if p.answer in single and p.distractor in single]
    if not named:
        return []
    clean = tokenizer([p.clean for p in named])["input_ids"]
    corrupt = tokenizer([p.corrupt for p in named])["input_ids"]
    unknown = tokenizer.unk_token_id
    return [p for p, a, b in zip(named, clean, corrupt) if len(a) == len(b) and unknown not in a]


def ioi(model, n: int = 64, seed: int = 0, split: str = "test", corruption: str = "io") -> ContrastTask:
    """``n`` seeded IOI prompts as a ``ContrastTask`` for ``model``.

    ``split``: ``"test"`` (held-out names and templates, the default), ``"train"``,
    ``"test_names"`` or ``"test_templates"``; ``corruption``: ``"io"`` (the repeated name becomes
    the other name, the default) or ``"third"`` (it becomes a third name); see
    ``interplab.tasks.ioi_prompts``. Raises ``TaskError`` when too few prompts have single-token
    names for this tokenizer.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TaskError(f"n must be a positive number of prompts, got {n!r}")
    if corruption not in CORRUPTIONS:
        raise TaskError(f"unknown IOI corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    tokenizer = model.tokenizer
    draws = max(4 * n, 64)
    limit = MAX_DRAWS_PER_PROMPT * n
    while True:
        candidates = ioi_prompts(min(draws, limit), seed=seed, split=split, corruption=corruption)
        names = {p.answer for p in candidates} | {p.distractor for p in candidates}
        single = _single_tokens(tokenizer, names)
        usable = _usable(tokenizer, candidates, single)
        if len(usable) >= n or draws >= limit:
            break
        draws *= 4
    if len(usable) < n:
        split_names = sorted(names - single)
        fewer = f"Ask for fewer prompts (n <= {len(usable)}), or u" if usable else "U"
        shown = ", ".join(repr(name) for name in split_names[:8]) + (" ..." if len(split_names) > 8 else "")
        raise TaskError(
            f"only {len(usable)} of {len(candidates)} IOI prompts (split {split!r}) are usable with this tokenizer, "
            f"fewer than the {n} asked for: {len(single)} of {len(names)} names are one known token "
            f"(not: {shown or 'none'}). {fewer}se a model whose tokenizer keeps common first names as single "
            "tokens."
        )
    usable = usable[:n]
    return ContrastTask.build(
        model, [p.clean for p in usable], [p.corrupt for p in usable], [p.answer for p in usable],
        [p.distractor for p in usable], name="ioi" if corruption == "io" else f"ioi-{corruption}",
    )
