"""Circuits: which components carry a behaviour.

    task = il.circuits.ContrastTask.build(model, clean, corrupt, answer, distractor)
    att = il.circuits.attribute(model, task, method="relp")      # "patch" | "atp" | "relp"
    att.to_frame(); circuit = att.top(20)
    il.circuits.faithfulness(model, task, circuit, ablation="mean")
"""

from . import lrp
from .ablation import ABLATIONS, ablate, ablate_many
from .attribution import METHODS, attribute
from .faithfulness import FaithfulnessCurve, faithfulness, faithfulness_sweep
from .nodes import LEVELS, Edge, Node
from .result import Attribution, Circuit
from .task import ContrastTask, EncodedTask, TaskError

__all__ = ["ABLATIONS", "LEVELS", "METHODS", "Attribution", "Circuit", "ContrastTask", "Edge", "EncodedTask",
           "FaithfulnessCurve", "Node", "TaskError", "ablate", "ablate_many", "attribute", "faithfulness",
           "faithfulness_sweep", "lrp"]
