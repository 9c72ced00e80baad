"""Package boundaries: the engine never loads the widget stack; the widgets load on first use."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import interplab

SRC = str(Path(interplab.__file__).resolve().parents[1])

SCRIPT = textwrap.dedent("""
    import sys

    import torch

    import interplab as il

    def widget_modules():
        return sorted(m for m in ("anywidget", "ipywidgets", "traitlets") if m in sys.modules)

    assert not widget_modules(), f"import interplab loaded {widget_modules()}"
    model = il.zoo.tiny("gpt2")
    task = il.circuits.ContrastTask(["the cat sat on the"], ["the dog sat on the"], " mat", " dog")
    il.circuits.attribute(model, task, method="atp", progress=False)
    il.experts.route(il.zoo.tiny("mixtral"), ["the cat sat"], progress=False)
    concepts = il.reasoning.Concepts(1)
    concepts.add("cat", direction=torch.ones(model.anatomy.d_model), threshold=0.0)
    il.reasoning.reason(model, "the cat sat", concepts, "cat -> animal")
    assert not widget_modules(), f"the engine loaded {widget_modules()}"

    from interplab import CircuitExplorer

    assert "anywidget" in sys.modules
    assert CircuitExplorer is il.widgets.CircuitExplorer
    for name in ("TokenView", "ExpertScanner", "RuleEditor"):
        assert getattr(il, name) is getattr(il.widgets, name), name
    print("checked")
""")


def test_the_engine_does_not_import_widgets_and_the_widgets_load_on_first_use():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("checked")


def test_unknown_attributes_still_raise():
    with pytest.raises(AttributeError, match="CircuitExplorr"):
        interplab.CircuitExplorr  # noqa: B018
    assert {"CircuitExplorer", "TokenView", "widgets", "load"} <= set(dir(interplab))
