// The explorer's graph logic without any DOM or canvas: pruning from Python's rankings (a count,
// a cumulative share, a logarithmic slider), search, colour intensities, and which node an edge
// endpoint stands for.

import { componentOf, type Nodes, nodeId, parseId } from "./data";

// --- pruning -------------------------------------------------------------------------------------

/** Per node: 1 if among the first `k` of `order` (a ranking from Python). */
export function keptByOrder(length: number, order: ArrayLike<number>, k: number): Uint8Array {
  const kept = new Uint8Array(length);
  const n = Math.max(0, Math.min(k, order.length));
  for (let r = 0; r < n; r++) kept[order[r]] = 1;
  return kept;
}

/** The fewest top items whose cumulative |score| share reaches `share` (0..1). */
export function countForShare(cumulative: ArrayLike<number>, share: number): number {
  if (!(share > 0)) return 0;
  for (let k = 0; k < cumulative.length; k++) if (cumulative[k] >= share - 1e-6) return k + 1;
  return cumulative.length;
}

/** The cumulative share of the top `k` items. */
export function shareOfCount(cumulative: ArrayLike<number>, k: number): number {
  if (k <= 0 || cumulative.length === 0) return 0;
  return cumulative[Math.min(k, cumulative.length) - 1];
}

export const SLIDER_STEPS = 1000;

/** A logarithmic slider: position 0..SLIDER_STEPS to a count 0..max (fine at the small end). */
export function sliderToCount(position: number, max: number): number {
  if (max <= 0) return 0;
  const k = Math.round(Math.exp((position / SLIDER_STEPS) * Math.log(max + 1)) - 1);
  return Math.max(0, Math.min(max, k));
}

export function countToSlider(k: number, max: number): number {
  if (max <= 0) return 0;
  return Math.round((Math.log(Math.max(0, Math.min(max, k)) + 1) / Math.log(max + 1)) * SLIDER_STEPS);
}

// --- search --------------------------------------------------------------------------------------

export interface SearchResult {
  matches: Uint8Array;
  count: number;
  /** What the query was read as, e.g. "layer 12 · head 3". */
  meaning: string;
}

interface Term {
  layer?: number;
  head?: number;
  position?: number;
  component?: string;
  token?: string;
}

/**
 * Nodes matching every term of `query`: `L12` / `layer 12`, `h3` (head 3), `h12.3` (layer 12,
 * head 3), `@5` / `pos 5`, a component (`attn`, `mlp`, `resid`, `head`), or any other text: a
 * token containing it (case-insensitive; quote it to search for text such as "L1").
 */
export function searchNodes(query: string, nodes: Nodes, labels: string[]): SearchResult {
  const terms: Term[] = [];
  const words = query.match(/"[^"]*"|\S+/g) ?? [];
  const meaning: string[] = [];
  for (let k = 0; k < words.length; k++) {
    const w = words[k];
    const next = words[k + 1];
    const lower = w.toLowerCase();
    let m: RegExpExecArray | null;
    if (w.startsWith('"')) {
      terms.push({ token: w.slice(1, -1).toLowerCase() });
      meaning.push(`token ⊇ ${w}`);
    } else if ((lower === "layer" || lower === "pos" || lower === "position" || lower === "head") && next && /^\d+(\.\d+)?$/.test(next)) {
      k++;
      if (lower === "layer") terms.push({ layer: Number(next) });
      else if (lower === "head") terms.push(next.includes(".") ? { layer: Number(next.split(".")[0]), head: Number(next.split(".")[1]) } : { head: Number(next) });
      else terms.push({ position: Number(next) });
      meaning.push(`${lower === "pos" ? "position" : lower} ${next}`);
    } else if ((m = /^l(\d+)$/i.exec(w))) {
      terms.push({ layer: Number(m[1]) });
      meaning.push(`layer ${m[1]}`);
    } else if ((m = /^h(\d+)\.(\d+)$/i.exec(w))) {
      terms.push({ layer: Number(m[1]), head: Number(m[2]) });
      meaning.push(`layer ${m[1]} head ${m[2]}`);
    } else if ((m = /^h(\d+)$/i.exec(w))) {
      terms.push({ head: Number(m[1]) });
      meaning.push(`head ${m[1]}`);
    } else if ((m = /^(?:@|p)(\d+)$/i.exec(w))) {
      terms.push({ position: Number(m[1]) });
      meaning.push(`position ${m[1]}`);
    } else if (nodes.components.includes(lower)) {
      terms.push({ component: lower });
      meaning.push(lower);
    } else {
      terms.push({ token: lower });
      meaning.push(`token ⊇ "${w}"`);
    }
  }
  const matches = new Uint8Array(nodes.length);
  let count = 0;
  if (terms.length === 0) return { matches, count, meaning: "" };
  const lowerLabels = labels.map((l) => l.toLowerCase());
  for (let i = 0; i < nodes.length; i++) {
    const ok = terms.every(
      (t) =>
        (t.layer === undefined || nodes.layer[i] === t.layer) &&
        (t.head === undefined || nodes.head[i] === t.head) &&
        (t.position === undefined || nodes.position[i] === t.position) &&
        (t.component === undefined || componentOf(nodes, i) === t.component) &&
        (t.token === undefined || (lowerLabels[nodes.position[i]] ?? "").includes(t.token)),
    );
    if (ok) {
      matches[i] = 1;
      count++;
    }
  }
  return { matches, count, meaning: meaning.join(" · ") };
}

// --- colour ----------------------------------------------------------------------------------------

export type ColourMode = "log" | "linear" | "rank";
export const LOG_DECADES = 3;

export interface ColourScale {
  mode: ColourMode;
  /** Largest |score| among circuit nodes (the top of the scale). */
  max: number;
  /** Signed intensity in [-1, 1] of a score (NaN for non-finite scores). */
  intensity(score: number, rank?: number): number;
}

/**
 * Colours by `mode`: "log": log |score| over LOG_DECADES decades below the largest circuit-node
 * |score| (a single outlier does not wash the rest out); "linear": |score| / largest; "rank":
 * by rank in Python's order, 1 - log(1 + rank) / log(1 + n).
 */
export function colourScale(mode: ColourMode, scores: ArrayLike<number>, order: ArrayLike<number>): ColourScale {
  let max = 0;
  for (let r = 0; r < order.length; r++) {
    const v = Math.abs(scores[order[r]]);
    if (Number.isFinite(v)) max = Math.max(max, v);
  }
  const n = order.length;
  const floor = max / 10 ** LOG_DECADES;
  return {
    mode,
    max,
    intensity(score, rank) {
      if (!Number.isFinite(score)) return Number.NaN;
      const sign = score < 0 ? -1 : 1;
      const a = Math.abs(score);
      if (a === 0 || max === 0) return 0;
      if (mode === "rank" && rank !== undefined && rank >= 0) return sign * (1 - Math.log1p(rank) / Math.log1p(n));
      if (mode === "linear" || mode === "rank") return sign * Math.min(1, a / max);
      if (a <= floor) return 0;
      return sign * Math.min(1, Math.log10(a / floor) / LOG_DECADES);
    },
  };
}

/** Per node: its rank in `order` (-1 when unranked, e.g. resid nodes). */
export function ranks(length: number, order: ArrayLike<number>): Int32Array {
  const r = new Int32Array(length).fill(-1);
  for (let k = 0; k < order.length; k++) r[order[k]] = k;
  return r;
}

// --- edge endpoints ----------------------------------------------------------------------------------

/** Where an edge endpoint sits: a node of the graph, or a whole component (drawn at `position`). */
export type EndPoint = { node: number } | { component: string; layer: number; position: number };

/**
 * The graph node an endpoint id stands for: the node itself (`head.3.1@5`), or, for an endpoint
 * summed over positions (`attn.3`, `embed.0`, `logits.30`), that component at the last position
 * (the node `attn.3@15` when the graph has it; else an anchor for the drawing).
 */
export function resolveEnd(id: string, index: Map<string, number>, lastPosition: number): EndPoint | null {
  const direct = index.get(id);
  if (direct !== undefined) return { node: direct };
  const p = parseId(id);
  if (!p) return null;
  const position = p.position >= 0 ? p.position : lastPosition;
  if (p.head < 0) {
    const at = index.get(`${p.component}.${p.layer}@${position}`);
    if (at !== undefined) return { node: at };
  }
  return { component: p.component, layer: p.layer, position };
}

export function idIndex(nodes: Nodes): Map<string, number> {
  return new Map(Array.from({ length: nodes.length }, (_, i) => [nodeId(nodes, i), i]));
}

/** Per node: the index of its group in `names` (-1: in none). */
export function groupOf(length: number, groups: Record<string, string[]>, index: Map<string, number>): { names: string[]; of: Int32Array } {
  const names = Object.keys(groups);
  const of = new Int32Array(length).fill(-1);
  names.forEach((name, g) => {
    for (const id of groups[name]) {
      const i = index.get(id);
      if (i !== undefined) of[i] = g;
    }
  });
  return { names, of };
}
