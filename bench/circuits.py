"""Circuits benchmark on the demo model: fidelity of AtP, RelP and IG to activation patching, and speed. Prints JSON.

    PYTHONPATH=src python bench/circuits.py                      # the IOI demo model, il.tasks.ioi
    PYTHONPATH=src python bench/circuits.py --model PATH         # a model folder (IOI prompts)
    PYTHONPATH=src python bench/circuits.py --gpt2-small         # random GPT-2-small-sized model

(a) Pearson correlation of AtP, RelP and IG with activation patching over all (layer, position)
nodes of each component type (resid, attn, mlp; with ``--heads`` also per (layer, head, position));
(b) time of RelP and IG over all nodes against activation patching over all nodes and against one plain
forward + backward of the bare transformers model on the corrupted prompts (params' gradients
included, as in training). All in one run: warm-up,
then the median of ``--repeats`` interleaved runs (patching: ``--patch-repeats``).

A random model gets a random task: token-id prompts whose corruption swaps one token, with random
answer and distractor tokens (its fidelity numbers say little; its timings are the point).
The real models have their own benchmark: ``bench/real_models.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import interplab as il
from interplab.circuits import ContrastTask, attribute, lrp


def gpt2_small(seed: int, device: str) -> il.Model:
    """A random model of GPT-2 small's shape (12 layers, 12 heads, d_model 768, vocab 50257)."""
    import transformers as T

    from interplab.zoo.tiny import word_tokenizer

    config = T.GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    torch.manual_seed(seed)
    hf = T.GPT2LMHeadModel(config)
    tokenizer = word_tokenizer([f"w{i}" for i in range(config.vocab_size - 4)])
    return il.load(hf, tokenizer=tokenizer, device=device)


def random_task(model: il.Model, n: int, length: int, seed: int) -> ContrastTask:
    g = torch.Generator().manual_seed(seed)
    vocab = model.anatomy.vocab_size
    clean = torch.randint(4, vocab, (n, length), generator=g)
    corrupt = clean.clone()
    corrupt[:, length // 3] = torch.randint(4, vocab, (n,), generator=g)
    answer = torch.randint(4, vocab, (n,), generator=g)
    offset = torch.randint(1, vocab - 4, (n,), generator=g)  # never a multiple of vocab - 4: a different token
    distractor = (answer - 4 + offset) % (vocab - 4) + 4
    return ContrastTask.build(model, clean, corrupt, answer.tolist(), distractor.tolist(), name="random")


def seconds(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_times(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per function, the runs interleaved (round robin) so that load on a shared
    machine falls on all of them alike."""
    times = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(seconds(fn))
    return {key: statistics.median(values) for key, values in times.items()}


def forward_backward(model: il.Model, task: ContrastTask):
    enc = task.encode(model)
    inputs = {"input_ids": enc.corrupt_ids, "attention_mask": enc.attention_mask, "position_ids": enc.position_ids}
    rows = torch.arange(enc.n, device=model.device)

    def run():
        model.hf.zero_grad(set_to_none=True)
        logits = model.hf(**inputs).logits[:, -1]
        (logits[rows, enc.answer_ids] - logits[rows, enc.distractor_ids]).mean().backward()
    return run


def clean_accuracy(model: il.Model, task: ContrastTask) -> float:
    """Fraction of clean prompts whose answer logit is above the distractor's."""
    enc = task.encode(model)
    rows = torch.arange(enc.n, device=model.device)
    with torch.no_grad():
        logits = model.hf(input_ids=enc.clean_ids, attention_mask=enc.attention_mask,
                          position_ids=enc.position_ids).logits[:, -1]
    return float((logits[rows, enc.answer_ids] > logits[rows, enc.distractor_ids]).float().mean())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def head_fidelity(model: il.Model, task: ContrastTask, rules: tuple[str, ...]) -> dict:
    """Pearson r of AtP, RelP and IG with patching over every (layer, head, position) and (layer, position) MLP node."""
    patched = attribute(model, task, method="patch", level="head", progress=False)
    out = {}
    for method in ("atp", "relp", "ig"):
        att = attribute(model, task, method=method, level="head", **({"rules": rules} if method == "relp" else {}))
        out[method] = {c: round(pearson(att.scores[c], patched.scores[c]), 4) for c in ("head", "mlp")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ioi", help="'ioi' (demo model), 'tiny' or a model folder")
    parser.add_argument("--gpt2-small", action="store_true", help="a random GPT-2-small-sized model")
    parser.add_argument("--n", type=int, default=64, help="prompts")
    parser.add_argument("--length", type=int, default=16, help="tokens per prompt of a random task")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--patch-repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--heads", action="store_true", help="also the correlations at the head level")
    parser.add_argument("--rules", default=",".join(lrp.DEFAULT_RULES), help="RelP's LRP rules, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rules = tuple(r for r in args.rules.split(",") if r)
    torch.manual_seed(args.seed)

    if args.gpt2_small:
        model, name = gpt2_small(args.seed, args.device), "random gpt2-small"
    elif args.model == "tiny":
        model, name = il.zoo.tiny("gpt2", n_layers=4, device=args.device), "tiny gpt2 (4 layers)"
    elif args.model == "ioi":
        model, name = il.zoo.load("ioi", device=args.device), "ioi demo model"
    else:
        model, name = il.load(args.model, device=args.device), args.model
    if args.gpt2_small or args.model == "tiny":
        task = random_task(model, args.n, args.length, args.seed)
    else:
        task = il.tasks.ioi(model, n=args.n, seed=args.seed)
    enc = task.encode(model)

    results = {}
    fb = forward_backward(model, task)
    runs = {
        "relp": lambda: attribute(model, task, method="relp", rules=rules),
        "atp": lambda: attribute(model, task, method="atp"),
        "ig": lambda: attribute(model, task, method="ig"),
        "forward_backward": fb,
    }
    for fn in runs.values():  # warm-up
        fn()
    times = median_times(runs, args.repeats)
    patch_fn = lambda: attribute(model, task, method="patch", progress=False)  # noqa: E731
    patched = patch_fn()  # warm-up and the ground truth
    times["patch"] = median_times({"patch": patch_fn}, args.patch_repeats)["patch"]
    for method in ("atp", "relp", "ig"):
        att = attribute(model, task, method=method, **({"rules": rules} if method == "relp" else {}))
        results[method] = {c: round(pearson(att.scores[c], patched.scores[c]), 4) for c in ("resid", "attn", "mlp")}
    heads = head_fidelity(model, task, rules) if args.heads else None
    a = model.anatomy
    nodes = 3 * a.n_layers * enc.seq_len
    relp, atp = results["relp"], results["atp"]
    speedup, over_fb = times["patch"] / times["relp"], times["relp"] / times["forward_backward"]
    targets = {
        "relp_resid_at_least_0.95": relp["resid"] >= 0.95,
        "relp_mlp_at_least_0.95": relp["mlp"] >= 0.95,
        "relp_mlp_not_below_atp": relp["mlp"] >= atp["mlp"],
        "relp_20x_faster_than_patching": speedup >= 20,
        "relp_within_3x_forward_backward": over_fb <= 3,
    }
    print(json.dumps({
        "model": name, "family": a.family, "layers": a.n_layers, "d_model": a.d_model, "device": args.device,
        "threads": torch.get_num_threads(), "relp_rules": list(rules), "task": task.name, "prompts": enc.n,
        "positions": enc.seq_len,
        "nodes": nodes,
        "metric": {"clean": round(patched.clean_metric, 4), "corrupt": round(patched.corrupt_metric, 4)},
        "clean_accuracy": round(clean_accuracy(model, task), 4),
        "pearson_with_patching": results,
        **({"pearson_with_patching_heads": heads} if heads else {}),
        "seconds": {k: round(v, 4) for k, v in times.items()},
        "relp_speedup_over_patching": round(speedup, 1),
        "relp_over_forward_backward": round(over_fb, 2),
        "atp_over_forward_backward": round(times["atp"] / times["forward_backward"], 2),
        "ig_speedup_over_patching": round(times["patch"] / times["ig"], 1),
        "ig_over_forward_backward": round(times["ig"] / times["forward_backward"], 2),
        "targets_met": targets,
    }, indent=2))


if __name__ == "__main__":
    main()
