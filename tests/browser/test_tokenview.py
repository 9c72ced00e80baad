"""TokenView in a real JupyterLab: hover, click, escaping, kernel errors, export."""

from __future__ import annotations

from pathlib import Path

import torch
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[2]

SETUP = """\
import interplab as il
print(il.__file__)
model = il.zoo.tiny("gpt2")
"""
TEXT = "the cat sat on the mat"
EVIL = "<img src=x onerror=alert(1)>"


def reference_top5(text: str, position: int) -> list[str]:
    """The five likeliest next tokens after ``position``, from the plain transformers forward pass."""
    import interplab as il

    model = il.zoo.tiny("gpt2")  # seeded: the same weights as the notebook's
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logits = model.hf(ids).logits[0, position]
    return [model.tokenizer.decode([i]) for i in logits.topk(5).indices.tolist()]


def hover(nb, index: int):
    token = nb.page.locator(".il-tokenview .il-token").nth(index)
    nb.page.mouse.move(0, 0)
    token.hover()
    return token


def test_hover_shows_predictions_and_click_selects(notebook):
    nb = notebook("tokenview.ipynb", [SETUP, f"view = il.TokenView(model, {TEXT!r})\nview"])
    nb.run_all()
    assert str(REPO / "src" / "interplab") in nb.output(0), "the kernel imported another interplab"

    tokens = nb.page.locator(".il-tokenview .il-token")
    assert tokens.all_inner_texts() == TEXT.split()
    # token 0 has no value (nothing precedes it): no colour; the others are coloured
    styles = [tokens.nth(i).get_attribute("style") or "" for i in range(6)]
    assert "background" not in styles[0] and all("background" in s for s in styles[1:])

    hover(nb, 2)
    tip = nb.page.locator(".il-tooltip:not([hidden])")
    tip.locator("table tr").nth(4).wait_for(timeout=30_000)
    assert "token 2" in tip.inner_text()
    shown = [t.strip('"') for t in tip.locator("td.il-mono").all_inner_texts()]
    assert shown == reference_top5(TEXT, 2)

    tokens.nth(3).click()
    nb.page.wait_for_timeout(500)
    assert nb.run_code("print(view.selected)").strip() == "3"
    assert "il-selected" in (tokens.nth(3).get_attribute("class") or "")
    tokens.nth(3).click()  # a second click deselects
    nb.page.wait_for_timeout(500)
    assert nb.run_code("print(view.selected)").strip() == "None"


def test_export_reaches_the_kernel(notebook, tmp_path):
    svg, png = tmp_path / "view.svg", tmp_path / "view.png"
    nb = notebook("export.ipynb", [SETUP, f"view = il.TokenView(model, {TEXT!r})\nview"])
    nb.run_all()
    nb.run_code(f"view.export({str(svg)!r}); view.export({str(png)!r})")
    nb.page.wait_for_timeout(1500)  # the browser answers once the cell is done
    nb.run_code("print(sorted(view.exports))")
    assert svg.read_text().startswith("<svg") and all(f">{w}</text>" in svg.read_text() for w in TEXT.split())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_text_is_never_markup(notebook):
    cells = [
        SETUP,
        f"""\
import torch, transformers as T
from interplab.zoo.tiny import WORDS, tiny_config, word_tokenizer
EVIL = {EVIL!r}
torch.manual_seed(0)
evil_model = il.load(T.AutoModelForCausalLM.from_config(tiny_config("gpt2")),
                     tokenizer=word_tokenizer(WORDS, extra_tokens=(EVIL,)))
view = il.TokenView(evil_model, "the cat " + EVIL + " sat")
print(view.tokens)
view""",
    ]
    nb = notebook("escaping.ipynb", cells)
    nb.run_all()
    assert EVIL in nb.output(1)
    tokens = nb.page.locator(".il-tokenview .il-token")
    assert tokens.count() == 4
    assert tokens.nth(2).inner_text() == EVIL.replace(" ", "·")  # shown as text, spaces made visible
    hover(nb, 2)
    nb.page.locator(".il-tooltip:not([hidden]) table").wait_for(timeout=30_000)
    assert EVIL in nb.page.locator(".il-tooltip:not([hidden])").inner_text()
    assert nb.page.locator(".il-root img, .il-tooltip img").count() == 0
    assert nb.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert nb.dialogs == []


def test_kernel_error_shows_in_banner_and_widget_recovers(notebook):
    cells = [
        SETUP,
        f"""\
view = il.TokenView(model, {TEXT!r}, values=[0, 1, 2, 3, 4, 5], label="position")
def planted_failure():
    raise RuntimeError("planted failure in the kernel")
view.predictions = planted_failure
view""",
    ]
    nb = notebook("errors.ipynb", cells)
    nb.run_all()
    banner = nb.page.locator(".il-tokenview .il-error")
    assert banner.is_hidden()

    hover(nb, 1)
    banner.wait_for(state="visible", timeout=30_000)
    assert "RuntimeError" in banner.inner_text() and "planted failure in the kernel" in banner.inner_text()
    expect(nb.page.locator(".il-tooltip:not([hidden])")).to_contain_text("not available: planted failure")
    assert nb.run_code("print(type(view.last_exception).__name__, view.error['command'])").strip() == \
        "RuntimeError _top_k"

    # the widget still works: restore the method, hover again (a success clears the banner), click
    nb.run_code("del view.predictions")
    hover(nb, 2)
    nb.page.locator(".il-tooltip:not([hidden]) table tr").nth(4).wait_for(timeout=60_000)
    expect(banner).to_be_hidden()
    nb.page.locator(".il-tokenview .il-token").nth(4).click()
    nb.page.wait_for_timeout(500)
    assert nb.run_code("print(view.selected, view.error)").strip() == "4 None"

    # an error the user dismisses is cleared in the kernel too
    nb.run_code("view.error = {'type': 'RuntimeError', 'message': 'planted again'}")
    expect(banner).to_contain_text("planted again")
    banner.locator(".il-error-close").click()
    expect(banner).to_be_hidden()
    nb.page.wait_for_timeout(500)
    assert nb.run_code("print(view.error)").strip() == "None"


def test_hard_tokens_are_shown_not_obeyed_and_long_ones_stay_inside(notebook, tmp_path):
    """A tokenizer whose tokens are UTF-16 code units: a right-to-left override, control characters
    and the two halves of an emoji are tokens of their own (tests/unit/odd_tokens.py)."""
    svg, png = tmp_path / "odd.svg", tmp_path / "odd.png"
    long = "x" * 300
    cells = [
        f"""\
import sys
sys.path.insert(0, {str(REPO / "tests" / "unit")!r})
import torch, transformers as T
import interplab as il
from odd_tokens import ODD_TEXT, odd_model
from interplab.zoo.tiny import WORDS, tiny_config, word_tokenizer
view = il.TokenView(odd_model(), ODD_TEXT)
view""",
        f"""\
torch.manual_seed(0)
long_model = il.load(T.AutoModelForCausalLM.from_config(tiny_config("gpt2")),
                     tokenizer=word_tokenizer(WORDS, extra_tokens=({long!r},)))
il.TokenView(long_model, "the cat {long} sat")""",
    ]
    nb = notebook("odd.ipynb", cells)
    nb.run_all()
    first = nb.page.locator(".il-tokenview").nth(0)
    tokens = first.locator(".il-token")
    assert tokens.all_inner_texts() == ["a", "\\u202e", "b", "\\x07", "c", "\\ud83d", "\\ude00", "d", "\\x1b",
                                        "\\x00", "e"]
    text = first.inner_text()
    assert not any(0x202A <= ord(c) <= 0x202E or ord(c) < 0x09 or 0xD800 <= ord(c) <= 0xDFFF for c in text)
    xs = [tokens.nth(i).bounding_box()["x"] for i in range(4)]
    assert xs == sorted(xs), "a token after the override was moved"
    hover(nb, 1)
    expect(nb.page.locator(".il-tooltip:not([hidden])")).to_contain_text('"\\u202e"')
    nb.page.locator(".il-tooltip:not([hidden]) table").wait_for(timeout=30_000)

    nb.run_code(f"view.export({str(svg)!r}); view.export({str(png)!r})")
    nb.page.wait_for_timeout(1500)
    nb.run_code("print(sorted(view.exports))")
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg.read_text(encoding="utf-8"))  # well-formed XML
    shown = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "\\ud83d" in shown and "\\x00" in shown and "\\u202e" in shown
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    strip = nb.page.locator(".il-tokenview").nth(1).locator(".il-tokenstrip")
    edge = strip.bounding_box()
    boxes = [b for b in (t.bounding_box() for t in strip.locator(".il-token").all()) if b]
    assert len(boxes) == 4 and max(b["x"] + b["width"] for b in boxes) <= edge["x"] + edge["width"] + 1
    assert nb.dialogs == []
