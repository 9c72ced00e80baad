"""The demo models interplab trains and ships (``ioi``, ``experts``, ``ontology``), and tiny random ones.

Each demo model is a transformers folder next to this file (safetensors weights + tokenizer),
produced by ``train_<name>.py`` in this package; ``load`` goes through ``interplab.load`` like
any local folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..model import Model
from ..model import load as _load_model
from .tiny import tiny

__all__ = ["available", "load", "path", "tiny"]

ROOT = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped demo models."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "config.json").is_file())


def path(name: str) -> Path:
    """The folder of a shipped demo model."""
    folder = ROOT / name
    if not (folder / "config.json").is_file():
        raise ValueError(f"no demo model {name!r}; the shipped ones are {available()}")
    return folder


def load(name: str, *, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> Model:
    """Load a shipped demo model: ``il.zoo.load("ioi")``."""
    return _load_model(path(name), device=device, dtype=dtype)
