"""CircuitExplorer in a real JupyterLab: the graph is painted, hover, click to ablate (checked in the
kernel) without the graph moving, ctrl-click to pin, verify, group and intervene from the panel
(checked in the kernel), the circuit size box, export from Python, and the offline HTML page."""

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
node = next(n for n in explorer.circuit if n.startswith("attn"))
other = next(n for n in explorer.circuit if n.startswith("mlp"))
print(json.dumps({"node": node, "other": other, "metric": explorer.metric["ablated"]}))
"""


def centre(nb, node_id: str) -> tuple[float, float]:
    """Page coordinates of a node's centre, from the view's own handle."""
    root = nb.page.locator(".il-explorer")
    root.scroll_into_view_if_needed()
    xy = root.evaluate("(el, id) => el.ilExplorer.centre(id)", node_id)
    assert xy is not None, f"{node_id} is not drawn"
    return xy[0], xy[1]


def pixel(nb, x: float, y: float) -> list[int]:
    """The RGBA of the graph canvas at a page point."""
    return nb.page.evaluate(
        """([x, y]) => {
            const base = document.querySelector('.il-explorer .il-viewport-base');
            const r = base.getBoundingClientRect(), dpr = base.width / r.width;
            return Array.from(base.getContext('2d').getImageData((x - r.left) * dpr, (y - r.top) * dpr, 1, 1).data);
        }""", [x, y])


def kernel_json(nb, code: str):
    return json.loads(nb.run_code(code).strip().splitlines()[-1])


def pin_click(nb, x: float, y: float) -> None:
    """A ctrl-click (cmd-click on a Mac) at page point (x, y): what pins a node."""
    modifier = "Meta" if "Mac" in nb.page.evaluate("navigator.platform") else "Control"
    nb.page.mouse.move(x, y)
    nb.page.keyboard.down(modifier)
    nb.page.mouse.down()
    nb.page.mouse.up()
    nb.page.keyboard.up(modifier)


def test_click_ablates_in_the_kernel_and_nothing_moves(notebook, tmp_path):
    nb = notebook("explorer.ipynb", [SETUP, "explorer"])
    nb.run_all()
    first = json.loads(nb.output(0).strip().splitlines()[-1])
    root = nb.page.locator(".il-explorer")
    metric = root.locator(".il-metric")
    expect(metric).to_have_attribute("data-ablated", str(first["metric"]))
    x, y = centre(nb, first["node"])

    nb.page.mouse.move(x, y)
    tip = nb.page.locator(".il-tooltip:not([hidden])")
    expect(tip).to_contain_text(first["node"])
    expect(tip).to_contain_text("in the circuit · click to ablate")

    graph = root.locator(".il-viewport")
    box = graph.bounding_box()
    before = pixel(nb, x, y)
    nb.page.mouse.click(x, y)
    expect(metric).to_have_attribute("data-latency-ms", re.compile(r"^\d"), timeout=30_000)
    state = kernel_json(nb, "print(json.dumps({'ablated': explorer.ablated, 'metric': explorer.metric}))")
    assert state["ablated"] == [first["node"]] and state["metric"]["n_ablated"] == 1
    expect(metric).to_have_attribute("data-ablated", str(state["metric"]["ablated"]))
    assert pixel(nb, x, y) != before  # crossed out
    latency = float(metric.get_attribute("data-latency-ms"))
    print(f"click -> metric shown: {latency:.0f} ms (model re-run {1000 * state['metric']['seconds']:.0f} ms)")

    # the kernel's answer moved nothing: the same spot is the same node, and a second click restores it
    graph.scroll_into_view_if_needed()
    moved = graph.bounding_box()
    assert abs(moved["y"] - box["y"]) < 0.5 or centre(nb, first["node"]) is not None
    x2, y2 = centre(nb, first["node"])
    assert (round(x2 - moved["x"]), round(y2 - moved["y"])) == (round(x - box["x"]), round(y - box["y"]))
    nb.page.mouse.click(x2, y2)
    expect(metric).to_have_attribute("data-ablated", str(first["metric"]), timeout=30_000)
    assert kernel_json(nb, "print(json.dumps(explorer.ablated))") == []
    assert root.locator(".il-progress").bounding_box()["width"] == 200  # idle: the same size as busy

    # the circuit size box writes the top k of Python's ranking
    size = root.locator(".il-number").first
    size.fill("3")
    size.press("Enter")
    nb.page.wait_for_timeout(500)
    state = kernel_json(nb, "print(json.dumps({'circuit': explorer.circuit, 'k': explorer.top_k, "
                            "'top': [n.id for n in explorer.attribution.top(3)]}))")
    assert state["k"] == 3 and sorted(state["circuit"]) == sorted(state["top"])

    # a resid node cannot be ablated: the banner says so, the widget stays usable
    nb.page.mouse.click(*centre(nb, "resid.0@" + first["node"].split("@")[1]))
    expect(root.locator(".il-error")).to_contain_text("residual-stream state")

    # SVG and PNG of the graph, asked for from Python, drawn by the browser
    svg, png = tmp_path / "circuit.svg", tmp_path / "circuit.png"
    nb.run_code(f"explorer.export({str(svg)!r}); explorer.export({str(png)!r})")
    nb.page.wait_for_timeout(1500)
    nb.run_code("print(sorted(explorer.exports))")
    text = svg.read_text()
    assert text.startswith("<svg") and "layer ↑" in text and "L0" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nb.dialogs == []


def test_pin_verify_group_and_intervene_from_the_browser(notebook):
    nb = notebook("explorer-pins.ipynb", [SETUP, "explorer"])
    nb.run_all()
    first = json.loads(nb.output(0).strip().splitlines()[-1])
    root = nb.page.locator(".il-explorer")
    for node in (first["node"], first["other"]):
        pin_click(nb, *centre(nb, node))
    expect(root.locator(".il-pinned-table tr[data-node]")).to_have_count(2)
    pinned = kernel_json(nb, "print(json.dumps(explorer.pinned))")
    assert sorted(pinned) == sorted([first["node"], first["other"]])

    root.get_by_role("button", name="verify", exact=True).click()
    expect(root.locator(f".il-pinned-table tr[data-node='{first['node']}']")).not_to_contain_text("–", timeout=60_000)
    state = kernel_json(nb, "v = il.circuits.verify(model, task, explorer.pinned, progress=False)\n"
                            "ref = {n.id: x for n, x in v.exact.items()}\n"
                            "print(json.dumps({'mine': explorer.verified, 'ref': ref}))")
    for node, exact in state["ref"].items():
        assert abs(state["mine"][node]["exact"] - exact) < 1e-5

    root.locator(".il-group-name").fill("pair")
    root.get_by_role("button", name="group", exact=True).click()
    expect(root.locator("[data-group='pair']")).to_be_visible()
    groups = kernel_json(nb, "print(json.dumps(explorer.groups))")
    assert sorted(groups["pair"]) == sorted(pinned)

    root.locator("select[aria-label=act]").select_option("scale")
    root.locator("input[aria-label=factor]").fill("0")
    root.get_by_role("button", name="run", exact=True).click()
    expect(root.locator(".il-intervention-metric")).to_be_visible(timeout=60_000)
    result = kernel_json(nb, "r = il.circuits.intervene(model, task, explorer.pinned, 'zero')\n"
                             "print(json.dumps({'mine': explorer.intervention, 'zero': r.metric_after}))")
    assert result["mine"]["mode"] == "scale" and result["mine"]["factor"] == 0
    assert abs(result["mine"]["after"] - result["zero"]) < 1e-4  # scaling by 0 is zero-ablating
    expect(root.locator(".il-gen-after")).to_have_text(result["mine"]["generation"]["after"])
    assert nb.dialogs == []


def test_the_html_page_works_without_a_kernel(notebook, browser, tmp_path):
    page_path = tmp_path / "c.html"
    share = f"explorer.pin(explorer.circuit[:2]); explorer.to_html({str(page_path)!r})"
    nb = notebook("explorer-html.ipynb", [SETUP, share])
    nb.run_all()
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(page_path.as_uri())
    page.wait_for_selector("body[data-widgets-rendered='1']")
    root = page.locator(".il-explorer")
    expect(root.locator(".il-pinned-table tr[data-node]")).to_have_count(2)
    expect(root.locator(".il-kernel-note")).to_be_visible()
    node = json.loads(nb.output(0).strip().splitlines()[-1])["node"]
    xy = root.evaluate("(el, id) => el.ilExplorer.centre(id)", node)
    page.mouse.move(*xy)
    expect(page.locator(".il-tooltip:not([hidden])")).to_contain_text(node)
    root.get_by_role("button", name="verify", exact=True).click()
    expect(root.locator(".il-error")).to_contain_text("static report")
    page.close()


EDGE_SETUP = """\
ranked = sorted(explorer.edges(), key=lambda item: -abs(item[1]))
k, (edge, score) = next((k, item) for k, item in enumerate(ranked) if item[0].source.id in explorer._node_index
                        and item[0].target.id in explorer._node_index
                        and item[0].source.position != item[0].target.position)
explorer.top_edges = k + 1  # the edge is drawn
print(json.dumps({"source": edge.source.id, "target": edge.target.id, "score": score}))
"""


def test_edges_join_the_nodes_where_they_are_and_pins_read_them_back(notebook):
    nb = notebook("explorer-edges.ipynb", [SETUP, EDGE_SETUP, "explorer"])
    nb.run_all()
    edge = json.loads(nb.output(1).strip().splitlines()[-1])
    root = nb.page.locator(".il-explorer")
    expect(root.locator(".il-info")).to_contain_text("RelP edges (per position)")  # ig's edges come from RelP
    (x1, y1), (x2, y2) = centre(nb, edge["source"]), centre(nb, edge["target"])
    # hovering the source draws its edges on the overlay: the straight line between the two box centres
    overlay = """([x, y]) => {
        const c = document.querySelector('.il-explorer .il-viewport-overlay');
        const r = c.getBoundingClientRect(), dpr = c.width / r.width;
        const d = c.getContext('2d').getImageData((x - r.left) * dpr - 2, (y - r.top) * dpr - 2, 5, 5).data;
        return Math.max(...d.filter((_, i) => i % 4 === 3));
    }"""
    middle = [(x1 + x2) / 2, (y1 + y2) / 2]
    assert nb.page.evaluate(overlay, middle) == 0
    nb.page.mouse.move(x1, y1)
    expect(nb.page.locator(".il-tooltip:not([hidden])")).to_contain_text(edge["source"])
    assert nb.page.evaluate(overlay, middle) > 0
    # ctrl/cmd-click both ends: the kernel's subgraph has the edge, between the nodes at their positions
    for x, y in ((x1, y1), (x2, y2)):
        pin_click(nb, x, y)
    expect(root.locator(".il-pinned-table tr[data-node]")).to_have_count(2)
    sub = kernel_json(nb, "print(json.dumps(explorer.subgraph()))")
    found = {(e["source"], e["target"]): e["score"] for e in sub["edges"]}
    assert abs(found[(edge["source"], edge["target"])] - edge["score"]) < 1e-6
    assert all("@" in a and "@" in b for a, b in found)  # position-resolved ends
    assert nb.dialogs == []
