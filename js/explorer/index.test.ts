import { afterEach, describe, expect, it, vi } from "vitest";
import { encode } from "../shared/codecs";
import { MockModel, tick } from "../shared/testing";
import widget from "./index";

const EVIL = "<img src=x onerror=alert(1)>";
const wire = (data: Uint8Array | Int32Array | Float32Array) => {
  const { meta, buffer } = encode(data);
  return { ...meta, data: new DataView(buffer) };
};

// one layer, two positions: resid@0 resid@1 attn@0 attn@1 mlp@0 mlp@1
const ATP = [5, 0.1, -0.3, 0.2, 0.3, -0.05];
const RELP = [4, 0.2, -0.2, 0.25, 0.35, 0.0];
// Python's rankings of the circuit nodes (attn, mlp) by |score|, ties in node order
const ATP_ORDER = [2, 4, 3, 5];
const RELP_ORDER = [4, 3, 2, 5];
const cumulative = (scores: number[], order: number[]) => {
  const total = order.reduce((s, i) => s + Math.abs(scores[i]), 0);
  let run = 0;
  return Float32Array.from(order, (i) => (run += Math.abs(scores[i])) / total);
};

function state() {
  return {
    model_name: "demo",
    task_name: "ioi",
    n_prompts: 8,
    level: "component",
    n_layers: 1,
    n_heads: 2,
    labels: [EVIL, " Mary"],
    method: "atp",
    ablation: "mean",
    colour: "log",
    top_k: 2,
    top_edges: 3,
    circuit: ["attn.0@0", "mlp.0@0"],
    ablated: [],
    pinned: [],
    groups: {},
    suggestions: [],
    collapsed: { layers: [], ranges: [] },
    zoom: {},
    verified: {},
    intervention: {},
    breakdown: {},
    metric: { clean: 2, corrupt: -1, full: 2, empty: 0.5, ablated: 2, circuit: 1.7, faithfulness: 0.8, n_ablated: 0, size: 2, total: 4, ablation: "mean", seconds: 0.12 },
    error: null,
    progress: null,
    _vocab: {
      methods: [
        ["patch", "activation patching"],
        ["atp", "AtP"],
        ["relp", "RelP"],
      ],
      ablations: [
        ["mean", "mean"],
        ["zero", "zero"],
      ],
      interventions: [
        ["mean", "mean-ablate"],
        ["patch", "patch in clean"],
        ["scale", "scale by"],
      ],
      colours: [
        ["log", "log |score|"],
        ["rank", "rank"],
      ],
      components: ["resid", "attn", "mlp", "head"],
      circuit_components: ["attn", "mlp"],
      metric: { name: "logit_diff", label: "logit difference (answer − distractor)" },
    },
    _nodes: {
      components: ["resid", "attn", "mlp", "head"],
      component: wire(Uint8Array.from([0, 0, 1, 1, 2, 2])),
      layer: wire(new Int32Array(6)),
      head: wire(new Int32Array(6).fill(-1)),
      position: wire(Int32Array.from([0, 1, 0, 1, 0, 1])),
    },
    _scores: { atp: wire(Float32Array.from(ATP)), relp: wire(Float32Array.from(RELP)) },
    _orders: {
      atp: { order: wire(Int32Array.from(ATP_ORDER)), cumulative: wire(cumulative(ATP, ATP_ORDER)) },
      relp: { order: wire(Int32Array.from(RELP_ORDER)), cumulative: wire(cumulative(RELP, RELP_ORDER)) },
    },
    // position-resolved: embed.0@0 -> attn.0@1, attn.0@0 -> mlp.0@0, mlp.0@1 -> logits.1@1, embed.0@1 -> mlp.0@1
    _edges: {
      method: "atp",
      label: "AtP",
      positions: true,
      count: 11,
      mass: 0.9,
      ends: ["embed.0@0", "attn.0@1", "attn.0@0", "mlp.0@0", "mlp.0@1", "logits.1@1", "embed.0@1"],
      source: wire(Int32Array.from([0, 2, 4, 6])),
      target: wire(Int32Array.from([1, 3, 5, 4])),
      score: wire(Float32Array.from([-2, 1, 0.3, 0.1])),
      cumulative: wire(Float32Array.from([2 / 3.4, 3 / 3.4, 3.3 / 3.4, 1])),
    },
  };
}

function mount(overrides: Record<string, unknown> = {}) {
  const model = new MockModel({ ...state(), ...overrides });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  const overlay = el.querySelector<HTMLCanvasElement>(".il-viewport-overlay")!;
  const handle = (el.querySelector(".il-explorer") as any).ilExplorer;
  return { model, el, cleanup, overlay, handle };
}

function pointer(overlay: HTMLCanvasElement, type: string, [x, y]: [number, number], extra: MouseEventInit = {}) {
  overlay.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y, button: 0, buttons: type === "pointerup" ? 0 : 1, bubbles: true, ...extra }));
}

function click(overlay: HTMLCanvasElement, at: [number, number], extra: MouseEventInit = {}) {
  pointer(overlay, "pointerdown", at, extra);
  pointer(overlay, "pointerup", at, extra);
}

const commands = (model: MockModel) => model.sent.map((s) => s.content).filter((c) => c.kind === "anywidget-command");
const lastCommand = (model: MockModel) => commands(model)[commands(model).length - 1];
const text = (el: Element, selector: string) => el.querySelector(selector)!.textContent ?? "";

afterEach(() => {
  document.body.replaceChildren();
  vi.useRealTimers();
});

describe("CircuitExplorer front end", () => {
  it("says what is shown: task, method, metric, legend, circuit size", () => {
    const { el } = mount();
    expect(text(el, ".il-info")).toBe("demo · task ioi: 8 prompt pairs, 2 positions · component level · method: AtP · AtP edges (per position) · metric: logit difference (answer − distractor)");
    const edgeTotal = el.querySelectorAll<HTMLElement>(".il-total")[1];
    expect(edgeTotal.textContent).toBe("of 4 AtP edges (per position)");
    expect(edgeTotal.title).toBe("edges from AtP, per position: the 4 strongest non-zero of 11 edges scored, carrying 90.0% of their |score|");
    expect(text(el, ".il-graph-legend")).toContain("colour: log |score|, 3.00e-4 (pale) to 0.3000 (full), 3 decades");
    expect(text(el, ".il-graph-legend")).toContain("✕ ablated");
    expect(text(el, ".il-metric")).toContain("faithfulness f of the circuit0.8000");
    expect(text(el, ".il-metric")).toContain("Above 1 the circuit alone");
    const [k, share] = el.querySelectorAll<HTMLInputElement>(".il-number");
    expect(k.value).toBe("2");
    expect(share.value).toBe("0.71"); // (0.3 + 0.3) / 0.85
    expect(text(el, ".il-total")).toBe("of 4 nodes");
    // the choices are Python's
    expect(Array.from(el.querySelectorAll<HTMLOptionElement>("select[aria-label=method] option"), (o) => o.value)).toEqual(["patch", "atp", "relp"]);
    expect(Array.from(el.querySelectorAll<HTMLOptionElement>("select[aria-label=act] option"), (o) => o.textContent)).toEqual(["mean-ablate", "patch in clean", "scale by"]);
  });

  it("sizes the circuit from Python's order by number, share or log slider", () => {
    const { el, model } = mount();
    const [k, share] = el.querySelectorAll<HTMLInputElement>(".il-number");
    k.value = "3";
    k.dispatchEvent(new Event("change"));
    expect(model.get("circuit")).toEqual(["attn.0@0", "mlp.0@0", "attn.0@1"]);
    expect(model.get("top_k")).toBe(3);
    share.value = "0.99";
    share.dispatchEvent(new Event("change"));
    expect(model.get("top_k")).toBe(4);
    const slider = el.querySelector<HTMLInputElement>(".il-range")!;
    slider.value = "0";
    slider.dispatchEvent(new Event("input"));
    expect(model.get("top_k")).toBe(4); // nothing saved while it moves
    expect(k.value).toBe("0");
    slider.dispatchEvent(new Event("change"));
    expect(model.get("circuit")).toEqual([]);
    expect(commands(model)).toHaveLength(0);
  });

  it("switching method redraws from the method's own order", async () => {
    const { el, model } = mount();
    const select = el.querySelector<HTMLSelectElement>("select[aria-label=method]")!;
    select.value = "relp";
    select.dispatchEvent(new Event("change"));
    expect(lastCommand(model)).toMatchObject({ name: "_compute", msg: { method: "relp", show: true } });
    model.set("method", "relp");
    model.reply({ result: { method: "relp" } });
    await tick();
    const k = el.querySelector<HTMLInputElement>(".il-number")!;
    k.value = "1";
    k.dispatchEvent(new Event("change"));
    expect(model.get("circuit")).toEqual(["mlp.0@0"]);
  });

  it("click ablates through the kernel, ctrl-click pins in the browser, resid is refused", async () => {
    const { el, model, overlay, handle } = mount();
    click(overlay, handle.centre("mlp.0@1"));
    expect(lastCommand(model)).toMatchObject({ name: "_toggle", msg: { node: "mlp.0@1" } });
    model.set("metric", { ...state().metric, ablated: "NaN", n_ablated: 1 });
    model.reply({ result: { node: "mlp.0@1", ablated: true } });
    await tick();
    expect(text(el, ".il-metric-ablated")).toBe("NaN"); // a NaN metric is shown, not a blank
    expect(el.querySelector(".il-metric")!.getAttribute("data-latency-ms")).not.toBeNull();
    click(overlay, handle.centre("attn.0@1"), { ctrlKey: true });
    expect(model.get("pinned")).toEqual(["attn.0@1"]);
    click(overlay, handle.centre("attn.0@1"), { metaKey: true });
    expect(model.get("pinned")).toEqual([]);
    const sent = commands(model).length;
    click(overlay, handle.centre("resid.0@0"));
    expect(commands(model)).toHaveLength(sent);
    expect(text(el, ".il-error")).toContain("residual-stream state");
  });

  it("a browser error clears after a later success", async () => {
    const { el, model, overlay, handle } = mount();
    click(overlay, handle.centre("resid.0@0"));
    expect((el.querySelector(".il-error") as HTMLElement).hidden).toBe(false);
    click(overlay, handle.centre("attn.0@0"));
    model.reply({ result: { node: "attn.0@0", ablated: true } });
    await tick();
    expect((el.querySelector(".il-error") as HTMLElement).hidden).toBe(true);
  });

  it("pinned nodes: verify, group, intervene and per prompt call the kernel", async () => {
    const { el, model } = mount({ pinned: ["attn.0@0", "mlp.0@0"], verified: { "attn.0@0": { exact: 0.25, estimate: -0.3, method: "atp" } } });
    const rows = el.querySelectorAll(".il-pinned-table tr[data-node]");
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain("0.2500"); // the exact score beside the estimate
    const buttons = (label: string) => Array.from(el.querySelectorAll<HTMLButtonElement>("button")).find((b) => b.textContent === label)!;
    buttons("verify").click();
    expect(lastCommand(model)).toMatchObject({ name: "_verify" });
    const name = el.querySelector<HTMLInputElement>(".il-group-name")!;
    name.value = "pair";
    buttons("group").click();
    expect(model.get("groups")).toEqual({ pair: ["attn.0@0", "mlp.0@0"] });
    const act = el.querySelector<HTMLSelectElement>("select[aria-label=act]")!;
    act.value = "scale";
    act.dispatchEvent(new Event("change"));
    buttons("run").click();
    expect(lastCommand(model)).toMatchObject({ name: "_intervene", msg: { mode: "scale", factor: 2 } });
    (rows[1].querySelector("button") as HTMLButtonElement).click();
    expect(lastCommand(model)).toMatchObject({ name: "_per_prompt", msg: { node: "mlp.0@0" } });
    model.set("intervention", {
      mode: "scale",
      factor: 2,
      nodes: ["attn.0@0"],
      run: "clean",
      before: 2,
      after: "-Infinity",
      per_prompt: { before: [2, 2], after: [1, "-Infinity"] },
      generation: { prompt: EVIL, before: " Mary", after: EVIL },
    });
    expect(text(el, ".il-intervention-metric")).toBe("logit difference (answer − distractor): 2.000 → −∞");
    expect(el.querySelector(".il-gen-after")!.textContent).toBe(EVIL); // text, not markup
    expect(el.querySelector(".il-generation img")).toBeNull();
  });

  it("groups are drawn as one node, and suggestions are accepted or rejected in the browser", () => {
    const { el, model, handle } = mount({ suggestions: [{ nodes: ["attn.0@1", "mlp.0@1"], similarity: 0.9 }, { nodes: ["attn.0@0", "mlp.0@0"], similarity: 0.8 }] });
    const accept = el.querySelector<HTMLButtonElement>("[data-suggestion='0'] button")!;
    accept.click();
    expect(model.get("groups")).toEqual({ "group 1": ["attn.0@1", "mlp.0@1"] });
    expect(model.get("suggestions")).toEqual([{ nodes: ["attn.0@0", "mlp.0@0"], similarity: 0.8 }]);
    expect(handle.centre("attn.0@1")).toEqual(handle.centre("mlp.0@1")); // one supernode
    expect(text(el, "[data-group='group 1']")).toContain("score 0.1500");
    el.querySelectorAll<HTMLButtonElement>("[data-suggestion='0'] button")[1].click();
    expect(model.get("suggestions")).toEqual([]);
  });

  it("collapses a layer from its label and a position range from two token labels", () => {
    const { model, overlay } = mount();
    click(overlay, [10, 200]); // the layer axis, at layer 0's band
    expect(model.get("collapsed")).toEqual({ layers: [0], ranges: [] });
    model.set("collapsed", { layers: [], ranges: [] });
    const bottom = Number(overlay.style.height.replace("px", "")) - 20;
    const h = (el: HTMLElement) => (el.closest(".il-explorer") as any).ilExplorer;
    const [x0] = h(overlay).centre("attn.0@0");
    const [x1] = h(overlay).centre("attn.0@1");
    click(overlay, [x0, bottom]);
    click(overlay, [x1, bottom]);
    expect(model.get("collapsed")).toEqual({ layers: [], ranges: [[0, 1]] });
    expect(h(overlay).centre("attn.0@0")).toEqual(h(overlay).centre("attn.0@1")); // one cell now
  });

  it("finds nodes and saves the zoom after panning", () => {
    vi.useFakeTimers();
    const { el, model, overlay } = mount();
    const search = el.querySelector<HTMLInputElement>(".il-search")!;
    search.value = "mary mlp";
    search.dispatchEvent(new Event("input"));
    expect(text(el, ".il-search-count")).toBe("1 found");
    pointer(overlay, "pointerdown", [300, 200]);
    pointer(overlay, "pointermove", [300, 260]);
    pointer(overlay, "pointerup", [300, 260]);
    vi.advanceTimersByTime(1000);
    const zoom = model.get("zoom");
    expect(Object.keys(zoom)).toEqual(["x0", "y0", "x1", "y1"]);
    expect(model.saves).toBeGreaterThan(0);
  });

  it("puts tokens in the tooltip as text and says what needs a kernel offline", () => {
    const { el, overlay, handle } = mount({ _interplab_static: true });
    pointer(overlay, "pointermove", handle.centre("attn.0@0"), { buttons: 0 });
    const tip = document.querySelector(".il-tooltip:not([hidden])")!;
    expect(tip.textContent).toContain(JSON.stringify(EVIL));
    expect(tip.textContent).toContain("rank1 of 4");
    expect(tip.querySelector("img")).toBeNull();
    expect((el.querySelector(".il-kernel-note") as HTMLElement).hidden).toBe(false);
    expect(text(el, ".il-kernel-note")).toContain("need a running kernel");
  });

  it("says nothing about kernels inside a notebook", () => {
    const { el } = mount();
    expect((el.querySelector(".il-kernel-note") as HTMLElement).hidden).toBe(true);
  });

  it("cleans up its listeners", () => {
    const { model, cleanup } = mount();
    expect(model.listenerCount("change:circuit")).toBe(1);
    cleanup();
    expect(model.listenerCount("change:circuit")).toBe(0);
    expect(model.listenerCount("msg:custom")).toBe(0);
  });
});
