"""The base of interplab's widgets: bundle loading, kernel errors the browser can show, progress,
commands that always answer, updates from the browser limited to the traits it may change, text
and numbers made safe for the wire, and PNG/SVG export on request.

A widget subclasses ``Widget`` naming its front-end bundle (``js/<name>/index.ts``, built to
``static/<name>.js`` and ``.css``) and the traits the browser may set::

    class TokenView(Widget, bundle="tokenview"):
        _browser_writable = frozenset({"selected"})

        @command(position=int)
        def _top_k(self, msg, buffers):
            return {"position": msg["position"]}, []
"""

from __future__ import annotations

import functools
import math
import os
import re
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import numpy as np
import traitlets
from anywidget._util import try_file_contents

from .. import run

__all__ = ["STATIC", "BundleMissingError", "Widget", "command", "wire"]

STATIC = Path(__file__).resolve().parent.parent / "static"

Handler = Callable[[Any, Any, list[bytes]], tuple[Any, list[bytes]]]


class BundleMissingError(FileNotFoundError):
    """The widget's JavaScript bundle has not been built."""


def _hot_reload() -> bool:
    return os.environ.get("ANYWIDGET_HMR", "").lower() in ("1", "true", "yes", "on")


@functools.cache
def _bundle_file(name: str, suffix: str, required: bool, hot: bool = False):
    """The bundle's text; with hot reload (ANYWIDGET_HMR=1) anywidget's file watcher instead.

    The watcher (a FileContents) keeps a signal connection to every widget given it, so a widget
    handed one is never freed, even after ``close()`` (manzt/anywidget#929): plain strings unless
    hot reload is wanted.
    """
    path = STATIC / f"{name}.{suffix}"
    if not path.is_file():
        if required:
            raise BundleMissingError(
                f"the front end of this widget ({path}) is not built: run `make setup` (or `npm ci && npm run build`) "
                "in the interplab repository"
            )
        return None
    return try_file_contents(path) if hot else path.read_text(encoding="utf-8")


def error_record(exc: BaseException, command: str | None = None) -> dict:
    """What the browser's error banner shows: type, message, the command, the traceback."""
    record = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__,
              "traceback": "".join(traceback.format_exception(exc)).rstrip()}
    if command:
        record["command"] = command
    return record


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def wire_text(text: str) -> str:
    """``text`` as it can travel as JSON: surrogate pairs joined, a lone surrogate (half a pair, e.g.
    a byte-level token decoded alone) written as its escape ``\\udXXX``, as Python's repr shows it."""
    if text.isascii() or not _LONE_SURROGATE.search(text):
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", joined)


def wire(value: Any, *, strict: bool = True) -> Any:
    """``value`` as JSON can carry it to the browser: strings through ``wire_text``, non-finite
    floats as None, numpy scalars as Python numbers, tuples as lists; bytes and memoryviews (binary
    buffers) as they are. Anything else is a TypeError (a reply the browser could not read), or
    passes unchanged when not ``strict`` (trait values with their own serialiser)."""
    if value is None or isinstance(value, bool | int | bytes | memoryview):
        return value
    if isinstance(value, str):
        return wire_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return wire(value.item(), strict=strict)
    if isinstance(value, Mapping):
        return {wire_text(str(k)): wire(v, strict=strict) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire(v, strict=strict) for v in value]
    if not strict:
        return value
    raise TypeError(f"cannot send a {type(value).__name__} to the browser: use numbers, strings, lists and dicts "
                    "(arrays through widgets.codecs)")


#: what a command's payload field may be: a type, or a tuple of types (None among them: optional)
FieldType = type | tuple[type | None, ...]


def _type_names(expected: tuple) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in expected)


def check_payload(name: str, msg: Any, fields: dict[str, FieldType]) -> dict:
    """The payload of command ``name`` checked against ``fields``: a dict with exactly these keys
    (a field that may be None may be left out), each of its type (``bool`` is not an ``int``)."""
    if not isinstance(msg, dict):
        raise TypeError(f"command {name} takes an object of fields {sorted(fields)}; got {type(msg).__name__}")
    unknown = sorted(set(msg) - set(fields))
    if unknown:
        raise TypeError(f"command {name} has no field(s) {unknown}; its fields are {sorted(fields)}")
    out = {}
    for field, kind in fields.items():
        expected = kind if isinstance(kind, tuple) else (kind,)
        value = msg.get(field)
        if field not in msg and None not in expected:
            raise TypeError(f"command {name} needs the field {field!r} ({_type_names(expected)})")
        ok = (value is None and None in expected) or any(
            t is not None and isinstance(value, t) and not (isinstance(value, bool) and t is not bool)
            for t in expected)
        if not ok:
            raise TypeError(f"command {name}: field {field!r} must be {_type_names(expected)}; got {value!r}")
        out[field] = value
    return out


def command(method: Handler | None = None, /, **fields: FieldType) -> Any:
    """Mark a widget method as a kernel command the browser can call (``commands.invoke(name, msg)``).

    The method takes ``(self, msg, buffers)`` and returns ``(value, buffers)``; the reply is
    ``{"result": value}``. With ``@command(field=type, ...)`` the payload is checked first (see
    ``check_payload``). If anything fails (a bad payload, the method raising, the kernel
    interrupted, a reply that cannot travel), the reply is ``{"error": {type, message, ...}}`` and
    the error is set on ``widget.error`` (the banner) and ``widget.last_exception``. Every command
    message gets exactly one reply, also one naming no known command.
    """

    def mark(fn: Handler, checked: dict[str, FieldType] | None) -> Handler:
        fn._interplab_command = checked  # type: ignore[attr-defined]
        return fn

    if method is not None:  # @command: the payload as it came
        return mark(method, None)
    return lambda fn: mark(fn, fields)  # @command(...): checked, an empty object when no fields


class Widget(anywidget.AnyWidget):
    """An anywidget with interplab's conventions (see the module docstring)."""

    error = traitlets.Dict(allow_none=True, default_value=None, help="the last kernel error, for the banner").tag(
        sync=True)
    progress = traitlets.Dict(allow_none=True, default_value=None,
                              help="{label, done, total} while working, else None").tag(sync=True)

    _bundle: ClassVar[str | None] = None
    #: the synced traits the browser may change (None: every one); the others are the kernel's
    _browser_writable: ClassVar[frozenset[str] | None] = None

    #: the commands of the class, by name (collected from ``@command`` methods)
    _commands: ClassVar[dict[str, tuple[Handler, dict[str, FieldType] | None]]] = {}

    def __init_subclass__(cls, bundle: str | None = None, **kwargs: Any) -> None:
        if bundle is not None:
            cls._bundle = bundle
        super().__init_subclass__(**kwargs)
        cls._commands = {name: (fn, fn._interplab_command) for klass in reversed(cls.__mro__)
                         for name, fn in vars(klass).items() if hasattr(fn, "_interplab_command")}

    def __init__(self, **kwargs: Any) -> None:
        if self._bundle is None:
            raise TypeError(f"{type(self).__name__} names no front-end bundle: subclass Widget with bundle='<name>'")
        hot = _hot_reload()
        self._esm = _bundle_file(self._bundle, "js", True, hot)
        css = _bundle_file(self._bundle, "css", False, hot)
        if css is not None:
            self._css = css
        self.last_exception: BaseException | None = None
        self.exports: dict[str, bytes] = {}
        self._export_requests: dict[str, tuple[str, Path | None]] = {}
        super().__init__(**kwargs)
        self.on_msg(self._dispatch)

    # --- commands ---------------------------------------------------------------------------
    def _dispatch(self, _widget: Any, msg: Any, buffers: list[bytes]) -> None:
        """Answer one command message: ``{id, kind: "anywidget-command", name, msg}`` (+ buffers)."""
        if not isinstance(msg, dict) or msg.get("kind") != "anywidget-command":
            return
        name = msg.get("name")
        out: list[bytes] = []
        try:
            if name not in self._commands:
                raise LookupError(f"{type(self).__name__} has no command {name!r} (it has {sorted(self._commands)}); "
                                  "is the front-end bundle out of date? rebuild it with `npm run build`")
            method, fields = self._commands[name]
            payload = msg.get("msg")
            if fields is not None:
                payload = check_payload(name, payload, fields)
            value, out = method(self, payload, list(buffers))
            response = {"result": wire(value)}
        except (Exception, KeyboardInterrupt) as exc:
            response, out = {"error": self.record_error(exc, command=str(name))}, []
        else:
            if self.error is not None and name != "_receive_export":
                self.error = None  # a later success clears the banner
        self.send({"id": msg.get("id"), "kind": "anywidget-command-response", "response": response}, list(out))

    # --- the wire ---------------------------------------------------------------------------
    def get_state(self, key=None, drop_defaults=False) -> dict:
        return wire(super().get_state(key=key, drop_defaults=drop_defaults), strict=False)

    def send(self, content: Any, buffers: list | None = None) -> None:
        super().send(wire(content, strict=False), buffers)

    def set_state(self, sync_data: dict) -> None:
        """An update from the browser: a kernel-owned trait or an invalid value is refused, shown in
        the banner, and the browser's copy reverted to the kernel's."""
        writable = self._browser_writable
        refused = [k for k in sync_data if k in self.keys and not self._browser_may_set(k, sync_data[k], writable)]
        accepted = {k: v for k, v in sync_data.items() if k not in refused}
        try:
            super().set_state(accepted)
        except Exception as exc:  # a validator or an observer refused it
            self.record_error(exc, command="update")
            self.send_state([k for k in sync_data if k in self.keys])
            return
        if refused:
            self.record_error(PermissionError(f"the browser cannot change {', '.join(sorted(refused))}: "
                                              "the kernel owns it (change it from Python)"), command="update")
            self.send_state(refused)

    @staticmethod
    def _browser_may_set(name: str, value: Any, writable: frozenset[str] | None) -> bool:
        if name == "error":
            return value is None  # the banner's dismiss button
        return writable is None or name in writable

    # --- errors and progress --------------------------------------------------------------
    def record_error(self, exc: BaseException, command: str | None = None) -> dict:
        """Keep ``exc`` as ``last_exception`` and show it in the widget's error banner."""
        self.last_exception = exc
        record = error_record(exc, command)
        self.error = record
        return record

    @contextmanager
    def engine_progress(self) -> Iterator[None]:
        """Show the progress the engine reports (``interplab.run.observe_progress``) in the widget's
        progress bar while the block runs."""
        def report(desc: str, done: int, total: int) -> None:
            self.progress = {"label": desc, "done": done, "total": total}

        try:
            with run.observe_progress(report):
                yield
        finally:
            self.progress = None

    @contextmanager
    def working(self, label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Show a progress bar while the block runs; call the yielded ``step(n=1)`` to advance it."""
        done = 0

        def step(n: int = 1) -> None:
            nonlocal done
            done += n
            self.progress = {"label": label, "done": done, "total": total}

        self.progress = {"label": label, "done": 0, "total": total}
        try:
            yield step
        finally:
            self.progress = None

    # --- export ---------------------------------------------------------------------------------
    def export(self, path: str | Path | None = None, *, format: str | None = None) -> None:
        """Ask the displayed view for a PNG or SVG of itself.

        The browser answers after the current cell has finished: the bytes land in
        ``self.exports[format]`` and, if ``path`` is given, in that file. The format comes from
        ``format`` or the path's suffix. Nothing arrives when no view of the widget is displayed.
        """
        target = Path(path) if path is not None else None
        fmt = format or (target.suffix.lstrip(".").lower() if target is not None else "png")
        if fmt not in ("png", "svg"):
            raise ValueError(f"cannot export as {fmt!r}: use a .png or .svg path, or format='png'/'svg'")
        request = uuid.uuid4().hex
        self._export_requests[request] = (fmt, target)
        self.send({"kind": "interplab-export", "id": request, "format": fmt})

    @command(id=str, format=str)
    def _receive_export(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        request = self._export_requests.pop(msg["id"], None)
        if request is None:  # another view of this widget answered first
            return {"saved": None}, []
        if not buffers:
            raise ValueError("the browser sent an export without data")
        fmt, target = request
        data = bytes(buffers[0])
        self.exports[fmt] = data
        if target is not None:
            target.write_bytes(data)
        return {"saved": str(target) if target else None, "bytes": len(data)}, []
