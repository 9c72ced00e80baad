import { afterEach, describe, expect, it } from "vitest";
import { MockModel, tick } from "../shared/testing";
import widget from "./index";
import type { InferenceState } from "./lint";
import { PALETTE } from "./proofs";

// jsdom lays nothing out; CodeMirror measures text ranges after each update.
Range.prototype.getClientRects ??= () => ({ length: 0, item: () => null, [Symbol.iterator]: [][Symbol.iterator] }) as unknown as DOMRectList;
Range.prototype.getBoundingClientRect ??= () => new DOMRect();

const EVIL = "<img src=x onerror=alert(1)>";

const inference = (rules: string, extra: Partial<InferenceState> = {}): InferenceState => ({
  rules,
  stale: false,
  diagnostics: [],
  given: ["cat"],
  derived: ["pet"],
  suppressed: [],
  conflicts: [],
  proofs: {
    cat: { concept: "cat", kind: "given", evidence: [{ position: 1, token: "cat", score: 1 }, { position: 3, token: EVIL, score: 2 }] },
    pet: {
      concept: "pet",
      kind: "derived",
      rule: "cat -> pet",
      line: 1,
      premises: [{ concept: "cat", kind: "given", evidence: [{ position: 1, token: "cat", score: 1 }, { position: 3, token: EVIL, score: 2 }] }],
    },
  },
  suppression_proofs: {},
  elapsed_ms: 2.5,
  ...extra,
});

const state = () => ({
  rules: "cat -> pet",
  text: "the cat sat <img>",
  strength: 0.5,
  max_new_tokens: 8,
  diagnostics: [],
  generation: null,
  error: null,
  progress: null,
  _concepts: [
    { name: "cat", method: "diffmean", detected: true },
    { name: "dog", method: "sae", detected: true },
  ],
  _detection: { text: "the cat sat <img>", tokens: ["the", "cat", "sat", EVIL], detected: { cat: [1, 3], dog: [3] } },
  _inference: inference("cat -> pet"),
});

const mounted: (() => void)[] = [];
afterEach(() => mounted.splice(0).forEach((f) => f()));

function mount(overrides: Record<string, unknown> = {}) {
  const model = new MockModel({ ...state(), ...overrides });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  mounted.push(() => {
    cleanup();
    el.remove();
  });
  return { model, el };
}

describe("RuleEditor view", () => {
  it("shows the rules in the editor and keeps JupyterLab's shortcuts out of it", () => {
    const { el } = mount();
    const host = el.querySelector<HTMLElement>(".il-rule-editor")!;
    expect(host.querySelector(".cm-content")!.textContent).toBe("cat -> pet");
    expect(host.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    let outside = 0;
    el.addEventListener("keydown", () => outside++);
    host.querySelector(".cm-content")!.dispatchEvent(new KeyboardEvent("keydown", { key: "b", bubbles: true }));
    el.querySelector(".il-text-input")!.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
    expect(outside).toBe(0);
  });

  it("marks each token with the colours of the concepts detected on it, all text escaped", () => {
    const { el } = mount();
    const tokens = el.querySelectorAll<HTMLElement>(".il-token");
    expect(tokens).toHaveLength(4);
    const marks = (i: number) => [...tokens[i].querySelectorAll<HTMLElement>(".il-marks i")].map((m) => m.style.background);
    const rgb = (hex: string) => `rgb(${[1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16)).join(", ")})`;
    expect(marks(0)).toEqual([]);
    expect(marks(1)).toEqual([rgb(PALETTE[0])]);
    expect(marks(3)).toEqual([rgb(PALETTE[0]), rgb(PALETTE[1])]);
    expect(el.querySelector("img")).toBeNull();
    expect(tokens[3].textContent).toContain("<img");
  });

  it("lists the facts; a proof's leaf lights up its tokens", () => {
    const { el } = mount();
    const facts = [...el.querySelectorAll<HTMLElement>(".il-fact")].map((f) => f.dataset.concept);
    expect(facts).toEqual(["cat", "pet"]);
    const pet = el.querySelector<HTMLDetailsElement>(".il-fact[data-concept=pet]")!;
    expect(pet.textContent).toContain("line 1: cat -> pet");
    pet.querySelector<HTMLButtonElement>(".il-proof-leaf")!.click();
    const focused = [...el.querySelectorAll(".il-token.il-focus")].map((t) => t.getAttribute("data-i"));
    expect(focused).toEqual(["1", "3"]);
    expect(el.querySelector(".il-focus-note")!.textContent).toBe("cat: tokens 1, 3");
  });

  it("redraws when the kernel answers; stale facts are marked", () => {
    const { el, model } = mount();
    model.set("_inference", inference("cat -> pet\nx and", { stale: true, diagnostics: [{ line: 2, column: 6, end_line: 2, end_column: 7, severity: "error", message: "missing '->'" }] }));
    expect(el.querySelector(".il-lint-status")!.textContent).toContain("1 error");
    expect(el.querySelector(".il-stale-badge")).not.toBeNull();
  });

  it("takes rules set in the kernel into the editor", async () => {
    const { el, model } = mount();
    model.set("rules", "dog -> pet");
    await tick();
    expect(el.querySelector(".cm-content")!.textContent).toBe("dog -> pet");
  });

  it("sends typed text after a pause, and generates with the slider's strength", async () => {
    const { el, model } = mount();
    const input = el.querySelector<HTMLTextAreaElement>(".il-text-input")!;
    input.value = "a dog";
    input.dispatchEvent(new Event("change"));
    expect(model.get("text")).toBe("a dog");
    const slider = el.querySelector<HTMLInputElement>(".il-strength")!;
    slider.value = "-1.5";
    slider.dispatchEvent(new Event("change"));
    expect(model.get("strength")).toBe(-1.5);
    el.querySelector<HTMLButtonElement>(".il-generate")!.click();
    const sent = model.sent[model.sent.length - 1].content;
    expect(sent).toMatchObject({ kind: "anywidget-command", name: "_generate", msg: { strength: -1.5, max_new_tokens: 8 } });
    model.reply({ error: { type: "ValueError", message: "the rules have 1 error(s)" } });
    await tick();
    expect(el.querySelector(".il-error")!.textContent).toContain("the rules have 1 error(s)");
    expect(el.querySelector<HTMLButtonElement>(".il-generate")!.disabled).toBe(false);
  });

  it("shows base and steered continuations side by side, escaped", () => {
    const { el, model } = mount();
    model.set("generation", { prompt: "p", strength: 1, base: "a b", steered: EVIL, derived: [], suppressed: [], steering: { cat: 1 } });
    expect(el.querySelector(".il-gen-base .il-gen-text")!.textContent).toBe("a b");
    expect(el.querySelector(".il-gen-steered .il-gen-text")!.textContent).toBe(EVIL);
    expect(el.querySelector(".il-gen-steered .il-gen-text")!.classList.contains("il-changed")).toBe(true);
    expect(el.querySelector(".il-generation img")).toBeNull();
    expect(el.querySelector(".il-gen-steered")!.textContent).toContain("steering: cat +1");
  });
});
