"""ActivationReasoning end to end on a real model: the ontology questions (``interplab.tasks.ontology``,
1 / 3 / 5 hops, held-out names) with concepts fitted on the model's own residuals.

The same recipe as the ontology demo (``interplab.zoo.ontology_concepts``), on a real model at its
middle layer: concepts labelled on ``ontology.search_questions`` (the stated category at the fact's
category word, ``asks_<category>`` at the question's, in two slots; the steer-only answer concepts
``answer_true`` / ``answer_false`` at the last prompt token of 1-hop questions answered True / False),
DiffMean and LDA dictionaries, the same rules (``ontology.rules_text``), only the answer concepts
steer. The steering strength is chosen on "train" questions, then base and AR accuracy are measured
on "test" questions (held-out names), with token-level detection precision / recall of the slots.
Two references: AR with the task's true facts instead of detected ones (how far the steering
alone can carry the answer), and detection alone (how often the rules derive the right answer).

Prints one JSON object (and writes it to --out). One thread; about 30 minutes on SmolLM2 with the
defaults (100 test questions per depth):

    PYTHONPATH=src python bench/ontology_real.py --model smollm2 --out bench/results/ontology_smollm2.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import interplab as il
from interplab.reasoning import Concepts, detection_quality, evaluate, parse_rules, steer
from interplab.reasoning.evaluate import answer_ids
from interplab.tasks import ontology
from interplab.zoo.ontology_concepts import (
    ANSWER_CONCEPTS,
    HOPS,
    add_answer_concepts,
    answer_examples,
    examples,
    family_means,
    search_questions,
    slots,
    steer_only,
    usable_rules,
)

STRENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)


def dictionary(model, layer: int, questions: list[ontology.Question], method: str) -> Concepts:
    """The task's concepts at ``layer`` by ``method`` ("diffmean" or "lda"), in the two slots, with
    the steer-only answer concepts (DiffMean) added."""
    labelled = examples(questions)
    concepts = Concepts.from_examples(model, layer, labelled, method=method, slots=slots(labelled))
    add_answer_concepts(concepts, Concepts.from_examples(model, layer, answer_examples(questions)))
    steer_only(concepts)
    return concepts


def true_facts_accuracy(model, questions, concepts: Concepts, rules, strength: float, targets: list[int]) -> float:
    """AR with the task's true facts (the stated category, ``asks_<queried>``): the rules derive the
    answer concept, which alone steers the last position."""
    right = 0
    for q in questions:
        derived = rules.infer({q.stated, f"asks_{q.queried}"}).derived
        names = [n for n in ANSWER_CONCEPTS if n in derived]
        enc = model.encode([q.prompt])
        with torch.no_grad(), model.trace(**enc):
            if names:
                steer(model, concepts, {n: strength for n in names})
            logits = model.unembed.output[:, -1][:, targets].save()
        right += ontology.ANSWERS[int(logits.argmax(-1))] == q.answer
    return right / len(questions)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--layer", type=int, default=None, help="default: the middle layer")
    parser.add_argument("--n-search", type=int, default=40, help="labelled questions per depth 1..5")
    parser.add_argument("--n-valid", type=int, default=20, help="train-split questions per depth to pick the strength")
    parser.add_argument("--n-test", type=int, default=100, help="test-split questions per depth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    model = il.zoo.load(args.model)
    layer = model.anatomy.n_layers // 2 if args.layer is None else args.layer
    searched = search_questions(args.n_search, args.seed, "train")
    dictionaries = {m: dictionary(model, layer, searched, m) for m in ("diffmean", "lda")}
    names = dictionaries["diffmean"].names
    rules_text = usable_rules(ontology.rules_text(), names)
    rules = parse_rules(rules_text, known=names)
    valid = [q for h in HOPS for q in ontology.questions(args.n_valid, h, seed=args.seed + 1, split="train")]
    test = {h: ontology.questions(args.n_test, h, seed=args.seed + 2, split="test") for h in HOPS}
    held_out = {n: items for n, items in examples(search_questions(args.n_valid, args.seed + 3, "test")).items()
                if n in names}
    targets = answer_ids(model, ontology.ANSWERS)
    report: dict = {"model": args.model, "layer": layer, "search_questions": len(searched),
                    "valid_questions": len(valid), "test_per_depth": args.n_test, "strengths_tried": list(STRENGTHS),
                    "dictionaries": {}}
    print(f"fitted in {time.time() - start:.0f} s", flush=True)
    for method, concepts in dictionaries.items():
        sweep = {s: float(evaluate(model, valid, concepts, rules, strength=s, steer=ANSWER_CONCEPTS)
                          .accuracy().loc["all", "ar"]) for s in STRENGTHS}
        strength = max(sweep, key=sweep.get)
        by_depth = {}
        for hops, questions in test.items():
            result = evaluate(model, questions, concepts, rules, strength=strength, steer=ANSWER_CONCEPTS)
            frame = result.frame
            derived_right = frame.apply(lambda r: ("answer_true" if r["answer"] == "True" else "answer_false")
                                        in r["derived"], axis=1)
            by_depth[str(hops)] = {
                "n": len(frame), "base": round(float((frame["base"] == frame["answer"]).mean()), 4),
                "ar": round(float((frame["ar"] == frame["answer"]).mean()), 4),
                "rules_derive_the_right_answer": round(float(derived_right.mean()), 4),
                "answer_inferred": round(float(frame["steering"].map(bool).mean()), 4),
                "ar_true_facts": round(true_facts_accuracy(model, questions, concepts, rules, strength, targets), 4),
            }
            print(method, hops, by_depth[str(hops)], flush=True)
        quality = detection_quality(model, concepts, held_out)
        report["dictionaries"][method] = {"strength": strength, "validation_accuracy": sweep, "test": by_depth,
                                          "detection": family_means(quality)}
        print(method, strength, report["dictionaries"][method]["detection"], flush=True)
    report["seconds"] = round(time.time() - start, 1)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
