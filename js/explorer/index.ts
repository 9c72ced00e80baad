// CircuitExplorer: a contrast task's attribution as a layered graph (layers bottom to top, token
// positions left to right; the edges between components in a column on the right), pruned in the
// browser by two sliders (top-k nodes, top-k edges), with pan and zoom, a tooltip per node,
// click-to-ablate (the kernel re-runs the model and sends the metric and the circuit's
// faithfulness), a method switch and a scatter of two methods' scores with Pearson's r.
//
// The kept nodes (`circuit`) and the ablated ones (`ablated`) are synced traits: saved with the
// notebook, readable from Python. The graph is drawn through the shared Painter, so PNG and SVG
// exports are the same drawing.

import "../shared/base.css";
import "./explorer.css";
import { decodeArray } from "../shared/codecs";
import { canvasContext, choice, h, isJsdom, replaceChildren } from "../shared/dom";
import { download, type Drawing } from "../shared/export";
import { createFrame } from "../shared/frame";
import { CanvasPainter, type Painter } from "../shared/painter";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import { drawGraph, drawScatter } from "./draw";
import {
  CIRCUIT_COMPONENTS,
  cellIndex,
  componentOf,
  decodeEdges,
  decodeNodes,
  type EdgeGraph,
  formatScore,
  graphJson,
  type Layout,
  layoutGraph,
  nodeAt,
  nodeId,
  type Nodes,
  pearson,
  pruneEdges,
  pruneNodes,
  rankNodes,
} from "./graph";

const METHODS = { patch: "activation patching", atp: "attribution patching (AtP)", relp: "RelP" };
type Method = keyof typeof METHODS;
const ABLATIONS = { mean: "mean", zero: "zero", corrupt: "corrupted" };
const VIEW_HEIGHT = 520;
const SCATTER = 240;

function slider(label: string, onInput: (v: number) => void, onCommit: (v: number) => void) {
  const input = h("input", {
    class: "il-range",
    attrs: { type: "range", min: 0, max: 1, step: 1, "aria-label": label },
    on: { input: () => onInput(Number(input.value)), change: () => onCommit(Number(input.value)) },
  });
  const value = h("span", { class: "il-range-value" });
  return { input, value, field: h("label", { class: "il-field" }, `${label} `, input, value) };
}

export interface Metric {
  clean: number;
  corrupt: number;
  full: number;
  empty: number;
  ablated: number;
  circuit: number;
  faithfulness: number | null;
  n_ablated: number;
  size: number;
  total: number;
  ablation: string;
  seconds: number;
}

export function render({ model, el }: { model: AnyModel; el: HTMLElement }): Cleanup {
  const frame = createFrame(model, el, "il-explorer");
  const tooltip = createTooltip("il-explorer-tooltip");
  frame.onDispose(() => tooltip.dispose());

  // --- state --------------------------------------------------------------------------------
  let nodes: Nodes | null = null;
  let edges: EdgeGraph | null = null;
  let scores: Float32Array = new Float32Array(0);
  let layout: Layout | null = null;
  let cells: Int32Array = new Int32Array(0);
  let idIndex = new Map<string, number>();
  let kept: Uint8Array = new Uint8Array(0);
  let keptEdges: number[] = [];
  let dragK: number | null = null; // the nodes slider while it moves (no kernel round trip)
  let hovered = -1;
  let view = { scale: 1, tx: 0, ty: 0 };
  let clickedAt: number | null = null;
  let lastLatency: number | null = null;

  const method = (): Method => model.get("method") ?? "atp";
  const level = (): "component" | "head" => model.get("level") ?? "component";
  const labels = (): string[] => model.get("labels") ?? [];
  const circuitIds = (): string[] => model.get("circuit") ?? [];
  const ablatedIds = (): string[] => model.get("ablated") ?? [];
  const ablatedSet = (): Set<number> => new Set(ablatedIds().map((id) => idIndex.get(id)).filter((i): i is number => i !== undefined));

  function scoresOf(m: string): Float32Array | null {
    const all = (model.get("_scores") ?? {}) as Record<string, any>;
    return all[m] ? (decodeArray(all[m]).data as Float32Array) : null;
  }

  // --- toolbar --------------------------------------------------------------------------------
  const methodChoice = choice(METHODS, "method", (m) => void compute(m, true));
  const ablationChoice = choice(ABLATIONS, "ablation", (a) => {
    model.set("ablation", a);
    model.save_changes();
  });
  const nodeSlider = slider(
    "nodes",
    (k) => {
      dragK = k;
      prune();
      redraw();
    },
    (k) => commitCircuit(k),
  );
  const edgeSlider = slider(
    "edges",
    (k) => {
      keptEdgesFor(k);
      redraw();
    },
    (k) => {
      model.set("top_edges", k);
      model.save_changes();
    },
  );
  const size = h("span", { class: "il-size il-muted" });
  const resetView = h("button", { class: "il-button", attrs: { title: "reset pan and zoom" }, on: { click: () => setView({ scale: 1, tx: 0, ty: 0 }) } }, "fit");
  const clearAblations = h(
    "button",
    { class: "il-button", attrs: { title: "restore every ablated node" }, on: { click: () => void invoke("_set_ablated", { nodes: [] }) } },
    "clear ablations",
  );
  frame.toolbar.append(methodChoice.field, ablationChoice.field, nodeSlider.field, edgeSlider.field, size);

  // --- body -----------------------------------------------------------------------------------
  const info = h("div", { class: "il-info il-muted" });
  const base = h("canvas", { class: "il-graph" });
  const overlay = h("canvas", { class: "il-graph-overlay" });
  const viewport = h("div", { class: "il-graph-viewport" }, base, overlay);
  const metricBox = h("div", { class: "il-metric", attrs: { "aria-live": "polite" } });
  const xChoice = choice(METHODS, "x", () => drawScatterPanel());
  const yChoice = choice(METHODS, "y", () => drawScatterPanel());
  const scatterCanvas = h("canvas", { class: "il-scatter" });
  const scatterNote = h("div", { class: "il-scatter-note il-muted" });
  const scatterBox = h(
    "div",
    { class: "il-scatter-panel" },
    h("div", { class: "il-scatter-controls" }, xChoice.field, yChoice.field),
    scatterCanvas,
    scatterNote,
  );
  frame.body.append(
    info,
    viewport,
    h("div", { class: "il-hint il-muted" }, "Drag to pan, wheel to zoom · hover a node for its score · click a node to ablate it (again: restore)."),
    h("div", { class: "il-panels" }, h("div", { class: "il-metric-panel" }, metricBox, clearAblations, resetView), scatterBox),
  );

  async function invoke(name: string, msg: unknown) {
    try {
      return await frame.commands.invoke(name, msg);
    } catch (error) {
      frame.showError(error);
      return null;
    }
  }

  // --- data -------------------------------------------------------------------------------------
  function readData(): void {
    try {
      nodes = decodeNodes(model.get("_nodes"));
      edges = decodeEdges(model.get("_edges"));
      scores = scoresOf(method()) ?? new Float32Array(nodes.length);
      if (scores.length !== nodes.length) throw new Error(`${scores.length} scores for ${nodes.length} nodes`);
      idIndex = new Map(Array.from({ length: nodes.length }, (_, i) => [nodeId(nodes!, i), i]));
    } catch (error) {
      nodes = null;
      frame.showError(error);
    }
    methodChoice.select.value = method();
    ablationChoice.select.value = model.get("ablation") ?? "mean";
    const total = nodes ? rankNodes(nodes, scores).length : 0;
    nodeSlider.input.max = String(total);
    edgeSlider.input.max = String(edges ? edges.score.length : 0);
    edgeSlider.input.value = String(model.get("top_edges") ?? 0);
    keptEdgesFor(model.get("top_edges") ?? 0);
    info.textContent = `${model.get("model_name") || "model"} · task ${model.get("task_name") || ""}: ${model.get("n_prompts")} prompt pairs, ${labels().length} positions · ${level()} level · ${METHODS[method()] ?? method()}`;
  }

  function keptEdgesFor(k: number): void {
    keptEdges = edges ? pruneEdges(edges.score, k) : [];
    edgeSlider.value.textContent = String(keptEdges.length);
    updateSize();
  }

  /** The kept nodes: the slider's top-k while it moves, else the `circuit` trait. */
  function prune(): void {
    if (!nodes) return;
    if (dragK !== null) {
      kept = pruneNodes(nodes, scores, dragK).kept;
    } else {
      kept = new Uint8Array(nodes.length);
      let smallest = Infinity;
      for (const id of circuitIds()) {
        const i = idIndex.get(id);
        if (i === undefined) continue;
        kept[i] = 1;
        smallest = Math.min(smallest, Math.abs(scores[i]));
      }
      for (let i = 0; i < nodes.length; i++) {
        if (componentOf(nodes, i) === "resid" && smallest > 0 && Math.abs(scores[i]) >= smallest) kept[i] = 1;
      }
      nodeSlider.input.value = String(model.get("top_k") ?? 0);
    }
    nodeSlider.value.textContent = String(dragK ?? circuitIds().length);
    updateSize();
  }

  function updateSize(): void {
    const total = Number(nodeSlider.input.max);
    const n = dragK ?? circuitIds().length;
    const e = edges ? edges.score.length : 0;
    size.textContent = `circuit: ${n} of ${total} nodes · ${keptEdges.length} of ${e} edges`;
  }

  function commitCircuit(k: number): void {
    if (!nodes) return;
    const circuit = pruneNodes(nodes, scores, k).circuit.map((i) => nodeId(nodes!, i));
    dragK = null;
    model.set("top_k", k);
    model.set("circuit", circuit);
    model.save_changes();
  }

  // --- drawing ----------------------------------------------------------------------------------
  function relayout(): void {
    if (!nodes) return;
    const width = Math.max(480, frame.body.clientWidth || 900);
    layout = layoutGraph({
      nLayers: model.get("n_layers"),
      nHeads: model.get("n_heads"),
      nPositions: labels().length,
      level: level(),
      width,
      edges,
    });
    cells = cellIndex(layout, nodes);
    const cssW = Math.max(320, Math.min(width, layout.width));
    const cssH = Math.min(VIEW_HEIGHT, layout.height);
    const dpr = window.devicePixelRatio || 1;
    for (const canvas of [base, overlay]) {
      canvas.width = Math.max(1, Math.round(cssW * dpr));
      canvas.height = Math.max(1, Math.round(cssH * dpr));
      canvas.style.width = `${cssW}px`;
      canvas.style.height = `${cssH}px`;
    }
    viewport.style.width = `${cssW}px`;
    viewport.style.height = `${cssH}px`;
    publishView();
  }

  function publishView(): void {
    if (!layout) return;
    const attrs: Record<string, number> = {
      "data-left": layout.left,
      "data-bottom": layout.bottom,
      "data-col-width": layout.colW,
      "data-row-height": layout.rowH,
      "data-rows": layout.rows.length,
      "data-scale": view.scale,
      "data-tx": view.tx,
      "data-ty": view.ty,
    };
    for (const [k, v] of Object.entries(attrs)) overlay.setAttribute(k, String(v));
  }

  function begin(canvas: HTMLCanvasElement, fill?: string): CanvasRenderingContext2D | null {
    const ctx = canvasContext(canvas);
    if (!ctx) return null;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (fill) {
      ctx.fillStyle = fill;
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.tx, dpr * view.ty);
    return ctx;
  }

  function drawBase(): void {
    const ctx = begin(base, frame.theme.background);
    if (!ctx || !layout || !nodes) return;
    drawGraph(new CanvasPainter(ctx), {
      layout,
      nodes,
      scores,
      kept,
      ablated: ablatedSet(),
      labels: labels(),
      edges,
      keptEdges,
      theme: frame.theme,
    });
  }

  function drawOverlay(): void {
    const ctx = begin(overlay);
    if (!ctx || !layout || !nodes || hovered < 0) return;
    const layerH = layout.rows.length * layout.rowH + 10;
    const row = layout.rows.indexOf(componentOf(nodes, hovered) === "head" ? `head ${nodes.head[hovered]}` : componentOf(nodes, hovered));
    const x = layout.left + nodes.position[hovered] * layout.colW;
    const y = layout.bottom - nodes.layer[hovered] * layerH - 5 - (row + 1) * layout.rowH;
    new CanvasPainter(ctx).rect(x + 0.5, y + 0.5, layout.colW - 1, layout.rowH - 1, { stroke: frame.theme.accent, lineWidth: 2 });
  }

  let frameRequest = 0;
  function redraw(): void {
    if (frameRequest) return;
    const run = () => {
      frameRequest = 0;
      drawBase();
      drawOverlay();
    };
    if (typeof requestAnimationFrame === "function" && !isJsdom) frameRequest = requestAnimationFrame(run);
    else run();
  }

  function setView(next: typeof view): void {
    view = next;
    publishView();
    redraw();
  }

  // --- metric and scatter panels ------------------------------------------------------------------
  function renderMetric(): void {
    const m = (model.get("metric") ?? null) as Metric | null;
    if (!m || m.clean === undefined) {
      replaceChildren(metricBox, h("span", { class: "il-muted" }, "no metric yet"));
      return;
    }
    const f = m.faithfulness;
    const row = (name: string, value: string, cls = "") => h("tr", {}, h("td", { class: "il-muted" }, name), h("td", { class: `il-num ${cls}`.trim() }, value));
    replaceChildren(
      metricBox,
      h("div", { class: "il-metric-title" }, "logit difference (answer − distractor)"),
      h(
        "table",
        {},
        row("clean / corrupted", `${formatScore(m.clean)} / ${formatScore(m.corrupt)}`),
        row(`with ${m.n_ablated} node${m.n_ablated === 1 ? "" : "s"} ablated (${m.ablation})`, formatScore(m.ablated), "il-metric-ablated"),
        row(`circuit (${m.size} of ${m.total} nodes)`, formatScore(m.circuit)),
        row("faithfulness of the circuit", f === null ? "undefined (model = empty circuit)" : f.toFixed(3), "il-metric-faithfulness"),
        row("model re-run", `${(m.seconds * 1000).toFixed(0)} ms${lastLatency !== null ? ` · click to update ${lastLatency.toFixed(0)} ms` : ""}`, "il-metric-time"),
      ),
    );
    metricBox.setAttribute("data-ablated", String(m.ablated));
    metricBox.setAttribute("data-faithfulness", String(f));
    if (lastLatency !== null) metricBox.setAttribute("data-latency-ms", lastLatency.toFixed(1));
  }

  function drawScatterPanel(): void {
    if (!nodes) return;
    const xm = xChoice.select.value;
    const ym = yChoice.select.value;
    const x = scoresOf(xm);
    const y = scoresOf(ym);
    const dpr = window.devicePixelRatio || 1;
    scatterCanvas.width = SCATTER * dpr;
    scatterCanvas.height = SCATTER * dpr;
    scatterCanvas.style.width = `${SCATTER}px`;
    scatterCanvas.style.height = `${SCATTER}px`;
    const missing = [xm, ym].filter((m) => !scoresOf(m));
    if (missing.length) {
      replaceChildren(
        scatterNote,
        `${missing.join(" and ")} not computed yet `,
        h("button", { class: "il-button", on: { click: () => void computeAll(missing) } }, "compute"),
      );
    } else replaceChildren(scatterNote);
    const ctx = canvasContext(scatterCanvas);
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = frame.theme.background;
    ctx.fillRect(0, 0, SCATTER, SCATTER);
    if (!x || !y) return;
    const r = pearson(x, y);
    scatterCanvas.setAttribute("data-r", String(r));
    drawScatter(new CanvasPainter(ctx), { x, y, nodes, xLabel: `${xm} score`, yLabel: `${ym} score`, r, theme: frame.theme, size: SCATTER });
  }

  async function computeAll(methods: string[]): Promise<void> {
    for (const m of methods) await invoke("_compute", { method: m, show: false });
  }

  async function compute(m: Method, show: boolean): Promise<void> {
    await invoke("_compute", { method: m, show });
    methodChoice.select.value = method();
  }

  // --- hover, click, pan, zoom ------------------------------------------------------------------
  function toGraph(event: MouseEvent): [number, number] {
    const r = overlay.getBoundingClientRect();
    return [(event.clientX - r.left - view.tx) / view.scale, (event.clientY - r.top - view.ty) / view.scale];
  }

  function tooltipContent(i: number) {
    const n = nodes!;
    const component = componentOf(n, i);
    const head = n.head[i] >= 0 ? ` · head ${n.head[i]}` : "";
    const token = labels()[n.position[i]] ?? "";
    const others = (Object.keys(METHODS) as Method[])
      .map((m) => [m, scoresOf(m)] as const)
      .filter(([, s]) => s)
      .map(([m, s]) => h("tr", { class: m === method() ? "il-current" : "" }, h("td", {}, m), h("td", { class: "il-num" }, formatScore(s![i]))));
    const ablated = ablatedIds().includes(nodeId(n, i));
    const state = !CIRCUIT_COMPONENTS.has(component)
      ? "residual stream: read-only"
      : ablated
        ? "ablated · click to restore"
        : kept[i]
          ? "in the circuit · click to ablate"
          : "pruned · click to ablate";
    return [
      h("div", {}, h("b", {}, `layer ${n.layer[i]} · ${component}${head}`)),
      h("div", {}, "token ", h("code", {}, JSON.stringify(token)), ` (position ${n.position[i]})`),
      h("table", {}, ...others),
      h("div", { class: "il-muted" }, state),
    ];
  }

  let drag: { x: number; y: number; tx: number; ty: number; moved: boolean } | null = null;

  function onDown(event: PointerEvent): void {
    drag = { x: event.clientX, y: event.clientY, tx: view.tx, ty: view.ty, moved: false };
  }

  function onMove(event: PointerEvent): void {
    if (drag && event.buttons) {
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        tooltip.hide();
        setView({ scale: view.scale, tx: drag.tx + dx, ty: drag.ty + dy });
        return;
      }
    }
    if (!layout || !nodes) return;
    const [x, y] = toGraph(event);
    const i = nodeAt(layout, cells, x, y);
    if (i === hovered) return;
    hovered = i;
    redraw();
    if (i < 0) {
      tooltip.hide();
      return;
    }
    tooltip.show({ x: event.clientX + 8, y: event.clientY + 8 }, ...tooltipContent(i));
  }

  function onLeave(): void {
    hovered = -1;
    tooltip.hide();
    redraw();
  }

  function onUp(event: PointerEvent): void {
    const wasDrag = drag?.moved;
    drag = null;
    if (wasDrag || !layout || !nodes) return;
    const [x, y] = toGraph(event);
    const i = nodeAt(layout, cells, x, y);
    if (i < 0) return;
    if (!CIRCUIT_COMPONENTS.has(componentOf(nodes, i))) {
      frame.showError(new Error(`${nodeId(nodes, i)} is a residual-stream state (the sum of everything before it): ablate attn, mlp or head nodes`));
      return;
    }
    clickedAt = performance.now();
    void invoke("_toggle", { node: nodeId(nodes, i) }).then((reply) => {
      if (reply && clickedAt !== null) {
        lastLatency = performance.now() - clickedAt;
        clickedAt = null;
        renderMetric();
      }
    });
  }

  function onWheel(event: WheelEvent): void {
    event.preventDefault();
    const r = overlay.getBoundingClientRect();
    const sx = event.clientX - r.left;
    const sy = event.clientY - r.top;
    const scale = Math.max(0.25, Math.min(12, view.scale * Math.exp(-event.deltaY * 0.0015)));
    const k = scale / view.scale;
    setView({ scale, tx: sx - (sx - view.tx) * k, ty: sy - (sy - view.ty) * k });
  }

  overlay.addEventListener("pointerdown", onDown);
  overlay.addEventListener("pointermove", onMove);
  overlay.addEventListener("pointerup", onUp);
  overlay.addEventListener("pointerleave", onLeave);
  overlay.addEventListener("wheel", onWheel, { passive: false });

  // --- export ----------------------------------------------------------------------------------
  function drawing(): Drawing {
    const theme = frame.theme;
    const lay = layout!;
    const m = (model.get("metric") ?? {}) as Partial<Metric>;
    const title = `${model.get("model_name") || "model"} · ${model.get("task_name") || "task"}: ${METHODS[method()] ?? method()}, ${level()} level`;
    const f = m.faithfulness;
    const footer = `circuit ${circuitIds().length} nodes, ${keptEdges.length} edges · ablated: ${ablatedIds().join(", ") || "none"} · metric ${formatScore(m.ablated)} · faithfulness ${f === null || f === undefined ? "–" : f.toFixed(3)}`;
    const header = 24;
    return {
      width: lay.width,
      height: lay.height + header + 20,
      background: theme.background,
      draw(p: Painter) {
        p.text(8, 14, title, { fill: theme.foreground, family: theme.font, size: theme.fontSize, weight: "bold", baseline: "middle" });
        p.save();
        p.translate(0, header);
        if (nodes) drawGraph(p, { layout: lay, nodes, scores, kept, ablated: ablatedSet(), labels: labels(), edges, keptEdges, theme });
        p.restore();
        p.text(8, lay.height + header + 8, footer, { fill: theme.muted, family: theme.font, size: 11, baseline: "middle" });
      },
    };
  }

  frame.exportable(drawing, "circuit");
  frame.actions.append(
    h(
      "button",
      {
        class: "il-button",
        attrs: { title: "download the graph (nodes, edges, scores, circuit, ablations, metric) as JSON" },
        on: {
          click: () => {
            if (!nodes) return;
            const all = (model.get("_scores") ?? {}) as Record<string, any>;
            const perMethod = Object.fromEntries(Object.keys(all).map((m) => [m, scoresOf(m)!]));
            const json = graphJson({
              model: model.get("model_name"),
              task: model.get("task_name"),
              level: level(),
              method: method(),
              labels: labels(),
              nodes,
              scores: perMethod,
              edges,
              circuit: circuitIds(),
              ablated: ablatedIds(),
              metric: model.get("metric"),
            });
            download(new Blob([json], { type: "application/json" }), "circuit.json");
          },
        },
      },
      "JSON",
    ),
  );

  // --- trait changes ------------------------------------------------------------------------------
  const onData = () => {
    readData();
    relayout();
    prune();
    redraw();
    drawScatterPanel();
  };
  const onCircuit = () => {
    prune();
    redraw();
    if (hovered >= 0 && tooltip.visible && nodes) tooltip.update(...tooltipContent(hovered));
  };
  const onMetric = () => renderMetric();
  const onAblation = () => (ablationChoice.select.value = model.get("ablation") ?? "mean");
  const onEdges = () => {
    edgeSlider.input.value = String(model.get("top_edges") ?? 0);
    keptEdgesFor(model.get("top_edges") ?? 0);
    redraw();
  };
  const listeners: [string, () => void][] = [
    ["change:_nodes", onData],
    ["change:_scores", onData],
    ["change:_edges", onData],
    ["change:method", onData],
    ["change:labels", onData],
    ["change:circuit", onCircuit],
    ["change:ablated", onCircuit],
    ["change:top_k", onCircuit],
    ["change:top_edges", onEdges],
    ["change:metric", onMetric],
    ["change:ablation", onAblation],
  ];
  for (const [event, fn] of listeners) frame.listen(event, fn);
  frame.onTheme(() => {
    redraw();
    drawScatterPanel();
  });
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => (relayout(), redraw())) : null;
  resize?.observe(frame.body);

  frame.onDispose(() => {
    resize?.disconnect();
    if (frameRequest && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frameRequest);
    overlay.removeEventListener("pointerdown", onDown);
    overlay.removeEventListener("pointermove", onMove);
    overlay.removeEventListener("pointerup", onUp);
    overlay.removeEventListener("pointerleave", onLeave);
    overlay.removeEventListener("wheel", onWheel);
  });

  // --- first paint ----------------------------------------------------------------------------------
  xChoice.select.value = "patch";
  yChoice.select.value = method();
  if (!scoresOf("patch")) xChoice.select.value = method() === "atp" ? "relp" : "atp";
  onData();
  renderMetric();
  return () => frame.dispose();
}

export default { render };
