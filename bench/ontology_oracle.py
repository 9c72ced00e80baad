"""ActivationReasoning on the ontology demo model with ground-truth facts instead of detected ones.

AR = detection + rules + steering. This benchmark replaces detection by the task's own labels
(each question's facts are its stated category and ``asks_<queried>``), keeps the shipped rules
and the shipped concepts' steering directions, and measures answer accuracy at 1, 3 and 5 hops
on held-out questions: how far AR gets on this model when detection is perfect, next to the
accuracy ``python -m interplab.zoo.ontology_concepts`` measures with detection. Two steering
variants: every concept the rules derive (AR's design, what ``il.reasoning.evaluate`` does: for
a k-hop question the stated category's k ancestors and the answer) and the answer concept only.

    PYTHONPATH=src python bench/ontology_oracle.py [--n 200] [--strengths 1.25 2.5 5 10 20]

Prints one JSON object: base and oracle-facts AR accuracy per hop depth, variant and strength.
"""

from __future__ import annotations

import argparse
import json

import torch

import interplab as il
from interplab.reasoning import Concepts, parse_rules, steer
from interplab.reasoning.evaluate import answer_ids
from interplab.tasks import ontology

HOPS = (1, 3, 5)
ANSWER_CONCEPTS = ("answer_true", "answer_false")


def answer_logits(model, prompts: list[str], concepts: Concepts, strengths: dict[str, float],
                  targets: list[int]) -> torch.Tensor:
    """Logits of the answer words after each prompt ``[n, 2]``, steered by ``strengths`` at the last position."""
    enc = model.encode(prompts, padding_side="left")
    with torch.no_grad(), model.trace(**enc):
        if strengths:
            steer(model, concepts, strengths)
        logits = model.unembed.output[:, -1][:, targets].save()
    return logits.float().cpu()


def accuracy(model, questions, concepts: Concepts, rules, strength: float | None, targets: list[int],
             answer_only: bool = False) -> float:
    """Share answered right; ``strength=None`` is the base model, otherwise AR on the true facts
    (steering every derived concept, or with ``answer_only`` the answer concepts alone)."""
    steerable = ANSWER_CONCEPTS if answer_only else concepts.names
    groups: dict[tuple, list] = {}
    for q in questions:
        derived = rules.infer({q.stated, f"asks_{q.queried}"}).derived if strength is not None else ()
        key = tuple(sorted(n for n in derived if n in steerable))
        groups.setdefault(key, []).append(q)
    right = 0
    for names, group in groups.items():
        logits = answer_logits(model, [q.prompt for q in group], concepts, {n: strength for n in names}, targets)
        said = [ontology.ANSWERS[i] for i in logits.argmax(-1).tolist()]
        right += sum(s == q.answer for s, q in zip(said, group))
    return right / len(questions)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="questions per hop depth")
    parser.add_argument("--seed", type=int, default=2, help="question seed (2: the test set of ontology_concepts)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.25, 2.5, 5.0, 10.0, 20.0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = il.zoo.path("ontology")
    model = il.zoo.load("ontology")
    concepts = Concepts.load(folder / "concepts")
    rules = parse_rules((folder / "rules.txt").read_text(), known=concepts.names)
    targets = answer_ids(model, ontology.ANSWERS)
    report: dict = {"n_per_hop": args.n, "seed": args.seed, "split": "test", "dictionary": concepts.metadata,
                    "accuracy": {}}
    for hops in HOPS:
        qs = ontology.questions(args.n, hops, seed=args.seed, split="test")
        row = {"base": accuracy(model, qs, concepts, rules, None, targets)}
        row |= {f"ar_true_facts@{s:g}": accuracy(model, qs, concepts, rules, s, targets) for s in args.strengths}
        row |= {f"ar_true_facts_answer_only@{s:g}": accuracy(model, qs, concepts, rules, s, targets, answer_only=True)
                for s in args.strengths}
        report["accuracy"][str(hops)] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
