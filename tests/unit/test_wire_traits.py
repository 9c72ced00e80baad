"""The TypeScript side of each widget declares the traits its Python class syncs (js/<widget>/traits.ts,
the shared ones in js/shared/types.ts): same names, and types that agree with the traitlets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import traitlets

from interplab.widgets.editor import RuleEditor
from interplab.widgets.explorer import CircuitExplorer
from interplab.widgets.scanner import ExpertScanner
from interplab.widgets.tokenview import TokenView

JS = Path(__file__).resolve().parents[2] / "js"
WIDGETS = {"tokenview": (TokenView, "TokenViewTraits"), "scanner": (ExpertScanner, "ScannerTraits"),
           "editor": (RuleEditor, "EditorTraits"), "explorer": (CircuitExplorer, "ExplorerTraits")}
PRIMITIVE = {traitlets.Unicode: "string", traitlets.Int: "number", traitlets.Float: "number",
             traitlets.Bool: "boolean", traitlets.Enum: "string"}


def interface(path: Path, name: str) -> dict[str, str]:
    """The fields of ``interface name`` in a TypeScript file, as name -> type text (one per line)."""
    body = re.search(rf"export interface {name}\b[^{{]*\{{(.*?)\n\}}", path.read_text(), re.S)
    assert body, f"no interface {name} in {path}"
    fields = {}
    for line in body.group(1).splitlines():
        field = re.match(r"\s*(\w+)\??:\s*(.+?);\s*(//.*)?$", line)
        if field:
            fields[field.group(1)] = field.group(2)
    return fields


def our_traits(cls: type) -> dict[str, traitlets.TraitType]:
    """The synced traits interplab's classes declare (not ipywidgets' own: layout, _view_name, ...)."""
    def owner(name: str) -> type:
        return next(k for k in cls.__mro__ if name in vars(k))
    return {n: t for n, t in cls.class_traits(sync=True).items() if owner(n).__module__.startswith("interplab")}


def agrees(trait: traitlets.TraitType, declared: str) -> bool:
    nullable = declared.endswith("| null")
    if nullable != bool(trait.allow_none):
        return False
    declared = declared.removesuffix("| null").strip()
    for kind, ts in PRIMITIVE.items():
        if isinstance(trait, kind):
            return declared == ts  # an Enum is a plain string: its values come from Python
    if isinstance(trait, traitlets.List):
        return declared.endswith("[]")
    if isinstance(trait, traitlets.Tuple):
        return declared.startswith("[") and not declared.endswith("[]")
    if isinstance(trait, traitlets.Dict):
        return declared not in ("string", "number", "boolean") and not declared.endswith("[]")
    return False


@pytest.mark.parametrize("widget", sorted(WIDGETS))
def test_typescript_declares_every_synced_trait(widget):
    cls, name = WIDGETS[widget]
    declared = interface(JS / widget / "traits.ts", name) | interface(JS / "shared" / "types.ts", "BaseTraits")
    traits = our_traits(cls)
    assert set(declared) == set(traits), f"{widget}: only in Python {set(traits) - set(declared)}, " \
                                         f"only in TypeScript {set(declared) - set(traits)}"
    wrong = {n: (type(t).__name__, t.allow_none, declared[n]) for n, t in traits.items() if not agrees(t, declared[n])}
    assert not wrong, f"{widget}: traits whose TypeScript type disagrees: {wrong}"


def test_the_check_catches_a_wrong_type():
    assert not agrees(traitlets.Int(allow_none=True), "number")  # nullable in Python, not in TypeScript
    assert not agrees(traitlets.Unicode(), "number")
    assert not agrees(traitlets.Enum(("a", "b"), "a"), '"a" | "b"')  # enumerations are not copied
    assert agrees(traitlets.List(), "[number, number][]") and agrees(traitlets.Tuple(), "[string, string]")
