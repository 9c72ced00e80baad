// The methods panel: one method's node scores against another's, with Pearson's r, axes with
// ticks and a legend of the dot colours; it offers to compute a method that is missing.

import { canvasContext, choice, h, replaceChildren } from "../shared/dom";
import { CanvasPainter } from "../shared/painter";
import type { Theme } from "../shared/theme";
import { type Nodes, pearson } from "./data";
import { COMPONENT_COLOURS, drawScatter } from "./draw";

const SIZE = 240;

export interface ScatterOptions {
  scoresOf(method: string): ArrayLike<number> | null;
  nodes(): Nodes | null;
  theme(): Theme;
  compute(methods: string[]): void;
}

export interface ScatterPanel {
  controls: HTMLElement;
  canvas: HTMLCanvasElement;
  legend: HTMLElement;
  note: HTMLElement;
  /** The methods to choose from, and which to show (x, y). */
  choose(methods: [string, string][], x: string, y: string): void;
  redraw(): void;
}

export function scatterPanel(o: ScatterOptions): ScatterPanel {
  const xChoice = choice({} as Record<string, string>, "x", () => redraw());
  const yChoice = choice({} as Record<string, string>, "y", () => redraw());
  const canvas = h("canvas", { class: "il-scatter" });
  const note = h("div", { class: "il-scatter-note il-muted" });
  const legend = h(
    "div",
    { class: "il-scatter-legend il-muted" },
    ...["resid", "attn", "mlp"].map((c) => h("span", {}, h("i", { style: { background: COMPONENT_COLOURS[c] } }), c === "attn" ? "attn / head" : c)),
  );

  function redraw(): void {
    const nodes = o.nodes();
    if (!nodes) return;
    const xm = xChoice.select.value;
    const ym = yChoice.select.value;
    const x = o.scoresOf(xm);
    const y = o.scoresOf(ym);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = SIZE * dpr;
    canvas.height = SIZE * dpr;
    canvas.style.width = `${SIZE}px`;
    canvas.style.height = `${SIZE}px`;
    const missing = [xm, ym].filter((m) => !o.scoresOf(m));
    canvas.hidden = missing.length > 0;
    if (missing.length) {
      replaceChildren(note, `${missing.join(" and ")} not computed yet `, h("button", { class: "il-button", on: { click: () => o.compute(missing) } }, "compute"));
    } else replaceChildren(note, "each dot is a node: its score by one method against the other; dashed: y = x");
    const ctx = canvasContext(canvas);
    if (!ctx || !x || !y) return;
    const theme = o.theme();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = theme.background;
    ctx.fillRect(0, 0, SIZE, SIZE);
    const r = pearson(x, y);
    canvas.setAttribute("data-r", String(r));
    drawScatter(new CanvasPainter(ctx), { x, y, nodes, xLabel: `${xm} score →`, yLabel: `${ym} score`, r, theme, size: SIZE });
  }

  return {
    controls: h("div", { class: "il-scatter-controls" }, xChoice.field, yChoice.field),
    canvas,
    legend,
    note,
    choose(methods, x, y) {
      for (const select of [xChoice.select, yChoice.select]) replaceChildren(select, ...methods.map(([v, text]) => h("option", { attrs: { value: v } }, text)));
      xChoice.select.value = x;
      yChoice.select.value = y;
      redraw();
    },
    redraw,
  };
}
