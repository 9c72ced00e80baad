import { describe as suite, expect, it } from "vitest";
import type { Nodes, Verified } from "./data";
import { type Item, type Layout, NODE } from "./layout";
import { describe } from "./tooltips";

// one node, attn.2@1, with a verified entry
const nodes: Nodes = {
  components: ["attn"], component: Uint8Array.of(0), layer: Int32Array.of(2), head: Int32Array.of(-1),
  position: Int32Array.of(1), length: 1,
};
const item: Item = { kind: NODE, x: 0, y: 0, w: 1, h: 1, members: [0], layer: 2, column: 1, label: "" };

function text(verified: Record<string, Verified>): string {
  const el = document.createElement("div");
  el.append(...describe(item, false, {
    nodes, labels: ["a", " b"], layout: {} as Layout,
    vocab: { methods: [["ig", "IG"]], ablations: [], interventions: [], colours: [], components: ["attn"], circuit_components: ["attn"], metric: { name: "", label: "" } },
    method: "ig", scoresOf: () => Float32Array.of(0.5), rank: Int32Array.of(0), total: 1, kept: Uint8Array.of(1),
    ablated: new Set(), pinned: new Set(), verified,
  }).filter((c): c is HTMLElement => c instanceof HTMLElement));
  return el.textContent ?? "";
}

suite("a verified node's tooltip", () => {
  it("shows the exact score, and its split at the attention patterns when the kernel sent one", () => {
    const plain = text({ "attn.2@1": { exact: 0.75, estimate: 0.5, method: "ig" } });
    expect(plain).toContain("exact (patching)0.7500");
    expect(plain).not.toContain("patterns");
    const split = text({ "attn.2@1": { exact: 0.75, estimate: 0.5, method: "ig", frozen: 0.25, through_patterns: 0.5 } });
    expect(split).toContain("with patterns frozen0.2500");
    expect(split).toContain("through patterns (q/k)0.5000");
  });
});
