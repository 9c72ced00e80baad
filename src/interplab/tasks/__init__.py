"""Tasks: prompt sets for the instruments.

    task = il.tasks.ioi(model, n=64, seed=0)     # an il.circuits.ContrastTask of IOI prompts

The text generators live in submodules (``interplab.tasks.ioi`` for IOI text and the demo model's
corpus, ``interplab.tasks.assistant`` for the experts demo); import those with ``from
interplab.tasks.ioi import ...``. Note that the attribute ``il.tasks.ioi`` is the task builder
(a function), not the text module.
"""

from .contrast import ioi

__all__ = ["ioi"]
