import { describe, expect, it } from "vitest";
import type { Painter } from "../shared/painter";
import { readTheme } from "../shared/theme";
import type { Edges } from "./data";
import { cachedMerge, clipSegment, drawEdges, edgeLine, edgeSummary, incident, mergeEdges, placeEnds, WIDE_EDGES } from "./edges";
import { groupOf, idIndex } from "./graph";
import { nodesOf } from "./graph.test";
import { buildScene, type CollapsedState, GUTTER, layoutGraph, NODE_HALF_WIDTH } from "./layout";

// head level, 2 layers x 2 heads, 3 positions: rows h0, h1, mlp per layer. By hand from the layout's
// constants (COL_W 100, ROW_H 10, GAP 4, anchor rows 20, boxes 42 either side of a column's centre): a band is 3 * 10 + 4 = 34 tall, layer 1's
// band starts at y = 20 and layer 0's at 54, the page is 108 tall; a row's centre is its band's
// bottom - 2 - (row + 0.5) * 10, a column's centre (column + 0.5) * 100.
const rows: [string, number, number, number][] = [];
for (let l = 0; l < 2; l++) for (const [c, h] of [["head", 0], ["head", 1], ["mlp", -1]] as const) for (let p = 0; p < 3; p++) rows.push([c, l, h, p]);
const NODES = nodesOf(rows);
const INDEX = idIndex(NODES);
const Y = { "h0.0": 81, "h1.0": 71, "mlp.0": 61, "h0.1": 47, "h1.1": 37, "mlp.1": 27 };

function edgesOf(list: [string, string, number][]): Edges {
  const ends = [...new Set(list.flatMap(([a, b]) => [a, b]))];
  const at = (id: string) => ends.indexOf(id);
  return {
    method: "relp",
    label: "RelP",
    positions: true,
    count: 100,
    mass: 0.5,
    ends,
    source: Int32Array.from(list, ([a]) => at(a)),
    target: Int32Array.from(list, ([, b]) => at(b)),
    score: Float32Array.from(list, ([, , s]) => s),
    cumulative: new Float32Array(list.length),
    length: list.length,
  };
}

function drawnOf(list: [string, string, number][], collapsed: CollapsedState = {}, groups: Record<string, string[]> = {}, n = list.length) {
  const layout = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head", collapsed });
  const scene = buildScene(layout, NODES, new Set(["head", "mlp"]), groupOf(NODES.length, groups, INDEX));
  const edges = edgesOf(list);
  return { scene, drawn: mergeEdges(edges, n, placeEnds(edges, scene, layout, INDEX, 2)) };
}

const ends = (d: ReturnType<typeof drawnOf>["drawn"]) =>
  Array.from({ length: d.length }, (_, e) => [d.x1[e], d.y1[e], d.x2[e], d.y2[e], Math.round(d.score[e] * 1000) / 1000]);

describe("edges where the nodes are", () => {
  it("join the centres of the node boxes at their layer rows and position columns", () => {
    const { drawn } = drawnOf([
      ["mlp.0@0", "head.1.0@2", 0.5],
      ["embed.0@1", "head.0.1@1", -0.25],
      ["attn.0@1", "mlp.1@2", 0.125], // layer 0's attention at 1: halfway up its head rows, at their left end
      ["mlp.1@2", "logits.2@2", 1],
    ]);
    expect(ends(drawn)).toEqual([
      [50, Y["mlp.0"], 250, Y["h0.1"], 0.5],
      [150, 108 - 10, 150, Y["h1.0"], -0.25],
      [150 - 42, (Y["h0.0"] + Y["h1.0"]) / 2, 250, Y["mlp.1"], 0.125],
      [250, Y["mlp.1"], 250, 10, 1],
    ]);
  });

  it("draw the first n edges only, and say which items they touch", () => {
    const { scene, drawn } = drawnOf([["mlp.0@0", "head.1.0@2", 0.5], ["mlp.0@1", "head.1.1@2", 0.25]], {}, {}, 1);
    expect(drawn.length).toBe(1);
    const mlp = scene.itemOf[INDEX.get("mlp.0@0")!];
    expect(incident(drawn, mlp)).toEqual([0]);
    expect(incident(drawn, scene.itemOf[INDEX.get("mlp.0@1")!])).toEqual([]);
  });

  it("merge into a collapsed range's cell, summing the scores", () => {
    // positions 0 and 1 collapsed into column 0: two edges from mlp.0 at 0 and 1 into head.1.0@2 are one
    const { drawn } = drawnOf(
      [
        ["mlp.0@0", "head.1.0@2", 0.5],
        ["mlp.0@1", "head.1.0@2", 0.25],
        ["embed.0@0", "head.1.0@2", 1],
        ["embed.0@1", "head.1.0@2", -3],
        ["mlp.0@2", "head.1.0@2", 2],
      ],
      { ranges: [[0, 1]] },
    );
    expect(ends(drawn)).toEqual([
      [50, Y["mlp.0"], 150, Y["h0.1"], 0.75],
      [50, 98, 150, Y["h0.1"], -2],
      [150, Y["mlp.0"], 150, Y["h0.1"], 2],
    ]);
  });

  it("merge into a supernode at its members' mean centre; an edge within the group is not drawn", () => {
    const { drawn } = drawnOf(
      [
        ["mlp.0@0", "head.1.0@2", 0.5],
        ["mlp.0@0", "head.1.1@2", 0.25],
        ["mlp.0@1", "head.1.1@2", 4], // mlp.0@1 and head.1.1@2 are one group
      ],
      {},
      { g: ["head.1.0@2", "head.1.1@2", "mlp.0@1"] },
    );
    // the group's centre: the mean of (250, 47), (250, 37) and (150, 61)
    expect(ends(drawn)).toEqual([[50, Y["mlp.0"], 650 / 3, (47 + 37 + 61) / 3, 0.75]]);
  });

  it("bow right of the column for an edge within a column, straight otherwise", () => {
    const { drawn } = drawnOf([["mlp.0@2", "head.1.0@2", 1], ["mlp.0@0", "head.1.0@2", 1]]);
    const t = { sx: 2, sy: 3, tx: 10, ty: 5 };
    const [x, y1, y2] = [250 * 2 + 10, Y["mlp.0"] * 3 + 5, Y["h0.1"] * 3 + 5];
    const bow = Math.min(GUTTER * 2, 60, 4 + 0.25 * Math.abs(y1 - y2));
    const half = NODE_HALF_WIDTH * 2;
    const line = (e: number) => {
      const out = new Float64Array(6);
      return Array.from(out.subarray(0, 2 * edgeLine(t, drawn, e, out, 0)));
    };
    expect(line(0)).toEqual([x + half, y1, x + half + bow, (y1 + y2) / 2, x + half, y2]);
    expect(line(1)).toEqual([50 * 2 + 10, y1, x, y2]);
  });

  it("paint one path per sign and bucket, leaving out edges off screen", () => {
    const { drawn } = drawnOf([
      ["mlp.0@0", "head.1.0@2", 1], // strongest: bucket 4
      ["mlp.0@1", "head.1.0@2", -0.3], // bucket 2, negative
      ["mlp.0@2", "head.1.1@2", 0.1], // bucket 1, but off screen (right of 200 px)
    ]);
    const strokes: { width: number; opacity: number; segments: number[][] }[] = [];
    const painter = {
      shapes(style: { lineWidth: number; opacity: number }, build: (b: { moveTo(x: number, y: number): void; lineTo(x: number, y: number): void }) => void) {
        const segments: number[][] = [];
        build({ moveTo: (x, y) => segments.push([x, y]), lineTo: (x, y) => segments[segments.length - 1].push(x, y) });
        strokes.push({ width: style.lineWidth, opacity: Math.round(style.opacity * 1000) / 1000, segments });
      },
    } as unknown as Painter;
    drawEdges(painter, drawn, { t: { sx: 1, sy: 1, tx: 0, ty: 0 }, theme: readTheme(), left: 0, top: 0, right: 200, bottom: 108 });
    expect(strokes.length).toBe(8);
    const drawnStrokes = strokes.filter((s) => s.segments.length > 0);
    // (50, 61) -> (250, 47) and (150, 61) -> (250, 47), both cut at x = 200
    expect(drawnStrokes).toEqual([
      { width: 1 + 3 * 0.8, opacity: 0.85, segments: [[50, 61, 200, 61 - (14 * 150) / 200]] },
      { width: 1 + 0.8, opacity: 0.45, segments: [[150, 61, 200, 61 - (14 * 50) / 100]] },
    ]);
    expect(drawn.length).toBeLessThan(WIDE_EDGES); // few edges: stronger ones wider
  });

  it("clip segments to the screen: zoomed in, most of a long edge is off it", () => {
    const line = Float64Array.from([0, 0, 400, 100]);
    expect(clipSegment(line, 0, 0, 0, 200, 108)).toBe(true);
    expect(Array.from(line)).toEqual([0, 0, 200, 50]);
    const through = Float64Array.from([-100, -100, 300, 300]);
    expect(clipSegment(through, 0, 0, 0, 100, 50)).toBe(true);
    expect(Array.from(through)).toEqual([0, 0, 50, 50]);
    expect(clipSegment(Float64Array.from([300, 0, 400, 100]), 0, 0, 0, 200, 108)).toBe(false);
    expect(clipSegment(Float64Array.from([0, 200, 100, 200]), 0, 0, 0, 200, 108)).toBe(false); // horizontal, below
  });

  it("merge again only when the threshold or the places change", () => {
    const layout = layoutGraph({ nLayers: 2, nHeads: 2, nPositions: 3, level: "head" });
    const scene = buildScene(layout, NODES, new Set(["head", "mlp"]), groupOf(NODES.length, {}, INDEX));
    const edges = edgesOf([["mlp.0@0", "head.1.0@2", 0.5], ["mlp.0@1", "head.1.1@2", 0.25]]);
    const places = placeEnds(edges, scene, layout, INDEX, 2);
    const merge = cachedMerge();
    const first = merge(edges, 1, places);
    expect(merge(edges, 1, places)).toBe(first);
    expect(merge(edges, 2, places).length).toBe(2);
    expect(merge(edges, 2, placeEnds(edges, scene, layout, INDEX, 2))).not.toBe(first);
  });

  it("say where the edges come from and how many were sent", () => {
    const e = edgesOf([["mlp.0@0", "head.1.0@2", 0.5]]);
    expect(edgeSummary({ ...e, count: 137214, mass: 0.98765 })).toEqual({
      short: "RelP edges (per position)",
      long: "edges from RelP, per position: the 1 strongest non-zero of 137,214 edges scored, carrying 98.8% of their |score|",
    });
    expect(edgeSummary({ ...e, positions: false }).short).toBe("RelP edges (summed over positions)");
  });
});
