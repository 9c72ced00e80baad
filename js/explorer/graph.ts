// The CircuitExplorer's graph without any DOM: node and edge tables from the traits, the layout
// (layers bottom to top, positions left to right, the edge column on the right), pruning to the
// top-k nodes and edges, hit testing, and Pearson's r for the method scatter.

import { type ArrayMeta, decodeArray } from "../shared/codecs";

export interface Nodes {
  /** Component names by code (`resid`, `attn`, `mlp`, `head`). */
  components: string[];
  component: Uint8Array;
  layer: Int32Array;
  head: Int32Array;
  position: Int32Array;
  length: number;
}

export interface EdgeGraph {
  method: string;
  /** Layer-level node ids (`embed.0`, `attn.1`, `mlp.1`, `logits.4`). */
  nodes: string[];
  /** Codes into EDGE_COMPONENTS. */
  component: Uint8Array;
  layer: Int32Array;
  source: Int32Array;
  target: Int32Array;
  score: Float32Array;
}

export const EDGE_COMPONENTS = ["embed", "attn", "mlp", "logits"];
/** Components a circuit keeps or ablates; resid nodes are residual-stream states, for reading. */
export const CIRCUIT_COMPONENTS = new Set(["attn", "mlp", "head"]);

export interface NodesTrait {
  components: string[];
  component: ArrayMeta;
  layer: ArrayMeta;
  head: ArrayMeta;
  position: ArrayMeta;
}

export function decodeNodes(trait: NodesTrait): Nodes {
  const component = decodeArray(trait.component).data as Uint8Array;
  const layer = decodeArray(trait.layer).data as Int32Array;
  const head = decodeArray(trait.head).data as Int32Array;
  const position = decodeArray(trait.position).data as Int32Array;
  const n = component.length;
  if (layer.length !== n || head.length !== n || position.length !== n) {
    throw new Error(`node arrays disagree in length: ${n}, ${layer.length}, ${head.length}, ${position.length}`);
  }
  return { components: trait.components, component, layer, head, position, length: n };
}

export function decodeEdges(trait: any): EdgeGraph | null {
  if (!trait || !trait.nodes) return null;
  const source = decodeArray(trait.source).data as Int32Array;
  const target = decodeArray(trait.target).data as Int32Array;
  const score = decodeArray(trait.score).data as Float32Array;
  if (source.length !== target.length || source.length !== score.length) {
    throw new Error(`edge arrays disagree in length: ${source.length}, ${target.length}, ${score.length}`);
  }
  return {
    method: trait.method,
    nodes: trait.nodes,
    component: decodeArray(trait.component).data as Uint8Array,
    layer: decodeArray(trait.layer).data as Int32Array,
    source,
    target,
    score,
  };
}

export function componentOf(nodes: Nodes, i: number): string {
  return nodes.components[nodes.component[i]];
}

/** The id Python uses (`Node.id`): `attn.3@7`, `head.2.1@7`. */
export function nodeId(nodes: Nodes, i: number): string {
  const head = nodes.head[i] >= 0 ? `.${nodes.head[i]}` : "";
  return `${componentOf(nodes, i)}.${nodes.layer[i]}${head}@${nodes.position[i]}`;
}

// --- pruning -------------------------------------------------------------------------------------

/**
 * Indices of circuit nodes (attn/mlp/head) from most to least important: by |score|, ties in
 * node order (the order of Python's `Attribution.top`).
 */
export function rankNodes(nodes: Nodes, scores: ArrayLike<number>): number[] {
  const order: number[] = [];
  for (let i = 0; i < nodes.length; i++) if (CIRCUIT_COMPONENTS.has(componentOf(nodes, i))) order.push(i);
  return order.sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a]) || a - b);
}

export interface Pruned {
  /** Per node: kept in the circuit (resid nodes: shown, at or above the circuit's smallest |score|). */
  kept: Uint8Array;
  /** The circuit's node indices, most important first. */
  circuit: number[];
  /** The smallest |score| kept (Infinity when nothing is). */
  cutoff: number;
}

export function pruneNodes(nodes: Nodes, scores: ArrayLike<number>, k: number): Pruned {
  const ranked = rankNodes(nodes, scores);
  const circuit = ranked.slice(0, Math.max(0, Math.min(k, ranked.length)));
  const kept = new Uint8Array(nodes.length);
  for (const i of circuit) kept[i] = 1;
  const cutoff = circuit.length ? Math.abs(scores[circuit[circuit.length - 1]]) : Infinity;
  for (let i = 0; i < nodes.length; i++) {
    if (componentOf(nodes, i) === "resid" && Math.abs(scores[i]) >= cutoff && cutoff > 0) kept[i] = 1;
  }
  return { kept, circuit, cutoff };
}

/** Indices of the `k` edges of highest |score| (ties in edge order). */
export function pruneEdges(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a]) || a - b);
  return order.slice(0, Math.max(0, Math.min(k, order.length)));
}

// --- layout --------------------------------------------------------------------------------------

export interface Layout {
  width: number;
  height: number;
  /** Grid origin (left of position 0) and the bottom of layer 0 (y grows downwards). */
  left: number;
  bottom: number;
  colW: number;
  rowH: number;
  /** Sub-rows per layer: resid, attn, mlp (component level) or head 0..H-1, mlp (head level). */
  rows: string[];
  nLayers: number;
  nPositions: number;
  /** x of the edge column, and the y of each edge-graph node. */
  edgeX: number;
  edgeY: Float64Array;
}

export interface LayoutOptions {
  nLayers: number;
  nHeads: number;
  nPositions: number;
  level: "component" | "head";
  width: number;
  edges?: EdgeGraph | null;
  rowH?: number;
}

export const MARGIN = { left: 92, bottom: 40, top: 40, right: 150 };

export function layoutGraph(o: LayoutOptions): Layout {
  const rows = o.level === "head" ? [...Array.from({ length: o.nHeads }, (_, h) => `head ${h}`), "mlp"] : ["resid", "attn", "mlp"];
  const rowH = o.rowH ?? (o.level === "head" ? Math.max(8, Math.min(14, 56 / rows.length)) : 16);
  const room = o.width - MARGIN.left - MARGIN.right;
  const colW = Math.max(22, Math.min(72, room / Math.max(1, o.nPositions)));
  const layerH = rows.length * rowH + 10;
  const height = MARGIN.top + o.nLayers * layerH + 18 + MARGIN.bottom;
  const bottom = height - MARGIN.bottom - 18;
  const left = MARGIN.left;
  const edgeX = left + o.nPositions * colW + 36;
  const layout: Layout = {
    width: edgeX + MARGIN.right - 20,
    height,
    left,
    bottom,
    colW,
    rowH,
    rows,
    nLayers: o.nLayers,
    nPositions: o.nPositions,
    edgeX,
    edgeY: new Float64Array(0),
  };
  if (o.edges) layout.edgeY = edgeNodeY(layout, o.edges, o.level);
  return layout;
}

/** The y of a node's row centre (row `r` of the layer's sub-rows). */
export function rowY(layout: Layout, layer: number, row: number): number {
  const layerH = layout.rows.length * layout.rowH + 10;
  return layout.bottom - layer * layerH - 5 - (row + 0.5) * layout.rowH;
}

export function rowOf(layout: Layout, component: string, head: number): number {
  if (component === "head") return head;
  return layout.rows.indexOf(component);
}

/** Centre of node `i`. */
export function nodeCentre(layout: Layout, nodes: Nodes, i: number): [number, number] {
  const x = layout.left + (nodes.position[i] + 0.5) * layout.colW;
  return [x, rowY(layout, nodes.layer[i], rowOf(layout, componentOf(nodes, i), nodes.head[i]))];
}

function edgeNodeY(layout: Layout, edges: EdgeGraph, level: string): Float64Array {
  const ys = new Float64Array(edges.nodes.length);
  const top = rowY(layout, layout.nLayers - 1, layout.rows.length - 1) - layout.rowH;
  for (let i = 0; i < edges.nodes.length; i++) {
    const component = EDGE_COMPONENTS[edges.component[i]];
    const layer = edges.layer[i];
    if (component === "embed") ys[i] = layout.bottom + 9;
    else if (component === "logits") ys[i] = top - 4;
    else if (component === "mlp") ys[i] = rowY(layout, layer, layout.rows.length - 1);
    else if (level === "head") ys[i] = (rowY(layout, layer, 0) + rowY(layout, layer, layout.rows.length - 2)) / 2;
    else ys[i] = rowY(layout, layer, layout.rows.indexOf("attn"));
  }
  return ys;
}

/** The node under a point of the (unzoomed) drawing, or -1. */
export function nodeAt(layout: Layout, cells: Int32Array, x: number, y: number): number {
  const position = Math.floor((x - layout.left) / layout.colW);
  if (position < 0 || position >= layout.nPositions) return -1;
  const layerH = layout.rows.length * layout.rowH + 10;
  const fromBottom = layout.bottom - y;
  const layer = Math.floor(fromBottom / layerH);
  if (layer < 0 || layer >= layout.nLayers) return -1;
  const inLayer = fromBottom - layer * layerH - 5;
  const row = Math.floor(inLayer / layout.rowH);
  if (row < 0 || row >= layout.rows.length) return -1;
  return cells[(layer * layout.rows.length + row) * layout.nPositions + position] ?? -1;
}

/** Node index per grid cell ((layer, row) major, positions innermost), -1 where there is none. */
export function cellIndex(layout: Layout, nodes: Nodes): Int32Array {
  const cells = new Int32Array(layout.nLayers * layout.rows.length * layout.nPositions).fill(-1);
  for (let i = 0; i < nodes.length; i++) {
    const row = rowOf(layout, componentOf(nodes, i), nodes.head[i]);
    if (row < 0) continue;
    cells[(nodes.layer[i] * layout.rows.length + row) * layout.nPositions + nodes.position[i]] = i;
  }
  return cells;
}

/** The edge-column node under a point, or -1. */
export function edgeNodeAt(layout: Layout, x: number, y: number, radius = 6): number {
  if (Math.abs(x - layout.edgeX) > radius) return -1;
  for (let i = 0; i < layout.edgeY.length; i++) if (Math.abs(y - layout.edgeY[i]) <= radius) return i;
  return -1;
}

// --- statistics ----------------------------------------------------------------------------------

/** Pearson's correlation of two equally long series (NaN when either is constant). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n !== y.length) throw new Error(`pearson needs series of equal length, got ${n} and ${y.length}`);
  if (n < 2) return Number.NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN;
}

export function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) m = Math.max(m, Math.abs(values[i]));
  return m;
}

export function formatScore(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e4)) return v.toExponential(2);
  return v.toFixed(a < 1 ? 4 : 3);
}

// --- export ----------------------------------------------------------------------------------------

export interface GraphJsonInput {
  model: string;
  task: string;
  level: string;
  method: string;
  labels: string[];
  nodes: Nodes;
  scores: Record<string, ArrayLike<number>>;
  edges: EdgeGraph | null;
  circuit: string[];
  ablated: string[];
  metric: unknown;
}

/** The graph as JSON: nodes with every computed method's score, edges, circuit, ablations, metric. */
export function graphJson(g: GraphJsonInput): string {
  const methods = Object.keys(g.scores).sort();
  const nodes = Array.from({ length: g.nodes.length }, (_, i) => ({
    id: nodeId(g.nodes, i),
    component: componentOf(g.nodes, i),
    layer: g.nodes.layer[i],
    head: g.nodes.head[i] >= 0 ? g.nodes.head[i] : null,
    position: g.nodes.position[i],
    token: g.labels[g.nodes.position[i]] ?? null,
    scores: Object.fromEntries(methods.map((m) => [m, g.scores[m][i]])),
  }));
  const e = g.edges;
  const edges = e ? Array.from(e.score, (score, k) => ({ source: e.nodes[e.source[k]], target: e.nodes[e.target[k]], score })) : [];
  return JSON.stringify({
    model: g.model,
    task: g.task,
    level: g.level,
    method: g.method,
    edge_method: e?.method ?? null,
    labels: g.labels,
    nodes,
    edges,
    circuit: g.circuit,
    ablated: g.ablated,
    metric: g.metric,
  });
}
