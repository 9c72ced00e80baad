"""CircuitExplorer in a real JupyterLab: the graph is painted, hover, click a node to ablate it
(checked in the kernel), the nodes slider sets the circuit, export from Python."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

SETUP = """\
import json, time
import torch
torch.set_num_threads(1)
import interplab as il
if "ioi" in il.zoo.available():
    model = il.zoo.load("ioi")
    task = il.tasks.ioi(model, n=16, seed=0)
else:  # a tiny random GPT-2 where the demo model is not installed
    model = il.zoo.tiny("gpt2", seed=4)
    pairs = [("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
             ("the dog sat in the store and the cat", "the cat sat in the store and the dog", " sat", " is")]
    task = il.circuits.ContrastTask.build(model, *map(list, zip(*pairs)), name="ioi")
explorer = il.CircuitExplorer(model, task, top_k=8)
node = next(il.circuits.nodes.node_from_id(n) for n in explorer.circuit if n.startswith("attn"))
print(json.dumps({"node": node.id, "layer": node.layer, "position": node.position,
                  "metric": explorer.metric["ablated"]}))
"""

ROW = {"resid": 0, "attn": 1, "mlp": 2}


def node_point(nb, layer: int, row: int, position: int) -> tuple[float, float]:
    """Page coordinates of a node's centre, from the layout and view the overlay publishes."""
    overlay = nb.page.locator(".il-explorer .il-graph-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    d = {k: float(overlay.get_attribute(f"data-{k}")) for k in
         ("left", "bottom", "col-width", "row-height", "rows", "scale", "tx", "ty")}
    layer_h = d["rows"] * d["row-height"] + 10
    x = d["left"] + (position + 0.5) * d["col-width"]
    y = d["bottom"] - layer * layer_h - 5 - (row + 0.5) * d["row-height"]
    return box["x"] + x * d["scale"] + d["tx"], box["y"] + y * d["scale"] + d["ty"]


def pixel(nb, x: float, y: float) -> list[int]:
    """The RGBA of the graph canvas at a page point."""
    return nb.page.evaluate(
        """([x, y]) => {
            const base = document.querySelector('.il-explorer .il-graph');
            const r = base.getBoundingClientRect(), dpr = base.width / r.width;
            return Array.from(base.getContext('2d').getImageData((x - r.left) * dpr, (y - r.top) * dpr, 1, 1).data);
        }""", [x, y])


def kernel_json(nb, code: str) -> dict:
    return json.loads(nb.run_code(code).strip().splitlines()[-1])


def test_click_a_node_ablates_it_in_the_kernel(notebook, tmp_path):
    nb = notebook("explorer.ipynb", [SETUP, "explorer"])
    nb.run_all()
    first = json.loads(nb.output(0).strip().splitlines()[-1])
    root = nb.page.locator(".il-explorer")
    expect(root.locator(".il-metric")).to_have_attribute("data-ablated", str(first["metric"]))
    x, y = node_point(nb, first["layer"], ROW["attn"], first["position"])

    nb.page.mouse.move(x, y)
    tip = nb.page.locator(".il-tooltip:not([hidden])")
    expect(tip).to_contain_text(f"layer {first['layer']} · attn")
    expect(tip).to_contain_text("in the circuit · click to ablate")

    before = pixel(nb, x, y)
    nb.page.mouse.click(x, y)
    metric = root.locator(".il-metric")
    expect(metric).to_have_attribute("data-latency-ms", re.compile(r"^\d"), timeout=30_000)
    state = kernel_json(nb, "print(json.dumps({'ablated': explorer.ablated, 'metric': explorer.metric}))")
    assert state["ablated"] == [first["node"]]
    assert state["metric"]["ablated"] != first["metric"] and state["metric"]["n_ablated"] == 1
    expect(metric).to_have_attribute("data-ablated", str(state["metric"]["ablated"]))
    assert pixel(nb, x, y) != before  # the ablated node is crossed out
    latency = float(metric.get_attribute("data-latency-ms"))
    print(f"click -> metric shown: {latency:.0f} ms (model re-run {1000 * state['metric']['seconds']:.0f} ms)")

    # a second click restores the node (the cell run above may have scrolled the page)
    nb.page.mouse.click(*node_point(nb, first["layer"], ROW["attn"], first["position"]))
    expect(metric).to_have_attribute("data-ablated", str(first["metric"]), timeout=30_000)
    assert kernel_json(nb, "print(json.dumps(explorer.ablated))") == []

    # the nodes slider prunes in the browser; on release the circuit reaches the kernel
    slider = root.locator(".il-range").first
    slider.fill("3")
    expect(root.locator(".il-size")).to_contain_text("circuit: 3 of")
    nb.page.wait_for_timeout(500)
    state = kernel_json(nb, "print(json.dumps({'circuit': explorer.circuit, 'k': explorer.top_k, "
                            "'top': [n.id for n in explorer.attribution.top(3)]}))")
    assert state["k"] == 3 and sorted(state["circuit"]) == sorted(state["top"])

    # a resid node cannot be ablated: the banner says so, the widget stays usable
    nb.page.mouse.click(*node_point(nb, 0, ROW["resid"], 0))
    expect(root.locator(".il-error")).to_contain_text("residual-stream state")

    # SVG and PNG of the graph, asked for from Python, drawn by the browser
    svg, png = tmp_path / "circuit.svg", tmp_path / "circuit.png"
    nb.run_code(f"explorer.export({str(svg)!r}); explorer.export({str(png)!r})")
    nb.page.wait_for_timeout(1500)
    nb.run_code("print(sorted(explorer.exports))")
    text = svg.read_text()
    assert text.startswith("<svg") and "edges (atp)" in text and "layer 0" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nb.dialogs == []
