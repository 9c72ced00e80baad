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

Each forward pass is made once and reused: the base model's answers, detection per dictionary, one
steered pass per strength tried. Prints one JSON object (and writes it to --out). One thread; about
30 minutes of CPU on SmolLM2 with the defaults (100 test questions per depth):

    PYTHONPATH=src python bench/ontology_real.py --model smollm2 --out bench/results/ontology_smollm2.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from real_report import finish

import interplab as il
from interplab.reasoning import Concepts, detect, detection_quality, parse_rules
from interplab.reasoning.evaluate import answer_ids, answer_logits
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

STRENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BATCH = 16  # prompts per forward pass (the full logits of 16 prompts of ~100 tokens: about 0.3 GB)


def answer_word_examples(questions: list[ontology.Question]) -> dict[str, list]:
    """The answer concepts labelled on the answer word itself, in ``prompt + " " + answer``: what the
    model's residual holds where the answer is said, for a model that cannot answer (so its last
    prompt token carries no answer)."""
    out: dict[str, list] = {name: [] for name in ANSWER_CONCEPTS}
    for q in questions:
        out["answer_true" if q.answer == "True" else "answer_false"].append(
            (q.text, [(len(q.prompt) + 1, len(q.text))]))
    return out


def dictionary(model, layer: int, questions: list[ontology.Question], method: str,
               answer_words: bool = False) -> Concepts:
    """The task's concepts at ``layer`` by ``method`` ("diffmean" or "lda"), in the two slots, with
    the steer-only answer concepts (DiffMean) added: labelled at the last prompt token of 1-hop
    questions, as for the demo model, or (``answer_words``) at the answer word."""
    labelled = examples(questions)
    concepts = Concepts.from_examples(model, layer, labelled, method=method, slots=slots(labelled))
    answers = answer_word_examples(questions) if answer_words else answer_examples(questions)
    add_answer_concepts(concepts, Concepts.from_examples(model, layer, answers))
    steer_only(concepts)
    return concepts


def logits(model, questions, targets, concepts: Concepts | None = None, steering: torch.Tensor | None = None):
    """Answer logits ``[n, 2]`` of the questions, steered by ``steering`` ``[n, n_concepts]`` when given."""
    out = []
    for start in range(0, len(questions), BATCH):
        rows = slice(start, start + BATCH)
        prompts = [q.prompt for q in questions[rows]]
        out.append(answer_logits(model, prompts, targets, concepts, None if steering is None else steering[rows]))
    return torch.cat(out)


def answer_steering(concepts: Concepts, derived: list[frozenset[str]]) -> torch.Tensor:
    """``[n, n_concepts]``: 1 for each answer concept the rules derived for the question (AR steers
    only those, ``steer=ANSWER_CONCEPTS``); times a strength, the steering applied."""
    out = torch.zeros(len(derived), len(concepts))
    for i, names in enumerate(derived):
        for name in ANSWER_CONCEPTS:
            if name in names:
                out[i, concepts.names.index(name)] = 1.0
    return out


def detected_derivations(model, questions, concepts: Concepts, rules) -> list[frozenset[str]]:
    """What the rules derive from the concepts detected in each question's prompt."""
    found = detect(model, [q.prompt for q in questions], concepts, batch_size=BATCH)
    return [rules.infer(found.facts(i)).derived for i in range(len(questions))]


def accuracy(said: torch.Tensor, questions) -> float:
    return round(sum(ontology.ANSWERS[int(i)] == q.answer for i, q in zip(said.argmax(-1), questions))
                 / len(questions), 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--layer", type=int, default=None, help="default: the middle layer")
    parser.add_argument("--n-search", type=int, default=40, help="labelled questions per depth 1..5")
    parser.add_argument("--n-valid", type=int, default=16, help="train-split questions per depth to pick the strength")
    parser.add_argument("--n-test", type=int, default=100, help="test-split questions per depth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="diffmean,lda")
    parser.add_argument("--strengths", default=",".join(map(str, STRENGTHS)),
                        help="strengths to choose from on the train questions (negative: steer away from the "
                             "derived answer concept)")
    parser.add_argument("--answer-words", action="store_true",
                        help="label the answer concepts at the answer word instead of the last prompt token")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    model = il.zoo.load(args.model)
    layer = model.anatomy.n_layers // 2 if args.layer is None else args.layer
    searched = search_questions(args.n_search, args.seed, "train")
    dictionaries = {m: dictionary(model, layer, searched, m, args.answer_words) for m in args.methods.split(",")}
    names = next(iter(dictionaries.values())).names
    rules = parse_rules(usable_rules(ontology.rules_text(), names), known=names)
    valid = [q for h in HOPS for q in ontology.questions(args.n_valid, h, seed=args.seed + 1, split="train")]
    test = [q for h in HOPS for q in ontology.questions(args.n_test, h, seed=args.seed + 2, split="test")]
    held_out = {n: items for n, items in examples(search_questions(args.n_valid, args.seed + 3, "test")).items()
                if n in names}
    targets = answer_ids(model, ontology.ANSWERS)
    print(f"fitted in {time.time() - start:.0f} s", flush=True)
    base_valid, base_test = logits(model, valid, targets), logits(model, test, targets)
    true_derived = [rules.infer({q.stated, f"asks_{q.queried}"}).derived for q in test]
    strengths = [float(x) for x in args.strengths.split(",")]
    report: dict = {"model": args.model, "layer": layer, "search_questions": len(searched),
                    "base_says_true": {str(h): round(float((base_test[[q.hops == h for q in test]].argmax(-1) == 0)
                                                            .float().mean()), 4) for h in HOPS},
                    "answer_concepts": "answer word" if args.answer_words else "last prompt token of 1-hop questions",
                    "valid_questions": len(valid), "test_per_depth": args.n_test, "strengths_tried": strengths,
                    "base": {str(h): accuracy(base_test[[q.hops == h for q in test]], [q for q in test if q.hops == h])
                             for h in HOPS},
                    "dictionaries": {}}
    print("base", report["base"], flush=True)
    for method, concepts in dictionaries.items():
        unit = answer_steering(concepts, detected_derivations(model, valid, concepts, rules))
        sweep = {s: accuracy(logits(model, valid, targets, concepts, s * unit), valid) if unit.any()
                 else accuracy(base_valid, valid) for s in strengths}
        strength = max(sweep, key=sweep.get)
        derived = detected_derivations(model, test, concepts, rules)
        steered = logits(model, test, targets, concepts, strength * answer_steering(concepts, derived))
        oracle = logits(model, test, targets, concepts, strength * answer_steering(concepts, true_derived))
        by_depth = {}
        for hops in HOPS:
            at = [q.hops == hops for q in test]
            qs = [q for q in test if q.hops == hops]
            right = [("answer_true" if q.answer == "True" else "answer_false") in d
                     for q, d, a in zip(test, derived, at) if a]
            by_depth[str(hops)] = {
                "n": len(qs), "base": report["base"][str(hops)], "ar": accuracy(steered[at], qs),
                "rules_derive_the_right_answer": round(sum(right) / len(qs), 4),
                "answer_inferred": round(sum(bool(set(ANSWER_CONCEPTS) & d) for d, a in zip(derived, at) if a)
                                         / len(qs), 4),
                "ar_true_facts": accuracy(oracle[at], qs),
            }
            print(method, hops, by_depth[str(hops)], flush=True)
        quality = detection_quality(model, concepts, held_out)
        report["dictionaries"][method] = {"strength": strength, "validation_accuracy": sweep, "test": by_depth,
                                          "detection": family_means(quality)}
        print(method, strength, sweep, report["dictionaries"][method]["detection"], flush=True)
    finish(report, start, args.out)


if __name__ == "__main__":
    main()
