import { describe, expect, it } from "vitest";
import { encode } from "../shared/codecs";
import { toSvg } from "../shared/export";
import { readTheme, type Theme } from "../shared/theme";
import { drawGraph, EDGE_BUCKETS, edgePaths } from "./draw";
import {
  cellIndex,
  decodeEdges,
  decodeNodes,
  edgeNodeAt,
  graphJson,
  layoutGraph,
  nodeAt,
  nodeCentre,
  nodeId,
  type Nodes,
  pearson,
  pruneEdges,
  pruneNodes,
  rankNodes,
} from "./graph";

const theme: Theme = { ...readTheme(), background: "#ffffff", dark: false };
const wire = (data: Uint8Array | Int32Array | Float32Array) => {
  const { meta, buffer } = encode(data);
  return { ...meta, data: new DataView(buffer) };
};

/** Nodes from per-node component codes, layers, heads (-1: none) and positions, as the kernel sends them. */
function wiredNodes(c: number[], l: number[], hd: number[], p: number[]): Nodes {
  return decodeNodes({
    components: ["resid", "attn", "mlp", "head"],
    component: wire(Uint8Array.from(c)),
    layer: wire(Int32Array.from(l)),
    head: wire(Int32Array.from(hd)),
    position: wire(Int32Array.from(p)),
  });
}

/** Nodes in Python's order (layer, component, head, position innermost): component level. */
export function componentNodes(nLayers: number, nPositions: number): Nodes {
  const c: number[] = [];
  const l: number[] = [];
  const p: number[] = [];
  for (let layer = 0; layer < nLayers; layer++) {
    for (const code of [0, 1, 2]) {
      for (let pos = 0; pos < nPositions; pos++) {
        c.push(code);
        l.push(layer);
        p.push(pos);
      }
    }
  }
  return wiredNodes(c, l, new Array(c.length).fill(-1), p);
}

function headNodes(nLayers: number, nHeads: number, nPositions: number): Nodes {
  const c: number[] = [];
  const l: number[] = [];
  const hd: number[] = [];
  const p: number[] = [];
  for (let layer = 0; layer < nLayers; layer++) {
    for (let head = -1; head < nHeads; head++) {
      // heads first (COMPONENT_ORDER head < mlp), mlp last
      const code = head === nHeads - 1 ? 2 : 3;
      const h = head === nHeads - 1 ? -1 : head + 1;
      for (let pos = 0; pos < nPositions; pos++) {
        c.push(code);
        l.push(layer);
        hd.push(h);
        p.push(pos);
      }
    }
  }
  return wiredNodes(c, l, hd, p);
}

/** The edge graph of a GPT-2 of `n` layers: embed, attn.l, mlp.l, logits; every edge forward. */
export function edgeGraph(n: number, score: (k: number) => number = (k) => (k % 2 ? -1 : 1) * (k + 1)) {
  const ids = ["embed.0"];
  const comp = [0];
  const layer = [0];
  for (let l = 0; l < n; l++) {
    ids.push(`attn.${l}`, `mlp.${l}`);
    comp.push(1, 2);
    layer.push(l, l);
  }
  ids.push(`logits.${n}`);
  comp.push(3);
  layer.push(n);
  const source: number[] = [];
  const target: number[] = [];
  for (let s = 0; s < ids.length - 1; s++) for (let t = Math.max(1, s + 1); t < ids.length; t++) {
    source.push(s);
    target.push(t);
  }
  const scores = Float32Array.from(source, (_, k) => score(k));
  return decodeEdges({
    method: "atp",
    nodes: ids,
    component: wire(Uint8Array.from(comp)),
    layer: wire(Int32Array.from(layer)),
    source: wire(Int32Array.from(source)),
    target: wire(Int32Array.from(target)),
    score: wire(scores),
  })!;
}

describe("node tables", () => {
  it("decodes the node arrays and writes Python's node ids", () => {
    const nodes = componentNodes(2, 3);
    expect(nodes.length).toBe(18);
    expect(nodeId(nodes, 0)).toBe("resid.0@0");
    expect(nodeId(nodes, 4)).toBe("attn.0@1");
    expect(nodeId(nodes, 17)).toBe("mlp.1@2");
    const heads = headNodes(1, 2, 2);
    expect(Array.from({ length: heads.length }, (_, i) => nodeId(heads, i))).toEqual([
      "head.0.0@0", "head.0.0@1", "head.0.1@0", "head.0.1@1", "mlp.0@0", "mlp.0@1",
    ]);
  });

  it("refuses arrays of different lengths", () => {
    expect(() =>
      decodeNodes({
        components: ["resid"],
        component: wire(new Uint8Array(3)),
        layer: wire(new Int32Array(2)),
        head: wire(new Int32Array(3)),
        position: wire(new Int32Array(3)),
      }),
    ).toThrow(/disagree in length/);
  });
});

describe("pruning", () => {
  // one layer, two positions: resid@0 resid@1 attn@0 attn@1 mlp@0 mlp@1
  const nodes = componentNodes(1, 2);
  const scores = [5, 0.1, -0.3, 0.2, 0.3, -0.05];

  it("ranks circuit nodes by |score|, ties in node order, resid left out", () => {
    expect(rankNodes(nodes, scores)).toEqual([2, 4, 3, 5]);
  });

  it("keeps the top k and the resid nodes at or above the smallest kept |score|", () => {
    const p = pruneNodes(nodes, scores, 2);
    expect(p.circuit).toEqual([2, 4]);
    expect(p.cutoff).toBeCloseTo(0.3);
    expect(Array.from(p.kept)).toEqual([1, 0, 1, 0, 1, 0]);
    expect(Array.from(pruneNodes(nodes, scores, 0).kept)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(pruneNodes(nodes, scores, 99).circuit).toHaveLength(4);
  });

  it("keeps the k edges of highest |score|", () => {
    expect(pruneEdges([0.1, -3, 2, -0.5, 2], 3)).toEqual([1, 2, 4]);
    expect(pruneEdges([1, 2], -1)).toEqual([]);
  });
});

describe("layout", () => {
  it("puts layers bottom to top and positions left to right, and finds every node back", () => {
    const nodes = componentNodes(3, 5);
    const layout = layoutGraph({ nLayers: 3, nHeads: 2, nPositions: 5, level: "component", width: 900 });
    const cells = cellIndex(layout, nodes);
    const [x0, y0] = nodeCentre(layout, nodes, 0); // resid.0@0
    const [x1, y1] = nodeCentre(layout, nodes, 1); // resid.0@1
    const [, yUp] = nodeCentre(layout, nodes, 15); // resid.1@0
    expect(x1).toBeGreaterThan(x0);
    expect(y1).toBe(y0);
    expect(yUp).toBeLessThan(y0); // canvas y grows downwards: layer 1 is drawn above layer 0
    for (let i = 0; i < nodes.length; i++) expect(nodeAt(layout, cells, ...nodeCentre(layout, nodes, i))).toBe(i);
    expect(nodeAt(layout, cells, 2, 2)).toBe(-1);
    expect(nodeAt(layout, cells, layout.left + 5.5 * layout.colW, y0)).toBe(-1);
  });

  it("gives each head a row at the head level", () => {
    const nodes = headNodes(2, 3, 4);
    const layout = layoutGraph({ nLayers: 2, nHeads: 3, nPositions: 4, level: "head", width: 900 });
    expect(layout.rows).toEqual(["head 0", "head 1", "head 2", "mlp"]);
    const cells = cellIndex(layout, nodes);
    for (let i = 0; i < nodes.length; i++) expect(nodeAt(layout, cells, ...nodeCentre(layout, nodes, i))).toBe(i);
  });

  it("places the edge column right of the grid, embed at the bottom and logits at the top", () => {
    const edges = edgeGraph(3);
    const layout = layoutGraph({ nLayers: 3, nHeads: 2, nPositions: 5, level: "component", width: 900, edges });
    expect(layout.edgeX).toBeGreaterThan(layout.left + 5 * layout.colW);
    const y = Array.from(layout.edgeY);
    expect(Math.max(...y)).toBe(y[0]); // embed lowest
    expect(Math.min(...y)).toBe(y[y.length - 1]); // logits highest
    for (let l = 0; l < 3; l++) expect(y[2 + 2 * l]).toBeLessThan(y[1 + 2 * l]); // mlp above attn
    expect(edgeNodeAt(layout, layout.edgeX + 1, y[3])).toBe(3);
  });
});

describe("edges", () => {
  it("draws thousands of edges as a dozen paths, one arc per kept edge", () => {
    // 40 layers: 82 nodes in forward order, every forward pair an edge: 82 * 81 / 2 = 3321
    const edges = edgeGraph(40, (k) => Math.sin(k * 12.9898) * 3);
    expect(edges.score.length).toBe(3321);
    const layout = layoutGraph({ nLayers: 40, nHeads: 4, nPositions: 12, level: "component", width: 1200, edges });
    const keep = pruneEdges(edges.score, 3000);
    const started = performance.now();
    const paths = edgePaths(layout, edges, keep);
    const elapsed = performance.now() - started;
    expect(paths.length).toBeLessThanOrEqual(2 * EDGE_BUCKETS);
    expect(paths.reduce((n, p) => n + (p.d.match(/M/g) ?? []).length, 0)).toBe(3000);
    expect(paths.some((p) => p.positive) && paths.some((p) => !p.positive)).toBe(true);
    expect(elapsed).toBeLessThan(250);
  });

  it("puts the strongest edge in the widest bucket with its sign", () => {
    const edges = edgeGraph(1, (k) => [0.5, -4, 1, 0.1, 0.2, 0.3][k] ?? 0);
    const layout = layoutGraph({ nLayers: 1, nHeads: 1, nPositions: 2, level: "component", width: 600, edges });
    const paths = edgePaths(layout, edges, pruneEdges(edges.score, 2));
    const strongest = paths.find((p) => p.bucket === EDGE_BUCKETS - 1)!;
    expect(strongest.positive).toBe(false);
    expect(paths).toHaveLength(2);
  });
});

describe("drawing and export", () => {
  const EVIL = "<img src=x onerror=alert(1)>";

  it("escapes tokens in SVG, crosses ablated nodes, shows the edge column", () => {
    const nodes = componentNodes(1, 2);
    const edges = edgeGraph(1);
    const layout = layoutGraph({ nLayers: 1, nHeads: 1, nPositions: 2, level: "component", width: 700, edges });
    const svg = toSvg({
      width: layout.width,
      height: layout.height,
      draw: (p) =>
        drawGraph(p, {
          layout,
          nodes,
          scores: [1, 0, 0.5, -0.5, 0.2, 0],
          kept: Uint8Array.from([1, 0, 1, 1, 0, 0]),
          ablated: new Set([3]),
          labels: [EVIL, " Mary"],
          edges,
          keptEdges: [0, 1],
          theme,
        }),
    });
    expect(svg).not.toContain("<img");
    expect(svg).toContain("&lt;img");
    expect(svg).toContain("edges (atp)");
    expect(svg).toContain(`stroke="${theme.error}"`); // the ablated node's cross
    expect((svg.match(/<rect [^>]*rx="2"/g) ?? []).length).toBe(6); // one glyph per node
    expect((svg.match(/opacity="0.28"/g) ?? []).length).toBe(3); // the pruned ones faint
  });

  it("writes the graph as JSON with Python's ids and every method's scores", () => {
    const nodes = componentNodes(1, 2);
    const edges = edgeGraph(1);
    const json = JSON.parse(
      graphJson({
        model: "m",
        task: "ioi",
        level: "component",
        method: "atp",
        labels: ["a", "b"],
        nodes,
        scores: { atp: [1, 2, 3, 4, 5, 6], relp: [6, 5, 4, 3, 2, 1] },
        edges,
        circuit: ["attn.0@1"],
        ablated: ["mlp.0@0"],
        metric: { ablated: 1.5 },
      }),
    );
    expect(json.nodes[3]).toEqual({ id: "attn.0@1", component: "attn", layer: 0, head: null, position: 1, token: "b", scores: { atp: 4, relp: 3 } });
    expect(json.edges[0]).toEqual({ source: "embed.0", target: "attn.0", score: 1 });
    expect(json.edges).toHaveLength(edges.score.length);
    expect(json.circuit).toEqual(["attn.0@1"]);
    expect(json.ablated).toEqual(["mlp.0@0"]);
  });
});

describe("pearson", () => {
  it("matches a hand computation", () => {
    // x mean 2, y mean 13/3; sxy = 5, sxx = 2, syy = 114/9
    expect(pearson([1, 2, 3], [2, 4, 7])).toBeCloseTo(5 / Math.sqrt((2 * 114) / 9), 10);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(() => pearson([1], [1, 2])).toThrow(/equal length/);
  });
});
