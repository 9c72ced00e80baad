"""`interplab tour` writes a report whose widgets render offline in chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[2]
LOCAL = ("file:", "blob:", "data:")


def test_tour_report_renders_offline(browser, tmp_path):
    out = tmp_path / "report.html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "interplab.cli", "tour", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page_text = out.read_text()

    # the widget state keeps each anywidget's front end (drop_defaults=False)
    state = json.loads(re.search(r'widget-state\+json">\s*(.*?)\s*</script>', page_text, re.S).group(1))["state"]
    views = [m for m in state.values() if m["model_module"] == "anywidget"]
    bundles = {name: (REPO / f"src/interplab/static/{name}.js").read_text()
               for name in ("tokenview", "scanner", "explorer", "editor")}
    assert views and all(v["state"]["_esm"] in bundles.values() for v in views)
    assert any(v["state"]["_esm"] == bundles["tokenview"] for v in views)

    context = browser.new_context(viewport={"width": 1100, "height": 800})
    blocked: list[str] = []

    def offline(route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    tokens = page.locator(".il-tokenview .il-token")
    expect(tokens.first).to_be_visible(timeout=30_000)
    # the tour's dense model (the IOI demo model, or a tiny GPT-2 without it) tokenises the sample:
    # the strip shows exactly the tokenizer's tokens, special tokens included
    from interplab.tour import SAMPLE, demo_models

    tokenizer = demo_models().models["dense"].tokenizer
    expected = tokenizer.convert_ids_to_tokens(tokenizer(SAMPLE)["input_ids"])
    assert tokens.all_inner_texts() == expected

    tokens.nth(4).hover()  # predictions were sent with the page: no kernel needed
    expect(page.locator(".il-tooltip:not([hidden]) table tr")).to_have_count(5)

    scanner = page.locator(".il-scanner")
    if any(v["state"]["_esm"] == bundles["scanner"] for v in views):
        overlay = scanner.locator(".il-heatmap-overlay")
        overlay.scroll_into_view_if_needed()
        d = {k: float(overlay.get_attribute(f"data-{k}")) for k in ("left", "top", "cell-width", "cell-height")}
        overlay.hover(position={"x": d["left"] + 12.5 * d["cell-width"], "y": d["top"] + 0.5 * d["cell-height"]})
        expect(page.locator(".il-tooltip:not([hidden])")).to_contain_text("layer 0 · expert 12")
        expect(scanner.locator(".il-mark-off")).to_have_count(4)
        expect(scanner.locator(".il-run-table tr")).to_have_count(7)  # header + 3 behaviour + 3 control prompts
        scanner.locator(".il-token-panel .il-token").nth(4).click()  # the first prompt's routing came with the page
        expect(scanner.locator(".il-routing tr")).to_have_count(5)
    if any(v["state"]["_esm"] == bundles["explorer"] for v in views):
        explorer = page.locator(".il-explorer")
        explorer.scroll_into_view_if_needed()
        # the one ablated node is drawn from the saved state, with the metric the kernel computed
        saved = next(v["state"] for v in views if v["state"]["_esm"] == bundles["explorer"])
        expect(explorer.locator(".il-metric")).to_have_attribute("data-ablated", str(saved["metric"]["ablated"]))
        expect(explorer.locator(".il-total").first).to_contain_text("of ")
        assert explorer.locator(".il-number").first.input_value() == "12"
        node = saved["ablated"][0]
        component, rest = node.split(".", 1)
        layer = int(rest.split("@")[0])
        page.mouse.move(*explorer.evaluate("(el, id) => el.ilExplorer.centre(id)", node))
        expect(page.locator(".il-tooltip:not([hidden])")).to_contain_text(f"layer {layer} · {component}")
        expect(page.locator(".il-tooltip:not([hidden])")).to_contain_text("ablated · click to restore")
    editor = page.locator(".il-editor")
    if any(v["state"]["_esm"] == bundles["editor"] for v in views):
        editor.scroll_into_view_if_needed()
        expect(editor.locator(".cm-content")).to_contain_text("wumpus -> yumpus")  # the rules, in CodeMirror
        expect(editor.locator(".il-lint-status")).to_contain_text("checked")  # the kernel's analysis came along
        assert editor.locator(".il-fact").count() > 0 and editor.locator(".il-token").count() > 0
        expect(editor.locator(".il-gen-steered .il-gen-text")).not_to_be_empty()
    assert blocked == [] and errors == []
    context.close()
