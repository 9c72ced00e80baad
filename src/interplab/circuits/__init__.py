"""Circuits: which components carry a behaviour.

    task = il.circuits.ContrastTask.build(model, clean, corrupt, answer, distractor)   # or il.tasks.ioi(model)
    att = il.circuits.attribute(model, task)                   # method="ig" | "patch" | "atp" | "relp"
    att.to_frame()                                             # layer, component, head, position, score
    circuit = att.top(20)                                      # or att.threshold(x)
    il.circuits.faithfulness(model, task, circuit, ablation="mean")
    il.circuits.faithfulness_sweep(model, task, att)           # f per size, CPR, CMD
    il.circuits.ablate(model, task, nodes, ablation="mean")    # the metric with nodes (or edges) ablated
    il.circuits.verify(model, task, 10, estimate=att)          # exact patching of att's top 10, side by side
    il.circuits.evaluate(model, task, circuit, ablated=[n])     # ablated metric, circuit metric, faithfulness
    il.circuits.intervene(model, task, nodes, "scale", factor=2)   # the metric per prompt before / after
    il.circuits.attribute_in_parts(model, task, "atp", observer=print)   # attribute with progress per part
    il.circuits.attribute(model, task, level="edge")           # position-resolved edges u@p -> v@q (patterns fixed)
    il.circuits.pattern_split(model, task, nodes)              # patching vs patching with patterns frozen

Scores follow the denoising convention: the change in the metric (mean logit difference, answer
minus distractor, at the last position) when a node's clean activation is put into the
corrupted run. Levels: ``"component"`` (resid, attn, mlp), ``"head"`` (heads and MLPs),
``"edge"`` (embed/attn/mlp -> attn/mlp/logits); see ``nodes`` for the node set, ``position_edges``
and ``edges`` for edges (by position, or summed over positions), ``ablation`` for what ablating
means at each level, ``lrp`` for RelP's rules, ``pattern_split`` for effects through attention
patterns.
"""

from ..tasks.contrast import ContrastTask, EncodedTask, TaskError
from . import lrp
from .ablation import ABLATIONS, ablate, ablate_many
from .attribution import METHODS, attribute
from .evaluation import CircuitEvaluation, evaluate
from .faithfulness import FaithfulnessCurve, faithfulness, faithfulness_sweep
from .groups import similar_groups
from .intervene import INTERVENTIONS, Generation, Intervention, generate_with, intervene
from .nodes import LEVELS, Edge, Node
from .parts import attribute_in_parts
from .pattern_split import PatternSplit, pattern_split
from .result import Attribution, Circuit
from .verify import Verification, verify

__all__ = ["ABLATIONS", "INTERVENTIONS", "LEVELS", "METHODS", "Attribution", "Circuit", "CircuitEvaluation",
           "ContrastTask", "Edge", "EncodedTask", "FaithfulnessCurve", "Generation", "Intervention", "Node",
           "PatternSplit", "TaskError", "Verification", "ablate", "ablate_many", "attribute", "attribute_in_parts",
           "evaluate", "faithfulness", "faithfulness_sweep", "generate_with", "intervene", "lrp", "pattern_split",
           "similar_groups", "verify"]
