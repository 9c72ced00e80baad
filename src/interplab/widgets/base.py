"""The base of interplab's widgets: bundle loading, kernel errors the browser can show, progress,
commands that always answer, and PNG/SVG export on request.

A widget subclasses ``Widget`` naming its front-end bundle (``js/<name>/index.ts``, built to
``static/<name>.js`` and ``.css``)::

    class TokenView(Widget, bundle="tokenview"):
        @command
        def predictions(self, msg, buffers):
            return {"position": msg["position"]}, []
"""

from __future__ import annotations

import functools
import os
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import traitlets
from anywidget._util import try_file_contents

__all__ = ["STATIC", "BundleMissingError", "Widget", "command"]

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


def command(method: Handler) -> Handler:
    """Mark a widget method as a kernel command the browser can call (``commands.invoke(name, msg)``).

    The method takes ``(self, msg, buffers)`` and returns ``(value, buffers)``, as with
    ``anywidget.experimental.command``; the reply is ``{"result": value}``. If it raises (or the
    kernel is interrupted), the reply is ``{"error": {type, message, ...}}`` and the error is set on
    ``widget.error`` (the banner) and ``widget.last_exception``: anywidget itself sends no reply when
    a command raises, which would leave the browser waiting.
    """

    @functools.wraps(method)
    def handler(self: Widget, msg: Any, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        try:
            value, out = method(self, msg, buffers)
        except (Exception, KeyboardInterrupt) as exc:
            record = self.record_error(exc, command=method.__name__)
            return {"error": record}, []
        if self.error is not None and method.__name__ != "_receive_export":
            self.error = None  # a later success clears the banner
        return {"result": value}, list(out)

    return anywidget.experimental.command(handler)


class Widget(anywidget.AnyWidget):
    """An anywidget with interplab's conventions (see the module docstring)."""

    error = traitlets.Dict(allow_none=True, default_value=None, help="the last kernel error, for the banner").tag(
        sync=True)
    progress = traitlets.Dict(allow_none=True, default_value=None,
                              help="{label, done, total} while working, else None").tag(sync=True)

    _bundle: ClassVar[str | None] = None
    #: the synced traits the browser may change (None: every one); the others are the kernel's
    _browser_writable: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, bundle: str | None = None, **kwargs: Any) -> None:
        if bundle is not None:
            cls._bundle = bundle
        super().__init_subclass__(**kwargs)

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
        self.on_msg(self._answer_unknown_command)

    def _answer_unknown_command(self, _widget: Any, msg: Any, _buffers: list[bytes]) -> None:
        """anywidget drops a command it does not know without a word (the browser would wait forever)."""
        if not isinstance(msg, dict) or msg.get("kind") != "anywidget-command":
            return
        name = msg.get("name")
        if name not in getattr(type(self), "_anywidget_commands", {}):
            known = sorted(getattr(type(self), "_anywidget_commands", {}))
            exc = LookupError(f"{type(self).__name__} has no command {name!r} (it has {known}); "
                              "is the front-end bundle out of date? rebuild it with `npm run build`")
            self.send({"id": msg.get("id"), "kind": "anywidget-command-response",
                       "response": {"error": self.record_error(exc, command=str(name))}})

    def set_state(self, sync_data: dict) -> None:
        """An update from the browser: a kernel-owned trait or an invalid value is refused, shown in
        the banner, and the browser's copy reverted to the kernel's."""
        writable = self._browser_writable
        refused = [k for k in sync_data if writable is not None and k not in writable and k != "error"]
        accepted = {k: v for k, v in sync_data.items() if k not in refused}
        try:
            super().set_state(accepted)
        except traitlets.TraitError as exc:
            self.record_error(exc, command="update")
            self.send_state(list(sync_data))
            return
        if refused:
            self.record_error(PermissionError(f"the browser cannot change {', '.join(sorted(refused))}: "
                                              "the kernel owns it (change it from Python)"), command="update")
            self.send_state(refused)

    # --- errors and progress --------------------------------------------------------------
    def record_error(self, exc: BaseException, command: str | None = None) -> dict:
        """Keep ``exc`` as ``last_exception`` and show it in the widget's error banner."""
        self.last_exception = exc
        record = error_record(exc, command)
        self.error = record
        return record

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

    @command
    def _receive_export(self, msg: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        request = self._export_requests.pop(msg.get("id"), None)
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
