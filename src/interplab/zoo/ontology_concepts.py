"""Build the ontology demo model's concept dictionaries with interplab's reasoning instrument, and
measure ActivationReasoning on it.

    python -m interplab.zoo.ontology_concepts [--model src/interplab/zoo/ontology] [--seed 0]

Concepts (read at the SAE's layer; see docs/reasoning.md, "The ontology demo"), labelled on questions of
the "train" split of ``interplab.tasks.ontology`` (spans from ``Question.concept_spans``):

- ``<category>``: "the entity is a <category>", at the category word of the membership sentence;
- ``asks_<category>``: at the category word of the question;
- ``answer_true`` / ``answer_false``: at the last prompt token of 1-hop questions answered True /
  False, built on those prompts alone (the model answers them right, so the direction carries its
  answer; labels at 3 and 5 hops, where it is at chance, or their last tokens as negatives, blur
  the direction: steering by the true facts' answer then stays near chance, see
  bench/ontology_oracle.py).
  These two only steer (they get no threshold, so they are never detected): what the model itself
  believes about the answer is no fact for the rules.

Three dictionaries: DiffMean, LDA (DiffMean steering, whitened detection) and SAE features
(top-``k`` weighted features of the shipped SAE). In each dictionary the two families are slots
(``Concepts`` docstring): ``stated`` gates the categories, ``asked`` the ``asks_`` concepts, and
LDA among each slot's tokens (over the residual, or the SAE's codes) says which member fills it;
``--no-slots`` builds one-vs-rest detectors instead, for comparison. One-vs-rest
detectors cannot do that here: each must fire on "this role and this category", and the residual
separates the role and the category well but not their conjunction (token precision 0.02-0.08
at recall 0.97, where the slots reach about 0.97 / 0.98). The rules are ``ontology.rules_text()`` less
the answer rules of never-asked categories (``rules.txt``). AR steers only the answer concepts
(``steer=``): the categories the rules conclude along the chain are facts for the rules, not
what the model reads at the answer position. For each dictionary the steering strength is chosen
on "train" questions, then accuracy at 1, 3 and 5 hops (base model vs AR)
and token-level detection precision / recall are measured on the "test" split. The dictionary
with the best validation accuracy is saved as ``concepts.*``; the rule editor's round trip
(edit -> diagnostics -> re-inference) is timed on it. The numbers go to ``reasoning.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ..model import load
from ..reasoning import SAE, Concepts, check_rules, detection_quality, evaluate, parse_rules, reason
from ..tasks import ontology

HOPS = (1, 3, 5)
ANSWER_CONCEPTS = ("answer_true", "answer_false")
STRENGTHS = (2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)  # in units of 0.2 x the typical residual norm
REPORT_FILE = "reasoning.json"


def examples(questions: list[ontology.Question]) -> dict[str, list[tuple[str, list[tuple[int, int]]]]]:
    """Labelled prompts per detected concept, in a fixed order. Concepts the task never shows are
    left out: the roots are never stated (they are only derived) and the leaves never asked."""
    names = [*ontology.CATEGORIES, *(f"asks_{c}" for c in ontology.CATEGORIES)]
    out: dict[str, list] = {name: [] for name in names}
    for q in questions:
        for name, span in q.concept_spans().items():
            out[name].append((q.prompt, [span]))
    return {name: items for name, items in out.items() if items}


def answer_examples(questions: list[ontology.Question]) -> dict[str, list[tuple[str, list[tuple[int, int]]]]]:
    """The answer concepts' labels: the last prompt token of 1-hop questions answered True / False.
    The model answers those right, so its residual there carries the answer; the other tokens of
    the same prompts (the last tokens of the other answer among them) are the negatives."""
    out: dict[str, list] = {name: [] for name in ANSWER_CONCEPTS}
    for q in questions:
        if q.hops == 1 and q.stated not in ontology.HELD_OUT_STATED:  # keep held-out 1-hop answers unseen
            out["answer_true" if q.answer == "True" else "answer_false"].append(
                (q.prompt, [(len(q.prompt) - 1, len(q.prompt))]))
    return out


def add_answer_concepts(concepts: Concepts, answers: Concepts) -> None:
    """Copy the (steer-only) answer concepts, built on their own prompts, into ``concepts``."""
    for name in ANSWER_CONCEPTS:
        a = answers[name]
        if a.uses_sae:
            concepts.add(name, features=a.features, weights=a.weights, method=a.method, info=a.info)
        else:
            concepts.add(name, direction=a.direction, method=a.method, info=a.info)


def usable_rules(text: str, known: list[str]) -> str:
    """The lines of rule text whose concepts are all in the dictionary or concluded by some rule
    (the answer rules of never-asked categories go)."""
    concluded = parse_rules(text).heads
    keep = [line for line in text.splitlines()
            if all(name in known or name in concluded for name in parse_rules(line).concepts)]
    return "\n".join(keep) + "\n"


def search_questions(n: int, seed: int, split: str) -> list[ontology.Question]:
    """Questions to label concepts on: ``ontology.search_questions`` (every category stated) for
    "train", held-out questions for "test"."""
    if split == "train":
        return [q for hops in range(1, 6) for q in ontology.search_questions(n, hops, seed=seed)]
    return [q for hops in range(1, 6) for q in ontology.questions(n, hops, seed=seed, split=split)]


def slots(labelled: dict) -> dict[str, list[str]]:
    """The two slots: the stated category and the asked one."""
    return {"stated": [n for n in labelled if not n.startswith("asks_")],
            "asked": [n for n in labelled if n.startswith("asks_")]}


def dictionary(model, sae: SAE, questions: list[ontology.Question], method: str, *, k: int = 5,
               criterion: str = "balanced_accuracy", use_slots: bool = True) -> Concepts:
    """One dictionary of the task's concepts at the SAE's layer: ``method`` "diffmean", "lda" or
    "sae" (top-``k`` weighted features), in slots or one-vs-rest, with the steer-only answer
    concepts added."""
    labelled, answers = examples(questions), answer_examples(questions)
    groups = slots(labelled) if use_slots else None
    if method == "sae":
        concepts = Concepts.from_sae(model, sae.layer, sae, labelled, k=k, criterion=criterion, slots=groups)
        add_answer_concepts(concepts, Concepts.from_sae(model, sae.layer, sae, answers, k=k))
    else:
        concepts = Concepts.from_examples(model, sae.layer, labelled, method=method, criterion=criterion,
                                          slots=groups)
        add_answer_concepts(concepts, Concepts.from_examples(model, sae.layer, answers, method="diffmean"))
    steer_only(concepts)
    return concepts


def steer_only(concepts: Concepts) -> None:
    for name in ANSWER_CONCEPTS:
        concepts.set_threshold(name, threshold=float("nan"), global_threshold=float("nan"))


def family_means(quality) -> dict[str, dict[str, float]]:
    asks = quality["concept"].str.startswith("asks_")
    out = {}
    for family, rows in (("category", quality[~asks]), ("asks", quality[asks])):
        out[family] = {k: round(float(rows[k].mean()), 4) for k in ("precision", "recall", "f1")}
    return out


def round_trip_seconds(model, concepts: Concepts, rules_text: str, prompt: str, repeats: int = 20) -> float:
    """Median time from edited rule text to a new inference over a detection already made, as the
    rule editor does on each edit: diagnostics (``check_rules``), then ``Reasoning.with_rules``."""
    first = reason(model, prompt, concepts, rules_text)
    edited = rules_text + "answer_true and asks_numpus -> sure\n"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        check_rules(edited, known=concepts.names)
        first.with_rules(edited)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(folder: Path, *, n_search: int = 300, n_valid: int = 100, n_test: int = 200, k: int = 5,
        criterion: str = "balanced_accuracy", seed: int = 0, save: bool = True, use_slots: bool = True,
        log=print) -> dict:
    start = time.time()
    model = load(folder)
    sae = SAE.load(folder / "sae.safetensors")
    searched = search_questions(n_search, seed, "train")
    dictionaries = {method: dictionary(model, sae, searched, method, k=k, criterion=criterion, use_slots=use_slots)
                    for method in ("diffmean", "lda", "sae")}
    rules_text = usable_rules(ontology.rules_text(), dictionaries["diffmean"].names)
    rules = parse_rules(rules_text, known=dictionaries["diffmean"].names)
    valid = [q for h in HOPS for q in ontology.questions(n_valid, h, seed=seed + 1, split="train")]
    test = [q for h in HOPS for q in ontology.questions(n_test, h, seed=seed + 2, split="test")]
    held_out = examples(search_questions(n_valid, seed + 3, "test"))
    held_out = {n: items for n, items in held_out.items()
                if n in dictionaries["diffmean"] and n not in ANSWER_CONCEPTS}
    report: dict = {"seed": seed, "layer": sae.layer, "search_prompts": 5 * n_search, "sae_k": k, "slots": use_slots,
                    "threshold_criterion": criterion,
                    "strengths_tried": list(STRENGTHS), "dictionaries": {}}
    for name, concepts in dictionaries.items():
        sweep = {s: float(evaluate(model, valid, concepts, rules, strength=s, steer=ANSWER_CONCEPTS)
                          .accuracy().loc["all", "ar"]) for s in STRENGTHS}
        strength = max(sweep, key=sweep.get)
        result = evaluate(model, test, concepts, rules, strength=strength, steer=ANSWER_CONCEPTS)
        quality = detection_quality(model, concepts, held_out)
        entry = {"strength": strength, "validation_accuracy": sweep, "test": result.to_dict()["accuracy"],
                 "detection": family_means(quality),
                 "detection_per_concept": quality[["concept", "precision", "recall", "f1"]].round(4)
                 .to_dict("records"),
                 "answers_inferred": float(result.frame["steering"].map(bool).mean())}
        report["dictionaries"][name] = entry
        log(f"{name}: strength {strength}, test {entry['test']}, detection {entry['detection']}")
        concepts.metadata |= {"model": folder.name, "task": "interplab.tasks.ontology",
                              "built_by": "interplab.zoo.ontology_concepts", "seed": seed, "strength": strength,
                              "steer": list(ANSWER_CONCEPTS)}
    best = max(report["dictionaries"], key=lambda n: max(report["dictionaries"][n]["validation_accuracy"].values()))
    report["shipped"] = best
    if save:
        dictionaries[best].save(folder / "concepts")
    report["rule_edit_round_trip_s"] = round_trip_seconds(model, dictionaries[best], rules_text, test[0].prompt)
    report["seconds"] = round(time.time() - start, 1)
    if save:
        (folder / "rules.txt").write_text(rules_text)
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path(__file__).parent / "ontology",
                        help="the ontology model folder (with sae.safetensors); outputs are written there")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5, help="SAE features per concept")
    parser.add_argument("--criterion", default="balanced_accuracy", choices=["balanced_accuracy", "f1"],
                        help="how detection thresholds are chosen")
    parser.add_argument("--no-save", action="store_true", help="measure only")
    parser.add_argument("--no-slots", action="store_true",
                        help="one-vs-rest detectors instead of the two slots (for comparison; use with --no-save)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    report = run(args.model, k=args.k, criterion=args.criterion, seed=args.seed, save=not args.no_save,
                 use_slots=not args.no_slots)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
