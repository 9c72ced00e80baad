import { afterEach, describe, expect, it } from "vitest";
import { encode } from "../shared/codecs";
import { MockModel, tick } from "../shared/testing";
import widget from "./index";

const arrays = (values: number[], ids: number[]) => ({
  _values: { dtype: "float32", shape: [values.length], data: new DataView(encode(new Float32Array(values)).buffer) },
  _token_ids: { dtype: "int32", shape: [ids.length], data: new DataView(encode(new Int32Array(ids)).buffer) },
});

function mount(tokens = ["the", " cat", " sat"], values = [NaN, -1, -3], ends = ["less likely", "more likely"]) {
  const model = new MockModel({
    tokens,
    label: "log p",
    ends,
    selected: null,
    error: null,
    progress: null,
    ...arrays(values, [5, 6, 7]),
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  return { model, el, cleanup };
}

afterEach(() => {
  document.body.replaceChildren();
});

describe("TokenView front end", () => {
  it("shows the tokens coloured by their values, the label and the legend", () => {
    const { el } = mount();
    const spans = el.querySelectorAll<HTMLElement>(".il-token");
    expect(Array.from(spans, (s) => s.textContent)).toEqual(["the", "·cat", "·sat"]);
    expect(spans[0].style.background).toBe(""); // NaN: no value
    expect(spans[1].style.background).not.toBe("");
    expect(el.querySelector(".il-label")!.textContent).toBe("log p");
    // which way is likely: the ends say so
    expect(el.querySelector(".il-legend")!.textContent).toBe("less likely ◀-3.000.00▶ more likely");
  });

  it("shows a legend without ends where nobody said what they mean", () => {
    const { el } = mount(["a", "b"], [1, 2], ["", ""]);
    expect(el.querySelector(".il-legend")!.textContent).toBe("0.002.00");
  });

  it("selects a token on click, deselects on a second click", () => {
    const { el, model } = mount();
    const span = el.querySelectorAll<HTMLElement>(".il-token")[2];
    span.click();
    expect(model.get("selected")).toBe(2);
    expect(model.saves).toBe(1);
    expect(span.classList.contains("il-selected")).toBe(true);
    span.click();
    expect(model.get("selected")).toBeNull();
  });

  it("asks the kernel for predictions on every hover, showing the last answer meanwhile", async () => {
    const { el, model } = mount();
    const span = el.querySelectorAll<HTMLElement>(".il-token")[1];
    span.dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    const tooltip = document.querySelector<HTMLElement>(".il-tooltip")!;
    expect(tooltip.hidden).toBe(false);
    expect(tooltip.textContent).toContain("token 1");
    expect(tooltip.textContent).toContain("computing in the kernel");
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toMatchObject({ name: "_top_k", msg: { position: 1 } });

    const ids = encode(new Int32Array([9, 8]));
    const lp = encode(new Float32Array([-0.5, -2]));
    model.reply(
      { result: { position: 1, tokens: [" on", "<b>x</b>"], ids: { ...ids.meta, buffer: 0 }, logprobs: { ...lp.meta, buffer: 1 } } },
      [new DataView(ids.buffer), new DataView(lp.buffer)],
    );
    await tick();
    const rows = tooltip.querySelectorAll("tr");
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toBe('1." on"-0.50060.7%');
    expect(tooltip.querySelector("b:not(:first-child)")).toBeNull();
    expect(rows[1].textContent).toContain('"<b>x</b>"');

    // hovering away and back asks again (the model may have changed), showing the last answer meanwhile
    el.querySelector(".il-tokenstrip")!.dispatchEvent(new MouseEvent("pointerleave"));
    span.dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    expect(model.sent).toHaveLength(2);
    expect(tooltip.querySelectorAll("tr")).toHaveLength(2);
    const ids2 = encode(new Int32Array([4]));
    const lp2 = encode(new Float32Array([-0.1]));
    model.reply(
      { result: { position: 1, tokens: [" up"], ids: { ...ids2.meta, buffer: 0 }, logprobs: { ...lp2.meta, buffer: 1 } } },
      [new DataView(ids2.buffer), new DataView(lp2.buffer)],
    );
    await tick();
    expect(Array.from(tooltip.querySelectorAll("tr"), (r) => r.textContent)).toEqual(['1." up"-0.10090.5%']);
  });

  it("shows hard tokens as marks in the strip and the tooltip", () => {
    const rlo = String.fromCharCode(0x202e);
    const { el } = mount(["a", rlo, "\\ud83d"], [NaN, -1, -2]);
    const spans = el.querySelectorAll<HTMLElement>(".il-token");
    expect(Array.from(spans, (s) => s.textContent)).toEqual(["a", "\\u202e", "\\ud83d"]);
    spans[1].dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    const tip = document.querySelector<HTMLElement>(".il-tooltip")!;
    expect(tip.textContent).toContain('"\\u202e"');
    expect(tip.textContent!.includes(rlo)).toBe(false);
  });

  it("tears down: listeners off, tooltip gone, pending calls aborted", async () => {
    const { el, model, cleanup } = mount();
    el.querySelectorAll<HTMLElement>(".il-token")[0].dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    cleanup();
    expect(document.querySelector(".il-tooltip")).toBeNull();
    expect(el.children).toHaveLength(0);
    for (const event of ["change:tokens", "change:selected", "change:error", "change:progress", "msg:custom"]) {
      expect(model.listenerCount(event)).toBe(0);
    }
  });

  it("follows new tokens and values from Python", () => {
    const { el, model } = mount();
    Object.entries(arrays([1, 2], [1, 2])).forEach(([k, v]) => model.set(k, v));
    model.set("tokens", ["a", "b"]);
    expect(el.querySelectorAll(".il-token")).toHaveLength(2);
    expect(el.querySelector(".il-legend")!.textContent).toBe("less likely ◀0.002.00▶ more likely");
    model.set("ends", ["", ""]);
    expect(el.querySelector(".il-legend")!.textContent).toBe("0.002.00");
  });
});
