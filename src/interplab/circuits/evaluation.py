"""``evaluate``: a circuit and a set of ablated nodes measured together, with the faithfulness ratio.

    e = il.circuits.evaluate(model, task, circuit, ablated=[node], ablation="mean")
    e.ablated        # the metric with ``ablated`` ablated (everything else intact)
    e.circuit        # the metric of the circuit minus ``ablated`` (everything outside it ablated)
    e.faithfulness   # (circuit - empty) / (full - empty); NaN when full == empty

One batched forward (``ablate_many``) measures both; the model's metric ``full`` and the empty
circuit's ``empty`` are measured once per task, model, ablation and level and kept with the task
(like the ablation references), so a click in the explorer costs one forward.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..tasks.contrast import ContrastTask
from .ablation import ABLATIONS, ablate_many, all_units
from .nodes import CIRCUIT_COMPONENTS, Node, node_from_id
from .result import Circuit

__all__ = ["CircuitEvaluation", "evaluate"]

_REFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CircuitEvaluation:
    """Metrics of one circuit and one set of ablated nodes (see the module docstring)."""

    ablated: float
    circuit: float
    full: float
    empty: float
    faithfulness: float
    ablation: str
    level: str
    size: int
    n_ablated: int
    total: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _nodes(units: Circuit | Iterable[Node | str]) -> list[Node]:
    units = units.units if isinstance(units, Circuit) else units
    return [node_from_id(u) if isinstance(u, str) else u for u in units]


def evaluate(model, task: ContrastTask, circuit: Circuit | Iterable[Node | str], ablated: Iterable[Node | str] = (),
             ablation: str = "mean", *, level: str | None = None) -> CircuitEvaluation:
    """The metric with ``ablated`` nodes ablated, and the faithfulness of ``circuit`` minus them.

    ``circuit`` and ``ablated`` hold nodes with positions (or node ids) of one node level;
    ``level`` ("component" or "head") is needed only when both are empty.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    started = time.perf_counter()
    kept, removed = _nodes(circuit), _nodes(ablated)
    if level is None:
        level = circuit.level if isinstance(circuit, Circuit) else None
    if level is None:
        level = "head" if any(n.component == "head" for n in (*kept, *removed)) else "component"
        if not kept and not removed:
            raise ValueError("evaluate needs level='component' or 'head' when the circuit and the ablations are empty")
    if level not in ("component", "head"):
        raise ValueError(f"evaluate measures node circuits: level must be 'component' or 'head', got {level!r}")
    enc = task.encode(model)
    universe = all_units(model, level, enc.seq_len)
    known = set(universe)
    for node in (*kept, *removed):
        if node not in known:
            raise ValueError(f"{node} is not a {level}-level circuit node of this task "
                             f"({', '.join(CIRCUIT_COMPONENTS[level])} at layers 0..{model.anatomy.n_layers - 1}, "
                             f"positions 0..{enc.seq_len - 1})")
    gone = set(removed)
    keep = set(kept) - gone
    groups = [sorted(gone, key=Node.sort_key), [u for u in universe if u not in keep]]
    key = (id(model.hf), str(model.device), ablation, level)
    cached = _REFERENCE.setdefault(task, {})
    if key not in cached:
        groups += [[], universe]
    values = ablate_many(model, task, groups, ablation).tolist()
    if key not in cached:
        cached[key] = (values[2], values[3])
    full, empty = cached[key]
    f = (values[1] - empty) / (full - empty) if full != empty and math.isfinite(full - empty) else math.nan
    return CircuitEvaluation(ablated=values[0], circuit=values[1], full=full, empty=empty, faithfulness=f,
                             ablation=ablation, level=level, size=len(keep), n_ablated=len(gone),
                             total=len(universe), seconds=time.perf_counter() - started)
