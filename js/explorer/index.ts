// CircuitExplorer: a contrast task's attribution as a layered graph (layers bottom to top, token
// positions left to right, edges between the nodes they join). This module holds the view's state
// and wires traits, controls and gestures together; the pieces live next to it: data.ts (the wire
// contract), graph.ts (pruning, search, colour), layout.ts (geometry and the scene), draw.ts
// (painting), panels.ts (DOM panels), and ../shared/viewport.ts (pan and zoom).
//
// Gestures: click a node to ablate it (the kernel re-runs the model), ctrl/cmd-click to pin it,
// drag to pan, wheel to zoom (zoomed out, a layer shows its sum per position; click such a cell to
// zoom in), click a layer label to collapse the layer, click two token labels to collapse the
// positions between them. The kept nodes, ablations, pins, groups, thresholds and the zoom are
// synced traits: saved with the notebook and readable from Python.

import "../shared/base.css";
import "./explorer.css";
import { decodeArray } from "../shared/codecs";
import { canvasContext, choice, h, replaceChildren } from "../shared/dom";
import { download, type Drawing } from "../shared/export";
import { createFrame } from "../shared/frame";
import { CanvasPainter, type Painter } from "../shared/painter";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import { createViewport, type Rect } from "../shared/viewport";
import {
  type Breakdown,
  componentOf,
  decodeEdges,
  decodeNodes,
  decodeOrder,
  type Edges,
  formatScore,
  type Intervention,
  type Metric,
  type Nodes,
  nodeId,
  num,
  type Order,
  pearson,
  type Suggestion,
  type Verified,
  type Vocab,
} from "./data";
import {
  ABLATED,
  COMPONENT_COLOURS,
  type DrawnEdge,
  drawColourBar,
  drawGraph,
  drawHover,
  drawScatter,
  INSETS,
  KEPT,
  MATCHED,
  PINNED,
  type Picture,
  VERIFIED,
  zoomedOut,
} from "./draw";
import {
  colourScale,
  type ColourMode,
  type ColourScale,
  countForShare,
  countToSlider,
  groupOf,
  idIndex,
  keptByOrder,
  ranks,
  resolveEnd,
  type SearchResult,
  searchNodes,
  shareOfCount,
  SLIDER_STEPS,
  sliderToCount,
} from "./graph";
import { anchorPoint, boundsOf, buildScene, centre, COL_W, type CollapsedState, GROUP, type Item, itemAt, layerAt, type Layout, layoutGraph, ROW_H, type Scene } from "./layout";
import { legendText, renderBreakdown, renderGroups, renderIntervention, renderMetric, renderPinned } from "./panels";

const SCATTER = 240;
const MARKS = "outlined: in the circuit · faint: pruned · ✕ ablated · blue frame: pinned · ✓ verified · dashed box: group (sum) · a cell's size says nothing; zoomed out, a layer shows its sum per position";
const ZOOM_SAVE_MS = 400;

function numberBox(label: string, title: string, onCommit: (v: number) => void, step = "1") {
  const input = h("input", {
    class: "il-input il-number",
    attrs: { type: "number", min: 0, step, "aria-label": label, title },
    on: { change: () => onCommit(Number(input.value)), keydown: (e) => e.key === "Enter" && onCommit(Number(input.value)) },
  });
  return input;
}

function logSlider(label: string, onInput: (v: number) => void, onCommit: (v: number) => void) {
  const input = h("input", {
    class: "il-range",
    attrs: { type: "range", min: 0, max: SLIDER_STEPS, step: 1, "aria-label": `${label} (logarithmic)` },
    on: { input: () => onInput(Number(input.value)), change: () => onCommit(Number(input.value)) },
  });
  return input;
}

export function render({ model, el }: { model: AnyModel; el: HTMLElement }): Cleanup {
  const started = performance.now();
  const frame = createFrame(model, el, "il-explorer");
  const tooltip = createTooltip("il-explorer-tooltip");
  frame.onDispose(() => tooltip.dispose());
  const offline = model.get("_interplab_static") === true;

  // --- state --------------------------------------------------------------------------------------
  let vocab: Vocab = model.get("_vocab") ?? { methods: [], ablations: [], interventions: [], colours: [], components: [], circuit_components: [], metric: { name: "", label: "" } };
  let nodes: Nodes | null = null;
  let index = new Map<string, number>();
  let edges: Edges | null = null;
  let scores: Float32Array = new Float32Array(0);
  let order: Order | null = null;
  let rank: Int32Array = new Int32Array(0);
  let scale: ColourScale | null = null;
  let layout: Layout | null = null;
  let scene: Scene | null = null;
  let itemScore: Float64Array = new Float64Array(0);
  let itemIntensity: Float32Array = new Float32Array(0);
  let itemFlags: Uint8Array = new Uint8Array(0);
  let layerScore: Float64Array = new Float64Array(0);
  let layerIntensity: Float32Array = new Float32Array(0);
  let layerFlags: Uint8Array = new Uint8Array(0);
  let drawn: DrawnEdge[] = [];
  let drawnEnds: [number, number][] = []; // item indices of each drawn edge's ends (-1: an anchor)
  let kept: Uint8Array = new Uint8Array(0);
  let dragK: number | null = null;
  let dragE: number | null = null;
  let search: SearchResult | null = null;
  let rangeStart = -1;
  let hovered: [number, boolean] = [-1, false];
  let clickedAt: number | null = null;
  let latency: number | null = null;
  let zoomTimer: ReturnType<typeof setTimeout> | null = null;
  let savedZoom = "";

  const method = (): string => model.get("method") ?? "atp";
  const labels = (): string[] => model.get("labels") ?? [];
  const circuitIds = (): string[] => model.get("circuit") ?? [];
  const ablatedIds = (): string[] => model.get("ablated") ?? [];
  const pinnedIds = (): string[] => model.get("pinned") ?? [];
  const groups = (): Record<string, string[]> => model.get("groups") ?? {};
  const verified = (): Record<string, Verified> => model.get("verified") ?? {};
  const collapsed = (): CollapsedState => model.get("collapsed") ?? {};
  const colour = (): ColourMode => (model.get("colour") ?? "log") as ColourMode;
  const methodLabel = (m: string) => Object.fromEntries(vocab.methods)[m] ?? m;

  function scoresOf(m: string): Float32Array | null {
    const all = (model.get("_scores") ?? {}) as Record<string, any>;
    return all[m] ? (decodeArray(all[m]).data as Float32Array) : null;
  }

  function set(values: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(values)) model.set(k, v);
    model.save_changes();
  }

  async function invoke(name: string, msg: unknown) {
    try {
      const reply = await frame.commands.invoke(name, msg);
      frame.clearError();
      return reply;
    } catch (error) {
      frame.showError(error);
      return null;
    }
  }

  // --- toolbar --------------------------------------------------------------------------------------
  const methodChoice = choice({} as Record<string, string>, "method", (m) => void compute(m, true));
  const ablationChoice = choice({} as Record<string, string>, "ablation", (a) => set({ ablation: a }));
  const colourChoice = choice({} as Record<string, string>, "colour", (c) => set({ colour: c }));
  const searchBox = h("input", {
    class: "il-input il-search",
    attrs: { type: "search", placeholder: "search: L12 h3 @5 Mary", "aria-label": "search nodes by layer, head, position or token" },
    on: { input: () => runSearch(false), keydown: (e) => e.key === "Enter" && runSearch(true) },
  });
  const searchCount = h("span", { class: "il-search-count il-muted" });
  const kBox = numberBox("circuit size", "nodes kept in the circuit (the top ones by |score|)", (k) => commitCircuit(k));
  const kSlider = logSlider("circuit size", (v) => previewCircuit(sliderToCount(v, totalNodes())), (v) => commitCircuit(sliderToCount(v, totalNodes())));
  const kShare = numberBox("circuit share", "keep the fewest top nodes whose |scores| add up to this share of all (cumulative influence, 0..1)", (s) => commitCircuit(order ? countForShare(order.cumulative, s) : 0), "0.05");
  const kTotal = h("span", { class: "il-total il-muted" });
  const eBox = numberBox("edges", "edges drawn (the top ones by |score|)", (k) => commitEdges(k));
  const eSlider = logSlider("edges", (v) => previewEdges(sliderToCount(v, edges?.length ?? 0)), (v) => commitEdges(sliderToCount(v, edges?.length ?? 0)));
  const eShare = numberBox("edge share", "draw the fewest top edges whose |scores| add up to this share of all (0..1)", (s) => commitEdges(edges ? countForShare(edges.cumulative, s) : 0), "0.05");
  const eTotal = h("span", { class: "il-total il-muted" });
  const button = (text: string, title: string, click: () => void) => h("button", { class: "il-button", attrs: { title }, on: { click } }, text);
  frame.toolbar.append(
    h(
      "div",
      { class: "il-row" },
      methodChoice.field,
      ablationChoice.field,
      colourChoice.field,
      button("fit", "show the whole graph", () => fitAll()),
      button("circuit", "fit the view to the circuit", () => fitCircuit()),
    ),
    h("div", { class: "il-row" }, h("label", { class: "il-field" }, "circuit ", kBox, kSlider, "share ", kShare), kTotal, h("label", { class: "il-field" }, "find ", searchBox), searchCount),
    h(
      "div",
      { class: "il-row" },
      h("label", { class: "il-field" }, "edges ", eBox, eSlider, "share ", eShare),
      eTotal,
      button("expand", "undo every collapsed layer and position range", () => set({ collapsed: { layers: [], ranges: [] } })),
    ),
  );


  // --- body -------------------------------------------------------------------------------------------
  const info = h("div", { class: "il-info il-muted" });
  const legendBar = h("canvas", { class: "il-legend-bar", attrs: { width: 120, height: 10 } });
  const legendScale = h("span", { class: "il-legend-text" });
  const legend = h(
    "div",
    { class: "il-graph-legend" },
    h("div", { class: "il-legend-line il-muted" }, h("span", {}, "away −"), legendBar, h("span", {}, "+ towards the answer"), legendScale),
    h("div", { class: "il-legend-line il-muted" }, h("span", { class: "il-legend-text", attrs: { title: MARKS } }, MARKS)),
  );
  const viewport = createViewport({
    className: "il-graph-viewport",
    draw: (ctx) => {
      const p = picture();
      if (p) drawGraph(new CanvasPainter(ctx), p);
    },
    drawOverlay: (ctx) => {
      const [k, fromLayer] = hovered;
      if (!scene || k < 0) return;
      const it = fromLayer ? scene.layerItems[k] : scene.items[k];
      const incident = fromLayer ? [] : drawn.filter((_, e) => drawnEnds[e][0] === k || drawnEnds[e][1] === k);
      drawHover(new CanvasPainter(ctx), viewport.transform, frame.theme, it, incident);
    },
    onHover: (pt) => hover(pt.x, pt.y, pt.sx, pt.sy, pt.event),
    onLeave: () => {
      hovered = [-1, false];
      tooltip.hide();
      viewport.redrawOverlay();
    },
    onClick: (pt) => click(pt.x, pt.y, pt.sx, pt.sy, pt.event),
    onUserMove: () => scheduleZoomSave(),
    // layers are many and positions few: the wheel zooms the layers, shift-wheel the positions, ctrl (pinch) both
    wheelAxes: (e) => ({ x: e.shiftKey || e.ctrlKey, y: !e.shiftKey }),
    limits: () => {
      const plotW = Math.max(1, viewport.width - INSETS.left - INSETS.right);
      const plotH = Math.max(1, viewport.height - INSETS.top - INSETS.bottom);
      const fx = plotW / (layout?.width ?? 1);
      const fy = plotH / (layout?.height ?? 1);
      return { sx: [fx * 0.5, fx * 40], sy: [Math.min(fy * 0.5, 0.05), 8] };
    },
  });
  const metricBox = h("div", { class: "il-metric", attrs: { "aria-live": "polite" } });
  const clearAblations = button("clear ablations", "restore every ablated node", () => void invoke("_set_ablated", { nodes: [] }));
  const pinnedBox = h("div", { class: "il-pinned" });
  const groupName = h("input", { class: "il-input il-group-name", attrs: { type: "text", placeholder: "group name", maxlength: 40, "aria-label": "group name" } });
  const interventionChoice = choice({} as Record<string, string>, "act", () => syncFactor());
  const factor = h("input", { class: "il-input il-number", attrs: { type: "number", value: 2, step: 0.5, "aria-label": "factor", title: "the factor for scale" } });
  const interventionBox = h("div", { class: "il-intervention", attrs: { "aria-live": "polite" } });
  const kernelNote = h("div", { class: "il-note il-kernel-note il-muted", attrs: { hidden: !offline } }, "Verifying and intervening need a running kernel: this page is a snapshot.");
  const groupsBox = h("div", { class: "il-groups-panel" });
  const breakdownBox = h("div", { class: "il-breakdown-panel" });
  const xChoice = choice({} as Record<string, string>, "x", () => drawScatterPanel());
  const yChoice = choice({} as Record<string, string>, "y", () => drawScatterPanel());
  const scatterCanvas = h("canvas", { class: "il-scatter" });
  const scatterNote = h("div", { class: "il-scatter-note il-muted" });
  const scatterLegend = h(
    "div",
    { class: "il-scatter-legend il-muted" },
    ...["resid", "attn", "mlp"].map((c) => h("span", {}, h("i", { style: { background: COMPONENT_COLOURS[c] } }), c === "attn" ? "attn / head" : c)),
  );
  const panel = (title: string, ...children: (HTMLElement | string | null)[]) => h("section", { class: "il-panel" }, h("div", { class: "il-panel-title" }, title), ...children);
  frame.body.append(
    info,
    legend,
    viewport.el,
    h("div", { class: "il-hint il-muted" }, "Drag to pan, wheel to zoom the layers (shift: positions) · click a node to ablate it (again: restore) · ctrl/cmd-click to pin · click a layer label to collapse it, two token labels to collapse the positions between."),
    h(
      "div",
      { class: "il-panels" },
      panel("metric", metricBox, clearAblations),
      panel(
        "pinned nodes",
        pinnedBox,
        h(
          "div",
          { class: "il-row" },
          button("verify", "exact activation patching of the pinned nodes (il.circuits.verify)", () => void invoke("_verify", {})),
          groupName,
          button("group", "make the pinned nodes one supernode", () => groupPinned()),
          button("unpin all", "unpin every node", () => set({ pinned: [] })),
        ),
        h("div", { class: "il-row" }, interventionChoice.field, factor, button("run", "act on the pinned nodes: the metric and a generation before and after", () => void intervene())),
        kernelNote,
        interventionBox,
      ),
      panel("groups", groupsBox, h("div", { class: "il-row" }, button("suggest groups", "groups of circuit nodes whose edge profiles have cosine similarity ≥ 0.75", () => void invoke("_suggest", { threshold: 0.75 })))),
      panel("per prompt", breakdownBox),
      panel("methods", h("div", { class: "il-scatter-controls" }, xChoice.field, yChoice.field), scatterCanvas, scatterLegend, scatterNote),
    ),
  );

  // --- data ---------------------------------------------------------------------------------------------
  function fillChoice(select: HTMLSelectElement, pairs: [string, string][]): void {
    const value = select.value;
    replaceChildren(select, ...pairs.map(([v, text]) => h("option", { attrs: { value: v } }, text)));
    if (pairs.some(([v]) => v === value)) select.value = value;
  }

  function readData(): void {
    vocab = model.get("_vocab") ?? vocab;
    try {
      nodes = decodeNodes(model.get("_nodes"));
      index = idIndex(nodes);
      edges = decodeEdges(model.get("_edges"));
      scores = scoresOf(method()) ?? new Float32Array(nodes.length);
      if (scores.length !== nodes.length) throw new Error(`${scores.length} scores for ${nodes.length} nodes`);
      order = decodeOrder((model.get("_orders") ?? {})[method()]);
      rank = ranks(nodes.length, order?.order ?? []);
    } catch (error) {
      nodes = null;
      frame.showError(error);
    }
    fillChoice(methodChoice.select, vocab.methods);
    fillChoice(ablationChoice.select, vocab.ablations);
    fillChoice(colourChoice.select, vocab.colours);
    fillChoice(interventionChoice.select, vocab.interventions);
    fillChoice(xChoice.select, vocab.methods);
    fillChoice(yChoice.select, vocab.methods);
    methodChoice.select.value = method();
    ablationChoice.select.value = model.get("ablation") ?? "mean";
    colourChoice.select.value = colour();
    const metricName = vocab.metric?.label || vocab.metric?.name || "metric";
    info.textContent = `${model.get("model_name") || "model"} · task ${model.get("task_name") || ""}: ${model.get("n_prompts")} prompt pairs, ${labels().length} positions · ${model.get("level")} level · method: ${methodLabel(method())} · metric: ${metricName}`;
    info.title = info.textContent;
    syncFactor();
  }

  function relayout(): void {
    if (!nodes) return;
    layout = layoutGraph({ nLayers: model.get("n_layers"), nHeads: model.get("n_heads"), nPositions: labels().length, level: model.get("level"), collapsed: collapsed() });
    rebuildScene();
  }

  function rebuildScene(): void {
    if (!nodes || !layout) return;
    scene = buildScene(layout, nodes, new Set(vocab.circuit_components), groupOf(nodes.length, groups(), index));
    restyle();
  }

  const totalNodes = () => order?.order.length ?? 0;

  /** Flags, scores and colours of every drawn item, from the traits (or a slider being dragged). */
  function restyle(): void {
    if (!nodes || !scene) return;
    kept = dragK !== null && order ? keptByOrder(nodes.length, order.order, dragK) : flagsOf(circuitIds());
    const ablated = flagsOf(ablatedIds());
    const pinned = flagsOf(pinnedIds());
    const checked = flagsOf(Object.keys(verified()));
    scale = colourScale(colour(), scores, order?.order ?? []);
    const style = (items: Item[]) => {
      const score = new Float64Array(items.length);
      const intensity = new Float32Array(items.length);
      const flags = new Uint8Array(items.length);
      items.forEach((it, k) => {
        let s = 0;
        let best = -1;
        let f = 0;
        for (const i of it.members) {
          s += scores[i];
          if (rank[i] >= 0 && (best < 0 || rank[i] < best)) best = rank[i];
          if (kept[i]) f |= KEPT;
          if (ablated[i]) f |= ABLATED;
          if (pinned[i]) f |= PINNED;
          if (checked[i]) f |= VERIFIED;
          if (search?.matches[i]) f |= MATCHED;
        }
        score[k] = s;
        intensity[k] = scale!.intensity(s, best);
        flags[k] = f;
      });
      return { score, intensity, flags };
    };
    ({ score: itemScore, intensity: itemIntensity, flags: itemFlags } = style(scene.items));
    ({ score: layerScore, intensity: layerIntensity, flags: layerFlags } = style(scene.layerItems));
    reedge();
    legendScale.textContent = legendText(colour(), scale.max);
    legendScale.title = legendScale.textContent;
    paintLegend();
    updateCounts();
    viewport.redraw();
  }

  function flagsOf(ids: string[]): Uint8Array {
    const out = new Uint8Array(nodes?.length ?? 0);
    for (const id of ids) {
      const i = index.get(id);
      if (i !== undefined) out[i] = 1;
    }
    return out;
  }

  /** The drawn edges: the top ones of Python's edge order, between the items (or anchors) they join, summed per pair. */
  function reedge(): void {
    drawn = [];
    drawnEnds = [];
    if (!edges || !scene || !layout || !nodes) return;
    const n = Math.min(edges.length, dragE ?? model.get("top_edges") ?? 0);
    const last = labels().length - 1;
    // each end: a point and a slot (its item, or an anchor numbered after the items)
    const slots = scene.items.length;
    const anchors = new Map<string, number>();
    const ends = edges.ends.map((id) => {
      const e = resolveEnd(id, index, last);
      if (!e) return null;
      if ("node" in e) {
        const k = scene!.itemOf[e.node];
        return k < 0 ? null : { x: centre(scene!.items[k])[0], y: centre(scene!.items[k])[1], item: k, slot: k };
      }
      const [x, y] = anchorPoint(layout!, e.component, e.layer, e.position);
      const key = `${x},${y}`;
      if (!anchors.has(key)) anchors.set(key, slots + anchors.size);
      return { x, y, item: -1, slot: anchors.get(key)! };
    });
    const total = slots + anchors.size;
    const merged = new Map<number, number>();
    for (let e = 0; e < n; e++) {
      const a = ends[edges.source[e]];
      const b = ends[edges.target[e]];
      if (!a || !b || a.slot === b.slot) continue;
      const key = a.slot * total + b.slot;
      const at = merged.get(key);
      if (at !== undefined) {
        drawn[at].score += edges.score[e];
        continue;
      }
      merged.set(key, drawn.length);
      drawn.push({ x1: a.x, y1: a.y, x2: b.x, y2: b.y, score: edges.score[e] });
      drawnEnds.push([a.item, b.item]);
    }
  }

  function picture(): Picture | null {
    if (!scene || !layout) return null;
    const t = viewport.transform;
    const out = zoomedOut(t);
    const items = out ? [...scene.layerItems.filter((it) => !layout!.collapsed[it.layer]), ...scene.items.filter((it) => layout!.collapsed[it.layer] || it.kind === GROUP)] : scene.items;
    let intensity = itemIntensity;
    let flags = itemFlags;
    let score = itemScore;
    if (out) {
      const pick = (src: { score: Float64Array; intensity: Float32Array; flags: Uint8Array }, keep: number[]) => keep.map((k) => [src.score[k], src.intensity[k], src.flags[k]]);
      const fromLayer = scene.layerItems.map((it, k) => [it, k] as const).filter(([it]) => !layout!.collapsed[it.layer]).map(([, k]) => k);
      const fromItems = scene.items.map((it, k) => [it, k] as const).filter(([it]) => layout!.collapsed[it.layer] || it.kind === GROUP).map(([, k]) => k);
      const rows = [...pick({ score: layerScore, intensity: layerIntensity, flags: layerFlags }, fromLayer), ...pick({ score: itemScore, intensity: itemIntensity, flags: itemFlags }, fromItems)];
      score = Float64Array.from(rows, (r) => r[0]);
      intensity = Float32Array.from(rows, (r) => r[1]);
      flags = Uint8Array.from(rows, (r) => r[2]);
    }
    return { layout, items, intensity, flags, score, edges: drawn, labels: labels(), t, width: viewport.width, height: viewport.height, theme: frame.theme, rangeStart };
  }

  function paintLegend(): void {
    const ctx = canvasContext(legendBar);
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    drawColourBar(new CanvasPainter(ctx), frame.theme, legendBar.width, legendBar.height);
  }

  function updateCounts(): void {
    const total = totalNodes();
    const k = dragK ?? circuitIds().length;
    kBox.value = String(k);
    kBox.max = String(total);
    kSlider.value = String(countToSlider(k, total));
    kShare.value = order ? shareOfCount(order.cumulative, k).toFixed(2) : "0";
    kTotal.textContent = `of ${total} nodes`;
    const ne = edges?.length ?? 0;
    const e = Math.min(ne, dragE ?? model.get("top_edges") ?? 0);
    eBox.value = String(e);
    eBox.max = String(ne);
    eSlider.value = String(countToSlider(e, ne));
    eShare.value = edges ? shareOfCount(edges.cumulative, e).toFixed(2) : "0";
    eTotal.textContent = `of ${ne} (${edges?.method ?? "–"})`;
  }

  // --- circuit size and edges ------------------------------------------------------------------------------
  function previewCircuit(k: number): void {
    dragK = k;
    restyle();
  }

  function commitCircuit(k: number): void {
    if (!nodes || !order || !Number.isFinite(k)) return;
    const size = Math.max(0, Math.min(totalNodes(), Math.round(k)));
    dragK = null;
    const ids = Array.from(order.order.subarray(0, size), (i) => nodeId(nodes!, i));
    set({ top_k: size, circuit: ids });
    restyle();
  }

  function previewEdges(k: number): void {
    dragE = k;
    reedge();
    updateCounts();
    viewport.redraw();
  }

  function commitEdges(k: number): void {
    if (!Number.isFinite(k)) return;
    dragE = null;
    set({ top_edges: Math.max(0, Math.min(edges?.length ?? 0, Math.round(k))) });
    reedge();
    updateCounts();
    viewport.redraw();
  }

  // --- view -------------------------------------------------------------------------------------------------
  function sizeViewport(): void {
    const width = Math.max(480, Math.floor(frame.body.clientWidth || 900));
    const height = Math.max(380, Math.min(620, Math.round(width * 0.6)));
    if (width === viewport.width && height === viewport.height) return;
    const keep = viewport.width > 1 ? viewport.visible(INSETS) : null;
    viewport.resize(width, height);
    if (keep) viewport.fit(keep, INSETS);
  }

  function fitAll(): void {
    if (layout) viewport.fit({ x0: 0, y0: 0, x1: layout.width, y1: layout.height }, INSETS);
    viewport.redrawOverlay();
    scheduleZoomSave();
  }

  function fitCircuit(): void {
    if (!scene || !nodes) return;
    const items = new Set<Item>();
    for (const id of circuitIds()) {
      const i = index.get(id);
      const k = i === undefined ? -1 : scene.itemOf[i];
      if (k >= 0) items.add(scene.items[k]);
    }
    viewport.fit(boundsOf(scene, [...items]), INSETS);
    scheduleZoomSave();
  }

  function fitSaved(): boolean {
    const z = model.get("zoom") as Partial<Rect> | undefined;
    if (!z || z.x0 === undefined || z.y1 === undefined) return false;
    savedZoom = JSON.stringify(z);
    viewport.fit(z as Rect, INSETS);
    return true;
  }

  function scheduleZoomSave(): void {
    if (zoomTimer) clearTimeout(zoomTimer);
    zoomTimer = setTimeout(() => {
      zoomTimer = null;
      const v = viewport.visible(INSETS);
      const z = { x0: round(v.x0), y0: round(v.y0), x1: round(v.x1), y1: round(v.y1) };
      savedZoom = JSON.stringify(z);
      set({ zoom: z });
    }, ZOOM_SAVE_MS);
  }
  const round = (v: number) => Math.round(v * 100) / 100;

  // --- search ----------------------------------------------------------------------------------------------------
  function runSearch(zoom: boolean): void {
    if (!nodes) return;
    const q = searchBox.value.trim();
    search = q ? searchNodes(q, nodes, labels()) : null;
    searchCount.textContent = search ? `${search.count} found` : "";
    searchCount.title = search?.meaning ?? "";
    restyle();
    if (zoom && search && search.count && scene) {
      const items = new Set<Item>();
      search.matches.forEach((m, i) => m && scene!.itemOf[i] >= 0 && items.add(scene!.items[scene!.itemOf[i]]));
      viewport.fit(boundsOf(scene, [...items], ROW_H * 2), INSETS);
      scheduleZoomSave();
    }
  }

  // --- hover and click ------------------------------------------------------------------------------------------
  function membersOf(k: number, fromLayer: boolean): number[] {
    const it = fromLayer ? scene?.layerItems[k] : scene?.items[k];
    return it ? it.members : [];
  }

  function tooltipContent(k: number, fromLayer: boolean) {
    const n = nodes!;
    const members = membersOf(k, fromLayer);
    const it = fromLayer ? scene!.layerItems[k] : scene!.items[k];
    if (members.length === 1 && !fromLayer && it.kind !== GROUP) {
      const i = members[0];
      const id = nodeId(n, i);
      const head = n.head[i] >= 0 ? ` · head ${n.head[i]}` : "";
      const token = labels()[n.position[i]] ?? "";
      const methods = vocab.methods.map(([m]) => [m, scoresOf(m)] as const).filter(([, s]) => s);
      const v = verified()[id];
      const circuitNode = vocab.circuit_components.includes(componentOf(n, i));
      const state = !circuitNode ? "residual stream: read-only" : ablatedIds().includes(id) ? "ablated · click to restore" : kept[i] ? "in the circuit · click to ablate" : "pruned · click to ablate";
      return [
        h("div", {}, h("b", {}, `layer ${n.layer[i]} · ${componentOf(n, i)}${head}`), h("span", { class: "il-muted" }, `  ${id}`)),
        h("div", {}, "token ", h("code", {}, JSON.stringify(token)), ` (position ${n.position[i]})`),
        h(
          "table",
          {},
          ...methods.map(([m, s]) => h("tr", { class: m === method() ? "il-current" : "" }, h("td", {}, m), h("td", { class: "il-num" }, formatScore(s![i])))),
          rank[i] >= 0 ? h("tr", {}, h("td", {}, "rank"), h("td", { class: "il-num" }, `${rank[i] + 1} of ${totalNodes()}`)) : null,
          v ? h("tr", { class: "il-verified" }, h("td", {}, "exact (patching)"), h("td", { class: "il-num" }, formatScore(v.exact))) : null,
          v ? h("tr", {}, h("td", {}, `estimate (${v.method})`), h("td", { class: "il-num" }, formatScore(v.estimate))) : null,
        ),
        h("div", { class: "il-muted" }, state, pinnedIds().includes(id) ? " · pinned (ctrl/cmd-click: unpin)" : " · ctrl/cmd-click: pin"),
      ];
    }
    const sum = members.reduce((s, i) => s + scores[i], 0);
    const top = [...members].sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a])).slice(0, 6);
    const what = it.kind === GROUP ? `group ${it.label}` : fromLayer ? `layer ${it.layer}, ${positionsText(it.column)}` : `collapsed: layer ${it.layer}, ${positionsText(it.column)}`;
    return [
      h("div", {}, h("b", {}, what)),
      h("div", {}, `sum of ${members.length} nodes: ${formatScore(sum)}`),
      h("table", {}, ...top.map((i) => h("tr", {}, h("td", { class: "il-mono" }, nodeId(n, i)), h("td", { class: "il-num" }, formatScore(scores[i]))))),
      h("div", { class: "il-muted" }, fromLayer ? "click to zoom in" : "click: ablate all (again: restore) · ctrl/cmd-click: pin all"),
    ];
  }

  function positionsText(column: number): string {
    const a = layout!.first[column];
    const b = layout!.last[column];
    return a === b ? `position ${a} ${JSON.stringify(labels()[a] ?? "")}` : `positions ${a}–${b}`;
  }

  function hover(x: number, y: number, sx: number, sy: number, event: PointerEvent | MouseEvent): void {
    if (!scene || !nodes) return;
    const inPlot = sx > INSETS.left && sy < viewport.height - INSETS.bottom;
    const found: [number, boolean] = inPlot ? itemAt(scene, x, y, zoomedOut(viewport.transform)) : [-1, false];
    if (found[0] === hovered[0] && found[1] === hovered[1]) return;
    hovered = found;
    viewport.redrawOverlay();
    if (found[0] < 0) {
      tooltip.hide();
      return;
    }
    tooltip.show({ x: event.clientX + 10, y: event.clientY + 10 }, ...tooltipContent(found[0], found[1]));
  }

  function click(x: number, y: number, sx: number, sy: number, event: PointerEvent | MouseEvent): void {
    if (!scene || !nodes || !layout) return;
    if (sx <= INSETS.left) return void toggleLayer(layerAt(layout, y));
    if (sy >= viewport.height - INSETS.bottom) return void clickColumn(Math.floor(x / COL_W));
    const [k, fromLayer] = itemAt(scene, x, y, zoomedOut(viewport.transform));
    if (k < 0) return;
    const members = membersOf(k, fromLayer);
    if (event.ctrlKey || event.metaKey) return void togglePins(members);
    if (fromLayer) {
      const it = scene.layerItems[k];
      viewport.fit({ x0: 0, y0: layout.layerTop[it.layer] - ROW_H * 4, x1: layout.width, y1: layout.layerTop[it.layer] + layout.layerHeight[it.layer] + ROW_H * 4 }, INSETS);
      scheduleZoomSave();
      return;
    }
    const ablatable = members.filter((i) => vocab.circuit_components.includes(componentOf(nodes!, i)));
    if (!ablatable.length) {
      frame.showError(new Error(`${nodeId(nodes, members[0])} is a residual-stream state (the sum of everything before it): ablate ${vocab.circuit_components.join(", ")} nodes`));
      return;
    }
    clickedAt = performance.now();
    const after = (reply: unknown) => {
      if (reply && clickedAt !== null) {
        latency = performance.now() - clickedAt;
        clickedAt = null;
        renderMetricPanel();
      }
    };
    if (ablatable.length === 1) return void invoke("_toggle", { node: nodeId(nodes, ablatable[0]) }).then(after);
    const ids = ablatable.map((i) => nodeId(nodes!, i));
    const current = new Set(ablatedIds());
    const all = ids.every((id) => current.has(id));
    void invoke("_set_ablated", { nodes: all ? [...current].filter((id) => !ids.includes(id)) : [...new Set([...current, ...ids])] }).then(after);
  }

  function togglePins(members: number[]): void {
    const ids = members.map((i) => nodeId(nodes!, i));
    const current = new Set(pinnedIds());
    const all = ids.every((id) => current.has(id));
    set({ pinned: all ? [...current].filter((id) => !ids.includes(id)) : [...new Set([...current, ...ids])] });
  }

  function toggleLayer(layer: number): void {
    if (layer < 0) return;
    const layers = new Set(collapsed().layers ?? []);
    if (layers.has(layer)) layers.delete(layer);
    else layers.add(layer);
    set({ collapsed: { layers: [...layers].sort((a, b) => a - b), ranges: collapsed().ranges ?? [] } });
  }

  function clickColumn(column: number): void {
    if (!layout || column < 0 || column >= layout.nColumns) return;
    const a = layout.first[column];
    const b = layout.last[column];
    const ranges = collapsed().ranges ?? [];
    if (a !== b) {
      rangeStart = -1;
      set({ collapsed: { layers: collapsed().layers ?? [], ranges: ranges.filter(([s]) => s !== a) } });
      return;
    }
    if (rangeStart < 0 || rangeStart === a) {
      rangeStart = rangeStart === a ? -1 : a;
      viewport.redraw();
      return;
    }
    const lo = Math.min(rangeStart, a);
    const hi = Math.max(rangeStart, a);
    rangeStart = -1;
    const others = ranges.filter(([s, e]) => e < lo || s > hi);
    set({ collapsed: { layers: collapsed().layers ?? [], ranges: [...others, [lo, hi]].sort((x, y) => x[0] - y[0]) } });
  }

  // --- panels -----------------------------------------------------------------------------------------------
  function renderMetricPanel(): void {
    renderMetric(metricBox, (model.get("metric") ?? null) as Metric | null, vocab.metric?.label || "metric", latency);
  }

  function renderPinnedPanel(): void {
    if (!nodes) return;
    const v = verified();
    renderPinned(
      pinnedBox,
      pinnedIds().map((id) => {
        const i = index.get(id) ?? -1;
        return { id, token: i >= 0 ? (labels()[nodes!.position[i]] ?? "") : "", score: i >= 0 ? scores[i] : Number.NaN, verified: v[id] };
      }),
      {
        unpin: (id) => set({ pinned: pinnedIds().filter((p) => p !== id) }),
        perPrompt: (id) => void invoke("_per_prompt", { node: id }),
      },
    );
  }

  function renderGroupsPanel(): void {
    const g = groups();
    const sums: Record<string, number> = {};
    for (const [name, ids] of Object.entries(g)) sums[name] = ids.reduce((s, id) => s + (scores[index.get(id) ?? -1] ?? 0), 0);
    const suggestions = (model.get("suggestions") ?? []) as Suggestion[];
    renderGroups(groupsBox, g, sums, suggestions, {
      ungroup: (name) => set({ groups: Object.fromEntries(Object.entries(groups()).filter(([k]) => k !== name)) }),
      accept: (k) => {
        const s = suggestions[k];
        const taken = new Set(Object.keys(groups()));
        let n = 1;
        while (taken.has(`group ${n}`)) n++;
        set({ groups: { ...groups(), [`group ${n}`]: s.nodes }, suggestions: suggestions.filter((_, j) => j !== k) });
      },
      reject: (k) => set({ suggestions: suggestions.filter((_, j) => j !== k) }),
    });
  }

  function groupPinned(): void {
    const name = groupName.value.trim() || `group ${Object.keys(groups()).length + 1}`;
    const ids = pinnedIds();
    if (ids.length < 2) {
      frame.showError(new Error("pin at least two nodes (ctrl/cmd-click) to group them"));
      return;
    }
    const taken = new Set(ids);
    const rest = Object.fromEntries(Object.entries(groups()).filter(([k, members]) => k !== name && !members.some((m) => taken.has(m))));
    set({ groups: { ...rest, [name]: ids } });
    groupName.value = "";
  }

  function syncFactor(): void {
    factor.style.visibility = interventionChoice.select.value === "scale" ? "visible" : "hidden";
  }

  async function intervene(): Promise<void> {
    const mode = interventionChoice.select.value;
    await invoke("_intervene", { mode, factor: mode === "scale" ? Number(factor.value) : null });
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
    scatterCanvas.hidden = missing.length > 0;
    if (missing.length) {
      replaceChildren(scatterNote, `${missing.join(" and ")} not computed yet `, h("button", { class: "il-button", on: { click: () => void computeAll(missing) } }, "compute"));
    } else replaceChildren(scatterNote, "each dot is a node: its score by one method against the other; dashed: y = x");
    const ctx = canvasContext(scatterCanvas);
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = frame.theme.background;
    ctx.fillRect(0, 0, SCATTER, SCATTER);
    if (!x || !y) return;
    const r = pearson(x, y);
    scatterCanvas.setAttribute("data-r", String(r));
    drawScatter(new CanvasPainter(ctx), { x, y, nodes, xLabel: `${xm} score →`, yLabel: `${ym} score`, r, theme: frame.theme, size: SCATTER });
  }

  async function computeAll(methods: string[]): Promise<void> {
    for (const m of methods) await invoke("_compute", { method: m, show: false });
  }

  async function compute(m: string, show: boolean): Promise<void> {
    await invoke("_compute", { method: m, show });
    methodChoice.select.value = method();
  }

  // --- export ------------------------------------------------------------------------------------------------
  function drawing(): Drawing {
    const theme = frame.theme;
    const m = (model.get("metric") ?? {}) as Partial<Metric>;
    const title = `${model.get("model_name") || "model"} · ${model.get("task_name") || "task"}: ${methodLabel(method())}, ${model.get("level")} level, metric ${vocab.metric?.name ?? ""}`;
    const footer = `circuit ${circuitIds().length} nodes, ${drawn.length} edges · ablated: ${ablatedIds().join(", ") || "none"} · metric ${formatScore(m.ablated)} · faithfulness ${formatScore(m.faithfulness)}`;
    const header = 24;
    const w = viewport.width;
    const hgt = viewport.height;
    return {
      width: w,
      height: hgt + header + 20,
      background: theme.background,
      draw(p: Painter) {
        p.text(8, 14, title, { fill: theme.foreground, family: theme.font, size: theme.fontSize, weight: "bold", baseline: "middle" });
        p.save();
        p.translate(0, header);
        const pic = picture();
        if (pic) drawGraph(p, pic);
        p.restore();
        p.text(8, hgt + header + 10, footer, { fill: theme.muted, family: theme.font, size: 11, baseline: "middle" });
      },
    };
  }

  frame.exportable(drawing, "circuit");
  frame.actions.append(
    button("JSON", "download the explorer as JSON (the document of explorer.to_json())", async () => {
      const reply = await invoke("_to_json", {});
      const json = (reply?.value as { json?: string } | undefined)?.json;
      if (json) download(new Blob([json], { type: "application/json" }), "circuit.json");
    }),
  );

  // --- trait changes -------------------------------------------------------------------------------------------
  const onData = () => {
    readData();
    relayout();
    renderPinnedPanel();
    renderGroupsPanel();
    drawScatterPanel();
  };
  const onIntervention = () => renderIntervention(interventionBox, (model.get("intervention") ?? null) as Intervention | null, vocab.metric?.label || "metric");
  const onBreakdown = () => renderBreakdown(breakdownBox, (model.get("breakdown") ?? null) as Breakdown | null);
  const onStyle = () => {
    restyle();
    renderPinnedPanel();
    if (hovered[0] >= 0 && tooltip.visible && nodes) tooltip.update(...tooltipContent(hovered[0], hovered[1]));
  };
  const onGroups = () => {
    rebuildScene();
    renderGroupsPanel();
  };
  const onZoom = () => {
    const z = JSON.stringify(model.get("zoom") ?? {});
    if (z !== savedZoom) fitSaved();
  };
  const listeners: [string, () => void][] = [
    ["change:_nodes", onData],
    ["change:_scores", onData],
    ["change:_orders", onData],
    ["change:_edges", onData],
    ["change:_vocab", onData],
    ["change:method", onData],
    ["change:labels", onData],
    ["change:collapsed", relayout],
    ["change:groups", onGroups],
    ["change:suggestions", renderGroupsPanel],
    ["change:circuit", onStyle],
    ["change:ablated", onStyle],
    ["change:pinned", onStyle],
    ["change:verified", onStyle],
    ["change:colour", onStyle],
    ["change:top_k", onStyle],
    ["change:top_edges", onStyle],
    ["change:metric", renderMetricPanel],
    ["change:ablation", () => (ablationChoice.select.value = model.get("ablation") ?? "mean")],
    ["change:intervention", onIntervention],
    ["change:breakdown", onBreakdown],
    ["change:zoom", onZoom],
  ];
  for (const [event, fn] of listeners) frame.listen(event, fn);
  frame.onTheme(() => {
    viewport.redraw();
    paintLegend();
    drawScatterPanel();
  });
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => sizeViewport()) : null;
  resize?.observe(frame.body);

  frame.onDispose(() => {
    resize?.disconnect();
    if (zoomTimer) clearTimeout(zoomTimer);
    viewport.dispose();
  });

  // --- first paint ---------------------------------------------------------------------------------------------
  onData();
  xChoice.select.value = scoresOf("patch") ? "patch" : method() === "atp" ? "relp" : "atp";
  yChoice.select.value = method();
  drawScatterPanel();
  renderMetricPanel();
  onIntervention();
  onBreakdown();
  sizeViewport();
  if (!fitSaved()) fitCircuit();
  viewport.paintNow();
  const renderMs = performance.now() - started;
  frame.root.setAttribute("data-render-ms", renderMs.toFixed(1));
  // a handle for tests and benchmarks: where a node is on the page, how long drawing took
  Object.assign(frame.root, {
    ilExplorer: {
      centre(id: string): [number, number] | null {
        const i = index.get(id);
        const k = i === undefined || !scene ? -1 : scene.itemOf[i];
        if (k < 0 || !scene) return null;
        const [x, y] = centre(scene.items[k]);
        return viewport.toClient(x, y);
      },
      paint: () => viewport.paintNow(),
      renderMs,
      drawnEdges: () => drawn.length,
    },
  });
  return () => frame.dispose();
}

export default { render };
