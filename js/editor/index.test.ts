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
  facts: ["cat", "pet"],
  suppressed: [],
  conflicts: [],
  proofs: {
    cat: { kind: "given", evidence: [{ position: 1, token: "cat", score: 1 }, { position: 3, token: EVIL, score: 2 }] },
    pet: { kind: "derived", rule: "cat -> pet", line: 1, premises: [{ concept: "cat", holds: true }] },
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

function open(details: HTMLDetailsElement) {
  details.open = true;
  details.dispatchEvent(new Event("toggle"));
}
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
    expect(pet.textContent).not.toContain("cat -> pet"); // drawn when opened
    open(pet);
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

  it("draws a 1,000-step derivation one step at a time, and keeps an opened fact open across redraws", () => {
    const n = 1000;
    const proofs: InferenceState["proofs"] = { c0: { kind: "given", evidence: [{ position: 1, token: "cat", score: 1 }] } };
    for (let i = 1; i <= n; i++) proofs[`c${i}`] = { kind: "derived", rule: `c${i - 1} -> c${i}`, line: i, premises: [{ concept: `c${i - 1}`, holds: true }] };
    const names = Object.keys(proofs);
    const { el, model } = mount({ _inference: inference("chain", { given: ["c0"], derived: names.slice(1), facts: names, proofs }) });
    expect(el.querySelectorAll(".il-fact")).toHaveLength(n + 1);
    expect(el.querySelectorAll(".il-proof")).toHaveLength(0);
    const last = el.querySelector<HTMLDetailsElement>(`.il-fact[data-concept=c${n}]`)!;
    open(last);
    expect(last.querySelectorAll(".il-rule")).toHaveLength(1);
    expect(el.querySelectorAll(".il-token.il-focus")).toHaveLength(1); // the chain rests on token 1
    let step = last.querySelector<HTMLDetailsElement>(".il-proof-step")!;
    for (let k = 0; k < 3; k++) {
      open(step);
      step = step.querySelector<HTMLDetailsElement>(".il-proof-step")!;
    }
    expect(last.querySelectorAll(".il-rule")).toHaveLength(4);
    expect(el.querySelectorAll("*").length).toBeLessThan(20 * n);
    model.set("_inference", inference("chain 2", { given: ["c0"], derived: names.slice(1), facts: names, proofs }));
    expect(el.querySelector<HTMLDetailsElement>(`.il-fact[data-concept=c${n}]`)!.open).toBe(true);
  });

  it("hands Ctrl+S on to JupyterLab as a save keystroke, typed nowhere", () => {
    const { el } = mount();
    const seen: KeyboardEvent[] = [];
    el.addEventListener("keydown", (event) => seen.push(event));
    const press = new KeyboardEvent("keydown", { key: "s", ctrlKey: true, bubbles: true, cancelable: true });
    el.querySelector(".cm-content")!.dispatchEvent(press);
    expect(press.defaultPrevented).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toBe(press);
    expect(seen[0].target).toBe(el);
    expect([seen[0].key, seen[0].ctrlKey, seen[0].keyCode]).toEqual(["s", true, 83]);
    el.querySelector(".il-text-input")!.dispatchEvent(new KeyboardEvent("keydown", { key: "S", metaKey: true, bubbles: true }));
    expect(seen).toHaveLength(2);
    expect(el.querySelector(".cm-content")!.textContent).toBe("cat -> pet");
  });

  it("hides the token tooltip when the tokens change under it", () => {
    const { el, model } = mount();
    const token = el.querySelector<HTMLElement>(".il-token")!;
    token.dispatchEvent(new Event("pointerover", { bubbles: true }));
    const tip = document.querySelector<HTMLElement>(".il-tooltip")!;
    expect(tip.hidden).toBe(false);
    model.set("_detection", { text: "a dog", tokens: ["a", "dog"], detected: {} });
    expect(tip.hidden).toBe(true);
  });

  it("widens the strength slider to twice a large strength set in the kernel", () => {
    const { el, model } = mount({ strength: 10 });
    const slider = el.querySelector<HTMLInputElement>(".il-strength")!;
    expect([slider.min, slider.max, slider.value]).toEqual(["-20", "20", "10"]);
    model.set("strength", 0.5);
    expect([slider.min, slider.max, slider.value]).toEqual(["-4", "4", "0.5"]);
  });
});
