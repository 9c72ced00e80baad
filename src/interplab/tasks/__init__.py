"""Tasks: prompt sets for the instruments.

    task = il.tasks.ioi(model, n=64, seed=0)     # a ContrastTask of IOI prompts for this model
    task = il.tasks.landmarks(model, n=16)       # factual recall: the city a landmark is in
    task = il.tasks.ContrastTask(clean, corrupt, answer, distractor, metric="logit_diff")

``ContrastTask`` (``contrast``) and its metrics (``metric``) are the circuits instrument's input
(``il.circuits.ContrastTask`` is the same class). The text generators live in submodules:
``interplab.tasks.ioi_prompts`` (IOI text and the demo model's corpus), ``interplab.tasks.assistant``
(the experts demo), ``interplab.tasks.ontology`` (PrOntoQA-style questions).
"""

from .contrast import ContrastTask, EncodedTask, TaskError
from .ioi_task import ioi
from .landmarks import landmarks
from .metric import METRICS

__all__ = ["METRICS", "ContrastTask", "EncodedTask", "TaskError", "ioi", "landmarks"]
