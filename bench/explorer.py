"""Render time and memory of the CircuitExplorer at real-model scale in chromium; prints JSON.

    PYTHONPATH=src python bench/explorer.py [--layers 30 --heads 9 --positions 16 --edges 20000] [--reps 20]
    PYTHONPATH=src python bench/explorer.py --model smollm2     # also: building the explorer on SmolLM2

A blank page in Debian's chromium (headless, the browser tests' launch flags) imports the built
front end (``static/explorer.js``, from a Blob URL, as the report runtime does) and renders it on a
stand-in model whose traits are written by the widget's own encoders: a head-level graph of
``layers x (heads + mlp) x positions`` nodes (30 x 10 x 16 = 4,800) with seeded scores, Python-style
rankings, and ``--edges`` position-resolved edges ``u@p -> v@q`` (q >= p, v in a later layer), all
of them drawn. Measured, each up to a forced rasterisation of the canvas (``getImageData``):

- ``first_render_ms``: ``render`` (decoding, layout, scene, the first paint of graph and axes), the
  first in the page (including the JIT's first compile of the code); ``warm_render_ms``: a second
  view of the same model rendered in the same page.
- ``pan_ms``: a drag step and its repaint; ``zoom_ms``: a wheel step and its repaint (zoomed out,
  layers drawn as one cell per position, then in, every head drawn); ``restyle_ms``: a new circuit
  size (flags, colours, edges recomputed, repainted); ``hover_ms``: a pointer move onto a node.
- ``heap_mb``: the JS heap in use after rendering, minus before (chromium's precise memory info).

Each measurement runs with every edge drawn (``--drawn 0``) and with the top 40 and 2,000 (the
explorer draws the top ``top_edges``), each between the centres of the two boxes it joins, one
canvas path per sign and |score| bucket (``js/explorer/edges.ts``; thin lines above 500 edges).
``load_average`` says how busy the machine was.

Target: a render under 200 ms; pan and zoom repaints under 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
STATIC = REPO / "src" / "interplab" / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--enable-precise-memory-info"]
TARGET_RENDER_MS = 200
TARGET_FRAME_MS = 50

PAGE_SCRIPT = """
async ({ source, css, state, reps }) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);
  const widget = (await import(URL.createObjectURL(new Blob([source], { type: "text/javascript" })))).default;
  const unpack = (v) => {
    if (v && typeof v === "object" && "b64" in v) {
      const raw = atob(v.b64);
      const bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return { dtype: v.dtype, shape: v.shape, data: new DataView(bytes.buffer) };
    }
    if (Array.isArray(v)) return v.map(unpack);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unpack(x)]));
    return v;
  };
  const traits = unpack(state);
  const listeners = new Map();
  const model = {
    get: (k) => traits[k],
    set: (k, v) => { traits[k] = v; for (const f of listeners.get(`change:${k}`) ?? []) f(); },
    save_changes() {}, send() {},
    on: (e, f) => { if (!listeners.has(e)) listeners.set(e, new Set()); listeners.get(e).add(f); },
    off: (e, f) => listeners.get(e)?.delete(f),
  };
  const el = document.createElement("div");
  el.style.width = "900px";
  document.body.appendChild(el);
  const flush = () => el.querySelector(".il-viewport-base").getContext("2d").getImageData(0, 0, 1, 1);
  const heap = () => (performance.memory ? performance.memory.usedJSHeapSize : NaN);
  const heapBefore = heap();
  let t = performance.now();
  widget.render({ model, el });
  flush();
  const first = performance.now() - t;
  const heapAfter = heap();
  const root = el.querySelector(".il-explorer");
  const handle = root.ilExplorer;
  const overlay = el.querySelector(".il-viewport-overlay");
  const box = overlay.getBoundingClientRect();
  const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
  const step = (fn) => { t = performance.now(); fn(); handle.paint(); flush(); return performance.now() - t; };
  const pointer = (type, x, y) => overlay.dispatchEvent(new PointerEvent(type, {
    clientX: x, clientY: y, button: 0, buttons: type === "pointerup" ? 0 : 1, bubbles: true }));
  const wheel = (dy) => overlay.dispatchEvent(new WheelEvent("wheel", {
    clientX: cx, clientY: cy, deltaY: dy, bubbles: true, cancelable: true }));

  handle.paint();
  const zoomOut = [];
  for (let i = 0; i < reps; i++) zoomOut.push(step(() => wheel(i % 2 ? 60 : -60)));
  const pan = [];
  pointer("pointerdown", cx, cy);
  for (let i = 0; i < reps; i++) {
    pan.push(step(() => pointer("pointermove", cx + ((i % 10) - 5) * 6, cy + (i % 7) * 9 + 8)));
  }
  pointer("pointerup", cx, cy);
  for (let i = 0; i < 12; i++) { wheel(-200); }
  const rowPx = Number(overlay.dataset.sy) * 10;
  const zoomIn = [];
  for (let i = 0; i < reps; i++) zoomIn.push(step(() => wheel(i % 2 ? 40 : -40)));
  const sizes = [48, 480, 1200, 96, 4800];
  const restyle = [];
  for (let i = 0; i < reps; i++) {
    const k = sizes[i % sizes.length];
    restyle.push(step(() => model.set("circuit", Array.from({ length: k }, (_, r) => `n${r}`))));
  }
  const hover = [];
  for (let i = 0; i < 100; i++) {
    t = performance.now();
    const x = box.left + 80 + (i * 37) % (box.width - 100);
    const y = box.top + 20 + (i * 53) % (box.height - 70);
    overlay.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, buttons: 0, bubbles: true }));
    hover.push(performance.now() - t);
  }
  // a second view of the same model in the same page: the render without the JIT's first compile
  const again = document.createElement("div");
  again.style.width = "900px";
  document.body.appendChild(again);
  t = performance.now();
  widget.render({ model, el: again });
  again.querySelector(".il-viewport-base").getContext("2d").getImageData(0, 0, 1, 1);
  const warm = performance.now() - t;
  return { first, warm, renderMs: handle.renderMs, zoomOut, pan, zoomIn, restyle, hover, rowPx,
           drawnEdges: handle.drawnEdges(), heapMb: (heapAfter - heapBefore) / 1e6, heapTotalMb: heapAfter / 1e6 };
}
"""


def wire(array: np.ndarray, dtype: str) -> dict:
    from interplab.widgets.codecs import encode_array

    e = encode_array(array, dtype)
    return {"dtype": e["dtype"], "shape": e["shape"], "b64": base64.b64encode(e["data"]).decode()}


def synthetic_state(layers: int, heads: int, positions: int, n_edges: int, drawn: int | None = None,
                    seed: int = 0) -> dict:
    """The explorer's traits for a head-level graph with seeded scores and position-resolved edges."""
    from interplab.widgets.explorer import COLOURS, COMPONENTS

    rng = np.random.default_rng(seed)
    rows = [(c, h) for h in range(heads) for c in ("head",)] + [("mlp", -1)]
    nodes = [(c, layer, h, p) for layer in range(layers) for c, h in rows for p in range(positions)]
    n = len(nodes)
    scores = (rng.standard_normal(n) * np.exp(rng.standard_normal(n) * 1.5) * 0.01).astype(np.float32)
    order = np.argsort(-np.abs(scores), kind="stable").astype(np.int32)
    share = np.abs(scores[order]).astype(np.float64)
    layer = np.array([x[1] for x in nodes])
    pos = np.array([x[3] for x in nodes])
    ids = [f"{c}.{layer_}{'' if h < 0 else f'.{h}'}@{p}" for c, layer_, h, p in nodes]
    source = rng.integers(0, n, size=n_edges * 3)
    target = rng.integers(0, n, size=n_edges * 3)
    ok = (layer[target] > layer[source]) & (pos[target] >= pos[source])
    source, target = source[ok][:n_edges], target[ok][:n_edges]
    edge_scores = (rng.standard_normal(len(source)) * 0.01).astype(np.float32)
    ranked = np.argsort(-np.abs(edge_scores), kind="stable")
    source, target, edge_scores = source[ranked], target[ranked], edge_scores[ranked]
    eshare = np.abs(edge_scores).astype(np.float64)
    return {
        "model_name": "synthetic", "task_name": "bench", "n_prompts": 8, "level": "head", "n_layers": layers,
        "n_heads": heads, "labels": [f" tok{p}" for p in range(positions)], "method": "atp", "ablation": "mean",
        "colour": "log", "top_k": n // 10, "top_edges": len(source) if drawn is None else drawn,
        "circuit": [ids[i] for i in order[: n // 10]],
        "ablated": [ids[order[3]]], "pinned": [ids[order[0]], ids[order[1]]], "groups": {},
        "suggestions": [], "collapsed": {"layers": [], "ranges": []}, "zoom": {}, "verified": {},
        "intervention": {}, "breakdown": {}, "error": None, "progress": None,
        "metric": {"clean": 5.8, "corrupt": -2.4, "full": 5.8, "empty": 1.5, "ablated": 5.8, "circuit": 2.0,
                   "faithfulness": 0.1, "n_ablated": 1, "size": n // 10, "total": n, "ablation": "mean",
                   "seconds": 0.7},
        "_vocab": {"methods": [["atp", "AtP"]], "ablations": [["mean", "mean"]], "interventions": [["mean", "mean"]],
                   "colours": [[k, v] for k, v in COLOURS.items()], "components": list(COMPONENTS),
                   "circuit_components": ["head", "mlp"],
                   "metric": {"name": "logit_diff", "label": "logit difference"}},
        "_nodes": {"components": list(COMPONENTS),
                   "component": wire(np.array([COMPONENTS.index(c) for c, *_ in nodes]), "uint8"),
                   "layer": wire(layer, "int32"), "head": wire(np.array([h for _, _, h, _ in nodes]), "int32"),
                   "position": wire(pos, "int32")},
        "_scores": {"atp": wire(scores, "float32")},
        "_orders": {"atp": {"order": wire(order, "int32"),
                            "cumulative": wire(np.cumsum(share) / share.sum(), "float32")}},
        "_edges": {"method": "atp", "label": "AtP", "positions": True, "count": n_edges, "mass": 1.0,
                   "ends": ids, "source": wire(source, "int32"), "target": wire(target, "int32"),
                   "score": wire(edge_scores, "float32"),
                   "cumulative": wire(np.cumsum(eshare) / eshare.sum(), "float32")},
    }


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2)}


def measure_browser(layers: int, heads: int, positions: int, edges: int, drawn: int | None, reps: int,
                    screenshot: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    bundle = STATIC / "explorer.js"
    if not bundle.is_file():
        raise FileNotFoundError(f"{bundle} is not built: run `npm run build`")
    state = synthetic_state(layers, heads, positions, edges, drawn)
    args = {"source": bundle.read_text(), "css": (STATIC / "explorer.css").read_text(), "state": state, "reps": reps}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("about:blank")
        r = page.evaluate(PAGE_SCRIPT, args)
        if errors:
            raise RuntimeError(f"the page failed: {errors}")
        if screenshot is not None:
            page.locator(".il-explorer").first.screenshot(path=str(screenshot))
        version = browser.version
        browser.close()
    nodes = layers * (heads + 1) * positions
    out = {
        "chromium": version, "nodes": nodes, "edges": edges, "top_edges": state["top_edges"],
        "edges_drawn": r["drawnEdges"], "layers": layers, "heads": heads,
        "positions": positions, "width_css_px": 900,
        "first_render_ms": round(r["first"], 1), "warm_render_ms": round(r["warm"], 1),
        "zoomed_out_repaint_ms": summary(r["zoomOut"]), "pan_ms": summary(r["pan"]),
        "zoomed_in_repaint_ms": summary(r["zoomIn"]), "zoomed_in_row_px": round(r["rowPx"], 1),
        "restyle_ms": summary(r["restyle"]), "hover_ms": summary(r["hover"]),
        "heap_mb": round(r["heapMb"], 1), "heap_total_mb": round(r["heapTotalMb"], 1),
        "target_render_ms": TARGET_RENDER_MS, "target_frame_ms": TARGET_FRAME_MS,
    }
    out["render_under_target"] = out["warm_render_ms"] < TARGET_RENDER_MS
    out["frames_under_target"] = all(out[k]["median"] < TARGET_FRAME_MS for k in ("pan_ms", "zoomed_out_repaint_ms",
                                                                                   "zoomed_in_repaint_ms"))
    return out


def measure_model(name: str, n: int, level: str) -> dict:
    """Building the explorer on a real model (one thread), and a click's model re-run."""
    import torch

    import interplab as il

    torch.set_num_threads(1)
    model = il.zoo.load(name)
    task = il.tasks.ioi(model, n=n, seed=0)
    started = time.perf_counter()
    ex = il.CircuitExplorer(model, task, level=level)
    built = time.perf_counter() - started
    clicks = []
    for node in ex.circuit[:3]:
        started = time.perf_counter()
        ex.toggle(node)
        clicks.append(time.perf_counter() - started)
    return {"model": name, "prompts": n, "positions": task.encode(model).seq_len, "level": level,
            "nodes": len(ex.nodes), "edge_method": ex.edge_method(), "edges": len(ex.edges()),
            "edges_scored": ex._edges["count"], "edge_mass_sent": round(ex._edges["mass"], 4),
            "build_s": round(built, 2),
            "click_s": [round(c, 3) for c in clicks], "faithfulness_top_10pct": ex.metric["faithfulness"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--edges", type=int, default=20000)
    parser.add_argument("--drawn", type=int, nargs="+", default=[0, 40, 2000],
                        help="top_edges to measure with (0: all of them)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the rendered widget here")
    parser.add_argument("--model", help="also time building the explorer on this zoo model (e.g. smollm2)")
    parser.add_argument("--level", default="head")
    args = parser.parse_args()
    out = {"load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
           "browser": [measure_browser(args.layers, args.heads, args.positions, args.edges, drawn or None, args.reps,
                                       args.screenshot if k == 0 else None) for k, drawn in enumerate(args.drawn)]}
    if args.model:
        out["model"] = measure_model(args.model, 8, args.level)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
