// Where things are, in drawing units: layers bottom to top (each a band of sub-rows: resid, attn,
// mlp, or one per head and the mlp), token positions left to right (a collapsed position range is
// one column), an anchor row for the embeddings below layer 0 and one for the logits above the
// top layer. The scene groups nodes into what is drawn: single nodes, cells of a collapsed layer
// or range (their members' sums), supernodes (groups), and per-layer cells for zoomed-out views.

import { componentOf, type Nodes } from "./data";

export const COL_W = 100;
export const ROW_H = 10;
export const GAP = 4;
export const ANCHOR_H = 2 * ROW_H;
/** Room right of the last column for edges that bow out of a column. */
export const GUTTER = 0.5 * COL_W;
export const NODE_HALF_WIDTH = 0.42 * COL_W;

export interface CollapsedState {
  layers?: number[];
  ranges?: [number, number][];
}

export interface Layout {
  level: string;
  rows: string[];
  nLayers: number;
  nPositions: number;
  nColumns: number;
  /** Column of each position, and the first / last position of each column. */
  column: Int32Array;
  first: Int32Array;
  last: Int32Array;
  collapsed: Uint8Array;
  layerTop: Float64Array;
  layerHeight: Float64Array;
  width: number;
  height: number;
}

export interface LayoutOptions {
  nLayers: number;
  nHeads: number;
  nPositions: number;
  level: string;
  collapsed?: CollapsedState;
}

export function rowsOf(level: string, nHeads: number): string[] {
  return level === "head" ? [...Array.from({ length: nHeads }, (_, h) => `h${h}`), "mlp"] : ["resid", "attn", "mlp"];
}

export function layoutGraph(o: LayoutOptions): Layout {
  const rows = rowsOf(o.level, o.nHeads);
  const column = new Int32Array(o.nPositions);
  const first: number[] = [];
  const last: number[] = [];
  const ranges = [...(o.collapsed?.ranges ?? [])].sort((a, b) => a[0] - b[0]);
  let p = 0;
  while (p < o.nPositions) {
    const range = ranges.find(([a, b]) => a === p && b > a && b < o.nPositions);
    const end = range ? range[1] : p;
    for (let q = p; q <= end; q++) column[q] = first.length;
    first.push(p);
    last.push(end);
    p = end + 1;
  }
  const collapsed = new Uint8Array(o.nLayers);
  for (const l of o.collapsed?.layers ?? []) if (l >= 0 && l < o.nLayers) collapsed[l] = 1;
  const layerTop = new Float64Array(o.nLayers);
  const layerHeight = new Float64Array(o.nLayers);
  let y = ANCHOR_H;
  for (let l = o.nLayers - 1; l >= 0; l--) {
    layerHeight[l] = (collapsed[l] ? 2 * ROW_H : rows.length * ROW_H) + GAP;
    layerTop[l] = y;
    y += layerHeight[l];
  }
  return {
    level: o.level,
    rows,
    nLayers: o.nLayers,
    nPositions: o.nPositions,
    nColumns: first.length,
    column,
    first: Int32Array.from(first),
    last: Int32Array.from(last),
    collapsed,
    layerTop,
    layerHeight,
    width: first.length * COL_W + GUTTER,
    height: y + ANCHOR_H,
  };
}

export function rowOf(layout: Layout, component: string, head: number): number {
  return component === "head" ? head : layout.rows.indexOf(component);
}

/** The y of row `row`'s centre in layer `layer` (rows from the bottom of the band). */
export function rowY(layout: Layout, layer: number, row: number): number {
  return layout.layerTop[layer] + layout.layerHeight[layer] - GAP / 2 - (row + 0.5) * ROW_H;
}

export function columnX(column: number): number {
  return (column + 0.5) * COL_W;
}

/** The layer whose band holds `y`, or -1. */
export function layerAt(layout: Layout, y: number): number {
  for (let l = 0; l < layout.nLayers; l++) {
    if (y >= layout.layerTop[l] && y < layout.layerTop[l] + layout.layerHeight[l]) return l;
  }
  return -1;
}

/** Where an end without a box of its own is drawn: at `position`'s column, in its row of `layer`
 * (below layer 0 for `embed`, above the top layer for `logits`). `attn` at the head level (the sum
 * of the layer's heads) sits halfway up the head rows at their left end, so that its edges do not
 * seem to leave the middle head. */
export function anchorPoint(layout: Layout, component: string, layer: number, position: number): [number, number] {
  const x = columnX(layout.column[Math.max(0, Math.min(layout.nPositions - 1, position))]);
  if (component === "embed") return [x, layout.height - ANCHOR_H / 2];
  if (component === "logits" || layer >= layout.nLayers) return [x, ANCHOR_H / 2];
  const l = Math.max(0, Math.min(layout.nLayers - 1, layer));
  if (layout.collapsed[l]) return [x, layout.layerTop[l] + layout.layerHeight[l] / 2];
  const row = layout.rows.indexOf(component);
  if (row >= 0) return [x, rowY(layout, l, row)];
  return [x - NODE_HALF_WIDTH, (rowY(layout, l, 0) + rowY(layout, l, layout.rows.length - 2)) / 2];
}

// --- the scene ---------------------------------------------------------------------------------------

export const NODE = 0;
export const CELL = 1;
export const GROUP = 2;

export interface Item {
  kind: number;
  x: number;
  y: number;
  w: number;
  h: number;
  members: number[];
  layer: number;
  column: number;
  label: string;
}

export interface Scene {
  layout: Layout;
  items: Item[];
  /** Node -> item drawn for it (-1: not drawn, e.g. resid in a collapsed layer). */
  itemOf: Int32Array;
  /** (layer, row, column) -> item index, for hit tests. */
  grid: Int32Array;
  /** Per (layer, column): the sum of its circuit nodes, drawn when zoomed out. */
  layerItems: Item[];
  groupItems: number[];
}

function cellRect(layout: Layout, layer: number, row: number, column: number): [number, number, number, number] {
  const x = (column + 0.5) * COL_W - NODE_HALF_WIDTH;
  const w = 2 * NODE_HALF_WIDTH;
  if (layout.collapsed[layer] || row < 0) {
    const top = layout.layerTop[layer] + GAP / 2;
    return [x, top, w, layout.layerHeight[layer] - GAP];
  }
  const cy = rowY(layout, layer, row);
  return [x, cy - ROW_H * 0.4, w, ROW_H * 0.8];
}

export function buildScene(layout: Layout, nodes: Nodes, circuit: Set<string>, group: { names: string[]; of: Int32Array }): Scene {
  const items: Item[] = [];
  const itemOf = new Int32Array(nodes.length).fill(-1);
  const nRows = layout.rows.length;
  const grid = new Int32Array(layout.nLayers * nRows * layout.nColumns).fill(-1);
  const layerCell = new Int32Array(layout.nLayers * layout.nColumns).fill(-1);
  const layerItems: Item[] = [];
  const groupMembers: number[][] = group.names.map(() => []);
  for (let i = 0; i < nodes.length; i++) {
    const component = componentOf(nodes, i);
    const layer = nodes.layer[i];
    const column = layout.column[nodes.position[i]];
    const inCircuit = circuit.has(component);
    if (inCircuit && group.of[i] < 0) {
      const key = layer * layout.nColumns + column;
      if (layerCell[key] < 0) {
        const [x, y, w, h] = cellRect(layout, layer, -1, column);
        layerCell[key] = layerItems.length;
        layerItems.push({ kind: CELL, x, y, w, h, members: [], layer, column, label: "" });
      }
      layerItems[layerCell[key]].members.push(i);
    }
    if (group.of[i] >= 0) {
      groupMembers[group.of[i]].push(i);
      continue;
    }
    if (layout.collapsed[layer] && !inCircuit) continue;
    const row = layout.collapsed[layer] ? 0 : rowOf(layout, component, nodes.head[i]);
    if (row < 0) continue;
    const key = (layer * nRows + row) * layout.nColumns + column;
    if (grid[key] < 0) {
      const [x, y, w, h] = cellRect(layout, layer, layout.collapsed[layer] ? -1 : row, column);
      grid[key] = items.length;
      items.push({ kind: NODE, x, y, w, h, members: [], layer, column, label: "" });
    }
    const item = items[grid[key]];
    item.members.push(i);
    if (item.members.length > 1) item.kind = CELL;
    itemOf[i] = grid[key];
  }
  if (layout.collapsed.some((c) => c === 1)) {
    // a collapsed layer's cell answers hit tests on every row of its band
    for (let l = 0; l < layout.nLayers; l++) {
      if (!layout.collapsed[l]) continue;
      for (let c = 0; c < layout.nColumns; c++) {
        const top = grid[(l * nRows) * layout.nColumns + c];
        for (let r = 1; r < nRows; r++) grid[(l * nRows + r) * layout.nColumns + c] = top;
      }
    }
  }
  const groupItems: number[] = [];
  group.names.forEach((name, g) => {
    const members = groupMembers[g];
    if (!members.length) return;
    let cx = 0;
    let cy = 0;
    for (const i of members) {
      const [x, y, w, h] = cellRect(layout, nodes.layer[i], layout.collapsed[nodes.layer[i]] ? -1 : rowOf(layout, componentOf(nodes, i), nodes.head[i]), layout.column[nodes.position[i]]);
      cx += x + w / 2;
      cy += y + h / 2;
    }
    cx /= members.length;
    cy /= members.length;
    const w = COL_W * 0.9;
    const h = ROW_H * 1.6;
    const index = items.length;
    items.push({ kind: GROUP, x: cx - w / 2, y: cy - h / 2, w, h, members, layer: -1, column: -1, label: name });
    for (const i of members) itemOf[i] = index;
    groupItems.push(index);
  });
  return { layout, items, itemOf, grid, layerItems, groupItems };
}

/** The item at a drawing point: a group first, else the cell of the grid (or the layer cell when
 * `zoomedOut`); -1 when none. Returns [index, fromLayerItems]. */
export function itemAt(scene: Scene, x: number, y: number, zoomedOut: boolean): [number, boolean] {
  for (let k = scene.groupItems.length - 1; k >= 0; k--) {
    const it = scene.items[scene.groupItems[k]];
    if (x >= it.x && x <= it.x + it.w && y >= it.y && y <= it.y + it.h) return [scene.groupItems[k], false];
  }
  const { layout } = scene;
  const column = Math.floor(x / COL_W);
  if (column < 0 || column >= layout.nColumns || Math.abs(x - (column + 0.5) * COL_W) > NODE_HALF_WIDTH) return [-1, false];
  const layer = layerAt(layout, y);
  if (layer < 0) return [-1, false];
  if (zoomedOut && !layout.collapsed[layer]) {
    const k = scene.layerItems.findIndex((it) => it.layer === layer && it.column === column);
    return [k, k >= 0];
  }
  const fromBottom = layout.layerTop[layer] + layout.layerHeight[layer] - GAP / 2 - y;
  const row = layout.collapsed[layer] ? 0 : Math.floor(fromBottom / ROW_H);
  if (row < 0 || row >= layout.rows.length) return [-1, false];
  return [scene.grid[(layer * layout.rows.length + row) * layout.nColumns + column], false];
}

export function centre(it: Item): [number, number] {
  return [it.x + it.w / 2, it.y + it.h / 2];
}

/** The drawing rectangle around some items, widened to every column (the token row stays whole). */
export function boundsOf(scene: Scene, items: Item[], margin = ROW_H * 3): { x0: number; y0: number; x1: number; y1: number } {
  const { layout } = scene;
  if (!items.length) return { x0: 0, y0: 0, x1: layout.width, y1: layout.height };
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const it of items) {
    y0 = Math.min(y0, it.y);
    y1 = Math.max(y1, it.y + it.h);
  }
  return { x0: 0, y0: Math.max(0, y0 - margin), x1: layout.width, y1: Math.min(layout.height, y1 + margin) };
}
