// CircuitExplorer: a contrast task's attribution as a layered graph (layers bottom to top, token
// positions left to right, edges between the nodes they join). This module holds the view's state
// and wires traits, controls and gestures together; the pieces live next to it: data.ts (the wire
// contract), graph.ts (pruning, search, colour), layout.ts (geometry and the scene), edges.ts
// (edges where their nodes are), draw.ts (painting), panels.ts (DOM panels), and ../shared/viewport.ts.
//
// Gestures: click a node to ablate it (the kernel re-runs the model), ctrl/cmd-click to pin it,
// drag to pan, wheel to zoom (zoomed out, a layer shows its sum per position; click such a cell to
// zoom in), click a layer label to collapse the layer, click two token labels to collapse the
// positions between them. The kept nodes, ablations, pins, groups, thresholds and the zoom are
// synced traits: saved with the notebook and readable from Python.

import "../shared/base.css";
import "./explorer.css";
import { decodeArray } from "../shared/codecs";
import { canvasContext, h, replaceChildren } from "../shared/dom";
import { download, type Drawing } from "../shared/export";
import { createFrame } from "../shared/frame";
import { CanvasPainter, type Painter } from "../shared/painter";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import type { ExplorerTraits } from "./traits";
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
  type Order,
  type Suggestion,
  type Verified,
  type Vocab,
} from "./data";
import {
  drawColourBar,
  drawGraph,
  drawHover,
  INSETS,
  type Picture,
  zoomedOut,
} from "./draw";
import {
  colourScale,
  type ColourMode,
  type ColourScale,
  groupOf,
  idIndex,
  keptByOrder,
  ranks,
  type SearchResult,
  searchNodes,
} from "./graph";
import { boundsOf, buildScene, centre, COL_W, type CollapsedState, type Item, itemAt, layerAt, type Layout, layoutGraph, ROW_H, type Scene } from "./layout";
import { legendText, renderBreakdown, renderGroups, renderIntervention, renderMetric, renderPinned } from "./panels";
import { buildPanels, buildToolbar, button } from "./chrome";
import { scatterPanel } from "./scatter";
import { cachedMerge, type DrawnEdges, edgeSummary, NO_EDGES, type Places, placeEnds } from "./edges";
import { type Styled, styleItems, zoomedOutItems } from "./style";
import { describe } from "./tooltips";

const MARKS = "outlined: in the circuit · faint: pruned · ✕ ablated · blue frame: pinned · ✓ verified · dashed box: group (sum) · a cell's size says nothing; zoomed out, a layer shows its sum per position";
const ZOOM_SAVE_MS = 400;

export function render({ model, el }: { model: AnyModel<ExplorerTraits>; el: HTMLElement }): Cleanup {
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
  let styled: Styled = { score: new Float64Array(0), intensity: new Float32Array(0), flags: new Uint8Array(0) };
  let cellStyled: Styled = styled;
  let places: Places | null = null; // where the edges' ends are drawn in the scene
  let drawn: DrawnEdges = NO_EDGES;
  const merge = cachedMerge();
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
  const { methodChoice, ablationChoice, colourChoice, searchBox, searchCount, circuitSize, edgeSize } = buildToolbar(frame.toolbar, {
    method: (m) => void compute(m, true),
    ablation: (a) => set({ ablation: a }),
    colour: (c) => set({ colour: c }),
    search: (zoom) => runSearch(zoom),
    nodeShares: () => order?.cumulative ?? [],
    edgeShares: () => edges?.cumulative ?? [],
    previewCircuit: (k) => previewCircuit(k),
    commitCircuit: (k) => commitCircuit(k),
    previewEdges: (k) => previewEdges(k),
    commitEdges: (k) => commitEdges(k),
    fitAll: () => fitAll(),
    fitCircuit: () => fitCircuit(),
    expand: () => set({ collapsed: { layers: [], ranges: [] } }),
  });

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
      drawHover(new CanvasPainter(ctx), viewport.transform, frame.theme, it, drawn, fromLayer ? -1 : k);
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
  const scatter = scatterPanel({ scoresOf, nodes: () => nodes, theme: () => frame.theme, compute: (missing) => void computeAll(missing) });
  const {
    metricBox, pinnedBox, groupName, interventionChoice, factor, interventionBox, groupsBox, breakdownBox,
  } = buildPanels(frame.body, {
    offline,
    head: [info, legend, viewport.el],
    scatter: [scatter.controls, scatter.canvas, scatter.legend, scatter.note],
    clearAblations: () => void invoke("_set_ablated", { nodes: [] }),
    verify: () => void invoke("_verify", {}),
    group: () => groupPinned(),
    unpinAll: () => set({ pinned: [] }),
    interventionChanged: () => syncFactor(),
    intervene: () => void intervene(),
    suggest: () => void invoke("_suggest", { threshold: 0.75 }),
  });

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
    methodChoice.select.value = method();
    ablationChoice.select.value = model.get("ablation") ?? "mean";
    colourChoice.select.value = colour();
    const metricName = vocab.metric?.label || vocab.metric?.name || "metric";
    info.textContent = `${model.get("model_name") || "model"} · task ${model.get("task_name") || ""}: ${model.get("n_prompts")} prompt pairs, ${labels().length} positions · ${model.get("level")} level · method: ${methodLabel(method())} · ${edgeSummary(edges).short} · metric: ${metricName}`;
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
    places = edges ? placeEnds(edges, scene, layout, index, labels().length - 1) : null;
    restyle();
  }

  const totalNodes = () => order?.order.length ?? 0;

  /** Flags, scores and colours of every drawn item, from the traits (or a slider being dragged). */
  function restyle(): void {
    if (!nodes || !scene) return;
    kept = dragK !== null && order ? keptByOrder(nodes.length, order.order, dragK) : flagsOf(circuitIds());
    const marks = { kept, ablated: flagsOf(ablatedIds()), pinned: flagsOf(pinnedIds()), verified: flagsOf(Object.keys(verified())), matched: search?.matches ?? null };
    scale = colourScale(colour(), scores, order?.order ?? []);
    styled = styleItems(scene.items, scores, rank, marks, scale);
    cellStyled = styleItems(scene.layerItems, scores, rank, marks, scale);
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

  function reedge(): void {
    drawn = edges && places ? merge(edges, dragE ?? model.get("top_edges") ?? 0, places) : NO_EDGES;
  }

  function picture(): Picture | null {
    if (!scene || !layout) return null;
    const t = viewport.transform;
    const shown = zoomedOut(t) ? zoomedOutItems(scene, styled, cellStyled) : { items: scene.items, ...styled };
    return { layout, ...shown, edges: drawn, labels: labels(), t, width: viewport.width, height: viewport.height, theme: frame.theme, rangeStart };
  }

  function paintLegend(): void {
    const ctx = canvasContext(legendBar);
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    drawColourBar(new CanvasPainter(ctx), frame.theme, legendBar.width, legendBar.height);
  }

  function updateCounts(): void {
    circuitSize.show(dragK ?? circuitIds().length, order?.cumulative ?? [], "nodes");
    const e = Math.min(edges?.length ?? 0, dragE ?? model.get("top_edges") ?? 0);
    const what = edgeSummary(edges);
    edgeSize.show(e, edges?.cumulative ?? [], what.short);
    edgeSize.total.title = what.long;
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
    const it = fromLayer ? scene!.layerItems[k] : scene!.items[k];
    return describe(it, fromLayer, {
      nodes: nodes!,
      labels: labels(),
      layout: layout!,
      vocab,
      method: method(),
      scoresOf,
      rank,
      total: totalNodes(),
      kept,
      ablated: new Set(ablatedIds()),
      pinned: new Set(pinnedIds()),
      verified: verified(),
    });
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
    scatter.redraw();
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
    scatter.redraw();
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
  scatter.choose(vocab.methods, scoresOf("patch") ? "patch" : method() === "atp" ? "relp" : "atp", method());
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
