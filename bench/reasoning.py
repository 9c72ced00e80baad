"""Benchmark: concept detection, vectorised against a per-token Python loop over the same SAE codes.

Both paths start from the same SAE codes of a batch of texts and produce the same
[texts, tokens, concepts] activity (checked): the vectorised one is what `detect` does
(`Concepts.score` on all tokens and concepts at once, then one comparison with the thresholds);
the reference loops over tokens and concepts in Python. The SAE encoding both need is timed
apart (`sae_encode_s`). Also reports the end-to-end `detect`
throughput (model forward to the concept layer + SAE encoding + scoring), and the edit ->
diagnostics -> re-inference round trip of the rule editor (`check_rules`, then
`Reasoning.with_rules` over a detection already made).

Model: the shipped ontology demo model and its SAE when present (``--model ontology``), else a
tiny random llama with a random TopK SAE. Times are wall-clock seconds, medians of --repeats runs.
Prints one JSON object. Usage: PYTHONPATH=src python bench/reasoning.py [--model tiny] [--texts 64]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

import interplab as il
from interplab.reasoning import SAE, Concepts, check_rules, detect, reason


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def tiny_setup(n_concepts: int, k: int, seed: int):
    model = il.zoo.tiny("llama", n_layers=3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    sae = SAE(torch.randn(32, 1024, generator=g) * 0.3, torch.randn(1024, 32, generator=g), torch.zeros(1024),
              torch.zeros(32), activation="topk", k=16, layer=1)
    concepts = Concepts(1, sae=sae)
    for i in range(n_concepts):
        concepts.add(f"c{i}", features=torch.randperm(1024, generator=g)[:k].tolist(),
                     weights=torch.rand(k, generator=g).tolist(), threshold=0.05)
    words = [w for w in model.tokenizer.get_vocab() if not w.startswith("<")]
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(12, 40))) for _ in range(512)]
    return model, concepts, texts


def ontology_setup(n_concepts: int, k: int, seed: int):
    from interplab.tasks import ontology

    model = il.zoo.load("ontology")
    sae = SAE.load(il.zoo.path("ontology") / "sae.safetensors")
    concepts = Concepts(sae.layer, sae=sae)
    g = torch.Generator().manual_seed(seed)
    for i in range(n_concepts):
        concepts.add(f"c{i}", features=torch.randperm(sae.d_sae, generator=g)[:k].tolist(),
                     weights=torch.rand(k, generator=g).tolist(), threshold=0.05)
    texts = [q.prompt for h in (1, 3, 5) for q in ontology.questions(200, h, seed=seed)]
    return model, concepts, texts


def loop_detection(codes: torch.Tensor, valid: torch.Tensor, concepts: Concepts) -> torch.Tensor:
    """The reference: one token, one concept at a time (each token's codes read once as a list)."""
    table = [(c.features.tolist(), c.weights.tolist(), c.threshold) for c in concepts]
    active = torch.zeros(*codes.shape[:2], len(table), dtype=torch.bool)
    for t in range(codes.shape[0]):
        for p in range(codes.shape[1]):
            if not valid[t, p]:
                continue
            row = codes[t, p].tolist()
            for c, (features, weights, threshold) in enumerate(table):
                score = 0.0
                for i, w in zip(features, weights):
                    score += w * row[i]
                active[t, p, c] = score >= threshold
    return active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "ontology"], default=None,
                        help="default: ontology if shipped, else tiny")
    parser.add_argument("--texts", type=int, default=64, help="texts in the batch")
    parser.add_argument("--concepts", type=int, default=30)
    parser.add_argument("--k", type=int, default=5, help="SAE features per concept")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.model or ("ontology" if "ontology" in il.zoo.available() else "tiny")
    model, concepts, texts = (ontology_setup if name == "ontology" else tiny_setup)(args.concepts, args.k, args.seed)
    texts = texts[: args.texts]

    enc = model.encode(texts, padding_side="right")
    valid = enc["attention_mask"].bool()
    with torch.no_grad(), model.trace(**enc) as tracer:
        h = model.blocks[concepts.layer].envoy.output.save()
        tracer.stop()
    encode_s, codes = timed(lambda: concepts.sae.encode(h), args.repeats)
    local, _ = concepts.thresholds()

    def vectorised() -> torch.Tensor:
        return (concepts.score(h, codes) >= local) & valid.unsqueeze(-1)

    n_tokens = int(valid.sum())
    fast_s, fast = timed(vectorised, args.repeats)
    loop_s, slow = timed(lambda: loop_detection(codes, valid, concepts), 1)
    assert torch.equal(fast, slow), "vectorised and per-token detection disagree"
    detect_s, _ = timed(lambda: detect(model, texts, concepts, batch_size=args.texts), args.repeats)

    rule_text = "\n".join(f"c{i} and not c{i + 1} -> d{i}" for i in range(0, args.concepts - 1, 2))
    first = reason(model, texts[0], concepts, rule_text)
    edited = rule_text + "\nd0 or d2 -> e0\n"

    def round_trip():
        return check_rules(edited, known=concepts.names), first.with_rules(edited)

    round_trip_s, _ = timed(round_trip, args.repeats)
    print(json.dumps({
        "model": name, "seed": args.seed, "threads": args.threads, "texts": len(texts), "tokens": n_tokens,
        "concepts": len(concepts), "features_per_concept": args.k, "d_sae": concepts.sae.d_sae,
        "detection_from_codes": {"vectorised_s": fast_s, "per_token_loop_s": loop_s, "speedup": loop_s / fast_s,
                                 "vectorised_tokens_per_s": n_tokens / fast_s,
                                 "loop_tokens_per_s": n_tokens / loop_s, "sae_encode_s": encode_s},
        "detect_end_to_end": {"seconds": detect_s, "tokens_per_s": n_tokens / detect_s},
        "rule_edit_round_trip_s": round_trip_s,
    }, indent=2))


if __name__ == "__main__":
    main()
