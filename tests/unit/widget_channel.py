"""The front end's side of a widget's command channel, for tests that call widget commands."""

from __future__ import annotations


class Browser:
    """Plays the front end: sends custom messages to a widget and collects what it sends back."""

    def __init__(self, widget):
        self.widget = widget
        self.received: list[tuple[dict, list]] = []
        widget.send = lambda content, buffers=None: self.received.append((content, buffers or []))

    def invoke(self, name, msg, buffers=()):
        """Call command ``name`` and return ``(response, buffers)`` of the one reply it must get."""
        self.received.clear()
        self.widget._handle_custom_msg({"id": "c1", "kind": "anywidget-command", "name": name, "msg": msg},
                                       list(buffers))
        replies = [(c, b) for c, b in self.received if c.get("kind") == "anywidget-command-response"]
        assert len(replies) == 1, f"expected exactly one reply, got {self.received}"
        content, buffers = replies[0]
        assert content["id"] == "c1"
        return content["response"], buffers


def assert_freed_after_close(make) -> None:
    """The widget ``make()`` builds is garbage-collected once closed and dropped."""
    import gc
    import weakref

    widget = make()
    ref = weakref.ref(widget)
    widget.close()
    del widget
    gc.collect()
    assert ref() is None, "the closed widget is still referenced"
