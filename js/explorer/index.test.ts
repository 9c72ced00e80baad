import { afterEach, describe, expect, it } from "vitest";
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
    top_k: 2,
    top_edges: 3,
    circuit: ["attn.0@0", "mlp.0@0"],
    ablated: [],
    metric: { clean: 2, corrupt: -1, full: 2, empty: 0.5, ablated: 2, circuit: 1.7, faithfulness: 0.8, n_ablated: 0, size: 2, total: 4, ablation: "mean", seconds: 0.12 },
    error: null,
    progress: null,
    _nodes: {
      components: ["resid", "attn", "mlp", "head"],
      component: wire(Uint8Array.from([0, 0, 1, 1, 2, 2])),
      layer: wire(new Int32Array(6)),
      head: wire(new Int32Array(6).fill(-1)),
      position: wire(Int32Array.from([0, 1, 0, 1, 0, 1])),
    },
    _scores: { atp: wire(Float32Array.from(ATP)), relp: wire(Float32Array.from(RELP)) },
    _edges: {
      method: "atp",
      nodes: ["embed.0", "attn.0", "mlp.0", "logits.1"],
      component: wire(Uint8Array.from([0, 1, 2, 3])),
      layer: wire(Int32Array.from([0, 0, 0, 1])),
      source: wire(Int32Array.from([0, 0, 0, 1, 1, 2])),
      target: wire(Int32Array.from([1, 2, 3, 2, 3, 3])),
      score: wire(Float32Array.from([0.5, -2, 1, 0.1, 0.2, 0.3])),
    },
  };
}

function mount(overrides: Record<string, unknown> = {}) {
  const model = new MockModel({ ...state(), ...overrides });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  const overlay = el.querySelector<HTMLCanvasElement>(".il-graph-overlay")!;
  return { model, el, cleanup, overlay };
}

/** Where node (row, position) of layer 0 is on the overlay (jsdom puts the canvas at 0, 0). */
function at(overlay: HTMLCanvasElement, row: number, position: number) {
  const d = overlay.dataset;
  const s = Number(d.scale);
  const x = Number(d.left) + (position + 0.5) * Number(d.colWidth);
  const y = Number(d.bottom) - 5 - (row + 0.5) * Number(d.rowHeight);
  return { clientX: x * s + Number(d.tx), clientY: y * s + Number(d.ty), bubbles: true };
}

function click(overlay: HTMLCanvasElement, row: number, position: number) {
  overlay.dispatchEvent(new MouseEvent("pointerdown", at(overlay, row, position)));
  overlay.dispatchEvent(new MouseEvent("pointerup", at(overlay, row, position)));
}

const lastCommand = (model: MockModel) => model.sent[model.sent.length - 1].content;
const commands = (model: MockModel) => model.sent.map((s) => s.content).filter((c) => c.kind === "anywidget-command");

afterEach(() => {
  document.body.replaceChildren();
});

describe("CircuitExplorer front end", () => {
  it("shows the task, the circuit size and the metric", () => {
    const { el } = mount();
    expect(el.querySelector(".il-info")!.textContent).toContain("demo · task ioi: 8 prompt pairs, 2 positions · component level");
    expect(el.querySelector(".il-size")!.textContent).toBe("circuit: 2 of 4 nodes · 3 of 6 edges");
    const metric = el.querySelector(".il-metric")!;
    expect(metric.textContent).toContain("faithfulness of the circuit0.800");
    expect(metric.getAttribute("data-ablated")).toBe("2");
  });

  it("prunes with the sliders without the kernel, then saves the circuit", () => {
    const { el, model } = mount();
    const [nodes, edges] = el.querySelectorAll<HTMLInputElement>(".il-range");
    expect(nodes.max).toBe("4");
    nodes.value = "3";
    nodes.dispatchEvent(new Event("input"));
    expect(el.querySelector(".il-size")!.textContent).toBe("circuit: 3 of 4 nodes · 3 of 6 edges");
    edges.value = "1";
    edges.dispatchEvent(new Event("input"));
    expect(el.querySelector(".il-size")!.textContent).toBe("circuit: 3 of 4 nodes · 1 of 6 edges");
    expect(commands(model)).toHaveLength(0);
    expect(model.get("circuit")).toEqual(["attn.0@0", "mlp.0@0"]); // nothing saved while it moves
    nodes.dispatchEvent(new Event("change"));
    // |atp| of attn@0, mlp@0, attn@1, mlp@1: 0.3, 0.3, 0.2, 0.05 -> ties in node order
    expect(model.get("circuit")).toEqual(["attn.0@0", "mlp.0@0", "attn.0@1"]);
    expect(model.get("top_k")).toBe(3);
    expect(model.saves).toBeGreaterThan(0);
  });

  it("asks the kernel to ablate a clicked node; resid nodes are refused in the browser", async () => {
    const { el, model, overlay } = mount();
    click(overlay, 2, 1); // mlp@1
    expect(lastCommand(model)).toMatchObject({ name: "_toggle", msg: { node: "mlp.0@1" } });
    model.set("ablated", ["mlp.0@1"]);
    model.set("metric", { ...state().metric, ablated: 1.25, n_ablated: 1 });
    model.reply({ result: { node: "mlp.0@1", ablated: true } });
    await tick();
    expect(el.querySelector(".il-metric")!.getAttribute("data-ablated")).toBe("1.25");
    expect(el.querySelector(".il-metric")!.getAttribute("data-latency-ms")).not.toBeNull();
    const before = commands(model).length;
    click(overlay, 0, 0); // resid@0
    expect(commands(model)).toHaveLength(before);
    expect(el.querySelector(".il-error")!.textContent).toContain("resid.0@0 is a residual-stream state");
  });

  it("shows a kernel error and stays usable", async () => {
    const { el, model, overlay } = mount();
    click(overlay, 1, 0);
    model.reply({ error: { type: "RuntimeError", message: "the model failed" } });
    await tick();
    expect(el.querySelector(".il-error")!.textContent).toContain("the model failed");
    click(overlay, 1, 1);
    expect(lastCommand(model)).toMatchObject({ name: "_toggle", msg: { node: "attn.0@1" } });
  });

  it("switches method through the kernel and redraws from the new scores", () => {
    const { el, model } = mount();
    const method = el.querySelector<HTMLSelectElement>("select[aria-label=method]")!;
    method.value = "patch";
    method.dispatchEvent(new Event("change"));
    expect(lastCommand(model)).toMatchObject({ name: "_compute", msg: { method: "patch", show: true } });
    model.set("method", "relp");
    expect(el.querySelector(".il-info")!.textContent).toContain("RelP");
  });

  it("puts tokens in the tooltip as text", () => {
    const { overlay } = mount();
    overlay.dispatchEvent(new MouseEvent("pointermove", at(overlay, 1, 0)));
    const tip = document.querySelector(".il-tooltip:not([hidden])")!;
    expect(tip.textContent).toContain("layer 0 · attn");
    expect(tip.textContent).toContain(JSON.stringify(EVIL));
    expect(tip.querySelector("img")).toBeNull();
    expect(tip.textContent).toContain("atp-0.3000");
    expect(tip.textContent).toContain("relp-0.2000");
  });

  it("offers to compute a method the scatter lacks", () => {
    const { el, model } = mount();
    const note = el.querySelector(".il-scatter-note")!;
    expect(note.textContent).toBe(""); // relp against atp: both computed
    const x = el.querySelector<HTMLSelectElement>("select[aria-label=x]")!;
    x.value = "patch";
    x.dispatchEvent(new Event("change"));
    expect(note.textContent).toContain("patch not computed yet");
    note.querySelector("button")!.click();
    expect(lastCommand(model)).toMatchObject({ name: "_compute", msg: { method: "patch", show: false } });
  });

  it("cleans up its listeners", () => {
    const { model, cleanup } = mount();
    expect(model.listenerCount("change:circuit")).toBe(1);
    cleanup();
    expect(model.listenerCount("change:circuit")).toBe(0);
  });
});
