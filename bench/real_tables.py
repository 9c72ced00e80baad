"""Markdown tables from a ``bench/real_models.py`` report: each method's Pearson correlation with
activation patching, and its cost, per model and task (the tables of docs/circuits.md).

    PYTHONPATH=src python bench/real_tables.py report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: the methods the tables show: the report's key and the column title
METHODS = {"atp": "AtP", "relp[norm+identity+half]": "RelP (default rules)",
           "relp[norm+identity+half+attention]": "RelP + AH-rule", "ig-inputs-5": "IG (default)"}
GOAL, FLOOR = 0.95, 0.9


def pearson_cell(pearson: dict, method: str) -> str:
    component = " / ".join(f"{pearson['component'][method][k]:.2f}" for k in ("resid", "attn", "mlp"))
    head = " / ".join(f"{pearson['head'][method][k]:.2f}" for k in ("head", "mlp"))
    return f"{component} · {head}"


def rows(report: dict):
    for name, model in report["models"].items():
        for task, result in model["tasks"].items():
            yield name, task, result


def pearson_table(report: dict) -> str:
    lines = ["| model | task | " + " | ".join(METHODS.values()) + " |", "|---|---|" + "---|" * len(METHODS)]
    for name, task, result in rows(report):
        cells = [pearson_cell(result["pearson_with_patching"], m) for m in METHODS]
        lines.append(f"| {name} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(report: dict) -> str:
    """Each method's time as a multiple of one forward + backward, and (1/n) as a share of patching."""
    lines = ["| model | task | patching every component node (s) | forward + backward (s) | "
             + " | ".join(METHODS.values()) + " |",
             "|---|---|---|---|" + "---|" * len(METHODS)]
    for name, task, result in rows(report):
        seconds = result["seconds"]
        cells = [f"{result['over_forward_backward'][m]:.2f}x (1/{1 / result['over_patching'][m]:.0f})" for m in METHODS]
        lines.append(f"| {name} | {task} | {seconds['patch_all_component_nodes']:.0f} | "
                     f"{seconds['forward_backward']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goal_count(report: dict, method: str = "ig-inputs-5") -> tuple[int, int, float]:
    """Cells (model x task x kind) where ``method`` reaches the goal, all cells, and its lowest cell."""
    values = [v for _, _, r in rows(report) for level in ("component", "head")
              for v in r["pearson_with_patching"][level][method].values()]
    return sum(v >= GOAL for v in values), len(values), min(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the JSON that bench/real_models.py printed or wrote (--out)")
    report = json.loads(parser.parse_args().report.read_text())
    hit, cells, lowest = goal_count(report)
    print(pearson_table(report), "", cost_table(report), "",
          f"IG: r >= {GOAL} in {hit} of {cells} cells, lowest {lowest:.3f}", sep="\n")


if __name__ == "__main__":
    main()
