"""interplab: a JupyterLab workbench for looking inside transformer language models.

    import interplab as il
    model = il.load("gpt2")        # a HuggingFace id, a local folder, or il.load(module, tokenizer=tok)
    model = il.zoo.load("ioi")     # the shipped demo models
"""

from . import anatomy, circuits, experts, reasoning, tasks, tokens, widgets, zoo
from .anatomy import Anatomy, MoeAnatomy
from .model import Block, Model, load
from .widgets import CircuitExplorer, ExpertScanner, RuleEditor, TokenView

__version__ = "0.1.0"

__all__ = ["Anatomy", "Block", "CircuitExplorer", "ExpertScanner", "Model", "MoeAnatomy", "RuleEditor", "TokenView",
           "anatomy", "circuits", "experts", "load", "reasoning", "tasks", "tokens", "widgets", "zoo"]
