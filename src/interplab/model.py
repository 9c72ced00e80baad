"""``interplab.load`` and ``Model``: one standard anatomy over an nnsight-wrapped transformers model."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nnsight
import torch
from torch import Tensor, nn

from . import run
from .anatomy import Anatomy, Family, UnsupportedModelError, describe, family_for, get_path

__all__ = ["Block", "Model", "load", "output_tensor", "replace_output"]


def output_tensor(value: Any) -> Tensor:
    """The main tensor of a module output (the first element when the module returns a tuple)."""
    return value[0] if isinstance(value, tuple) else value


def replace_output(envoy, value: Tensor, original: Any) -> None:
    """Set an envoy's output to ``value``, keeping the rest of a tuple output as it was."""
    envoy.output = (value, *original[1:]) if isinstance(original, tuple) else value


class Block:
    """One decoder block seen through the family table: ``block.attn``, ``block.mlp``, ``block.router``...

    Attributes are nnsight envoys (use them inside a trace); ``block.module(name)`` gives the
    torch module itself (for weights), ``block.has(name)`` whether this block has it.
    """

    def __init__(self, model: Model, index: int):
        self._model = model
        self.index = index
        self._root = f"{model.family.layers}.{index}"

    def path(self, name: str) -> str:
        try:
            return f"{self._root}.{self._model.family.block[name]}"
        except KeyError:
            names = ", ".join(self._model.family.block)
            raise AttributeError(
                f"'{name}' is not a standard block name of the {self._model.family.name} family "
                f"(it has: {names})"
            ) from None

    def has(self, name: str) -> bool:
        return name in self._model.family.block and get_path(self._model.hf, self.path(name)) is not None

    def module(self, name: str) -> nn.Module:
        module = get_path(self._model.hf, self.path(name))
        if module is None:
            raise AttributeError(f"block {self.index} of this {self._model.family.name} model has no '{name}'")
        return module

    @property
    def envoy(self):
        """The whole decoder block (``.input`` is the residual stream entering it)."""
        return self._model.envoy(self._root)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        self.module(name)  # a clear error if this block lacks it
        return self._model.envoy(self.path(name))

    def __repr__(self) -> str:
        present = [n for n in self._model.family.block if self.has(n)]
        return f"Block({self.index}: {', '.join(present)})"


class Model:
    """A loaded language model: ``hf`` (transformers), ``tokenizer``, ``nn`` (nnsight) and ``anatomy``."""

    def __init__(self, hf: nn.Module, tokenizer, *, remote: bool | str = False, name: str | None = None,
                 nn_model=None):
        self.hf = hf
        self.tokenizer = tokenizer
        self.remote = remote
        self.name = name or getattr(hf.config, "_name_or_path", None) or type(hf).__name__
        self.family: Family = family_for(hf.config)
        self._anatomy: Anatomy = describe(hf, self.family)
        _prepare_tokenizer(tokenizer)
        self.nn = nn_model if nn_model is not None else nnsight.TransformersModel(
            hf, tokenizer=tokenizer, task="text-generation")
        self.blocks: list[Block] = [Block(self, i) for i in range(self.anatomy.n_layers)]
        self._envoys: dict[str, Any] = {}
        self._runners: list[Any] = []  # edited copies of self.nn, innermost last (see edited())

    @property
    def anatomy(self) -> Anatomy:
        """The standard anatomy (``il.Anatomy``); ``vocab_size`` follows ``resize_token_embeddings``."""
        rows = self.module("unembed").weight.shape[0]
        if rows != self._anatomy.vocab_size:
            self._anatomy = dataclasses.replace(self._anatomy, vocab_size=rows)
        return self._anatomy

    def state_key(self) -> tuple:
        """A key that changes whenever the weights or the tokenizer do, for caches of results.

        Per parameter and buffer: its storage, shape, dtype and torch's version counter (which
        counts in-place edits under ``torch.no_grad()``, ``copy_`` and ``load_state_dict``) and the
        sum of its values (edits made through ``.data``, which torch does not count); and the
        tokenizer's length (``add_tokens``). One pass over the weights: about 0.04 s per 100M
        parameters on one CPU thread.
        """
        tensors = [*self.hf.parameters(), *self.hf.buffers()]
        layout = tuple((t.data_ptr(), t._version, tuple(t.shape), t.dtype) for t in tensors)
        sums = tuple(float(t.detach().sum(dtype=torch.float32)) for t in tensors if t.device.type != "meta")
        return id(self.tokenizer), len(self.tokenizer), layout, sums

    # --- standard names -------------------------------------------------------------------
    def envoy(self, path: str):
        """The nnsight envoy at a module path (cached)."""
        if path not in self._envoys:
            envoy = self.nn
            for part in path.split("."):
                envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
            self._envoys[path] = envoy
        return self._envoys[path]

    @property
    def embed(self):
        return self.envoy(self.family.embed)

    @property
    def final_norm(self):
        return self.envoy(self.family.final_norm)

    @property
    def unembed(self):
        return self.envoy(self.family.unembed)

    def module(self, name: str) -> nn.Module:
        """A model-level torch module by standard name: 'embed', 'final_norm', 'unembed'."""
        return get_path(self.hf, getattr(self.family, name))

    def router(self, layer: int):
        """The router envoy of decoder layer ``layer`` (a MoE layer)."""
        moe = self.anatomy.moe
        if moe is None:
            raise ValueError(f"{self.name} is a dense {self.family.name} model: it has no routers")
        if layer not in moe.moe_layers:
            raise ValueError(f"decoder layer {layer} is dense; the MoE layers are {list(moe.moe_layers)}")
        return self.blocks[layer].router

    def head_weights(self, layer: int) -> Tensor:
        """The attention output projection split per head: ``[n_heads, d_head, d_model]``.

        ``head_outputs[..., h, :] @ head_weights[h]`` summed over heads (+ the projection's bias)
        is the attention output.
        """
        proj = self.blocks[layer].module("attn_out")
        weight = proj.weight if self.family.conv1d else proj.weight.T  # [d_in, d_model]
        a = self.anatomy
        return weight.reshape(a.n_heads, a.d_head, weight.shape[-1])

    # --- inputs and running --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def encode(self, texts: str | Sequence[str], *, padding_side: str = "left",
               add_special_tokens: bool = True) -> dict[str, Tensor]:
        """Tokenise a batch on the model's device: ``input_ids`` and ``attention_mask`` (see
        ``interplab.run`` for the padding convention)."""
        return run.encode(self, texts, side=padding_side, special=add_special_tokens).inputs_without_positions()

    def tokens(self, text: str) -> list[str]:
        """The token strings of a text as the model sees them."""
        return run.decode_each(self, run.token_ids(self, text)[0])

    # --- the one door to nnsight: every instrument runs the model through these ----------------
    def trace(self, *inputs, **kwargs):
        """``with model.trace(...):`` an nnsight trace of one forward pass, with this model's
        ``remote`` setting and any open ``model.edited(...)`` block's standing interventions.
        Inside ``model.session()`` the session carries ``remote``: pass ``remote=False`` to the
        traces in its body."""
        return self._runner.trace(*inputs, **self._remote(kwargs))

    def generate(self, *inputs, **kwargs):
        """``with model.generate(...) as tracer:`` traces generation, like ``trace``; read the ids
        off ``tracer.result``. Loop over decoding steps with ``tracer.iter[:n]``."""
        runner = self._runner
        # Inside the trace nnsight is interleaving, so the traceable generate runs the model's own.
        return runner.trace(*inputs, fn=runner.generate, **self._remote(kwargs))

    def session(self):
        """``with model.session():`` several traces that share values, sent as one remote request
        (its traces take ``remote=False``: they run wherever the session runs)."""
        return self.nn.session(**self._remote({}))

    @contextmanager
    def edited(self, intervention: Callable[[], None]) -> Iterator[None]:
        """Within the block, every ``trace`` and ``generate`` of this model first runs
        ``intervention()`` inside the trace (on the first forward pass): an nnsight edit stored on a
        copy of the model's envoy, so the model itself stays unedited. Blocks nest (each adds its
        intervention to those already open)."""
        with self._runner.edit() as (_, copy):
            intervention()
        self._runners.append(copy)
        try:
            yield
        finally:
            self._runners.remove(copy)

    @property
    def _runner(self):
        return self._runners[-1] if self._runners else self.nn

    def _remote(self, kwargs: dict) -> dict:
        if self.remote:
            kwargs.setdefault("remote", self.remote)
        return kwargs

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the model (safetensors) and its tokenizer to ``folder``; ``il.load(folder)`` reads it back."""
        if self.remote:
            raise ValueError(f"{self.name} runs remotely (remote={self.remote!r}): its weights are not here to save")
        folder = Path(folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        return folder

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Model:
        self.hf.to(device=device, dtype=dtype)
        return self

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {self.anatomy}, device={self.device}, dtype={self.dtype})"


def _prepare_tokenizer(tokenizer) -> None:
    if tokenizer is None:
        raise ValueError("a tokenizer is required: pass tokenizer= (a transformers tokenizer) with a module")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def load(source: str | os.PathLike | nn.Module, tokenizer=None, *, device: str | torch.device | None = None,
         dtype: torch.dtype | str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False,
         remote: bool | str = False, revision: str | None = None, gguf_file: str | None = None,
         **hf_kwargs) -> Model:
    """Load a causal language model as an ``interplab.Model``.

    ``source`` is a HuggingFace id (loaded by transformers as usual: cache or network), a local
    folder (never calls the Hub), a local ``.gguf`` file, or a built ``nn.Module`` together with
    ``tokenizer=``. A GGUF file (``il.load("m.gguf")`` or ``il.load(folder, gguf_file="m.gguf")``)
    gives the model and its tokenizer, dequantized to ``dtype`` (default float32); it needs the
    ``gguf`` and ``accelerate`` packages (``pip install 'interplab[gguf]'``).
    Weights load from safetensors (or GGUF) only unless ``allow_pickle=True``; ``trust_remote_code`` stays
    off unless asked. ``remote=True`` runs traces on NDIF (nnsight's remote service; set your key
    with ``nnsight.CONFIG.set_default_api_key(...)``): the model is then not loaded locally.
    """
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if isinstance(source, nn.Module):
        hf = source
        if dtype is not None:
            hf.to(dtype)
        name = None
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(source).expanduser()
        if path.suffix == ".gguf" and gguf_file is None:
            if not path.is_file():
                raise FileNotFoundError(f"no GGUF file at {path}")
            path, gguf_file = path.parent, path.name
        local = path.is_dir()
        if not local and (str(source).startswith((".", "/", "~")) or path.suffix):
            raise FileNotFoundError(f"no model folder at {path}: give an existing folder, a .gguf file or a "
                                    "HuggingFace id")
        name = str(path) if local else str(source)
        common = {"trust_remote_code": trust_remote_code, "revision": revision}
        if local:
            common["local_files_only"] = True
        if gguf_file is not None:
            _require_gguf(path, gguf_file, local)
            common["gguf_file"] = gguf_file
            name = str(path / gguf_file) if local else f"{source}/{gguf_file}"
            dtype = dtype or torch.float32
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(str(path) if local else str(source), **common)
        if remote:
            if gguf_file is not None:
                raise ValueError("remote= runs a model that NDIF hosts by its HuggingFace id; a GGUF file is "
                                 "loaded locally: drop remote=")
            nn_model = nnsight.TransformersModel(name, tokenizer=tokenizer, task="text-generation",
                                                 trust_remote_code=trust_remote_code)
            return Model(nn_model._module, tokenizer, remote=remote, name=name, nn_model=nn_model)
        use_safetensors = None if gguf_file is not None else not allow_pickle
        hf = AutoModelForCausalLM.from_pretrained(str(path) if local else str(source),
                                                  use_safetensors=use_safetensors, dtype=dtype, **common,
                                                  **hf_kwargs)
        if gguf_file is not None:
            _forget_quantization(hf)
    if not hasattr(hf, "config"):
        raise UnsupportedModelError(
            f"{type(hf).__name__} is not a transformers model (it has no .config); interplab needs a "
            "transformers causal LM (e.g. AutoModelForCausalLM.from_config(config))"
        )
    if device is not None:
        hf.to(device)
    hf.eval()
    return Model(hf, tokenizer, remote=remote, name=name)


def _require_gguf(folder: Path, gguf_file: str, local: bool) -> None:
    """A clear error when the GGUF file or the packages transformers needs to read it are missing."""
    if local and not (folder / gguf_file).is_file():
        present = sorted(p.name for p in folder.glob("*.gguf"))
        raise FileNotFoundError(f"no GGUF file {gguf_file!r} in {folder} (GGUF files there: {present or 'none'})")
    import importlib.util

    missing = [pkg for pkg in ("gguf", "accelerate") if importlib.util.find_spec(pkg) is None]
    if missing:
        raise ImportError(f"loading a GGUF file needs the {' and '.join(missing)} package(s): "
                          "pip install 'interplab[gguf]'")


def _forget_quantization(hf: nn.Module) -> None:
    """A GGUF model is dequantized on load: its weights are plain tensors. Drop transformers' record of
    the GGUF quantization so that the model saves (``save_pretrained`` refuses GGUF-quantized models)."""
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.hf_quantizer = None
