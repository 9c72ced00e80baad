"""ExpertScanner in a real JupyterLab on the experts demo model: hover, click a cell, run, errors, token routing."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

SETUP = """\
import torch
torch.set_num_threads(1)
import interplab as il
from interplab.tasks import assistant
model = il.zoo.load("experts")
behaviour = assistant.sensitive_prompts("heldout")[:8]
control = assistant.ordinary_prompts("heldout")[:8]
scanner = il.ExpertScanner(model, behaviour, control, tokens="response", max_new_tokens=12, run_n=2)
layer, expert, _ = scanner.scan.top(1)[0]
print(f"top {layer} {expert}")
"""


def cell_point(nb, layer: int, expert: int) -> tuple[float, float]:
    """The page coordinates of a heatmap cell's centre, from the layout the overlay publishes."""
    overlay = nb.page.locator(".il-scanner .il-heatmap-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    d = {k: float(overlay.get_attribute(f"data-{k}")) for k in ("left", "top", "cell-width", "cell-height")}
    return (box["x"] + d["left"] + (expert + 0.5) * d["cell-width"],
            box["y"] + d["top"] + (layer + 0.5) * d["cell-height"])


def test_click_a_cell_run_and_read_it_back_in_the_kernel(notebook, tmp_path):
    nb = notebook("scanner.ipynb", [SETUP, "scanner"])
    nb.run_all()
    layer, expert = map(int, re.search(r"top (\d+) (\d+)", nb.output(0)).groups())
    root = nb.page.locator(".il-scanner")
    expect(root.locator(".il-heatmap-overlay")).to_have_attribute("data-experts", "32")

    # the map is painted: the top cell is not the background
    x, y = cell_point(nb, layer, expert)
    painted = nb.page.evaluate(
        """([layer, expert]) => {
            const overlay = document.querySelector('.il-scanner .il-heatmap-overlay');
            const base = document.querySelector('.il-scanner .il-heatmap');
            const d = overlay.dataset, dpr = base.width / parseFloat(base.style.width);
            const px = (Number(d.left) + (expert + 0.5) * Number(d.cellWidth)) * dpr;
            const py = (Number(d.top) + (layer + 0.5) * Number(d.cellHeight)) * dpr;
            return Array.from(base.getContext('2d').getImageData(px, py, 1, 1).data);
        }""", [layer, expert])
    assert painted[3] == 255 and painted[:3] != [255, 255, 255]

    nb.page.mouse.move(x, y)
    tip = nb.page.locator(".il-tooltip:not([hidden])")
    expect(tip).to_contain_text(f"layer {layer} · expert {expert}")

    nb.page.mouse.click(x, y)  # switch the top expert off
    expect(root.locator(".il-mark-off")).to_have_text(f"L{layer}E{expert} ×")
    root.locator(".il-run-panel .il-primary").click()
    expect(root.locator(".il-run-table tr")).to_have_count(5, timeout=60_000)  # header + 2 behaviour + 2 control

    out = nb.run_code("import json\nprint(json.dumps({'off': scanner.off, 'rows': scanner.runs[-1]['rows']}))")
    state = json.loads(out.strip().splitlines()[-1])
    assert [layer, expert] in state["off"]
    rows = state["rows"]
    assert all(r["baseline"] and r["intervened"] for r in rows)
    assert any(r["baseline"] != r["intervened"] for r in rows), rows
    changed = root.locator(".il-run-table td.il-changed")
    assert changed.count() == sum(r["baseline"] != r["intervened"] for r in rows)

    # too many experts forced on in one layer: the banner explains, the marks stay as they were
    nb.page.keyboard.down("Shift")
    for e in (0, 1, 2):
        nb.page.mouse.click(*cell_point(nb, 3, e))
        nb.page.wait_for_timeout(300)
    nb.page.keyboard.up("Shift")
    banner = root.locator(".il-error")
    expect(banner).to_be_visible(timeout=30_000)
    expect(banner).to_contain_text("top_k=2")
    expect(root.locator(".il-mark-on")).to_have_count(2)
    assert nb.run_code("print(scanner.on)").strip() == "[[3, 0], [3, 1]]"

    # the token panel routes a prompt in the kernel; a clicked token lists its experts per layer
    root.locator(".il-token-panel select").select_option("behaviour:0")
    tokens = root.locator(".il-token-panel .il-token")
    expect(tokens.first).to_be_visible(timeout=30_000)
    tokens.nth(3).click()
    expect(root.locator(".il-routing tr")).to_have_count(5)  # header + 4 layers
    assert root.locator(".il-routing tr").nth(1).locator(".il-chip").count() == 4  # top-2, and with the marks

    # PNG and SVG of the map, asked for from Python, drawn by the browser
    svg, png = tmp_path / "scan.svg", tmp_path / "scan.png"
    nb.run_code(f"scanner.export({str(svg)!r}); scanner.export({str(png)!r})")
    nb.page.wait_for_timeout(1500)  # the browser answers once the cell is done
    nb.run_code("print(sorted(scanner.exports))")
    text = svg.read_text()
    assert text.startswith("<svg") and ">L3</text>" in text and ">31</text>" in text
    assert f"switched off: L{layer}E{expert}" in text and "forced on: L3E0, L3E1" in text
    assert text.count("<path") > 10
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nb.dialogs == []
