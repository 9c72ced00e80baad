// What the drawing shows, computed from the traits without any DOM: each drawn item's summed score,
// colour intensity and marks; the drawn edges between items (or anchors), summed per pair; and
// the items of a zoomed-out view (a cell per layer and position, plus collapsed cells and groups).

import { ABLATED, type DrawnEdge, KEPT, MATCHED, PINNED, VERIFIED } from "./draw";
import type { Edges } from "./data";
import { type ColourScale, resolveEnd } from "./graph";
import { anchorPoint, centre, GROUP, type Item, type Layout, type Scene } from "./layout";

/** Per node, 1 where a mark applies. */
export interface Marks {
  kept: Uint8Array;
  ablated: Uint8Array;
  pinned: Uint8Array;
  verified: Uint8Array;
  matched: Uint8Array | null;
}

export interface Styled {
  score: Float64Array;
  intensity: Float32Array;
  flags: Uint8Array;
}

/** Per item: the sum of its members' scores, its colour (rank: its best member's), its marks (any member's). */
export function styleItems(items: Item[], scores: ArrayLike<number>, rank: Int32Array, marks: Marks, scale: ColourScale): Styled {
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
      if (marks.kept[i]) f |= KEPT;
      if (marks.ablated[i]) f |= ABLATED;
      if (marks.pinned[i]) f |= PINNED;
      if (marks.verified[i]) f |= VERIFIED;
      if (marks.matched?.[i]) f |= MATCHED;
    }
    score[k] = s;
    intensity[k] = scale.intensity(s, best);
    flags[k] = f;
  });
  return { score, intensity, flags };
}

/**
 * The first `n` edges of Python's order, between the items their ends are drawn in (or anchors
 * for components summed over positions), summed per pair of places; an edge within one item (a
 * group, a collapsed cell) is not drawn. `ends[e]` holds the items of drawn edge `e` (-1: an anchor).
 */
export function drawnEdges(edges: Edges, n: number, scene: Scene, layout: Layout, index: Map<string, number>, lastPosition: number): { drawn: DrawnEdge[]; ends: [number, number][] } {
  const slots = scene.items.length;
  const anchors = new Map<string, number>();
  const places = edges.ends.map((id) => {
    const e = resolveEnd(id, index, lastPosition);
    if (!e) return null;
    if ("node" in e) {
      const k = scene.itemOf[e.node];
      if (k < 0) return null;
      const [x, y] = centre(scene.items[k]);
      return { x, y, item: k, slot: k };
    }
    const [x, y] = anchorPoint(layout, e.component, e.layer, e.position);
    const key = `${x},${y}`;
    if (!anchors.has(key)) anchors.set(key, slots + anchors.size);
    return { x, y, item: -1, slot: anchors.get(key)! };
  });
  const total = slots + anchors.size;
  const merged = new Map<number, number>();
  const drawn: DrawnEdge[] = [];
  const ends: [number, number][] = [];
  for (let e = 0; e < Math.min(n, edges.length); e++) {
    const a = places[edges.source[e]];
    const b = places[edges.target[e]];
    if (!a || !b || a.slot === b.slot) continue;
    const key = a.slot * total + b.slot;
    const at = merged.get(key);
    if (at !== undefined) {
      drawn[at].score += edges.score[e];
      continue;
    }
    merged.set(key, drawn.length);
    drawn.push({ x1: a.x, y1: a.y, x2: b.x, y2: b.y, score: edges.score[e] });
    ends.push([a.item, b.item]);
  }
  return { drawn, ends };
}

/** The items a zoomed-out view draws: per-layer cells of expanded layers, then collapsed cells and groups. */
export function zoomedOutItems(scene: Scene, items: Styled, cells: Styled): { items: Item[] } & Styled {
  const { layout } = scene;
  const fromCells = scene.layerItems.flatMap((it, k) => (layout.collapsed[it.layer] ? [] : [k]));
  const fromItems = scene.items.flatMap((it, k) => (layout.collapsed[it.layer] || it.kind === GROUP ? [k] : []));
  const pick = <T extends Float64Array | Float32Array | Uint8Array>(make: (n: number) => T, a: T, b: T): T => {
    const out = make(fromCells.length + fromItems.length);
    fromCells.forEach((k, j) => (out[j] = a[k]));
    fromItems.forEach((k, j) => (out[fromCells.length + j] = b[k]));
    return out;
  };
  return {
    items: [...fromCells.map((k) => scene.layerItems[k]), ...fromItems.map((k) => scene.items[k])],
    score: pick((n) => new Float64Array(n), cells.score, items.score),
    intensity: pick((n) => new Float32Array(n), cells.intensity, items.intensity),
    flags: pick((n) => new Uint8Array(n), cells.flags, items.flags),
  };
}
