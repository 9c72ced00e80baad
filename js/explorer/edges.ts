// Edges where the nodes are: each position-resolved edge `u@p -> v@q` joins the centres of the two
// boxes drawn for its ends (at their layer rows and position columns). An end without a box of its
// own is drawn at an anchor: the embeddings below layer 0, the logits above the top layer, and at
// the head level a layer's attention at p (the sum of its heads' writes, the source of edges out
// of a head) in the middle of that layer's head rows. An end inside a collapsed position range or
// layer, or in a group, is drawn at that cell or supernode: edges that then join the same two
// places are merged into one (their scores summed), and an edge within one place is not drawn.
//
// Painting is one canvas path per sign and |score| bucket (8 strokes in all, whatever the number
// of edges): straight lines between columns, a bow (two segments) right of the column for an edge
// within a column, each segment clipped to the screen (off-screen ones left out). Many edges are drawn as thin lines, which a CPU
// rasteriser strokes at a few µs each.

import type { Painter } from "../shared/painter";
import { diverging, type Theme } from "../shared/theme";
import type { Transform } from "../shared/viewport";
import type { Edges } from "./data";
import { resolveEnd } from "./graph";
import { anchorPoint, centre, GUTTER, type Layout, NODE_HALF_WIDTH, type Scene } from "./layout";

export const EDGE_BUCKETS = 4;
/** Up to this many drawn edges, stronger buckets are drawn wider; above it every edge is a thin
 * line (a hairline to the rasteriser, several times cheaper than a wide stroke), its bucket told
 * by its opacity alone. */
export const WIDE_EDGES = 500;
const THIN = 0.9;

/** Where each end of `Edges.ends` is drawn: a point in drawing units, the item there (-1: an
 * anchor), and a slot shared by every end drawn at the same place (-1: not drawn). */
export interface Places {
  x: Float64Array;
  y: Float64Array;
  item: Int32Array;
  slot: Int32Array;
}

/** The edges drawn, merged per pair of places: endpoints in drawing units, summed scores, and
 * the items at their ends (-1: an anchor). */
export interface DrawnEdges {
  length: number;
  x1: Float64Array;
  y1: Float64Array;
  x2: Float64Array;
  y2: Float64Array;
  score: Float64Array;
  from: Int32Array;
  to: Int32Array;
}

export const NO_EDGES: DrawnEdges = mergeEdges(null, 0, { x: new Float64Array(0), y: new Float64Array(0), item: new Int32Array(0), slot: new Int32Array(0) });

/** Where the ends of `edges` are drawn in `scene` (computed once per scene, not per threshold). */
export function placeEnds(edges: Edges, scene: Scene, layout: Layout, index: Map<string, number>, lastPosition: number): Places {
  const n = edges.ends.length;
  const places: Places = { x: new Float64Array(n), y: new Float64Array(n), item: new Int32Array(n).fill(-1), slot: new Int32Array(n).fill(-1) };
  const anchors = new Map<string, number>();
  const slots = scene.items.length;
  edges.ends.forEach((id, k) => {
    const e = resolveEnd(id, index, lastPosition);
    if (!e) return;
    if ("node" in e) {
      const item = scene.itemOf[e.node];
      if (item < 0) return;
      [places.x[k], places.y[k]] = centre(scene.items[item]);
      places.item[k] = item;
      places.slot[k] = item;
      return;
    }
    const [x, y] = anchorPoint(layout, e.component, e.layer, e.position);
    const key = `${x},${y}`;
    if (!anchors.has(key)) anchors.set(key, slots + anchors.size);
    places.x[k] = x;
    places.y[k] = y;
    places.slot[k] = anchors.get(key)!;
  });
  return places;
}

/** The first `n` edges of Python's order (ranked by |score|), merged per pair of places. */
export function mergeEdges(edges: Edges | null, n: number, places: Places): DrawnEdges {
  const count = edges ? Math.max(0, Math.min(n, edges.length)) : 0;
  const out: DrawnEdges = {
    length: 0,
    x1: new Float64Array(count),
    y1: new Float64Array(count),
    x2: new Float64Array(count),
    y2: new Float64Array(count),
    score: new Float64Array(count),
    from: new Int32Array(count),
    to: new Int32Array(count),
  };
  const merged = new Map<number, number>();
  let stride = 1;
  for (let k = 0; k < places.slot.length; k++) stride = Math.max(stride, places.slot[k] + 1);
  for (let e = 0; e < count; e++) {
    const a = edges!.source[e];
    const b = edges!.target[e];
    const sa = places.slot[a];
    const sb = places.slot[b];
    if (sa < 0 || sb < 0 || sa === sb) continue;
    const key = sa * stride + sb;
    const at = merged.get(key);
    if (at !== undefined) {
      out.score[at] += edges!.score[e];
      continue;
    }
    const k = out.length++;
    merged.set(key, k);
    out.x1[k] = places.x[a];
    out.y1[k] = places.y[a];
    out.x2[k] = places.x[b];
    out.y2[k] = places.y[b];
    out.score[k] = edges!.score[e];
    out.from[k] = places.item[a];
    out.to[k] = places.item[b];
  }
  return out;
}

/** `mergeEdges`, recomputed only when the places (a new scene or new edges) or `n` change: a new
 * circuit, pin or colour leaves the edges as they were. */
export function cachedMerge(): (edges: Edges, n: number, places: Places) => DrawnEdges {
  let last: { places: Places; n: number; drawn: DrawnEdges } | null = null;
  return (edges, n, places) => {
    if (!last || last.places !== places || last.n !== n) last = { places, n, drawn: mergeEdges(edges, n, places) };
    return last.drawn;
  };
}

/** Indices of the drawn edges with `item` at an end. */
export function incident(d: DrawnEdges, item: number): number[] {
  const out: number[] = [];
  for (let e = 0; e < d.length; e++) if (d.from[e] === item || d.to[e] === item) out.push(e);
  return out;
}

/**
 * Edge `e` on screen as a polyline written to `out` from `at` (x, y pairs; returns how many points):
 * the two box centres joined straight; an edge within a column leaves and enters at the boxes'
 * right ends and bows right of the column (its middle point), past the column's other boxes.
 */
export function edgeLine(t: Transform, d: DrawnEdges, e: number, out: Float64Array, at: number): number {
  const x1 = d.x1[e] * t.sx + t.tx;
  const y1 = d.y1[e] * t.sy + t.ty;
  const x2 = d.x2[e] * t.sx + t.tx;
  const y2 = d.y2[e] * t.sy + t.ty;
  if (Math.abs(d.x1[e] - d.x2[e]) > 1e-6) {
    out[at] = x1;
    out[at + 1] = y1;
    out[at + 2] = x2;
    out[at + 3] = y2;
    return 2;
  }
  const half = NODE_HALF_WIDTH * t.sx;
  const bow = Math.min(GUTTER * t.sx, 60, 4 + 0.25 * Math.abs(y1 - y2));
  out.set([x1 + half, y1, x1 + half + bow, (y1 + y2) / 2, x2 + half, y2], at);
  return 3;
}

/** Clip the segment at `at` in `line` (x1, y1, x2, y2) to [left, right] x [top, bottom] in place
 * (Liang-Barsky); false when none of it is inside. Zoomed in, most of a long edge is off screen. */
export function clipSegment(line: Float64Array, at: number, left: number, top: number, right: number, bottom: number): boolean {
  const x1 = line[at];
  const y1 = line[at + 1];
  const dx = line[at + 2] - x1;
  const dy = line[at + 3] - y1;
  let t0 = 0;
  let t1 = 1;
  for (const [p, q] of [
    [-dx, x1 - left],
    [dx, right - x1],
    [-dy, y1 - top],
    [dy, bottom - y1],
  ]) {
    if (p === 0) {
      if (q < 0) return false;
      continue;
    }
    const r = q / p;
    if (p < 0) {
      if (r > t1) return false;
      t0 = Math.max(t0, r);
    } else {
      if (r < t0) return false;
      t1 = Math.min(t1, r);
    }
  }
  line[at] = x1 + t0 * dx;
  line[at + 1] = y1 + t0 * dy;
  line[at + 2] = x1 + t1 * dx;
  line[at + 3] = y1 + t1 * dy;
  return true;
}

/** Per drawn edge, its stroke: sign * (1 + bucket of |score| / the largest), 0 when not drawn. */
export function edgeBuckets(d: DrawnEdges): Int8Array {
  const out = new Int8Array(d.length);
  let max = 0;
  for (let e = 0; e < d.length; e++) if (Number.isFinite(d.score[e])) max = Math.max(max, Math.abs(d.score[e]));
  if (max === 0) return out;
  for (let e = 0; e < d.length; e++) {
    const s = d.score[e];
    if (!Number.isFinite(s) || s === 0) continue;
    const b = 1 + Math.min(EDGE_BUCKETS - 1, Math.floor((Math.abs(s) / max) * EDGE_BUCKETS));
    out[e] = s > 0 ? b : -b;
  }
  return out;
}

export interface EdgeView {
  t: Transform;
  theme: Theme;
  /** The screen area edges may show in. */
  left: number;
  top: number;
  right: number;
  bottom: number;
}

const polyline = new Float64Array(6);
let scratch = new Float64Array(0);

/** Every drawn edge on screen, one path per sign and bucket: stronger buckets wider and more opaque. */
export function drawEdges(p: Painter, d: DrawnEdges, v: EdgeView): void {
  if (!d.length) return;
  const buckets = edgeBuckets(d);
  // each edge's segments (two at most) clipped to the screen, in one buffer reused across paints
  if (scratch.length < 8 * d.length) scratch = new Float64Array(8 * d.length);
  const kept = new Uint8Array(d.length);
  for (let e = 0; e < d.length; e++) {
    if (!buckets[e]) continue;
    const n = edgeLine(v.t, d, e, polyline, 0);
    for (let k = 0; k < n - 1; k++) {
      const at = 8 * e + 4 * kept[e];
      scratch.set(polyline.subarray(2 * k, 2 * k + 4), at);
      if (clipSegment(scratch, at, v.left, v.top, v.right, v.bottom)) kept[e]++;
    }
  }
  const scale = diverging(v.theme, 1);
  const thin = d.length > WIDE_EDGES;
  for (const sign of [1, -1]) {
    for (let b = 1; b <= EDGE_BUCKETS; b++) {
      const style = { stroke: scale(sign)!, lineWidth: thin ? THIN : 1 + (b - 1) * 0.8, opacity: 0.25 + (0.6 * (b - 1)) / (EDGE_BUCKETS - 1) };
      p.shapes(style, (path) => {
        for (let e = 0; e < d.length; e++) {
          if (buckets[e] !== sign * b) continue;
          for (let k = 0; k < kept[e]; k++) {
            const at = 8 * e + 4 * k;
            path.moveTo(scratch[at], scratch[at + 1]);
            path.lineTo(scratch[at + 2], scratch[at + 3]);
          }
        }
      });
    }
  }
}

/** The hovered item's drawn edges, in the accent colour. */
export function drawIncident(p: Painter, d: DrawnEdges, t: Transform, theme: Theme, item: number): void {
  p.shapes({ stroke: theme.accent, lineWidth: 1.5, opacity: 0.9 }, (path) => {
    for (const e of incident(d, item)) {
      const n = edgeLine(t, d, e, polyline, 0);
      path.moveTo(polyline[0], polyline[1]);
      for (let k = 1; k < n; k++) path.lineTo(polyline[2 * k], polyline[2 * k + 1]);
    }
  });
}

/** What the edges are, for the header and the edge legend: method, kind, and how many were sent. */
export function edgeSummary(edges: Edges | null): { short: string; long: string } {
  if (!edges) return { short: "no edges", long: "no edges computed" };
  const kind = edges.positions ? "per position" : "summed over positions";
  const count = (v: number) => String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const sent = edges.positions
    ? `the ${count(edges.length)} strongest non-zero of ${count(edges.count)} edges scored, carrying ${(100 * edges.mass).toFixed(1)}% of their |score|`
    : `${count(edges.length)} edges between components`;
  return { short: `${edges.label} edges (${kind})`, long: `edges from ${edges.label}, ${kind}: ${sent}` };
}
