// Inferred facts and their proofs: per-concept colours, the token positions a proof rests on, and
// the expandable proof tree (every name and token is text, never markup).

import { h } from "../shared/dom";
import type { ProofNode } from "./lint";

// Tableau 10: distinct on light and dark backgrounds.
export const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** The colour of the i-th concept: the palette, then hues a golden angle apart (large dictionaries). */
export function colourAt(i: number): string {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${Math.round((i * 137.508) % 360)}, 55%, 52%)`;
}

/** Each dictionary concept's colour, by its place in the dictionary (stable across edits). */
export function conceptColours(names: string[]): Map<string, string> {
  return new Map(names.map((name, i) => [name, colourAt(i)]));
}

/** The token positions in a given proof leaf's evidence (local detections; a global one has none). */
export function leafPositions(node: ProofNode): number[] {
  if (node.kind !== "given" || !Array.isArray(node.evidence)) return [];
  return node.evidence
    .map((e) => (e && typeof e === "object" ? (e as { position?: unknown }).position : undefined))
    .filter((p): p is number => Number.isInteger(p));
}

/** Every token position a proof rests on (its given leaves, including shared sub-proofs spelled out elsewhere). */
export function proofPositions(node: ProofNode, proofs: Record<string, ProofNode> = {}): number[] {
  const found = new Set<number>();
  const seen = new Set<string>();
  const stack = [node];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.shared && proofs[n.concept] && !seen.has(n.concept)) {
      seen.add(n.concept);
      stack.push(proofs[n.concept]);
    }
    leafPositions(n).forEach((p) => found.add(p));
    stack.push(...(n.premises ?? []));
  }
  return [...found].sort((a, b) => a - b);
}

export interface ProofTreeOptions {
  colour: (concept: string) => string | null;
  tokens: string[];
  /** A leaf was clicked: highlight these positions (of `concept`). */
  onLeaf: (concept: string, positions: number[], el: HTMLElement) => void;
}

const chip = (concept: string, colour: string | null) =>
  h("span", { class: "il-concept" }, colour ? h("i", { class: "il-swatch", style: { background: colour } }) : null, concept);

function evidenceText(node: ProofNode, tokens: string[]): string {
  const positions = leafPositions(node);
  if (positions.length) {
    return `detected at ${positions.map((p) => `${JSON.stringify(tokens[p] ?? "?")} (${p})`).join(", ")}`;
  }
  const mean = (node.evidence as { mean_score?: number } | null)?.mean_score;
  return typeof mean === "number" ? `detected over the text (mean score ${mean.toPrecision(3)})` : "given";
}

/** One proof as a nested list: rules with their premises, down to the detected tokens. */
export function proofTree(node: ProofNode, options: ProofTreeOptions): HTMLElement {
  const item = (n: ProofNode): HTMLElement => {
    if (n.kind === "given") {
      const positions = leafPositions(n);
      const leaf = h(
        "button",
        { class: "il-proof-leaf", attrs: { type: "button", "data-concept": n.concept, title: "show its tokens" } },
        chip(n.concept, options.colour(n.concept)),
        h("span", { class: "il-muted" }, ` ${evidenceText(n, options.tokens)}`),
      );
      leaf.addEventListener("click", () => options.onLeaf(n.concept, positions, leaf));
      return h("li", {}, leaf);
    }
    if (n.kind === "absent") {
      return h("li", { class: "il-proof-absent" }, "not ", chip(n.concept, options.colour(n.concept)), h("span", { class: "il-muted" }, " (neither detected nor derived)"));
    }
    const verb = n.kind === "suppressed" ? "suppressed by" : "by";
    const where = n.line ? `line ${n.line}: ` : "";
    if (n.shared) return h("li", {}, chip(n.concept, options.colour(n.concept)), h("span", { class: "il-muted" }, " (see above)"));
    return h(
      "li",
      {},
      chip(n.concept, options.colour(n.concept)),
      h("span", { class: "il-muted" }, ` ${verb} `),
      h("code", { class: "il-rule" }, `${where}${n.rule ?? ""}`),
      h("ul", {}, ...(n.premises ?? []).map(item)),
    );
  };
  return h("ul", { class: "il-proof" }, item(node));
}
