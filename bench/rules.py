"""Benchmark: the forward chainer against naive re-evaluation, on generated rule sets.

Two workloads, both stratified by construction (negated names come from lower levels):
- "random": rules with random and/or/not bodies over a pool of concepts;
- "chain": a derivation chain written in reverse order, the worst case for naive passes.
The naive reference re-evaluates every rule of a level until nothing changes; both must agree.
Times are seconds, wall clock and process CPU; infer is the median of --repeats runs, naive one run.
Prints one JSON object. Usage: PYTHONPATH=src python bench/rules.py [--rules 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from interplab.reasoning import parse_rules


def formula(rng: random.Random, depth: int, positive: bool, pools: dict[bool, list[str]]) -> tuple:
    if depth == 0 or rng.random() < 0.3:
        return ("atom", rng.choice(pools[positive]))
    draw = rng.random()
    if draw < 0.2:
        return ("not", formula(rng, depth - 1, not positive, pools))
    op = "and" if draw < 0.55 else "or"
    return (op, [formula(rng, depth - 1, positive, pools) for _ in range(rng.randint(2, 3))])


def text_of(tree: tuple) -> str:
    op, arg = tree
    if op == "atom":
        return arg
    if op == "not":
        return f"not ({text_of(arg)})"
    return f" {op} ".join(f"({text_of(part)})" for part in arg)


def holds(tree: tuple, facts: set[str]) -> bool:
    op, arg = tree
    if op == "atom":
        return arg in facts
    if op == "not":
        return not holds(arg, facts)
    if op == "and":
        return all(holds(part, facts) for part in arg)
    return any(holds(part, facts) for part in arg)


def random_workload(rng: random.Random, n_rules: int) -> tuple[list, dict[str, int], list[str]]:
    base = [f"b{i}" for i in range(max(10, n_rules // 25))]
    derived = [f"d{i}" for i in range(max(10, n_rules // 3))]
    level = {name: rng.randrange(4) for name in derived}
    by_level = {k: [d for d in derived if level[d] <= k] for k in range(4)}
    below = {k: [d for d in derived if level[d] < k] for k in range(4)}
    rules = []
    for _ in range(n_rules):
        head = rng.choice(derived)
        pools = {True: base + by_level[level[head]], False: base + below[level[head]]}
        # mostly-positive bodies over base names and same-level names keep derivations going
        rules.append((formula(rng, rng.randint(0, 3), True, pools), head))
    given = [name for name in base if rng.random() < 0.3]
    return rules, level, given


def chain_workload(n_rules: int) -> tuple[list, dict[str, int], list[str]]:
    body = [("and", [("atom", f"c{i}"), ("not", ("atom", "stop"))]) for i in range(n_rules)]
    rules = [(body[i], f"c{i + 1}") for i in range(n_rules)]
    return rules[::-1], {f"c{i + 1}": 0 for i in range(n_rules)}, ["c0"]


def naive(rules: list, level: dict[str, int], given: list[str]) -> tuple[set[str], int]:
    """The fixpoint by sweeping each level's rules until a sweep adds nothing; also the sweeps."""
    facts = set(given)
    sweeps = 0
    for current in sorted(set(level.values())):
        stratum = [(body, head) for body, head in rules if level[head] == current]
        changed = True
        while changed:
            changed = False
            sweeps += 1
            for body, head in stratum:
                if head not in facts and holds(body, facts):
                    facts.add(head)
                    changed = True
    return facts, sweeps


def timed(work):
    """(result, wall seconds, CPU seconds of this process): on a shared machine CPU time shows
    the work, wall time what a user would wait."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(name: str, rules: list, level: dict[str, int], given: list[str], repeats: int) -> dict:
    text = "\n".join(f"{text_of(body)} -> {head}" for body, head in rules)
    ruleset, parse_wall, parse_cpu = timed(lambda: parse_rules(text))
    runs = [timed(lambda: ruleset.infer(given)) for _ in range(repeats)]
    inference = runs[0][0]
    infer_wall = statistics.median(run[1] for run in runs)
    infer_cpu = statistics.median(run[2] for run in runs)
    (reference, sweeps), naive_wall, naive_cpu = timed(lambda: naive(rules, level, given))
    return {
        "workload": name,
        "rules": len(ruleset),
        "concepts": len(ruleset.concepts),
        "strata": len(ruleset.strata),
        "given": len(given),
        "facts": len(inference.facts),
        "agree": inference.facts == reference,
        "parse_and_compile_s": {"wall": round(parse_wall, 4), "cpu": round(parse_cpu, 4)},
        "infer_s_median": {"wall": round(infer_wall, 5), "cpu": round(infer_cpu, 5)},
        "naive_s": {"wall": round(naive_wall, 4), "cpu": round(naive_cpu, 4)},
        "naive_sweeps": sweeps,
        "naive_over_infer_cpu": round(naive_cpu / infer_cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=5000, help="rules in the random workload")
    parser.add_argument("--chain", type=int, default=1000, help="reversed chain length")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = [
        measure("random", *random_workload(rng, args.rules), args.repeats),
        measure("chain", *chain_workload(args.chain), args.repeats),
    ]
    print(json.dumps({"seed": args.seed, "results": results}, indent=2))


if __name__ == "__main__":
    main()
