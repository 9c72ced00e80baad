"""interplab: a JupyterLab workbench for looking inside transformer language models.

    import interplab as il
    model = il.load("gpt2")        # a HuggingFace id, a local folder, or il.load(module, tokenizer=tok)
    model = il.zoo.load("ioi")     # the shipped demo models

The widgets (``il.TokenView``, ``il.CircuitExplorer``, ``il.ExpertScanner``, ``il.RuleEditor``,
``il.widgets``) load on first use, so that the engine alone never imports anywidget.
"""

from . import anatomy, circuits, experts, reasoning, tasks, tokens, zoo
from .anatomy import Anatomy, MoeAnatomy
from .model import Block, Model, load

__version__ = "0.1.0"

_WIDGETS = ("CircuitExplorer", "ExpertScanner", "RuleEditor", "TokenView")

__all__ = ["Anatomy", "Block", "CircuitExplorer", "ExpertScanner", "Model", "MoeAnatomy", "RuleEditor", "TokenView",
           "anatomy", "circuits", "experts", "load", "reasoning", "tasks", "tokens", "widgets", "zoo"]


def __getattr__(name: str):
    """Import the widgets on first access (PEP 562; ``from interplab import TokenView`` too)."""
    if name == "widgets" or name in _WIDGETS:
        from importlib import import_module  # not `from . import widgets`: that asks __getattr__ again

        widgets = import_module(f"{__name__}.widgets")
        return widgets if name == "widgets" else getattr(widgets, name)
    raise AttributeError(f"module 'interplab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
