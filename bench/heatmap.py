"""Render time of the ExpertScanner heatmap at DeepSeek-V3 scale (58 x 256 = 14,848 cells) in chromium; prints JSON.

    PYTHONPATH=src python bench/heatmap.py [--reps 30] [--scale 1 2]

A blank page in Debian's chromium (headless, the browser tests' launch flags) imports the built
front end (``src/interplab/static/scanner.js``, from a Blob URL, as the report runtime does) and
renders the widget on a stand-in model holding a synthetic, seeded 58 x 256 scan (the first 3
layers dense, as in DeepSeek-V3) with a few marks. Measured, each time up to a forced rasterisation
of the canvas (``getImageData``):

- ``first_render_ms``: the widget's ``render`` (DOM, layout, the map, the overlay).
- ``redraw_ms``: switching the shown map (behaviour / control / difference: new colours, the map
  and the overlay redrawn), ``--reps`` times; median, 90th percentile and maximum.
- ``hover_ms``: a pointer move onto another cell (overlay repaint and tooltip), over 200 cells.

Target: a full redraw under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "src" / "interplab" / "static" / "scanner.js"
STYLE = REPO / "src" / "interplab" / "static" / "scanner.css"
CHROMIUM = "/usr/bin/chromium"
# the launch flags of the browser tests (tests/browser/conftest.py)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
TARGET_MS = 50

PAGE_SCRIPT = """
async ({ source, css, nLayers, nExperts, nDense, reps }) => {
  const style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const widget = (await import(url)).default;

  let seed = 12345;  // a seeded LCG: the same synthetic scan every run
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const map = (fn) => {
    const a = new Float32Array(nLayers * nExperts);
    for (let l = 0; l < nLayers; l++) {
      for (let e = 0; e < nExperts; e++) a[l * nExperts + e] = l < nDense ? NaN : fn(l, e);
    }
    return { dtype: "float32", shape: [nLayers, nExperts], data: new DataView(a.buffer) };
  };
  const rate = () => map(() => (random() < 0.9 ? random() * 0.05 : random() * 0.4));
  const weight = () => map(() => (random() < 0.9 ? random() * 0.01 : random() * 0.08));
  const state = {
    model_name: "synthetic DeepSeek-V3 scale", n_layers: nLayers, n_experts: nExperts, top_k: 8,
    moe_layers: Array.from({ length: nLayers - nDense }, (_, i) => i + nDense), tokens: "prompt",
    score: "contrast", mode: "score", off: [[10, 3], [20, 100], [57, 255]], on: [[30, 7]], runs: [],
    run_n: 4, max_new_tokens: 32, classifier: "", error: null, progress: null, _routing: null,
    _maps: { behaviour_rate: rate(), control_rate: rate(), behaviour_weight: weight(), control_weight: weight(),
             behaviour: { n_prompts: 100, n_tokens: 2000 }, control: { n_prompts: 100, n_tokens: 2000 } },
    _prompts: { behaviour: ["a"], control: ["b"], n_behaviour: 1, n_control: 1 },
  };
  const listeners = new Map();
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; for (const f of listeners.get(`change:${k}`) ?? []) f(); },
    save_changes() {}, send() {},
    on: (e, f) => { if (!listeners.has(e)) listeners.set(e, new Set()); listeners.get(e).add(f); },
    off: (e, f) => listeners.get(e)?.delete(f),
  };
  const el = document.createElement("div");
  el.style.width = "1100px";
  document.body.appendChild(el);

  const flush = (selector) => {
    const canvas = el.querySelector(selector);
    canvas.getContext("2d").getImageData(0, 0, 1, 1);
  };
  let t = performance.now();
  widget.render({ model, el });
  flush(".il-heatmap");
  flush(".il-heatmap-overlay");
  const first = performance.now() - t;

  const modes = ["behaviour", "control", "score"];
  const redraw = [];
  for (let i = 0; i < reps; i++) {
    t = performance.now();
    model.set("mode", modes[i % 3]);
    flush(".il-heatmap");
    flush(".il-heatmap-overlay");
    redraw.push(performance.now() - t);
  }
  const overlay = el.querySelector(".il-heatmap-overlay");
  const box = overlay.getBoundingClientRect();
  const d = overlay.dataset;
  const hover = [];
  for (let i = 0; i < 200; i++) {
    const layer = nDense + ((i * 7) % (nLayers - nDense));
    const expert = (i * 37) % nExperts;
    const x = box.left + Number(d.left) + (expert + 0.5) * Number(d.cellWidth);
    const y = box.top + Number(d.top) + (layer + 0.5) * Number(d.cellHeight);
    t = performance.now();
    overlay.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, bubbles: true }));
    flush(".il-heatmap-overlay");
    hover.push(performance.now() - t);
  }
  const tooltip = document.querySelector(".il-tooltip");
  return { first, redraw, hover, cellWidth: Number(d.cellWidth), cellHeight: Number(d.cellHeight),
           canvasWidth: overlay.width, canvasHeight: overlay.height, tooltip: tooltip ? tooltip.textContent : null };
}
"""


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2)}


def measure(reps: int = 30, scales: tuple[float, ...] = (1.0, 2.0), n_layers: int = 58, n_experts: int = 256,
            n_dense: int = 3, screenshot: Path | None = None) -> dict:
    """Run the page at each device scale factor; the figures as a dict (and, with ``screenshot``, a
    picture of the widget at the first scale factor)."""
    from playwright.sync_api import sync_playwright

    if not BUNDLE.is_file():
        raise FileNotFoundError(f"{BUNDLE} is not built: run `npm run build`")
    args = {"source": BUNDLE.read_text(), "css": STYLE.read_text() if STYLE.is_file() else "", "nLayers": n_layers,
            "nExperts": n_experts, "nDense": n_dense, "reps": reps}
    out = {"cells": n_layers * n_experts, "layers": n_layers, "experts": n_experts, "dense_layers": n_dense,
           "target_ms": TARGET_MS, "runs": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        out["chromium"] = browser.version
        for scale in scales:
            context = browser.new_context(viewport={"width": 1300, "height": 900}, device_scale_factor=scale)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto("about:blank")
            result = page.evaluate(PAGE_SCRIPT, args)
            if errors:
                raise RuntimeError(f"the page failed: {errors}")
            if not result["tooltip"] or "layer" not in result["tooltip"]:
                raise RuntimeError(f"hovering showed no cell tooltip: {result['tooltip']!r}")
            if screenshot is not None and scale == scales[0]:
                page.locator(".il-scanner").screenshot(path=str(screenshot))
            out["runs"].append({
                "device_scale_factor": scale,
                "canvas_pixels": [result["canvasWidth"], result["canvasHeight"]],
                "cell_css_px": [result["cellWidth"], result["cellHeight"]],
                "first_render_ms": round(result["first"], 2),
                "redraw_ms": summary(result["redraw"]),
                "hover_ms": summary(result["hover"]),
            })
            context.close()
        browser.close()
    out["redraw_under_target"] = all(r["redraw_ms"]["median"] < TARGET_MS for r in out["runs"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0, 2.0], help="device scale factors")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the rendered widget here")
    args = parser.parse_args()
    print(json.dumps(measure(args.reps, tuple(args.scale), screenshot=args.screenshot), indent=2))


if __name__ == "__main__":
    sys.exit(main())
