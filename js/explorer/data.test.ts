import { describe, expect, it } from "vitest";
import { encode } from "../shared/codecs";
import { decodeEdges, decodeOrder, formatScore, num, parseId, pearson } from "./data";

const wire = (data: Int32Array | Float32Array) => {
  const { meta, buffer } = encode(data);
  return { ...meta, data: new DataView(buffer) };
};

describe("the wire contract", () => {
  it("reads non-finite numbers sent as strings", () => {
    expect(num("NaN")).toBeNaN();
    expect(num("Infinity")).toBe(Infinity);
    expect(num("-Infinity")).toBe(-Infinity);
    expect(num(1.5)).toBe(1.5);
    expect(num(null)).toBeNaN();
    expect(formatScore("NaN")).toBe("NaN");
    expect(formatScore("-Infinity")).toBe("−∞");
    expect(formatScore(null)).toBe("–");
    expect(formatScore(0.12345)).toBe("0.1235");
    expect(formatScore(12345)).toBe("1.23e+4");
  });

  it("parses node ids", () => {
    expect(parseId("head.12.3@7")).toEqual({ component: "head", layer: 12, head: 3, position: 7 });
    expect(parseId("attn.3")).toEqual({ component: "attn", layer: 3, head: -1, position: -1 });
    expect(parseId("<b>")).toBeNull();
  });

  it("decodes orders and edges and refuses arrays that disagree", () => {
    const order = decodeOrder({ order: wire(Int32Array.from([2, 0])), cumulative: wire(Float32Array.from([0.75, 1])) })!;
    expect(Array.from(order.order)).toEqual([2, 0]);
    expect(() => decodeOrder({ order: wire(Int32Array.from([2, 0])), cumulative: wire(Float32Array.from([1])) })).toThrow(/2 nodes has 1/);
    const trait = { method: "atp", ends: ["a", "b"], source: wire(Int32Array.from([0])), target: wire(Int32Array.from([1])), score: wire(Float32Array.from([0.5])), cumulative: wire(Float32Array.from([1])) };
    expect(decodeEdges(trait)!.length).toBe(1);
    expect(() => decodeEdges({ ...trait, target: wire(Int32Array.from([1, 0])) })).toThrow(/disagree/);
    expect(decodeEdges(null)).toBeNull();
  });

  it("computes Pearson's r, skipping non-finite pairs", () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1);
    expect(pearson([1, 2, 3, Number.NaN], [3, 2, 1, 5])).toBeCloseTo(-1);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
  });
});
