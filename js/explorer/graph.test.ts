import { describe, expect, it } from "vitest";
import type { Nodes } from "./data";
import {
  colourScale,
  countForShare,
  countToSlider,
  groupOf,
  idIndex,
  keptByOrder,
  LOG_DECADES,
  ranks,
  resolveEnd,
  searchNodes,
  shareOfCount,
  SLIDER_STEPS,
  sliderToCount,
} from "./graph";

/** Nodes from (component, layer, head, position) rows. */
export function nodesOf(rows: [string, number, number, number][], components = ["resid", "attn", "mlp", "head"]): Nodes {
  return {
    components,
    component: Uint8Array.from(rows.map((r) => components.indexOf(r[0]))),
    layer: Int32Array.from(rows.map((r) => r[1])),
    head: Int32Array.from(rows.map((r) => r[2])),
    position: Int32Array.from(rows.map((r) => r[3])),
    length: rows.length,
  };
}

const HEADS = nodesOf([
  ["head", 0, 0, 0],
  ["head", 0, 1, 0],
  ["mlp", 0, -1, 0],
  ["head", 0, 0, 1],
  ["head", 0, 1, 1],
  ["mlp", 0, -1, 1],
  ["head", 1, 0, 1],
  ["mlp", 1, -1, 1],
]);

describe("pruning from Python's order", () => {
  it("keeps the first k of the order", () => {
    expect(Array.from(keptByOrder(5, [3, 0, 4], 2))).toEqual([1, 0, 0, 1, 0]);
    expect(Array.from(keptByOrder(5, [3, 0, 4], 9))).toEqual([1, 0, 0, 1, 1]);
    expect(Array.from(keptByOrder(3, [2], 0))).toEqual([0, 0, 0]);
  });

  it("turns a cumulative share into a count and back", () => {
    const cumulative = [0.5, 0.75, 0.9, 1.0];
    expect(countForShare(cumulative, 0)).toBe(0);
    expect(countForShare(cumulative, 0.5)).toBe(1);
    expect(countForShare(cumulative, 0.8)).toBe(3);
    expect(countForShare(cumulative, 1)).toBe(4);
    expect(shareOfCount(cumulative, 2)).toBe(0.75);
    expect(shareOfCount(cumulative, 0)).toBe(0);
  });

  it("maps a logarithmic slider onto counts, finely at the small end", () => {
    const max = 4800;
    expect(sliderToCount(0, max)).toBe(0);
    expect(sliderToCount(SLIDER_STEPS, max)).toBe(max);
    // by hand: exp(0.25 * ln 4801) - 1 = 7.32 -> 7
    expect(sliderToCount(SLIDER_STEPS / 4, max)).toBe(7);
    let last = -1;
    for (let v = 0; v <= SLIDER_STEPS; v += 10) {
      const k = sliderToCount(v, max);
      expect(k).toBeGreaterThanOrEqual(last);
      last = k;
    }
    for (const k of [0, 1, 10, 84, 480, 4800]) expect(Math.abs(sliderToCount(countToSlider(k, max), max) - k)).toBeLessThanOrEqual(Math.max(1, 0.01 * k));
  });
});

describe("search", () => {
  const labels = ["When", " Mary", " John"];
  it("reads layers, heads, positions, components and tokens", () => {
    const find = (q: string) => Array.from(searchNodes(q, HEADS, labels).matches).flatMap((m, i) => (m ? [i] : []));
    expect(find("L1")).toEqual([6, 7]);
    expect(find("layer 1")).toEqual([6, 7]);
    expect(find("h1")).toEqual([1, 4]);
    expect(find("h1.0")).toEqual([6]);
    expect(find("head 0.1")).toEqual([1, 4]);
    expect(find("@0")).toEqual([0, 1, 2]);
    expect(find("mlp")).toEqual([2, 5, 7]);
    expect(find("mary")).toEqual([3, 4, 5, 6, 7]);
    expect(find("mary mlp L0")).toEqual([5]);
    expect(find('"when"')).toEqual([0, 1, 2]);
    expect(find("nobody")).toEqual([]);
    expect(searchNodes("", HEADS, labels).count).toBe(0);
    expect(searchNodes("h1.0 Mary", HEADS, labels).meaning).toBe('layer 1 head 0 · token ⊇ "Mary"');
  });
});

describe("colour scales", () => {
  const scores = [8, -0.8, 0.08, 0.008, 0.0008, 5];
  const order = [0, 5, 1, 2, 3, 4];
  it("log: three decades below the largest circuit score, signed", () => {
    const s = colourScale("log", scores, order);
    expect(s.max).toBe(8);
    expect(s.intensity(8)).toBeCloseTo(1);
    expect(s.intensity(-0.8)).toBeCloseTo(-2 / 3);
    expect(s.intensity(0.08)).toBeCloseTo(1 / 3);
    expect(s.intensity(0.008)).toBe(0); // the floor: max / 10^3
    expect(s.intensity(80)).toBe(1);
    expect(Number.isNaN(s.intensity(Number.NaN))).toBe(true);
    expect(LOG_DECADES).toBe(3);
  });

  it("linear saturates at the largest; rank spreads the top of the order", () => {
    expect(colourScale("linear", scores, order).intensity(-4)).toBeCloseTo(-0.5);
    const r = colourScale("rank", scores, order);
    expect(r.intensity(8, 0)).toBeCloseTo(1);
    // 1 - ln(1 + 2) / ln(1 + 6)
    expect(r.intensity(-0.8, 2)).toBeCloseTo(-(1 - Math.log(3) / Math.log(7)));
    expect(Array.from(ranks(6, order))).toEqual([0, 2, 3, 4, 5, 1]);
  });

  it("does not saturate at one node: an outlier leaves the rest distinguishable", () => {
    const s = colourScale("log", [100, 1, 0.5, 0.25], [0, 1, 2, 3]);
    const rest = [1, 0.5, 0.25].map((v) => s.intensity(v));
    expect(rest[0]).toBeGreaterThan(rest[1]);
    expect(rest[1]).toBeGreaterThan(rest[2]);
    expect(rest[2]).toBeGreaterThan(0);
  });
});

describe("edge endpoints", () => {
  const nodes = nodesOf([
    ["attn", 0, -1, 0],
    ["attn", 0, -1, 1],
    ["mlp", 0, -1, 1],
  ]);
  const index = idIndex(nodes);
  it("a node at a position is itself; a component summed over positions sits at the last position", () => {
    expect(resolveEnd("attn.0@0", index, 1)).toEqual({ node: 0 });
    expect(resolveEnd("attn.0", index, 1)).toEqual({ node: 1 });
    expect(resolveEnd("embed.0", index, 1)).toEqual({ component: "embed", layer: 0, position: 1 });
    expect(resolveEnd("embed.0@0", index, 1)).toEqual({ component: "embed", layer: 0, position: 0 });
    expect(resolveEnd("logits.1", index, 1)).toEqual({ component: "logits", layer: 1, position: 1 });
    expect(resolveEnd("nonsense", index, 1)).toBeNull();
  });

  it("knows each node's group", () => {
    const g = groupOf(3, { a: ["attn.0@1", "mlp.0@1"], b: ["nope"] }, index);
    expect(g.names).toEqual(["a", "b"]);
    expect(Array.from(g.of)).toEqual([-1, 0, 0]);
  });
});
