"""Benchmark of the experts instrument; prints JSON.

    PYTHONPATH=src python bench/experts.py [--model experts|random] [--device cpu|cuda] [--n 256]

- Capture overhead: the time to capture the routing of a prompt set (``capture_batch`` over the
  same pre-tokenised, right-padded batches; and ``il.experts.route`` end to end, tokenisation and
  result assembly included) divided by the time of a bare transformers forward over those batches
  (``model.hf(...)`` under ``torch.no_grad()``; end to end: tokenise, pad, forward). Warm-up first,
  then repetitions paired and interleaved; the overheads are medians of the paired ratios.
  Target: capture <= 1.15x the bare forward.
- Scan memory: the peak memory a ``scan`` adds at N and at 4N prompts per set, each size in a fresh
  subprocess (CPU: peak resident set size after resetting it through /proc/self/clear_refs;
  CUDA: ``torch.cuda.max_memory_allocated``). Target: 4N within 10% of N.
- Heatmap render: the ExpertScanner's map at DeepSeek-V3 scale (58 x 256) in chromium, from
  ``bench/heatmap.py`` (skip with ``--no-heatmap``). Target: a redraw under 50 ms.

``--model experts`` is the shipped demo model (``il.zoo.load("experts")``); ``random`` builds a
random Mixtral of a similar shape (4 layers, d_model 64, 8 experts, top-2) with a word tokenizer;
any other value is a model folder.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import interplab as il
from interplab import run
from interplab.experts.capture import capture_batch
from interplab.experts.interventions import routing_plan
from interplab.experts.masks import ExpertMasks


def load_model(name: str, device: str):
    if name == "experts":
        return il.zoo.load("experts", device=device)
    if Path(name).is_dir():
        return il.load(name, device=device)
    import transformers as T

    from interplab.zoo.tiny import WORDS, word_tokenizer

    words = [*WORDS, *(f"w{i}" for i in range(600))]
    config = T.MixtralConfig(vocab_size=len(words) + 4, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=4, intermediate_size=128, num_local_experts=8,
                             num_experts_per_tok=2, max_position_embeddings=64, tie_word_embeddings=True,
                             bos_token_id=2, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(0)
    hf = T.AutoModelForCausalLM.from_config(config)
    return il.load(hf, tokenizer=word_tokenizer(words), device=device)


def prompt_set(model, n: int, seed: int) -> list[str]:
    """``n`` prompts: the demo task's question templates if installed, else random word sentences."""
    rng = random.Random(seed)
    try:
        from interplab.tasks import assistant

        times = [*assistant.SENSITIVE_TIMES, *assistant.ORDINARY_TIMES]
        places = [*assistant.SENSITIVE_PLACES, *assistant.ORDINARY_PLACES]
        return [assistant.HAPPENED_PROMPT.format(time=rng.choice(times), place=rng.choice(places))
                for _ in range(n)]
    except (ImportError, AttributeError):
        vocab = [w for w in model.tokenizer.get_vocab() if not w.startswith("<")]
        return [" ".join(rng.choice(vocab) for _ in range(rng.randint(8, 14))) for _ in range(n)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timing(model, prompts: list[str], batch_size: int, reps: int, device: str) -> dict:
    batches = []
    for start in range(0, len(prompts), batch_size):
        encoded = run.encode(model, prompts[start:start + batch_size], side="right")
        batches.append((encoded.input_ids, encoded.attention_mask))
    plan = routing_plan(model, ExpertMasks())

    def bare(ids, attn):
        with torch.no_grad():
            model.hf(input_ids=ids, attention_mask=attn)

    def capture(ids, attn):
        capture_batch(model, ids, attn, plan)

    def bare_end_to_end():
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                encoded = run.encode(model, prompts[start:start + batch_size], side="right")
                model.hf(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask)

    def route():
        il.experts.route(model, prompts, batch_size=batch_size, progress=False)

    def timed(fn, *args) -> float:
        sync(device)
        t = time.perf_counter()
        fn(*args)
        sync(device)
        return time.perf_counter() - t

    for _ in range(2):                                   # warm-up
        for ids, attn in batches:
            bare(ids, attn)
            capture(ids, attn)
        bare_end_to_end()
        route()
    # Paired and interleaved so that the machine's drift cancels: per batch the bare forward and
    # the capture run back to back (order alternating between repetitions), and likewise route()
    # and the end-to-end bare pass over the whole set.
    seconds = {"bare": [], "capture": [], "bare_end_to_end": [], "route": []}
    for rep in range(reps):
        pair = [("bare", bare), ("capture", capture)]
        whole = [("bare_end_to_end", bare_end_to_end), ("route", route)]
        if rep % 2:
            pair.reverse()
            whole.reverse()
        total = {"bare": 0.0, "capture": 0.0}
        for ids, attn in batches:
            for name, fn in pair:
                total[name] += timed(fn, ids, attn)
        for name in total:
            seconds[name].append(total[name])
        for name, fn in whole:
            seconds[name].append(timed(fn))
    med = {name: statistics.median(v) for name, v in seconds.items()}

    def paired(a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(seconds[a], seconds[b])), 3)

    return {
        "n_prompts": len(prompts), "batch_size": batch_size, "reps": reps,
        "tokens": int(sum(int(attn.sum()) for _, attn in batches)),
        "median_s": {k: round(v, 5) for k, v in med.items()},
        "capture_overhead": paired("capture", "bare"),
        "route_overhead": paired("route", "bare_end_to_end"),
    }


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(model_name: str, device: str, n: int, batch_size: int) -> dict:
    model = load_model(model_name, device)
    behaviour, control = prompt_set(model, n, seed=1), prompt_set(model, n, seed=2)
    il.experts.scan(model, behaviour[:batch_size], control[:batch_size], batch_size=batch_size, progress=False)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")          # reset the peak resident set size
        before = _rss("VmRSS")
    t = time.perf_counter()
    il.experts.scan(model, behaviour, control, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else _rss("VmHWM")
    return {"n": n, "peak_added_bytes": peak - before, "scan_s": round(seconds, 3)}


def memory(model_name: str, device: str, n: int, batch_size: int) -> dict:
    out = {}
    for size in (n, 4 * n):
        cmd = [sys.executable, __file__, "--model", model_name, "--device", device, "--batch-size", str(batch_size),
               "--memory-child", str(size)]
        # Large blocks mmapped (and returned on free) so that the resident set follows live memory.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
        result = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        out[f"{size}"] = json.loads(result.stdout.strip().splitlines()[-1])
    small, large = out[f"{n}"]["peak_added_bytes"], out[f"{4 * n}"]["peak_added_bytes"]
    model = load_model(model_name, "cpu")
    moe = model.anatomy.moe
    tokens = sum(len(r) for r in run.token_ids(model, prompt_set(model, 4 * n, 1) + prompt_set(model, 4 * n, 2)))
    return {"per_size": out, "peak_ratio_4n_over_n": round(large / max(small, 1), 3),
            # what a scan that kept per-token routing (int64 indices + float32 weights) would hold at 4N
            "per_token_routing_bytes_at_4n": tokens * len(moe.moe_layers) * moe.top_k * 12,
            "kind": "cuda max_memory_allocated" if device.startswith("cuda") else "RSS peak (VmHWM) after clear_refs"}


def heatmap_render() -> dict:
    """The figures of bench/heatmap.py (or why they could not be measured)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import heatmap

    try:
        return heatmap.measure()
    except Exception as exc:  # no chromium, no built front end: say so in the report
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="experts", help='"experts" (the demo model), "random", or a model folder')
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-child", type=int, default=0)
    parser.add_argument("--no-heatmap", action="store_true", help="skip the chromium heatmap render benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_child:
        print(json.dumps(memory_child(args.model, args.device, args.memory_child, args.batch_size)))
        return
    model = load_model(args.model, args.device)
    prompts = prompt_set(model, args.n, seed=0)
    report = {"model": "random mixtral (demo shape)" if args.model == "random" else model.name,
              "anatomy": str(model.anatomy), "device": args.device, "torch_threads": args.threads,
              "timing": timing(model, prompts, args.batch_size, args.reps, args.device),
              "scan_memory": memory(args.model, args.device, args.n, args.batch_size)}
    if not args.no_heatmap:
        report["heatmap_render"] = heatmap_render()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
