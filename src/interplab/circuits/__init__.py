"""Circuits: which components carry a behaviour.

    task = il.circuits.ContrastTask.build(model, clean, corrupt, answer, distractor)
    att = il.circuits.attribute(model, task, method="relp")      # "patch" | "atp" | "relp"
    att.to_frame(); circuit = att.top(20)
    il.circuits.faithfulness(model, task, circuit, ablation="mean")
"""

from . import lrp
from .attribution import METHODS, attribute
from .nodes import LEVELS, Edge, Node
from .result import Attribution, Circuit
from .task import ContrastTask, EncodedTask, TaskError

__all__ = ["LEVELS", "METHODS", "Attribution", "Circuit", "ContrastTask", "Edge", "EncodedTask", "Node",
           "TaskError", "attribute", "lrp"]
