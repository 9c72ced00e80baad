import { describe, expect, it } from "vitest";
import { nodesOf } from "./graph.test";
import { ANCHOR_H, anchorPoint, boundsOf, buildScene, CELL, centre, COL_W, GAP, GROUP, GUTTER, itemAt, layoutGraph, NODE, NODE_HALF_WIDTH, ROW_H, rowY } from "./layout";

// head level, 2 layers x 2 heads, 3 positions: head 0, head 1, mlp per layer and position
const rows: [string, number, number, number][] = [];
for (let l = 0; l < 2; l++) for (const [c, h] of [["head", 0], ["head", 1], ["mlp", -1]] as const) for (let p = 0; p < 3; p++) rows.push([c, l, h, p]);
const NODES = nodesOf(rows);
const CIRCUIT = new Set(["head", "mlp"]);
const NO_GROUPS = { names: [] as string[], of: new Int32Array(NODES.length).fill(-1) };

describe("layout", () => {
  it("stacks layers bottom to top with anchor rows for embeddings and logits", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    expect(L.rows).toEqual(["h0", "h1", "mlp"]);
    const band = 3 * ROW_H + GAP;
    expect(L.layerTop[1]).toBe(ANCHOR_H);
    expect(L.layerTop[0]).toBe(ANCHOR_H + band);
    expect(L.height).toBe(2 * ANCHOR_H + 2 * band);
    expect(L.width).toBe(3 * COL_W + GUTTER);
    // row 0 (head 0) is the lowest row of its band
    expect(rowY(L, 0, 0)).toBe(L.layerTop[0] + band - GAP / 2 - ROW_H / 2);
  });

  it("collapses layers and position ranges", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head", collapsed: { layers: [1], ranges: [[0, 1]] } });
    expect(L.nColumns).toBe(2);
    expect(Array.from(L.column)).toEqual([0, 0, 1]);
    expect(Array.from(L.first)).toEqual([0, 2]);
    expect(Array.from(L.last)).toEqual([1, 2]);
    expect(L.layerHeight[1]).toBe(2 * ROW_H + GAP);
  });

  it("puts summed components at the last position, embeddings below and logits above", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    expect(anchorPoint(L, "embed", 0, 2)).toEqual([2.5 * COL_W, L.height - ANCHOR_H / 2]);
    expect(anchorPoint(L, "logits", 2, 2)).toEqual([2.5 * COL_W, ANCHOR_H / 2]);
    expect(anchorPoint(L, "mlp", 1, 0)).toEqual([0.5 * COL_W, rowY(L, 1, 2)]);
    // attn at the head level: the middle of the head rows
    expect(anchorPoint(L, "attn", 1, 0)).toEqual([0.5 * COL_W - NODE_HALF_WIDTH, (rowY(L, 1, 0) + rowY(L, 1, 1)) / 2]);
  });
});

describe("scene", () => {
  it("draws one item per node, and every item's centre hits it", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    const s = buildScene(L, NODES, CIRCUIT, NO_GROUPS);
    expect(s.items).toHaveLength(NODES.length);
    expect(s.items.every((it) => it.kind === NODE && it.members.length === 1)).toBe(true);
    s.items.forEach((it, k) => expect(itemAt(s, ...centre(it), false)).toEqual([k, false]));
    // zoomed out: one cell per layer and position, summing its nodes
    expect(s.layerItems).toHaveLength(6);
    const [k, fromLayer] = itemAt(s, ...centre(s.items[0]), true);
    expect(fromLayer).toBe(true);
    expect(s.layerItems[k].members.sort()).toEqual([0, 3, 6]);
    expect(itemAt(s, 3 * COL_W + 10, L.layerTop[0] + 5, false)).toEqual([-1, false]); // the gutter
  });

  it("sums a collapsed layer's or range's nodes into cells", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head", collapsed: { layers: [1], ranges: [[1, 2]] } });
    const s = buildScene(L, NODES, CIRCUIT, NO_GROUPS);
    const layer1 = s.items.filter((it) => it.layer === 1);
    expect(layer1.map((it) => it.members.length).sort()).toEqual([3, 6]); // position 0; positions 1-2
    expect(layer1.every((it) => it.kind === CELL)).toBe(true);
    const head0 = s.items.find((it) => it.layer === 0 && it.members.includes(1))!;
    expect(head0.members).toEqual([1, 2]); // head 0 of layer 0 at positions 1 and 2
    // every row of a collapsed layer's band answers with its cell
    const cell = s.items.indexOf(layer1.find((it) => it.column === 0)!);
    expect(itemAt(s, 0.5 * COL_W, rowY(L, 1, 0) - ROW_H * 0.2 + 1, false)[0]).toBe(cell);
  });

  it("draws a group as one item over its members", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    const of = new Int32Array(NODES.length).fill(-1);
    of[0] = 0;
    of[10] = 0;
    const s = buildScene(L, NODES, CIRCUIT, { names: ["movers"], of });
    const g = s.items[s.groupItems[0]];
    expect(g.kind).toBe(GROUP);
    expect(g.label).toBe("movers");
    expect(g.members).toEqual([0, 10]);
    expect(s.itemOf[0]).toBe(s.groupItems[0]);
    expect(itemAt(s, ...centre(g), false)).toEqual([s.groupItems[0], false]);
    expect(s.items).toHaveLength(NODES.length - 2 + 1);
  });

  it("bounds a set of items across every column", () => {
    const L = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    const s = buildScene(L, NODES, CIRCUIT, NO_GROUPS);
    const b = boundsOf(s, [s.items[0]], 0);
    expect(b).toEqual({ x0: 0, y0: s.items[0].y, x1: L.width, y1: s.items[0].y + s.items[0].h });
    expect(boundsOf(s, [])).toEqual({ x0: 0, y0: 0, x1: L.width, y1: L.height });
  });
});
