import { describe, expect, it } from "vitest";
import type { ProofNode } from "./lint";
import { conceptColours, leafPositions, PALETTE, proofPositions, proofTree } from "./proofs";

const EVIL = "<img src=x onerror=alert(1)>";
const cat: ProofNode = {
  concept: "cat",
  kind: "given",
  evidence: [
    { position: 1, token: "cat", score: 0.5 },
    { position: 4, token: EVIL, score: 0.7 },
  ],
};
const pet: ProofNode = { concept: "pet", kind: "derived", rule: "cat or dog -> pet", line: 1, premises: [cat] };
const calm: ProofNode = {
  concept: "calm",
  kind: "derived",
  rule: "pet and not wild -> calm",
  line: 2,
  premises: [{ concept: "pet", kind: "derived", shared: true }, { concept: "wild", kind: "absent" }],
};

describe("colours", () => {
  it("gives each concept the colour of its place: the palette, then distinct hues", () => {
    const names = Array.from({ length: 46 }, (_, i) => `c${i}`);
    const colours = conceptColours(names);
    expect(colours.get("c0")).toBe(PALETTE[0]);
    expect(colours.get("c3")).toBe(PALETTE[3]);
    expect(colours.get("c11")).toBe("hsl(73, 55%, 52%)"); // 11 * 137.508 = 1512.6 = 4 * 360 + 72.6
    expect(new Set(names.map((n) => colours.get(n))).size).toBe(46);
  });
});

describe("positions", () => {
  it("reads a leaf's token positions, and none from global evidence", () => {
    expect(leafPositions(cat)).toEqual([1, 4]);
    expect(leafPositions({ concept: "x", kind: "given", evidence: { mean_score: 0.3 } })).toEqual([]);
    expect(leafPositions(pet)).toEqual([]);
  });

  it("collects the positions a proof rests on, following shared sub-proofs", () => {
    expect(proofPositions(pet)).toEqual([1, 4]);
    expect(proofPositions(calm, { pet })).toEqual([1, 4]);
    expect(proofPositions(calm)).toEqual([]); // without the shared proof: nothing to follow
  });
});

describe("proofTree", () => {
  it("draws rules, absent premises and leaves as text; a leaf click reports its positions", () => {
    const clicks: [string, number[]][] = [];
    const tree = proofTree(pet, { colour: () => "#123456", tokens: ["the", "cat", "sat", "on", EVIL], onLeaf: (c, p) => clicks.push([c, p]) });
    expect(tree.textContent).toContain("by line 1: cat or dog -> pet");
    expect(tree.textContent).toContain(JSON.stringify(EVIL));
    expect(tree.querySelector("img")).toBeNull();
    tree.querySelector<HTMLButtonElement>(".il-proof-leaf")!.click();
    expect(clicks).toEqual([["cat", [1, 4]]]);
    const other = proofTree(calm, { colour: () => null, tokens: [], onLeaf: () => {} });
    expect(other.querySelector(".il-proof-absent")!.textContent).toContain("not wild");
    expect(other.textContent).toContain("(see above)");
  });
});
