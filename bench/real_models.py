"""Circuit methods on the real models: fidelity to activation patching and cost. Prints JSON.

    PYTHONPATH=src python bench/real_models.py                       # both models, both tasks, CPU
    PYTHONPATH=src python bench/real_models.py --device cuda         # on a GPU
    PYTHONPATH=src python bench/real_models.py --models smollm2 --tasks ioi --quick

Models: SmolLM2-135M-Instruct and Gemma 3 270M (``il.zoo.load``; ``make real-models`` builds them).
Tasks: IOI with the repeated name replaced by a third name (``il.tasks.ioi(..., corruption="third")``)
and factual recall (``il.tasks.landmarks``: the city a landmark is in, landmark swapped).

Fidelity: the Pearson correlation of each method's node scores with activation patching (the
ground truth), per component kind, over the nodes at positions from the first difference between
clean and corrupted prompts on (earlier nodes are exactly zero for every method, by causality):
component level (resid, attn, mlp per layer x position) and head level (heads and MLPs per layer x
position, at the last ``--head-positions`` of those positions). Methods: AtP, RelP with every
non-empty subset of the LRP rules, integrated gradients (``--steps`` points, inputs and activations
paths, alone and with each single LRP rule, RelP's default rules and all of them). The patching
ground truth is cached (``--cache``, default
``~/.cache/interplab/bench``), keyed by model, prompts and nodes, so reruns only redo the methods.

Cost (component level, one run each, ``--threads`` torch threads): each method's seconds against
activation patching over all nodes (with the causal skip, as ``attribute`` runs it; timed in the
same run on one forward's worth of nodes and scaled by the copies of the prompts run) and against one
forward + backward of the bare transformers model (last-position logits, parameter gradients
included, as in training); and the causal skip's speed-up (patching every node against patching
with the skip, once per model on IOI, also cached).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

import interplab as il
from interplab.circuits import attribute, lrp
from interplab.circuits.nodes import Node, node_from_id
from interplab.circuits.patching import nodes_per_forward, patch_scores

sys.path.insert(0, str(Path(__file__).parent))
from circuits import pearson, seconds  # bench/circuits.py

TASKS = {
    "ioi": lambda model, n, seed: il.tasks.ioi(model, n=n, seed=seed, corruption="third"),
    "landmarks": lambda model, n, seed: il.tasks.landmarks(model, n=n, seed=seed),
}
LEVEL_COMPONENTS = {"component": ("resid", "attn", "mlp"), "head": ("head", "mlp")}


def method_runs(steps: int, quick: bool) -> dict[str, dict]:
    """Label -> ``attribute`` keyword arguments of every method measured."""
    subsets = [r for k in range(1, len(lrp.RULES) + 1) for r in itertools.combinations(lrp.RULES, k)]
    if quick:
        subsets = [lrp.DEFAULT_RULES, lrp.RULES]
    ig_subsets = [r for r in subsets if len(r) == 1 or r in (lrp.DEFAULT_RULES, lrp.RULES)]
    runs = {"atp": {"method": "atp"}}
    runs |= {f"relp[{'+'.join(r)}]": {"method": "relp", "rules": r} for r in subsets}
    runs[f"ig-inputs-{steps}"] = {"method": "ig", "steps": steps}
    runs[f"ig-activations-{steps}"] = {"method": "ig", "steps": steps, "interpolate": "activations"}
    runs |= {f"ig-inputs-{steps}[{'+'.join(r)}]": {"method": "ig", "steps": steps, "rules": r} for r in ig_subsets}
    return runs


def scored_nodes(model, level: str, positions: list[int]) -> list[Node]:
    a = model.anatomy
    nodes = []
    for layer in range(a.n_layers):
        for component in LEVEL_COMPONENTS[level]:
            for head in range(a.n_heads) if component == "head" else [None]:
                nodes += [Node(component, layer, head, p) for p in positions]
    return nodes


def cached(path: Path, compute) -> dict:
    if path.exists():
        return torch.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path)
    return value


def task_key(model_name: str, task, extra: str) -> str:
    text = json.dumps([model_name, task.clean, task.corrupt, task.answer, task.distractor, extra])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ground_truth(model, model_name: str, task, level: str, positions: list[int], cache: Path) -> dict:
    """Activation patching of every scored node at ``positions``: {"scores": {component: [L, (H,) P]}, ...}."""
    nodes = scored_nodes(model, level, positions)
    key = task_key(model_name, task, f"{level}/{positions}")

    def compute() -> dict:
        start = time.perf_counter()
        values, clean, corrupt = patch_scores(model, task.encode(model), nodes, progress=False)
        return {"values": values, "seconds": time.perf_counter() - start, "clean": clean, "corrupt": corrupt}

    found = cached(cache / f"{model_name}-{task.name}-{level}-{key}.pt", compute)
    return {"scores": arrange(model, level, nodes, found["values"], positions), "seconds": found["seconds"],
            "clean": found["clean"], "corrupt": found["corrupt"], "nodes": len(nodes)}


def arrange(model, level: str, nodes: list[Node], values: torch.Tensor, positions: list[int]) -> dict:
    a = model.anatomy
    index = {p: i for i, p in enumerate(positions)}
    out = {c: torch.zeros(a.n_layers, *((a.n_heads,) if c == "head" else ()), len(positions))
           for c in LEVEL_COMPONENTS[level]}
    for node, value in zip(nodes, values.tolist()):
        where = (node.layer,) + (() if node.head is None else (node.head,)) + (index[node.position],)
        out[node.component][where] = value
    return out


def patching_seconds(model, task, nodes: list[Node]) -> float:
    """Seconds of patching ``nodes`` (what ``attribute(method="patch")`` runs after the causal skip),
    timed now on one forward's worth of them and scaled by the copies of the prompts run: a forward
    patching ``k`` nodes runs ``k + 2`` copies (clean, corrupt and one per node)."""
    enc = task.encode(model)
    per = min(nodes_per_forward(enc, None), len(nodes))
    start = time.perf_counter()
    patch_scores(model, enc, nodes[:per], progress=False)
    forwards = math.ceil(len(nodes) / per)
    return (time.perf_counter() - start) * (len(nodes) + 2 * forwards) / (per + 2)


def skip_speedup(model, model_name: str, task, cache: Path) -> dict:
    """Seconds of patching every component node with and without the causal skip."""
    enc = task.encode(model)
    nodes = scored_nodes(model, "component", list(range(enc.seq_len)))

    def timed(skip: bool):
        def compute() -> dict:
            start = time.perf_counter()
            patch_scores(model, enc, nodes, progress=False, causal_skip=skip)
            return {"seconds": time.perf_counter() - start}
        return cached(cache / f"{model_name}-{task.name}-skip{int(skip)}-{task_key(model_name, task, '')}.pt",
                      compute)["seconds"]

    with_skip, without = timed(True), timed(False)
    return {"task": task.name, "nodes": len(nodes), "positions": enc.seq_len, "first_difference": enc.first_difference,
            "seconds_without_skip": round(without, 2), "seconds_with_skip": round(with_skip, 2),
            "speedup": round(without / with_skip, 2)}


def forward_backward(model, task):
    """One forward + backward of the bare model on the corrupted prompts (parameter gradients too)."""
    enc = task.encode(model)
    rows = torch.arange(enc.n, device=model.device)

    def run():
        model.hf.zero_grad(set_to_none=True)
        logits = model.hf(input_ids=enc.corrupt_ids, attention_mask=enc.attention_mask,
                          position_ids=enc.position_ids, logits_to_keep=1).logits[:, -1]
        (logits[rows, enc.answer_ids] - logits[rows, enc.distractor_ids]).mean().backward()
        model.hf.zero_grad(set_to_none=True)
    return run


def measure_task(model, model_name: str, task, runs: dict, head_positions: int, cache: Path) -> dict:
    enc = task.encode(model)
    differing = list(range(enc.first_difference, enc.seq_len))
    positions = {"component": differing, "head": differing[-head_positions:]}
    truths = {level: ground_truth(model, model_name, task, level, positions[level], cache) for level in positions}
    fb = forward_backward(model, task)
    fb()  # warm-up
    fb_seconds = seconds(fb)
    fidelity = {level: {} for level in positions}
    timing = {}
    largest = largest_effects(truths["component"]["scores"], positions["component"], enc.labels)
    for label, kwargs in runs.items():
        for level in positions:
            start = time.perf_counter()
            att = attribute(model, task, level=level, progress=False, **kwargs)
            if level == "component":
                timing[label] = time.perf_counter() - start
                scores = dict(att.node_scores())
                for row in largest:
                    row[label] = round(scores[node_from_id(row["node"])], 3)
            truth = truths[level]["scores"]
            fidelity[level][label] = {c: round(pearson(att.scores[c][..., positions[level]], truth[c]), 4)
                                      for c in truth}
    patch_seconds = patching_seconds(model, task, scored_nodes(model, "component", positions["component"]))
    start = time.perf_counter()
    checked = il.circuits.verify(model, task, 20, estimate=attribute(model, task, progress=False), progress=False)
    verify_seconds = time.perf_counter() - start
    return {
        "prompts": enc.n, "positions": enc.seq_len, "first_difference": enc.first_difference,
        "head_level_positions": positions["head"],
        "metric": {part: round(truths["component"][part], 4) for part in ("clean", "corrupt")},
        "nodes_patched": {level: truths[level]["nodes"] for level in positions},
        "pearson_with_patching": fidelity,
        "seconds": {"patch_all_component_nodes": round(patch_seconds, 2),
                    "patch_ground_truth_cached_run": round(truths["component"]["seconds"], 2),
                    "forward_backward": round(fb_seconds, 3),
                    **{label: round(s, 3) for label, s in timing.items()}},
        "over_patching": {label: round(s / patch_seconds, 4) for label, s in timing.items()},
        "over_forward_backward": {label: round(s / fb_seconds, 2) for label, s in timing.items()},
        "largest_effects": largest,
        "verify_top20_of_default": {
            "seconds": round(verify_seconds, 2), "method": checked.method,
            "pearson": round(pearson(torch.tensor([checked.estimate[n] for n in checked.nodes]),
                                     torch.tensor([checked.exact[n] for n in checked.nodes])), 4)},
    }


def largest_effects(truth: dict, positions: list[int], labels, k: int = 2) -> list[dict]:
    """Per component kind, the ``k`` nodes with the largest patching effects (each method's score is added)."""
    out = []
    for component, values in truth.items():
        rows = [{"node": Node(component, layer, None, p).id, "token": labels[p],
                 "patch": round(float(values[layer, i]), 3)}
                for layer in range(values.shape[0]) for i, p in enumerate(positions)]
        out += sorted(rows, key=lambda row: -abs(row["patch"]))[:k]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--n", type=int, default=8, help="prompts per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5, help="integrated-gradients points")
    parser.add_argument("--head-positions", type=int, default=5,
                        help="head level: the last this many positions from the first difference on")
    parser.add_argument("--quick", action="store_true", help="RelP and IG with the default and all rules only")
    parser.add_argument("--skip-speedup", default="smollm2,gemma3",
                        help="models whose patching is also timed without the causal skip (IOI; '' for none)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--cache", default=os.environ.get("INTERPLAB_BENCH_CACHE", "~/.cache/interplab/bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache).expanduser() / args.device
    runs = method_runs(args.steps, args.quick)
    out = {"device": args.device, "threads": torch.get_num_threads(), "seed": args.seed, "models": {}}
    for name in args.models.split(","):
        model = il.zoo.load(name, device=args.device)
        a = model.anatomy
        entry = {"family": a.family, "layers": a.n_layers, "heads": a.n_heads, "d_model": a.d_model, "tasks": {}}
        for task_name in args.tasks.split(","):
            task = TASKS[task_name](model, args.n, args.seed)
            entry["tasks"][task_name] = measure_task(model, name, task, runs, args.head_positions, cache)
        if name in args.skip_speedup.split(","):
            entry["causal_skip"] = skip_speedup(model, name, TASKS["ioi"](model, args.n, args.seed), cache)
        out["models"][name] = entry
        print(json.dumps({name: entry}), file=sys.stderr, flush=True)  # progress: one model at a time
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
