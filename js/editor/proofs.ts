// Inferred facts and their proofs: per-concept colours, the token positions a proof rests on, and
// the proof drawn one step at a time (every name and token is text, never markup).
//
// The kernel sends proofs flat (`Inference.to_dict`): one entry per concept, whose premises name
// other entries. A step is drawn only when the reader opens it, so a derivation thousands of steps
// deep costs nothing until it is explored, and nothing here recurses.

import { h } from "../shared/dom";

// Tableau 10: distinct on light and dark backgrounds.
export const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** A premise of a rule that fired: another proof's concept, or (`holds` false) an absent one. */
export interface Premise {
  concept: string;
  holds: boolean;
}

/** Why one concept holds (or is suppressed): given with its evidence, or a rule and its premises. */
export interface FlatProof {
  kind: "given" | "derived" | "suppressed";
  evidence?: unknown;
  rule?: string;
  line?: number | null;
  premises?: Premise[];
}

export type Proofs = Record<string, FlatProof>;

/** The colour of the i-th concept: the palette, then hues a golden angle apart (large dictionaries). */
export function colourAt(i: number): string {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${Math.round((i * 137.508) % 360)}, 55%, 52%)`;
}

/** Each dictionary concept's colour, by its place in the dictionary (stable across edits). */
export function conceptColours(names: string[]): Map<string, string> {
  return new Map(names.map((name, i) => [name, colourAt(i)]));
}

/** The token positions in a given proof's evidence (local detections; a global one has none). */
export function leafPositions(proof: FlatProof): number[] {
  if (proof.kind !== "given" || !Array.isArray(proof.evidence)) return [];
  return proof.evidence
    .map((e) => (e && typeof e === "object" ? (e as { position?: unknown }).position : undefined))
    .filter((p): p is number => Number.isInteger(p));
}

/** Every token position `root` rests on: the given facts its premises lead to, through `proofs`. */
export function proofPositions(root: FlatProof, proofs: Proofs): number[] {
  const found = new Set<number>();
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length) {
    const proof = stack.pop()!;
    leafPositions(proof).forEach((p) => found.add(p));
    for (const premise of proof.premises ?? []) {
      if (premise.holds && !seen.has(premise.concept) && proofs[premise.concept]) {
        seen.add(premise.concept);
        stack.push(proofs[premise.concept]);
      }
    }
  }
  return [...found].sort((a, b) => a - b);
}

export interface ProofOptions {
  colour: (concept: string) => string | null;
  tokens: string[];
  /** The entries premises refer to (the facts' proofs). */
  proofs: Proofs;
  /** A leaf was clicked: highlight these positions (of `concept`). */
  onLeaf: (concept: string, positions: number[], el: HTMLElement) => void;
}

export const chip = (concept: string, colour: string | null) =>
  h("span", { class: "il-concept" }, colour ? h("i", { class: "il-swatch", style: { background: colour } }) : null, concept);

function evidenceText(proof: FlatProof, tokens: string[]): string {
  const positions = leafPositions(proof);
  if (positions.length) {
    return `detected at ${positions.map((p) => `${JSON.stringify(tokens[p] ?? "?")} (${p})`).join(", ")}`;
  }
  const mean = (proof.evidence as { mean_score?: number } | null)?.mean_score;
  return typeof mean === "number" ? `detected over the text (mean score ${mean.toPrecision(3)})` : "given";
}

/** What a proof says in one line: "detected ..." or "derived by line 3". */
export function summaryText(proof: FlatProof): string {
  if (proof.kind === "given") return "detected";
  return `${proof.kind === "suppressed" ? "suppressed" : "derived"} by ${proof.line ? `line ${proof.line}` : "a rule"}`;
}

function leaf(concept: string, proof: FlatProof, options: ProofOptions): HTMLElement {
  const positions = leafPositions(proof);
  const button = h(
    "button",
    { class: "il-proof-leaf", attrs: { type: "button", "data-concept": concept, title: "show its tokens" } },
    chip(concept, options.colour(concept)),
    h("span", { class: "il-muted" }, ` ${evidenceText(proof, options.tokens)}`),
  );
  button.addEventListener("click", () => options.onLeaf(concept, positions, button));
  return button;
}

/** A premise that holds by a rule: a closed step that draws its own step when opened. */
function premiseStep(concept: string, proof: FlatProof, options: ProofOptions): HTMLElement {
  const step = h(
    "details",
    { class: "il-proof-step", attrs: { "data-concept": concept } },
    h("summary", {}, chip(concept, options.colour(concept)), h("span", { class: "il-muted" }, ` ${summaryText(proof)}`)),
  );
  step.addEventListener("toggle", () => {
    if (step.open && step.children.length === 1) step.append(proofStep(proof, options));
  });
  return step;
}

/** One step of a proof: its evidence (given), or its rule and premises, each premise closed until opened. */
export function proofStep(proof: FlatProof, options: ProofOptions, concept = ""): HTMLElement {
  if (proof.kind === "given") return h("div", { class: "il-proof" }, leaf(concept, proof, options));
  const verb = proof.kind === "suppressed" ? "suppressed by" : "by";
  const where = proof.line ? `line ${proof.line}: ` : "";
  const premises = (proof.premises ?? []).map((premise) => {
    const entry = options.proofs[premise.concept];
    if (!premise.holds || !entry) {
      return h(
        "li",
        { class: "il-proof-absent" },
        "not ",
        chip(premise.concept, options.colour(premise.concept)),
        h("span", { class: "il-muted" }, " (neither detected nor derived)"),
      );
    }
    return h("li", {}, entry.kind === "given" ? leaf(premise.concept, entry, options) : premiseStep(premise.concept, entry, options));
  });
  return h("div", { class: "il-proof" }, h("span", { class: "il-muted" }, `${verb} `), h("code", { class: "il-rule" }, `${where}${proof.rule ?? ""}`), h("ul", {}, ...premises));
}
