"""interplab's notebook widgets: thin anywidget classes over engine results (front ends in ``js/``)."""

from .base import Widget, command
from .editor import RuleEditor
from .explorer import CircuitExplorer
from .scanner import ExpertScanner
from .tokenview import TokenView

__all__ = ["CircuitExplorer", "ExpertScanner", "RuleEditor", "TokenView", "Widget", "command"]
