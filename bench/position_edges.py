"""Position-resolved edges on a real model: cost, sparsity, circuits of top edges, and how much of the
top heads' effects act through attention patterns. Prints JSON.

    PYTHONPATH=src python bench/position_edges.py                    # SmolLM2, 8 IOI prompts, one thread
    PYTHONPATH=src python bench/position_edges.py --model gemma3

(a) seconds of position-resolved edges (AtP and RelP; attention layers or heads as targets) next to
AtP node scores, edges summed over positions and one plain forward + backward of the bare model on
the corrupted prompts (parameter gradients included, as in ``bench/circuits.py``): warm-up, then the
median of ``--repeats`` interleaved runs;
(b) how many edges there are, how many are non-zero, and how many carry 90% / 99% of the total
absolute score;
(c) faithfulness of the top-k edge circuits (``--ablation``), and the seconds of one ablation forward;
(d) ``pattern_split`` of the ``--top-heads`` heads at the last position with the largest patching
effect (found by patching every head there), and of the residual stream at the first position where
clean and corrupted prompts differ, at a few layers;
(e) Pearson correlation of the edges' node scores (the sums of each source's edges) of attention
and MLP writes, at every position from the first one where clean and corrupted prompts differ, with
exact patching with attention patterns frozen (``pattern_split``'s ``frozen``, what the edges
estimate to first order) and with plain patching (``total``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from circuits import forward_backward, median_times, pearson

import interplab as il
from interplab.circuits import Node, attribute, faithfulness_sweep, pattern_split, verify


def shares(att) -> dict:
    """Edges needed to carry 90% and 99% of the total absolute score."""
    magnitude = att.edge_scores.values().abs().sort(descending=True).values.double()
    cumulative = magnitude.cumsum(0) / magnitude.sum()
    return {f"edges_for_{int(f * 100)}pct": int((cumulative < f).sum()) + 1 for f in (0.9, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="a zoo name (smollm2, gemma3) or a model folder")
    parser.add_argument("--n", type=int, default=8, help="IOI prompts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ablation", default="corrupt", help="mean, zero or corrupt")
    parser.add_argument("--top-heads", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = il.zoo.load(args.model, device=args.device) if args.model in ("smollm2", "gemma3") else \
        il.load(args.model, device=args.device)
    task = il.tasks.ioi(model, n=args.n, seed=0)
    enc = task.encode(model)
    a = model.anatomy

    runs = {
        "forward_backward": forward_backward(model, task),
        "atp_nodes": lambda: attribute(model, task, method="atp"),
        "atp_edges_summed": lambda: attribute(model, task, method="atp", level="edge", positions=False),
        "atp_edges": lambda: attribute(model, task, method="atp", level="edge"),
        "atp_edges_heads": lambda: attribute(model, task, method="atp", level="edge", heads=True),
        "relp_edges": lambda: attribute(model, task, method="relp", level="edge"),
    }
    for fn in runs.values():  # warm-up
        fn()
    times = median_times(runs, args.repeats)
    model.hf.zero_grad(set_to_none=True)

    sparsity = {}
    for name, heads in (("attention_targets", False), ("head_targets", True)):
        every = attribute(model, task, method="atp", level="edge", heads=heads, keep=None)
        kept = attribute(model, task, method="atp", level="edge", heads=heads)
        sparsity[name] = {"edges": every.edge_count, "nonzero": every.edge_scores._nnz(),
                          "kept_by_default": kept.edge_scores._nnz(), "kept_share": round(kept.edge_mass, 4),
                          **shares(every), "json_megabytes": round(len(kept.to_json()) / 2**20, 2)}

    att = attribute(model, task, method="atp", level="edge")
    start = time.perf_counter()
    curve = faithfulness_sweep(model, task, att, sizes=[100, 1000, 10_000], ablation=args.ablation)
    sweep_seconds = time.perf_counter() - start
    start = time.perf_counter()
    il.circuits.ablate_many(model, task, [[e for e, _ in att.ranking()[:1000]]], ablation=args.ablation)
    one_ablation = time.perf_counter() - start

    last = enc.seq_len - 1
    heads = [Node("head", layer, h, last) for layer in range(a.n_layers) for h in range(a.n_heads)]
    exact = verify(model, task, heads, progress=False).exact
    top = sorted(heads, key=lambda n: -abs(exact[n]))[:args.top_heads]
    differ = int((enc.clean_ids != enc.corrupt_ids).any(0).nonzero()[0])
    resid = [Node("resid", layer, None, differ) for layer in sorted({0, a.n_layers // 4, a.n_layers // 2,
                                                                     3 * a.n_layers // 4})]
    split = pattern_split(model, task, top + resid, progress=False)

    writes = [Node(c, layer, None, p) for layer in range(a.n_layers) for c in ("attn", "mlp")
              for p in range(differ, enc.seq_len)]
    patched = pattern_split(model, task, writes, progress=False)
    fidelity = {}
    for method in ("atp", "relp"):
        scores = attribute(model, task, method=method, level="edge").scores
        for component in ("attn", "mlp"):
            chosen = [n for n in writes if n.component == component]
            estimate = torch.tensor([float(scores[component][n.layer, n.position]) for n in chosen])
            for kind, truth in (("frozen", patched.frozen), ("total", patched.total)):
                fidelity[f"{method}_{component}_vs_{kind}"] = round(
                    pearson(estimate, torch.tensor([truth[n] for n in chosen])), 4)

    fb = times["forward_backward"]
    print(json.dumps({
        "model": model.name, "family": a.family, "layers": a.n_layers, "heads": a.n_heads, "device": args.device,
        "threads": torch.get_num_threads(), "prompts": enc.n, "positions": enc.seq_len,
        "labels": list(enc.labels),
        "metric": {"clean": round(split.clean_metric, 4), "corrupt": round(split.corrupt_metric, 4)},
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "over_forward_backward": {k: round(v / fb, 2) for k, v in times.items()},
        "over_atp_nodes": {k: round(v / times["atp_nodes"], 2) for k, v in times.items()},
        "sparsity": sparsity,
        "faithfulness_of_top_edges": {"ablation": args.ablation, "sizes": list(curve.sizes),
                                      "faithfulness": [round(f, 4) for f in curve.faithfulness],
                                      "total_edges": curve.total, "sweep_seconds": round(sweep_seconds, 1),
                                      "one_ablation_forward_seconds": round(one_ablation, 2)},
        "node_scores_vs_patching": fidelity,
        "pattern_split": [{"node": n.id, "total": round(split.total[n], 4), "frozen": round(split.frozen[n], 4),
                           "through_patterns": round(split.through_patterns[n], 4)} for n in split.nodes],
    }, indent=2))


if __name__ == "__main__":
    main()
