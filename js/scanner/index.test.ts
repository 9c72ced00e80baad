import { afterEach, describe, expect, it } from "vitest";
import { encode } from "../shared/codecs";
import { MockModel, tick } from "../shared/testing";
import { cellBox, layoutHeatmap } from "./heatmap";
import widget from "./index";

const L = 3;
const E = 4;
const EVIL = "<img src=x onerror=alert(1)>";

const map = (values: number[]) => {
  const { meta, buffer } = encode(new Float32Array(values), [L, E]);
  return { ...meta, data: new DataView(buffer) };
};

// The choices as the kernel sends them (widgets/scanner.py CHOICES + limits).
const CHOICES = {
  mode: [
    { value: "behaviour", label: "behaviour", signed: false },
    { value: "control", label: "control", signed: false },
    { value: "score", label: "behaviour − control", signed: true },
  ],
  score: [
    { value: "contrast", label: "mean routing weight (contrast)", map: "weight", name: "mean weight", unit: "routing weight per counted token, mean over prompts" },
    { value: "risk_diff", label: "selection rate (risk difference)", map: "rate", name: "selection rate", unit: "share of counted tokens that select the expert" },
  ],
  tokens: [
    { value: "prompt", label: "prompt tokens" },
    { value: "response", label: "response tokens" },
    { value: "all", label: "prompt + response" },
  ],
  limits: { run_n: { min: 1, max: 2 }, max_new_tokens: { min: 1, max: 4096 } },
};

// layer 0 is dense (NaN); layers 1-2 have values
const nanRow = [NaN, NaN, NaN, NaN];
const state = () => ({
  model_name: "demo",
  n_layers: L,
  n_experts: E,
  top_k: 2,
  moe_layers: [1, 2],
  tokens: "prompt",
  score: "contrast",
  mode: "score",
  off: [],
  on: [],
  runs: [],
  run_n: 4,
  max_new_tokens: 12,
  classifier: "refusal_classifier",
  error: null,
  progress: null,
  _maps: {
    behaviour_rate: map([...nanRow, 0.5, 0.5, 0, 1, 0.25, 0.25, 0.75, 0.75]),
    control_rate: map([...nanRow, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    behaviour_weight: map([...nanRow, 0.4, 0.1, 0, 0.5, 0.25, 0.25, 0.2, 0.3]),
    control_weight: map([...nanRow, 0.1, 0.4, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]),
    behaviour: { n_prompts: 2, n_tokens: 20 },
    control: { n_prompts: 3, n_tokens: 30 },
  },
  _prompts: { behaviour: ["Q: one? A:", EVIL], control: ["Q: three? A:"], n_behaviour: 2, n_control: 1 },
  _routing: null,
  _choices: CHOICES,
});

function mount(overrides: Record<string, unknown> = {}) {
  const model = new MockModel({ ...state(), ...overrides });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  const overlay = el.querySelector<HTMLCanvasElement>(".il-heatmap-overlay")!;
  return { model, el, cleanup, overlay };
}

/** Where cell (layer, expert) is on the overlay (jsdom puts the canvas at 0, 0). */
function at(overlay: HTMLCanvasElement, layer: number, expert: number) {
  const left = Number(overlay.dataset.left);
  const top = Number(overlay.dataset.top);
  const w = Number(overlay.dataset.cellWidth);
  const h = Number(overlay.dataset.cellHeight);
  return { clientX: left + expert * w + w / 2, clientY: top + layer * h + h / 2 };
}

const lastCommand = (model: MockModel) => model.sent[model.sent.length - 1].content;

afterEach(() => {
  document.body.replaceChildren();
});

describe("ExpertScanner front end", () => {
  it("shows the model, the sets, the controls and the legend of the difference map", () => {
    const { el } = mount();
    expect(el.querySelector(".il-info")!.textContent).toBe(
      "demo · 2 MoE of 3 layers × 4 experts, top-2 · behaviour: 2 prompts, 20 counted tokens · control: 3 prompts, 30 counted tokens",
    );
    const selects = el.querySelectorAll<HTMLSelectElement>(".il-toolbar select");
    expect(Array.from(selects, (s) => s.value)).toEqual(["score", "contrast", "prompt"]);
    // contrast = behaviour - control weight: the largest magnitude is 0.3 (0.4 - 0.1)
    expect(el.querySelector(".il-legend")!.textContent).toBe(
      "-0.300+0.300routing weight per counted token, mean over prompts: behaviour − control",
    );
    // the choices are the kernel's: labels and order as sent
    const measures = Array.from(selects[1].options, (o) => [o.value, o.textContent]);
    expect(measures).toEqual(CHOICES.score.map((c) => [c.value, c.label]));
  });

  it("offers whatever choices the kernel sends, e.g. relabelled", () => {
    const relabelled = { ...CHOICES, tokens: [{ value: "prompt", label: "the question" }, { value: "all", label: "everything" }] };
    const { el } = mount({ _choices: relabelled });
    const tokens = el.querySelectorAll<HTMLSelectElement>(".il-toolbar select")[2];
    expect(Array.from(tokens.options, (o) => o.textContent)).toEqual(["the question", "everything"]);
  });

  it("lays the overlay out as the heatmap module does", () => {
    const { overlay } = mount();
    const layout = layoutHeatmap(L, E, 800, { fontSize: 11 });
    expect(Number(overlay.dataset.cellWidth)).toBe(layout.cellW);
    expect(overlay.style.width).toBe(`${layout.width}px`);
  });

  it("marks a cell off on click, on with shift, and clears a marked cell", () => {
    const { model, overlay } = mount();
    overlay.dispatchEvent(new MouseEvent("click", { ...at(overlay, 1, 2), bubbles: true }));
    expect(lastCommand(model)).toMatchObject({ name: "_mark", msg: { layer: 1, expert: 2, state: "off" } });
    overlay.dispatchEvent(new MouseEvent("click", { ...at(overlay, 2, 3), shiftKey: true, bubbles: true }));
    expect(lastCommand(model)).toMatchObject({ name: "_mark", msg: { layer: 2, expert: 3, state: "on" } });
    model.set("off", [[1, 2]]);
    overlay.dispatchEvent(new MouseEvent("click", { ...at(overlay, 1, 2), bubbles: true }));
    expect(lastCommand(model)).toMatchObject({ name: "_mark", msg: { layer: 1, expert: 2, state: null } });
    const sent = model.sent.length;
    overlay.dispatchEvent(new MouseEvent("click", { clientX: 0, clientY: 0, bubbles: true })); // on the axis
    expect(model.sent).toHaveLength(sent);
  });

  it("lists the marks from Python and clears one from its chip", () => {
    const { model, el } = mount();
    model.set("off", [[1, 2]]);
    model.set("on", [[2, 0]]);
    const chips = el.querySelectorAll<HTMLButtonElement>(".il-mark");
    expect(Array.from(chips, (c) => c.textContent)).toEqual(["L1E2 ×", "L2E0 ×"]);
    chips[1].click();
    expect(lastCommand(model)).toMatchObject({ name: "_mark", msg: { layer: 2, expert: 0, state: null } });
  });

  it("shows both sets' numbers for the hovered cell, and says when a layer is dense", () => {
    const { overlay } = mount();
    overlay.dispatchEvent(new MouseEvent("pointermove", { ...at(overlay, 1, 1), bubbles: true }));
    const tip = document.querySelector<HTMLElement>(".il-tooltip")!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain("layer 1 · expert 1");
    const rows = Array.from(tip.querySelectorAll("tr"), (r) => r.textContent);
    expect(rows[1]).toBe("mean weight0.1000.400-0.300"); // 0.1 - 0.4
    expect(rows[2]).toBe("selection rate0.5000.5000"); // 0.5 vs 0.5
    expect(tip.querySelector("tr.il-current")!.textContent).toContain("mean weight");
    overlay.dispatchEvent(new MouseEvent("pointermove", { ...at(overlay, 0, 3), bubbles: true }));
    expect(tip.textContent).toContain("dense layer");
    overlay.dispatchEvent(new MouseEvent("pointerleave"));
    expect(tip.hidden).toBe(true);
  });

  it("switches map and measure through the synced traits", () => {
    const { model, el } = mount();
    const [mode, score] = el.querySelectorAll<HTMLSelectElement>(".il-toolbar select");
    score.value = "risk_diff";
    score.dispatchEvent(new Event("change"));
    expect(model.get("score")).toBe("risk_diff");
    // risk difference: behaviour rate - control rate; largest magnitude 0.5
    expect(el.querySelector(".il-legend")!.textContent).toBe("-0.500+0.500share of counted tokens that select the expert: behaviour − control");
    mode.value = "behaviour";
    mode.dispatchEvent(new Event("change"));
    expect(model.get("mode")).toBe("behaviour");
    // one scale for both sets: the largest rate of either set
    expect(el.querySelector(".il-legend")!.textContent).toBe("01.00share of counted tokens that select the expert (behaviour)");
    model.set("mode", "control");
    expect(mode.value).toBe("control");
  });

  it("offers the prompts as text, routes the chosen one in the kernel and lists a token's experts", async () => {
    const { model, el } = mount({ off: [[1, 3]] });
    const select = el.querySelector<HTMLSelectElement>(".il-token-panel select")!;
    const options = Array.from(select.querySelectorAll("option"), (o) => o.textContent);
    expect(options).toContain(EVIL);
    expect(el.querySelector(".il-token-panel img")).toBeNull();
    select.value = "behaviour:1";
    select.dispatchEvent(new Event("change"));
    expect(lastCommand(model)).toMatchObject({ name: "_route", msg: { set: "behaviour", index: 1 } });

    // two tokens; layer 0 dense; token 1 routes to experts 3 and 0 in layer 1
    const indices = encode(new Int32Array([-1, -1, 1, 2, 0, 1, -1, -1, 3, 0, 2, 1]), [2, L, 2]);
    const weights = encode(new Float32Array([NaN, NaN, 0.6, 0.4, 0.7, 0.3, NaN, NaN, 0.9, 0.1, 0.5, 0.5]), [2, L, 2]);
    model.reply(
      {
        result: {
          set: "behaviour",
          index: 1,
          prompt: EVIL,
          tokens: ["<img", " src=x"],
          indices: { ...indices.meta, buffer: 0 },
          weights: { ...weights.meta, buffer: 1 },
          marked: null,
        },
      },
      [new DataView(indices.buffer), new DataView(weights.buffer)],
    );
    await tick();
    const tokens = el.querySelectorAll<HTMLElement>(".il-token-panel .il-token");
    expect(Array.from(tokens, (t) => t.textContent)).toEqual(["<img", "·src=x"]);
    // token 1 routed to the switched-off expert (1, 3): it is underlined
    expect(tokens[1].querySelectorAll(".il-marks i")).toHaveLength(1);
    expect(tokens[0].querySelectorAll(".il-marks i")).toHaveLength(0);
    tokens[1].click();
    const rows = Array.from(el.querySelectorAll(".il-routing tr"), (r) => r.textContent);
    expect(rows).toEqual(["layerexperts", "L0dense", "L1E3 0.900E0 0.100", "L2E2 0.500E1 0.500"]);
    expect(el.querySelector(".il-routing .il-chip-off")!.textContent).toBe("E3 0.900");
  });

  it("shows the latest run side by side, escaped, with the rates", () => {
    const { model, el } = mount();
    model.set("runs", [
      {
        off: [[1, 3]],
        on: [],
        max_new_tokens: 12,
        classifier: "refusal_classifier",
        rows: [
          { set: "behaviour", prompt: "p1", baseline: "I cannot.", intervened: EVIL, baseline_flag: true, intervened_flag: false },
          { set: "control", prompt: "p2", baseline: "same", intervened: "same", baseline_flag: false, intervened_flag: false },
        ],
        rates: { behaviour: { baseline: 1, intervened: 0, n: 1 }, control: { baseline: 0, intervened: 0, n: 1 } },
      },
    ]);
    const summary = el.querySelector(".il-run-summary")!.textContent!;
    expect(summary).toContain("Run 1 · off: L1E3 · on: none · 12 new tokens");
    expect(summary).toContain("behaviour: 100% → 0% of 1");
    const cells = el.querySelectorAll(".il-run-table td.il-changed");
    expect(cells).toHaveLength(1);
    expect(cells[0].textContent).toBe(`○${EVIL}`);
    expect(el.querySelector(".il-run-table img")).toBeNull();
  });

  it("runs through the kernel with the panel's settings, clamped", () => {
    const { model, el } = mount();
    const [count, tokens] = el.querySelectorAll<HTMLInputElement>(".il-run-panel input");
    expect([count.value, tokens.value]).toEqual(["4", "12"]);
    count.value = "500";
    tokens.value = "99999";
    el.querySelector<HTMLButtonElement>(".il-run-panel .il-primary")!.click();
    // the kernel's limits: 2 prompts per set here, at most 4096 new tokens
    expect(lastCommand(model)).toMatchObject({ name: "_run", msg: { n: 2, max_new_tokens: 4096 } });
  });

  it("shows a kernel error in the banner and stays usable", async () => {
    const { model, el, overlay } = mount();
    overlay.dispatchEvent(new MouseEvent("click", { ...at(overlay, 1, 0), shiftKey: true, bubbles: true }));
    model.reply({ error: { type: "ValueError", message: "3 experts forced on in layer 1" } });
    await tick();
    const banner = el.querySelector<HTMLElement>(".il-error")!;
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("3 experts forced on in layer 1");
    overlay.dispatchEvent(new MouseEvent("click", { ...at(overlay, 2, 0), bubbles: true }));
    expect(lastCommand(model)).toMatchObject({ name: "_mark", msg: { layer: 2, expert: 0, state: "off" } });
  });

  it("tears down: listeners off, tooltip gone", () => {
    const { model, el, cleanup, overlay } = mount();
    overlay.dispatchEvent(new MouseEvent("pointermove", { ...at(overlay, 1, 1), bubbles: true }));
    cleanup();
    expect(document.querySelector(".il-tooltip")).toBeNull();
    expect(el.children).toHaveLength(0);
    for (const event of ["change:off", "change:on", "change:_maps", "change:runs", "change:mode", "msg:custom"]) {
      expect(model.listenerCount(event)).toBe(0);
    }
  });
});

describe("cell boxes", () => {
  it("are where the overlay's data attributes say", () => {
    const { overlay } = mount();
    const layout = layoutHeatmap(L, E, 800, { fontSize: 11 });
    const [x, y] = cellBox(layout, 2, 3);
    expect(at(overlay, 2, 3)).toEqual({ clientX: x + layout.cellW / 2, clientY: y + layout.cellH / 2 });
  });
});
