// What the drawing shows, computed from the traits without any DOM: each drawn item's summed score,
// colour intensity and marks, and the items of a zoomed-out view (a cell per layer and position, plus collapsed cells and groups).

import { ABLATED, KEPT, MATCHED, PINNED, VERIFIED } from "./draw";
import type { ColourScale } from "./graph";
import { GROUP, type Item, type Scene } from "./layout";

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
