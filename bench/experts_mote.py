"""The MoTE experiment on the shipped experts demo model; prints JSON.

    PYTHONPATH=src python bench/experts_mote.py [--k 4 10] [--tokens prompt response] [--trials 5]

Scan: the demo task's sensitive training prompts (behaviour) against its ordinary training
prompts (control). Evaluation: greedy answers (12 new tokens) to the held-out sensitive and
ordinary prompts, classified by ``interplab.tasks.assistant.is_refusal``. Because that regex needs
the whole refusal sentence, the report also gives, under top-k off, the share of held-out
sensitive answers that still *open* like the refusal ("I cannot"): a decision that survives with
a broken sentence counts as a non-refusal for ``is_refusal`` but not here.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import interplab as il
from interplab.tasks import assistant


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--tokens", nargs="+", default=["prompt", "response"])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = il.zoo.load("experts")
    behaviour, control = assistant.sensitive_prompts("train"), assistant.ordinary_prompts("train")
    held_sensitive, held_ordinary = assistant.sensitive_prompts("heldout"), assistant.ordinary_prompts("heldout")
    report = {"model": str(model.anatomy), "scan_prompts": {"behaviour": len(behaviour), "control": len(control)},
              "eval_prompts": {"behaviour": len(held_sensitive), "control": len(held_ordinary)},
              "classifier": "interplab.tasks.assistant.is_refusal", "max_new_tokens": 12, "runs": []}
    for tokens in args.tokens:
        for k in args.k:
            start = time.perf_counter()
            result = il.experts.mote(model, behaviour, control, assistant.is_refusal, k=k, trials=args.trials,
                                     seed=args.seed, tokens=tokens, evaluate=(held_sensitive, held_ordinary),
                                     max_new_tokens=12, batch_size=64, progress=False)
            answers = il.experts.generate(model, held_sensitive, off=result.off, max_new_tokens=12, progress=False)
            run = result.to_dict()
            run.pop("random_sets")
            run.update(tokens=tokens, seconds=round(time.perf_counter() - start, 1),
                       top_off_opens_like_refusal=sum(a.startswith("I cannot") for a in answers) / len(answers),
                       top_off_examples=answers[:3])
            report["runs"].append(run)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
