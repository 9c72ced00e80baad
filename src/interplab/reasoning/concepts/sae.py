"""Sparse autoencoders over the residual stream, as plain tensor ops (usable inside an nnsight trace).

    f = act((x - b_dec * centre) @ W_enc + b_enc)        encode, act = ReLU | TopK(k) | JumpReLU(threshold)
    x_hat = f @ W_dec + b_dec                            decode

``W_enc`` is ``[d_in, d_sae]`` and ``W_dec`` ``[d_sae, d_in]`` (the sae-lens layout). ``centre``
is sae-lens' ``apply_b_dec_to_input``. An SAE is loaded from a safetensors file (``SAE.load``) or
taken over from a sae-lens SAE object (``SAE.from_sae_lens``, duck-typed: sae-lens itself is not
a dependency). Where it reads: the residual stream *leaving* decoder block ``layer``
(``site="output"``, sae-lens' ``blocks.{layer}.hook_resid_post``) or *entering* it
(``site="input"``, ``hook_resid_pre``).

Editing features keeps what the SAE cannot reconstruct: ``sae.write_back(x, f_edited)`` is
``decode(f_edited) + (x - decode(encode(x)))``, so an edit that changes nothing changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..residual import Site

__all__ = ["SAE", "Site"]

ACTIVATIONS = ("relu", "topk", "jumprelu")
_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)$")


class SAE:
    """A sparse autoencoder at one residual-stream site of a model (see the module docstring)."""

    def __init__(self, W_enc: Tensor, W_dec: Tensor, b_enc: Tensor, b_dec: Tensor, *,
                 activation: str = "relu", k: int | None = None, threshold: Tensor | None = None,
                 layer: int | None = None, site: Site = "output", centre: bool = True,
                 metadata: Mapping[str, Any] | None = None):
        d_in, d_sae = W_enc.shape
        shapes = {"W_dec": (W_dec, (d_sae, d_in)), "b_enc": (b_enc, (d_sae,)), "b_dec": (b_dec, (d_in,))}
        for name, (tensor, shape) in shapes.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"SAE {name} has shape {tuple(tensor.shape)}, but W_enc [d_in={d_in}, "
                                 f"d_sae={d_sae}] needs {shape} (W_dec is [d_sae, d_in], the sae-lens layout)")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown SAE activation {activation!r}; use one of {ACTIVATIONS}")
        if activation == "topk" and not (isinstance(k, int) and 0 < k <= d_sae):
            raise ValueError(f"a TopK SAE needs k, an integer in 1..{d_sae}; got {k!r}")
        if activation == "jumprelu" and (threshold is None or tuple(threshold.shape) != (d_sae,)):
            raise ValueError(f"a JumpReLU SAE needs threshold, a tensor of shape ({d_sae},)")
        if site not in ("output", "input"):
            raise ValueError(f"site must be 'output' (residual leaving the block) or 'input', got {site!r}")
        self.W_enc, self.W_dec, self.b_enc, self.b_dec = W_enc, W_dec, b_enc, b_dec
        self.threshold = threshold
        self.activation, self.k = activation, k if activation == "topk" else None
        self.layer, self.site, self.centre = layer, site, bool(centre)
        self.metadata = dict(metadata or {})

    # --- shape and placement --------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SAE:
        """Move (a copy of the tensors) to ``device`` / ``dtype``; returns self."""
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
            tensor = getattr(self, name)
            if tensor is not None:
                setattr(self, name, tensor.to(device=device, dtype=dtype))
        return self

    # --- encode / decode ------------------------------------------------------------------
    def pre_activation(self, x: Tensor) -> Tensor:
        x = x.to(self.W_enc.dtype)
        if self.centre:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations ``[..., d_sae]`` of residuals ``x [..., d_in]``."""
        pre = self.pre_activation(x)
        if self.activation == "topk":
            top = pre.topk(self.k, dim=-1)
            return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
        if self.activation == "jumprelu":
            return pre.relu() * (pre > self.threshold)
        return pre.relu()

    def encode_features(self, x: Tensor, features: Tensor) -> Tensor:
        """The activations of the given feature indices only, ``[..., len(features)]``.

        ReLU and JumpReLU features are independent, so only their encoder columns are computed;
        TopK features compete, so the full code is computed and the columns picked out.
        """
        if self.activation == "topk":
            return self.encode(x)[..., features]
        x = x.to(self.W_enc.dtype)
        if self.centre:
            x = x - self.b_dec
        pre = x @ self.W_enc[:, features] + self.b_enc[features]
        if self.activation == "jumprelu":
            return pre.relu() * (pre > self.threshold[features])
        return pre.relu()

    def decode(self, f: Tensor) -> Tensor:
        return f @ self.W_dec + self.b_dec

    def error(self, x: Tensor) -> Tensor:
        """What the SAE does not reconstruct: ``x - decode(encode(x))``."""
        return x - self.decode(self.encode(x)).to(x.dtype)

    def write_back(self, x: Tensor, f: Tensor) -> Tensor:
        """The residual with features ``f`` in place of x's own, keeping the reconstruction error."""
        return (self.decode(f) + (x.to(self.W_dec.dtype) - self.decode(self.encode(x)))).to(x.dtype)

    def edit(self, x: Tensor, change: Callable[[Tensor], Tensor]) -> Tensor:
        """``write_back(x, change(encode(x)))``: e.g. ``sae.edit(h, lambda f: f.index_fill(-1, idx, 0.0))``."""
        return self.write_back(x, change(self.encode(x)))

    # --- files ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None,
             layer: int | None = None, site: Site | None = None) -> SAE:
        """Load from a safetensors file with tensors ``W_enc, W_dec, b_enc, b_dec`` (and ``threshold``
        for JumpReLU) and string metadata: ``layer``, ``activation`` ("relu" | "topk" | "jumprelu"),
        ``k`` (TopK), optionally ``site`` ("output" | "input") and ``centre`` ("true" | "false",
        default true: subtract b_dec before encoding). ``layer=`` / ``site=`` override the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no SAE file at {path}")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
        tensors = load_file(str(path), device=str(device) if device is not None else "cpu")
        missing = [n for n in ("W_enc", "W_dec", "b_enc", "b_dec") if n not in tensors]
        if missing:
            raise ValueError(f"{path} is not an SAE file: it lacks the tensors {missing} "
                             f"(it has {sorted(tensors)})")
        activation = meta.get("activation", "relu").lower()
        k = meta.get("k")
        if layer is None and meta.get("layer") is not None:
            layer = int(meta["layer"])
        return cls(tensors["W_enc"], tensors["W_dec"], tensors["b_enc"], tensors["b_dec"],
                   activation=activation, k=int(k) if k is not None else None, threshold=tensors.get("threshold"),
                   layer=layer, site=site or meta.get("site", "output"),
                   centre=meta.get("centre", "true").lower() == "true", metadata=meta)

    def state(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The tensors and string metadata that ``save`` writes (also used by ``Concepts.save``)."""
        tensors = {"W_enc": self.W_enc, "W_dec": self.W_dec, "b_enc": self.b_enc, "b_dec": self.b_dec}
        if self.threshold is not None:
            tensors["threshold"] = self.threshold
        meta = {**{k: str(v) for k, v in self.metadata.items()}, "activation": self.activation,
                "site": self.site, "centre": str(self.centre).lower()}
        if self.k is not None:
            meta["k"] = str(self.k)
        if self.layer is not None:
            meta["layer"] = str(self.layer)
        return {n: t.detach().contiguous().cpu() for n, t in tensors.items()}, meta

    def save(self, path: str | Path) -> None:
        tensors, meta = self.state()
        save_file(tensors, str(path), metadata=meta)

    # --- sae-lens -------------------------------------------------------------------------
    @classmethod
    def from_sae_lens(cls, sae: Any, *, layer: int | None = None, site: Site | None = None) -> SAE:
        """Take over a sae-lens SAE (duck-typed: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``,
        ``b_enc``, ``b_dec``, ``threshold`` for JumpReLU, and ``cfg`` with ``architecture()``,
        ``k`` for TopK, ``apply_b_dec_to_input``, ``normalize_activations`` and ``meta.hook_name``).

        The layer and site are read from a TransformerLens hook name ``blocks.{L}.hook_resid_post``
        (output of block L) or ``blocks.{L}.hook_resid_pre`` (input of block L) unless given.
        Only residual-stream SAEs without run-time input normalisation are supported.
        """
        cfg = getattr(sae, "cfg", None)
        if cfg is None:
            raise TypeError(f"{type(sae).__name__} does not look like a sae-lens SAE: it has no .cfg")
        architecture = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else getattr(
            cfg, "architecture", "standard")
        activation = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}.get(architecture)
        if activation is None:
            raise ValueError(f"sae-lens architecture {architecture!r} is not supported; "
                             "use a standard (ReLU), topk or jumprelu SAE")
        norm = getattr(cfg, "normalize_activations", "none")
        if norm not in (None, "none"):
            raise ValueError(f"this SAE normalises its input at run time ({norm!r}); fold the scaling factor "
                             "into the weights first (sae-lens: sae.fold_activation_norm_scaling_factor(...))")
        hook = getattr(getattr(cfg, "meta", None), "hook_name", None) or getattr(cfg, "hook_name", None)
        if (layer is None or site is None) and hook is not None:
            match = _HOOK.search(str(hook))
            if match is None and layer is None:
                raise ValueError(f"hook {hook!r} is not a residual-stream hook (blocks.L.hook_resid_pre/post); "
                                 "pass layer= and site= to say where this SAE reads")
            if match is not None:
                layer = int(match.group(1)) if layer is None else layer
                site = site or ("output" if match.group(2) == "post" else "input")

        def tensor(name: str) -> Tensor:
            return getattr(sae, name).detach().clone()

        return cls(tensor("W_enc"), tensor("W_dec"), tensor("b_enc"), tensor("b_dec"), activation=activation,
                   k=int(cfg.k) if activation == "topk" else None,
                   threshold=tensor("threshold") if activation == "jumprelu" else None,
                   layer=layer, site=site or "output", centre=bool(getattr(cfg, "apply_b_dec_to_input", True)),
                   metadata={"source": "sae-lens", "hook_name": str(hook), "architecture": architecture})

    def __repr__(self) -> str:
        k = f", k={self.k}" if self.k else ""
        return f"SAE({self.d_in} -> {self.d_sae}, {self.activation}{k}, layer={self.layer}, site={self.site})"

