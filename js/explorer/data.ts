// The CircuitExplorer's wire contract, the TypeScript half of widgets/explorer.py: the traits the
// kernel sends (decoded from binary arrays), their types, and number formatting. Enumerations
// (methods, ablations, interventions, colour scales, components) come from Python's `_vocab`,
// rankings from `_orders`: nothing here repeats them.

import { type ArrayMeta, decodeArray } from "../shared/codecs";

/** `_vocab`: every choice the browser offers, as [id, label] pairs, and the task's metric. */
export interface Vocab {
  methods: [string, string][];
  ablations: [string, string][];
  interventions: [string, string][];
  colours: [string, string][];
  components: string[];
  circuit_components: string[];
  metric: { name: string; label: string };
}

export interface Nodes {
  /** Component names by code. */
  components: string[];
  component: Uint8Array;
  layer: Int32Array;
  head: Int32Array;
  position: Int32Array;
  length: number;
}

/** One method's ranking of the circuit nodes, most important first, with the cumulative |score| share. */
export interface Order {
  order: Int32Array;
  cumulative: Float32Array;
}

/** Edges most important first, between endpoint ids (nodes at positions, or whole components). */
export interface Edges {
  method: string;
  /** The method's name, e.g. "RelP". */
  label: string;
  /** Position-resolved (`u@p -> v@q`), or summed over positions (ends such as `attn.3`). */
  positions: boolean;
  /** Edges scored in Python (zero or not), and the share of their total |score| the ones sent carry. */
  count: number;
  mass: number;
  ends: string[];
  source: Int32Array;
  target: Int32Array;
  score: Float32Array;
  cumulative: Float32Array;
  length: number;
}

/** `metric`: numbers may arrive as "NaN" / "Infinity" / "-Infinity" (JSON has no such numbers). */
export interface Metric {
  clean: number | string;
  corrupt: number | string;
  full: number | string;
  empty: number | string;
  ablated: number | string;
  circuit: number | string;
  faithfulness: number | string;
  n_ablated: number;
  size: number;
  total: number;
  ablation: string;
  seconds: number;
}

export interface Verified {
  exact: number | string;
  estimate: number | string | null;
  method: string | null;
  /** The exact score with every attention pattern frozen, and the rest: what acts through queries and keys. */
  frozen?: number | string;
  through_patterns?: number | string;
}

export interface Intervention {
  mode: string;
  factor: number | null;
  nodes: string[];
  run: "clean" | "corrupt";
  before: number | string;
  after: number | string;
  per_prompt: { before: (number | string)[]; after: (number | string)[] };
  generation: { prompt: string; before: string; after: string } | null;
}

export interface Breakdown {
  node: string;
  prompts: string[];
  effect: (number | string)[];
  exact: number | string;
  estimate: number | string;
  method: string;
}

export interface Suggestion {
  nodes: string[];
  similarity: number | string;
}

export interface Collapsed {
  layers?: number[];
  ranges?: [number, number][];
}

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

export function decodeOrder(trait: { order: ArrayMeta; cumulative: ArrayMeta } | undefined): Order | null {
  if (!trait) return null;
  const order = decodeArray(trait.order).data as Int32Array;
  const cumulative = decodeArray(trait.cumulative).data as Float32Array;
  if (order.length !== cumulative.length) throw new Error(`an order of ${order.length} nodes has ${cumulative.length} shares`);
  return { order, cumulative };
}

/** `_edges` as the kernel sends it ({} before the first edges). */
export interface EdgesTrait {
  method?: string;
  label?: string;
  positions?: boolean;
  count?: number;
  mass?: number;
  ends?: string[];
  source?: ArrayMeta;
  target?: ArrayMeta;
  score?: ArrayMeta;
  cumulative?: ArrayMeta;
}

export function decodeEdges(trait: EdgesTrait | null | undefined): Edges | null {
  if (!trait || !trait.ends || !trait.source || !trait.target || !trait.score || !trait.cumulative) return null;
  const source = decodeArray(trait.source).data as Int32Array;
  const target = decodeArray(trait.target).data as Int32Array;
  const score = decodeArray(trait.score).data as Float32Array;
  const cumulative = decodeArray(trait.cumulative).data as Float32Array;
  const n = score.length;
  if (source.length !== n || target.length !== n || cumulative.length !== n) {
    throw new Error(`edge arrays disagree in length: ${source.length}, ${target.length}, ${n}, ${cumulative.length}`);
  }
  const count = typeof trait.count === "number" ? trait.count : n;
  const mass = typeof trait.mass === "number" ? trait.mass : 1;
  return { method: String(trait.method ?? ""), label: String(trait.label ?? trait.method), positions: trait.positions === true, count, mass, ends: trait.ends, source, target, score, cumulative, length: n };
}

export function componentOf(nodes: Nodes, i: number): string {
  return nodes.components[nodes.component[i]];
}

/** The id Python uses (`Node.id`): `attn.3@7`, `head.2.1@7`. */
export function nodeId(nodes: Nodes, i: number): string {
  const head = nodes.head[i] >= 0 ? `.${nodes.head[i]}` : "";
  return `${componentOf(nodes, i)}.${nodes.layer[i]}${head}@${nodes.position[i]}`;
}

/** A parsed node id: component, layer, head (or -1), position (or -1 for a whole component). */
export function parseId(id: string): { component: string; layer: number; head: number; position: number } | null {
  const m = /^([a-z]+)\.(\d+)(?:\.(\d+))?(?:@(\d+))?$/.exec(id);
  if (!m) return null;
  return { component: m[1], layer: Number(m[2]), head: m[3] === undefined ? -1 : Number(m[3]), position: m[4] === undefined ? -1 : Number(m[4]) };
}

/** A wire number as a JS number (NaN and infinities from their strings, null as NaN). */
export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return Number.NaN;
}

export function formatScore(v: unknown): string {
  const x = num(v);
  if (Number.isNaN(x)) return v === null || v === undefined ? "–" : "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "+∞" : "−∞";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e4)) return x.toExponential(2);
  return x.toFixed(a < 1 ? 4 : 3);
}

/** Pearson's correlation of two equally long series (NaN when either is constant); non-finite pairs skipped. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`pearson needs series of equal length, got ${x.length} and ${y.length}`);
  let n = 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
    n++;
    mx += x[i];
    my += y[i];
  }
  if (n < 2) return Number.NaN;
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN;
}
