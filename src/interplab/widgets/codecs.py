"""Arrays for the browser as raw bytes plus ``dtype`` and ``shape`` (never JSON lists of numbers).

In a synced trait an array is ``{"dtype", "shape", "data": bytes}`` (ipywidgets sends the bytes
as a binary buffer; the browser sees a DataView). In a command reply it is
``{"dtype", "shape", "buffer": i}`` with the bytes in the reply's ``buffers[i]``.
``js/shared/codecs.ts`` is the other half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["DTYPES", "decode_array", "encode_array", "encode_reply_array", "from_json_number", "json_number",
           "json_safe", "to_numpy"]

# Little-endian on the wire, whatever the machine: the browser reads typed arrays little-endian.
DTYPES = {"float32": "<f4", "int32": "<i4", "float64": "<f8", "uint8": "u1"}


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (any device or dtype) or a (nested) list."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (Sequence, np.generic, int, float)) and not isinstance(x, (str, bytes)):
        return np.asarray(x)
    raise TypeError(f"expected an array (numpy array, torch tensor or list of numbers), got {type(x).__name__}")


def _cast(x: Any, dtype: str) -> np.ndarray:
    if dtype not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}: choose one of {sorted(DTYPES)}")
    a = to_numpy(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"expected numbers, got an array of dtype {a.dtype}")
    if dtype in ("int32", "uint8") and a.size:
        if a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a))):
            raise ValueError(f"cannot send non-integer values as {dtype}")
        info = np.iinfo(DTYPES[dtype])
        if a.min() < info.min or a.max() > info.max:
            raise ValueError(f"values from {a.min()} to {a.max()} do not fit in {dtype}")
    return np.ascontiguousarray(a, dtype=DTYPES[dtype])


def encode_array(x: Any, dtype: str = "float32") -> dict:
    """The trait form: ``{"dtype", "shape", "data": bytes}``."""
    a = _cast(x, dtype)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.tobytes()}


def encode_reply_array(x: Any, buffers: list[bytes], dtype: str = "float32") -> dict:
    """The command-reply form: appends the bytes to ``buffers`` and returns ``{"dtype", "shape", "buffer": i}``."""
    a = _cast(x, dtype)
    buffers.append(a.tobytes())
    return {"dtype": dtype, "shape": list(a.shape), "buffer": len(buffers) - 1}


def decode_array(meta: dict, buffers: Sequence[bytes | memoryview] = ()) -> np.ndarray:
    """The numpy array of either form (bytes inline in ``data`` or ``buffers[meta["buffer"]]``)."""
    dtype = meta.get("dtype")
    if dtype not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    if "data" in meta:
        raw = meta["data"]
    elif "buffer" in meta:
        index = meta["buffer"]
        if not 0 <= index < len(buffers):
            raise ValueError(f"array refers to buffer {index} but the message has {len(buffers)}")
        raw = buffers[index]
    else:
        raise ValueError("array has neither inline data nor a buffer index")
    a = np.frombuffer(bytes(raw), dtype=DTYPES[dtype])
    shape = tuple(meta.get("shape", (a.size,)))
    if int(np.prod(shape)) != a.size:
        raise ValueError(f"shape {list(shape)} needs {int(np.prod(shape))} values but the bytes hold {a.size}")
    return a.reshape(shape).astype(a.dtype.newbyteorder("="))  # a writable copy in native byte order


def json_number(x: float | int | None) -> float | int | str | None:
    """A number JSON can carry: finite numbers as they are, NaN and infinities as the strings
    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (what JavaScript's ``Number()`` reads back)."""
    if x is None or isinstance(x, bool | int):
        return x
    x = float(x)
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def json_safe(value: Any) -> Any:
    """``value`` with every float (in dicts, lists and tuples) made JSON-safe by ``json_number``."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return json_number(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def from_json_number(x: float | int | str | None) -> float | None:
    """The inverse of ``json_number``."""
    if x is None or isinstance(x, int | float):
        return None if x is None else float(x)
    table = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    if x not in table:
        raise ValueError(f"expected a number, 'NaN', 'Infinity' or '-Infinity', got {x!r}")
    return table[x]
