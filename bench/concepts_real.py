"""Concepts on a real model: held-out detection per layer, with and without attention sinks.

For each layer, DiffMean and LDA concepts (animal, food, vehicle) are fitted on the "train"
sentences of ``interplab.tasks.everyday`` (thresholds at AR's balanced-accuracy ROC point) and
measured on its held-out "test" sentences: token-level precision and recall per concept
(``detection_quality``), their means over the three concepts, and the pooled counts. Each is
run twice: leaving attention sinks out (``sink_ratio`` 6, the default) and keeping every token
(``sink_ratio=inf``, what interplab did before). Also reports, per layer, how many tokens of the
sentences are sinks and at which positions.

Prints one JSON object (and writes it to --out). Usage, one thread, about 5 minutes on SmolLM2:

    PYTHONPATH=src python bench/concepts_real.py --model smollm2 --out bench/results/concepts_smollm2.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from real_report import finish

import interplab as il
from interplab.reasoning import Concepts, detection_quality
from interplab.reasoning.residual import SINK_RATIO, residuals, sink_mask, tokenize
from interplab.tasks import everyday

METHODS = ("diffmean", "lda")


def sink_census(model, layer: int) -> dict:
    """How many of the train sentences' real tokens are sinks at ``layer``, and at which positions."""
    texts = [text for text, _ in everyday.sentences("train")]
    enc = tokenize(model, texts, offsets=True)
    keep = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].to(model.device)
    h = residuals(model, enc["input_ids"], enc["attention_mask"], layer)
    sinks = sink_mask(h, keep).cpu()
    norms = h.float().norm(dim=-1).cpu()
    positions = sinks.nonzero()[:, 1].tolist()
    ordinary = norms[keep.cpu() & ~sinks]
    return {"sinks": len(positions), "tokens": int(keep.sum()), "at_position_0": positions.count(0),
            "elsewhere": len(positions) - positions.count(0),
            "median_norm": round(float(ordinary.median()), 2),
            "sink_norm_median": round(float(norms[sinks].median()), 1) if positions else None}


def measure(model, layer: int, method: str, sink_ratio: float) -> dict:
    concepts = Concepts.from_examples(model, layer, everyday.examples("train"), method=method,
                                      negatives=everyday.negatives("train"), sink_ratio=sink_ratio)
    quality = detection_quality(model, concepts, everyday.examples("test"), negatives=everyday.negatives("test"))
    tp, fp, fn = (int(quality[k].sum()) for k in ("tp", "fp", "fn"))
    return {
        "precision": round(float(quality["precision"].mean()), 4),
        "recall": round(float(quality["recall"].mean()), 4),
        "pooled": {"tp": tp, "fp": fp, "fn": fn, "precision": round(tp / max(tp + fp, 1), 4),
                   "recall": round(tp / max(tp + fn, 1), 4)},
        "per_concept": quality[["concept", "precision", "recall"]].round(4).to_dict("records"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="a zoo model name or a model folder")
    parser.add_argument("--layers", default="3,6,9,12,15,18,21,24,27", help="comma-separated decoder layers")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    model = il.zoo.load(args.model) if "/" not in args.model else il.load(args.model)
    layers = [int(x) for x in args.layers.split(",")]
    report: dict = {"model": args.model, "n_layers": model.anatomy.n_layers, "sink_ratio": SINK_RATIO,
                    "train_sentences": len(everyday.sentences("train")),
                    "test_sentences": len(everyday.sentences("test")), "layers": {}}
    for layer in layers:
        row: dict = {"sinks": sink_census(model, layer)}
        for method in METHODS:
            row[method] = {"sinks_left_out": measure(model, layer, method, SINK_RATIO),
                           "all_tokens": measure(model, layer, method, math.inf)}
        report["layers"][str(layer)] = row
        print(layer, {m: {k: (v["precision"], v["recall"]) for k, v in row[m].items()} for m in METHODS},
              flush=True)
    finish(report, start, args.out)


if __name__ == "__main__":
    main()
