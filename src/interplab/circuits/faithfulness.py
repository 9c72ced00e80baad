"""Faithfulness of circuits (MIB convention) and sweeps over circuit sizes with CPR and CMD.

``f(C) = (m(C) - m(empty)) / (m(M) - m(empty))`` where ``m`` is the mean logit difference on the
clean prompts, ``m(C)`` the model with every unit (node or edge) outside ``C`` ablated (see
``ablation`` for what that replaces at each level), ``m(empty)`` with every unit ablated and
``m(M)`` the model untouched. The full circuit gives exactly 1 and the empty one exactly 0 (the
same forward as ``m(M)`` and ``m(empty)``).

A sweep ranks the units of an attribution, keeps the top ``k`` for each size and reports ``f``
per size (position-resolved edges that the attribution did not keep rank after the kept ones).
With ``x`` the fraction of units kept: CPR is the area under ``f(x)`` (higher is better) and CMD
the area under ``|1 - f(x)|`` (lower is better), by the trapezoidal rule over the sizes given (as
in the MIB benchmark, which uses 0.1%..100%).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from ..tasks.contrast import ContrastTask
from .ablation import ablate, ablate_many, all_units, level_of
from .result import Attribution, Circuit

__all__ = ["DEFAULT_FRACTIONS", "FaithfulnessCurve", "faithfulness", "faithfulness_sweep"]

DEFAULT_FRACTIONS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _universe(model, task: ContrastTask, units: list, declared: str | None) -> tuple[str, list]:
    level = level_of(units) or declared or "component"
    if declared is not None and declared != level:
        raise ValueError(f"the circuit says level {declared!r} but holds {level}-level units")
    if level == "edge":
        positioned = {e.source.position is not None for e in units}
        if len(positioned) > 1:
            raise ValueError("the circuit mixes position-resolved edges with edges summed over positions: use one "
                             "kind (as one attribution gives them)")
        if positioned == {True}:
            heads = any(e.target.component == "head" for e in units)
            return level, all_units(model, level, task.encode(model).seq_len, heads)
        return level, all_units(model, level, None)
    positioned = {u.position is not None for u in units}
    if len(positioned) > 1:
        raise ValueError("the circuit mixes nodes with and without positions: use one kind (as one attribution "
                         "gives them)")
    seq_len = task.encode(model).seq_len if positioned == {True} else None
    return level, all_units(model, level, seq_len)


def _circuit_units(circuit: Circuit | Iterable) -> tuple[list, str | None]:
    if isinstance(circuit, Circuit):
        return list(circuit.units), circuit.level
    return list(circuit), None


def faithfulness(model, task: ContrastTask, circuit: Circuit | Iterable, ablation: str = "mean") -> float:
    """``f`` of a circuit (nodes or edges) on the task's clean prompts; MIB convention.

    ``ablation="corrupt"`` judges a circuit by the counterfactual the attribution methods score;
    mean ablation can take a real model off its distribution (docs/circuits.md, "Which ablation")."""
    units, declared = _circuit_units(circuit)
    level, universe = _universe(model, task, units, declared)
    missing = set(units) - set(universe)
    if missing:
        raise ValueError(f"{sorted(missing)[0]} is not a unit of this model at the {level} level")
    keep = set(units)
    full = ablate(model, task, [], ablation)
    empty = ablate(model, task, universe, ablation)
    kept = ablate(model, task, [u for u in universe if u not in keep], ablation)
    return _ratio(kept, full, empty)


def _ratio(kept: float, full: float, empty: float) -> float:
    if full == empty:
        raise ValueError(f"the model's metric equals the fully ablated one ({full:.6g}): faithfulness is undefined "
                         "for this task and ablation")
    return (kept - empty) / (full - empty)


@dataclass(frozen=True)
class FaithfulnessCurve:
    """``f`` per circuit size: ``sizes`` (units kept), ``fractions`` of all units, ``faithfulness``,
    ``metrics`` (m(C)), plus ``full``/``empty`` metrics, ``cpr`` and ``cmd``."""

    sizes: tuple[int, ...]
    fractions: tuple[float, ...]
    faithfulness: tuple[float, ...]
    metrics: tuple[float, ...]
    full: float
    empty: float
    cpr: float
    cmd: float
    ablation: str
    level: str
    total: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"size": self.sizes, "fraction": self.fractions, "faithfulness": self.faithfulness,
                             "metric": self.metrics})

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__})


def _trapezoid(x: Sequence[float], y: Sequence[float]) -> float:
    return sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))


def faithfulness_sweep(model, task: ContrastTask, attribution: Attribution, sizes: Sequence[float] | None = None,
                       ablation: str = "mean", by: str = "abs", components: Sequence[str] | None = None,
                       ) -> FaithfulnessCurve:
    """``f`` of the top-``k`` circuits of ``attribution`` for each size (ints: counts of units;
    floats in [0, 1]: fractions of all units; default ``DEFAULT_FRACTIONS``), with CPR and CMD."""
    ranking = [unit for unit, _ in attribution.ranking(components, by)]
    if attribution.level == "edge" and attribution.positions:  # sparse: the edges not kept rank last
        ranked = set(ranking)
        heads = any(t.component == "head" for t in attribution.targets)
        ranking += [u for u in all_units(model, "edge", len(attribution.labels), heads) if u not in ranked]
    total = len(ranking)
    if total == 0:
        raise ValueError("the attribution ranks no units")
    counts = []
    for size in DEFAULT_FRACTIONS if sizes is None else sizes:
        if isinstance(size, float):
            if not 0.0 <= size <= 1.0:
                raise ValueError(f"a fractional size must lie in [0, 1], got {size}")
            size = round(size * total)
        if not 0 <= size <= total:
            raise ValueError(f"size {size} is outside 0..{total} (the number of ranked units)")
        counts.append(int(size))
    counts = sorted(set(counts))
    universe = list(ranking)
    full = ablate(model, task, [], ablation)
    empty = ablate(model, task, universe, ablation)
    middle = [k for k in counts if 0 < k < total]
    groups = [ranking[k:] for k in middle]  # ablate everything outside the top k
    values = dict(zip(middle, ablate_many(model, task, groups, ablation).tolist())) if groups else {}
    values.update({0: empty, total: full})
    metrics = [values[k] for k in counts]
    f = [_ratio(m, full, empty) for m in metrics]
    fractions = [k / total for k in counts]
    return FaithfulnessCurve(
        sizes=tuple(counts), fractions=tuple(fractions), faithfulness=tuple(f), metrics=tuple(metrics), full=full,
        empty=empty, cpr=_trapezoid(fractions, f), cmd=_trapezoid(fractions, [abs(1 - v) for v in f]),
        ablation=ablation, level=attribution.level, total=total,
    )
