"""ExpertScanner and TokenView stay readable in JupyterLab Light and Dark: text contrast computed in
the page (readable.py), tooltips included, and the theme colours the canvases draw text with."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from readable import contrast_failures, is_dark, theme_failures

CELLS = ["""\
import torch
torch.set_num_threads(1)
import interplab as il
from interplab.tasks import assistant
model = il.zoo.load("experts")
scanner = il.ExpertScanner(model, assistant.sensitive_prompts("heldout")[:4], assistant.ordinary_prompts("heldout")[:4],
                           max_new_tokens=6, run_n=1)
scanner.off = scanner.scan.top(2)
scanner.error = {"type": "ValueError", "message": "a planted error, to check the banner", "command": "_mark"}
scanner""", """\
view = il.TokenView(il.zoo.tiny("gpt2"), "the cat sat on the mat")
view"""]


def check(nb) -> list[str]:
    canvases = theme_failures(nb.page, ".il-scanner") + theme_failures(nb.page, ".il-tokenview")
    return contrast_failures(nb.page) + canvases


def hover_everything(nb) -> list[str]:
    """Show each kind of tooltip in turn and check it."""
    failures = []
    overlay = nb.page.locator(".il-scanner .il-heatmap-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    left, top = (float(overlay.get_attribute(f"data-{k}")) for k in ("left", "top"))
    nb.page.mouse.move(box["x"] + left + 3, box["y"] + top + 3)
    expect(nb.page.locator(".il-tooltip:not([hidden])")).to_contain_text("layer 0")
    failures += contrast_failures(nb.page)
    token = nb.page.locator(".il-tokenview .il-token").nth(2)
    token.hover()
    nb.page.locator(".il-tooltip:not([hidden]) table tr").nth(4).wait_for(timeout=30_000)
    failures += contrast_failures(nb.page)
    return failures


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_widgets_are_readable(notebook, lab, theme):
    setting = {"theme": "JupyterLab Dark" if theme == "dark" else "JupyterLab Light"}
    with lab.setting("@jupyterlab/apputils-extension/themes", setting):
        nb = notebook(f"themes-{theme}.ipynb", CELLS)
        assert is_dark(nb.page) == (theme == "dark")
        nb.run_all()
        expect(nb.page.locator(".il-scanner .il-error")).to_be_visible()
        expect(nb.page.locator(".il-scanner .il-mark-off")).to_have_count(2)
        failures = check(nb) + hover_everything(nb)
    assert failures == [], "\n".join(failures)
