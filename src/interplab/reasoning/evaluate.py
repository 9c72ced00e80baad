"""Evaluation of ActivationReasoning: answer accuracy by reasoning depth, base model against AR,
and detection quality (token-level precision / recall) of a concept dictionary.

``evaluate`` answers each question by the higher logit among the answer words at the end of its
prompt: once plainly, once with AR's first decoding step (the concepts detected on the prompt
are the facts, the rules infer, the last position at the concepts' site is steered by the
concluded concepts (``+strength``) and suppressed ones (``-strength``)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..model import Model
from .concepts import Concepts
from .concepts.labels import Labelled
from .detect import Evidence, Scope, detect, encode_pairs, evidence_kind
from .reason import ruleset
from .residual import read, special_mask, tokenize, write
from .rules import RuleSet
from .steer import add_directions, check_strength, steerable_concepts

__all__ = ["Evaluation", "answer_ids", "answer_logits", "detection_quality", "evaluate"]


@dataclass
class Evaluation:
    """One row per question (``frame``): hops, answer, base and AR predictions, the facts,
    derived and suppressed concepts and the steering applied."""

    frame: Any  # pandas.DataFrame
    strength: float

    def accuracy(self):
        """Accuracy by hop depth (and overall): n, base, ar."""
        import pandas as pd

        df = self.frame.assign(base_ok=self.frame["base"] == self.frame["answer"],
                               ar_ok=self.frame["ar"] == self.frame["answer"])
        table = df.groupby("hops").agg(n=("answer", "size"), base=("base_ok", "mean"), ar=("ar_ok", "mean"))
        overall = pd.DataFrame({"n": [len(df)], "base": [df["base_ok"].mean()], "ar": [df["ar_ok"].mean()]},
                               index=pd.Index(["all"], name="hops"))
        return pd.concat([table, overall])

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the strength and the accuracy by hop depth (``"all"`` overall)."""
        acc = self.accuracy()
        by_hops = {str(h): {"n": int(r.n), "base": float(r.base), "ar": float(r.ar)} for h, r in acc.iterrows()}
        return {"strength": self.strength, "accuracy": by_hops}

    def to_json(self) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict())


def answer_ids(model: Model, answers: Sequence[str]) -> list[int]:
    """The token id each answer word starts with when it follows a space."""
    ids = [model.tokenizer(" " + a, add_special_tokens=False)["input_ids"][0] for a in answers]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the answers {list(answers)} start with the same token; they cannot be told apart")
    return ids


def evaluate(model: Model, questions: Sequence[Any], concepts: Concepts, rules: RuleSet | str, *,
             strength: float = 0.5, answers: Sequence[str] = ("True", "False"), scope: Scope = "input",
             evidence: Evidence = "local", steer: Sequence[str] | None = None, batch_size: int = 64,
             level: str | None = None) -> Evaluation:
    """Accuracy of the base model and of AR on ``questions`` (records with ``.prompt``, ``.answer``
    and ``.hops``, e.g. ``interplab.tasks.ontology.questions``). ``steer`` names the concepts that
    may steer (default: every concluded or suppressed one in the dictionary); ``evidence`` as in
    ``reason`` (``level=`` is its old, deprecated name)."""
    import pandas as pd

    evidence = evidence_kind(evidence, level, "evaluate")
    strength = check_strength(strength)
    concepts.check_model(model)
    rules = ruleset(rules, concepts.names)
    steerable = steerable_concepts(concepts, steer)
    if not questions:
        raise ValueError("no questions to evaluate")
    targets = answer_ids(model, answers)
    names = concepts.names
    rows: list[dict[str, Any]] = []
    for start in range(0, len(questions), batch_size):
        batch = list(questions[start:start + batch_size])
        prompts = [q.prompt for q in batch]
        found = detect(model, prompts, concepts, scope=scope, batch_size=batch_size)
        coefficients = torch.zeros(len(batch), len(names))
        records = []
        for i in range(len(batch)):
            inference = rules.infer(found.facts(i, evidence))
            steering = {n: strength for n in inference.derived if n in steerable}
            steering |= {n: -strength for n in inference.suppressed if n in steerable}
            for name, value in steering.items():
                coefficients[i, names.index(name)] = value
            records.append({"facts": sorted(inference.facts), "derived": sorted(inference.derived),
                            "suppressed": sorted(inference.suppressed), "steering": steering})
        base = answer_logits(model, prompts, targets)
        steered = answer_logits(model, prompts, targets, concepts, coefficients) if coefficients.any() else base
        for q, b, s, record in zip(batch, base.argmax(-1).tolist(), steered.argmax(-1).tolist(), records):
            rows.append({"hops": q.hops, "answer": q.answer, "base": answers[b], "ar": answers[s], **record})
    return Evaluation(pd.DataFrame(rows), strength)


def answer_logits(model: Model, prompts: Sequence[str], targets: Sequence[int], concepts: Concepts | None = None,
                  coefficients: torch.Tensor | None = None) -> torch.Tensor:
    """The logits of the answer tokens ``targets`` after each prompt, ``[batch, n_answers]``; with
    ``concepts`` and ``coefficients`` ``[batch, n_concepts]`` (a strength per row and concept) the
    last position at the concepts' site is steered, as ``steer`` does."""
    input_ids, mask, _ = encode_pairs(model, list(prompts))
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    last = mask.sum(1) - 1
    rows = torch.arange(len(prompts), device=model.device)
    target = torch.tensor(list(targets), device=model.device)
    with torch.no_grad(), model.trace(input_ids=input_ids, attention_mask=mask):
        if concepts is not None:
            units, layer, site = concepts.unit_directions(model.device), concepts.layer, concepts.site
            h = read(model, layer, site)
            write(model, layer, site, add_directions(h, coefficients.to(model.device), units, last,
                                                     concepts.steering_scale))
        logits = model.unembed.output[rows, last][:, target].save()
    return logits.float().cpu()


def detection_quality(model: Model, concepts: Concepts, examples: Mapping[str, Sequence[Any]], *,
                      negatives: Sequence[str] = (), markers: tuple[str, str] = ("[", "]"),
                      batch_size: int = 32):
    """Token-level precision, recall and F1 of each concept named in ``examples`` (labelled texts,
    as for ``Concepts.from_examples``; use texts held out from the ones the concepts were built and
    calibrated on). Returns a DataFrame: concept, tp, fp, fn, precision, recall, f1."""
    import pandas as pd

    unknown = [n for n in examples if n not in concepts]
    if unknown:
        raise KeyError(f"detection_quality: no concepts {unknown} in the dictionary ({concepts.names})")
    data = Labelled.build(examples, negatives, markers)
    which = [concepts.names.index(n) for n in data.names]
    tp = torch.zeros(len(which))
    fp = torch.zeros(len(which))
    fn = torch.zeros(len(which))
    for start in range(0, len(data.texts), batch_size):
        rows = list(range(start, min(start + batch_size, len(data.texts))))
        texts = [data.texts[r] for r in rows]
        enc = tokenize(model, texts, offsets=True)
        valid = enc["attention_mask"].bool().cpu() & ~special_mask(model.tokenizer, enc["input_ids"].cpu())
        labels = data.token_labels(rows, enc["offset_mapping"], valid)
        found = detect(model, texts, concepts, batch_size=batch_size).active[..., which]
        found = found[:, : labels.shape[1]] & valid.unsqueeze(-1)
        tp += (found & labels).sum((0, 1))
        fp += (found & ~labels).sum((0, 1))
        fn += (~found & labels).sum((0, 1))
    precision = tp / (tp + fp).clamp_min(1)
    recall = tp / (tp + fn).clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return pd.DataFrame({"concept": data.names, "tp": tp.int().numpy(), "fp": fp.int().numpy(),
                         "fn": fn.int().numpy(), "precision": precision.numpy(), "recall": recall.numpy(),
                         "f1": f1.numpy()})
