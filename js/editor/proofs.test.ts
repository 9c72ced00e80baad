import { describe, expect, it } from "vitest";
import { conceptColours, type FlatProof, leafPositions, PALETTE, proofPositions, type Proofs, proofStep } from "./proofs";

const EVIL = "<img src=x onerror=alert(1)>";
const cat: FlatProof = {
  kind: "given",
  evidence: [
    { position: 1, token: "cat", score: 0.5 },
    { position: 4, token: EVIL, score: 0.7 },
  ],
};
const pet: FlatProof = { kind: "derived", rule: "cat or dog -> pet", line: 1, premises: [{ concept: "cat", holds: true }] };
const calm: FlatProof = {
  kind: "derived",
  rule: "pet and not wild -> calm",
  line: 2,
  premises: [
    { concept: "pet", holds: true },
    { concept: "wild", holds: false },
  ],
};
const proofs: Proofs = { cat, pet, calm };

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
    expect(leafPositions({ kind: "given", evidence: { mean_score: 0.3 } })).toEqual([]);
    expect(leafPositions(pet)).toEqual([]);
  });

  it("collects the positions a proof rests on through the flat entries", () => {
    expect(proofPositions(pet, proofs)).toEqual([1, 4]);
    expect(proofPositions(calm, proofs)).toEqual([1, 4]);
    expect(proofPositions(calm, {})).toEqual([]); // without the entries: nothing to follow
  });

  it("follows a chain thousands of steps deep without recursion", () => {
    const chain: Proofs = { c0: { kind: "given", evidence: [{ position: 7 }] } };
    for (let i = 1; i <= 5000; i++) chain[`c${i}`] = { kind: "derived", rule: `c${i - 1} -> c${i}`, line: i, premises: [{ concept: `c${i - 1}`, holds: true }] };
    expect(proofPositions(chain.c5000, chain)).toEqual([7]);
  });
});

describe("proofStep", () => {
  const options = (clicks: [string, number[]][] = []) => ({
    colour: () => "#123456",
    tokens: ["the", "cat", "sat", "on", EVIL],
    proofs,
    onLeaf: (c: string, p: number[]) => clicks.push([c, p]),
  });

  it("draws one step: the rule, its premises as text; a leaf click reports its positions", () => {
    const clicks: [string, number[]][] = [];
    const step = proofStep(pet, options(clicks));
    expect(step.textContent).toContain("by line 1: cat or dog -> pet");
    expect(step.textContent).toContain(JSON.stringify(EVIL));
    expect(step.querySelector("img")).toBeNull();
    step.querySelector<HTMLButtonElement>(".il-proof-leaf")!.click();
    expect(clicks).toEqual([["cat", [1, 4]]]);
  });

  it("keeps a derived premise closed until it is opened, then draws its step once", () => {
    const step = proofStep(calm, options());
    expect(step.querySelector(".il-proof-absent")!.textContent).toContain("not wild");
    const inner = step.querySelector<HTMLDetailsElement>(".il-proof-step[data-concept=pet]")!;
    expect(inner.textContent).toContain("derived by line 1");
    expect(inner.textContent).not.toContain("cat or dog -> pet");
    inner.open = true;
    inner.dispatchEvent(new Event("toggle"));
    inner.dispatchEvent(new Event("toggle"));
    expect(inner.querySelectorAll(".il-rule")).toHaveLength(1);
    expect(inner.textContent).toContain("line 1: cat or dog -> pet");
  });
});
