// The layer x expert map on screen: two stacked canvases (the map; and an overlay with the marks,
// the clicked token's experts and the hover, so a mousemove repaints the overlay only), their
// layout, the cell under the pointer, what a cell's tooltip says, and the same picture as a
// Drawing for PNG and SVG export. No state of the widget lives here: index.ts passes it in.

import { canvasContext, h } from "../shared/dom";
import type { Drawing } from "../shared/export";
import { CanvasPainter, cssFont, measureWithCanvas, type Painter } from "../shared/painter";
import type { Scale, Theme } from "../shared/theme";
import { type Cell, cellAt, cellBox, drawHover, drawLegend, drawMap, drawMarks, drawTokenExperts, type Layout, layoutHeatmap, type Marks } from "./heatmap";
import { formatValue, type Maps, type ScoreChoice } from "./maps";

/** What the map shows: one value per cell, which layers are dense, the colours. */
export interface Picture {
  values: ArrayLike<number>;
  dense: boolean[];
  scale: Scale;
  theme: Theme;
}

export interface OverlayState {
  marks: Marks;
  tokenCells: Cell[] | null;
  hovered: Cell | null;
  theme: Theme;
}

export class MapView {
  readonly el: HTMLElement;
  readonly overlay: HTMLCanvasElement;
  private readonly base: HTMLCanvasElement;
  layout: Layout | null = null;

  constructor() {
    this.base = h("canvas", { class: "il-heatmap" });
    this.overlay = h("canvas", { class: "il-heatmap-overlay" });
    this.el = h("div", { class: "il-heatmap-stack" }, this.base, this.overlay);
  }

  /** Fit the map to `width`; true when the layout changed (then paint again). */
  relayout(nLayers: number, nExperts: number, width: number, fontSize: number): boolean {
    const next = layoutHeatmap(nLayers, nExperts, width, { fontSize });
    const old = this.layout;
    if (old && old.nLayers === nLayers && old.nExperts === nExperts && next.width === old.width && next.height === old.height && next.cellW === old.cellW) return false;
    this.layout = next;
    const dpr = window.devicePixelRatio || 1;
    for (const canvas of [this.base, this.overlay]) {
      canvas.width = Math.max(1, Math.round(next.width * dpr));
      canvas.height = Math.max(1, Math.round(next.height * dpr));
      canvas.style.width = `${next.width}px`;
      canvas.style.height = `${next.height}px`;
    }
    this.el.style.width = `${next.width}px`;
    this.el.style.height = `${next.height}px`;
    // where the cells are, for tests and tools that point at them
    const attrs: Record<string, number> = {
      "data-left": next.left,
      "data-top": next.top,
      "data-cell-width": next.cellW,
      "data-cell-height": next.cellH,
      "data-layers": next.nLayers,
      "data-experts": next.nExperts,
    };
    for (const [k, v] of Object.entries(attrs)) this.overlay.setAttribute(k, String(v));
    return true;
  }

  paint(picture: Picture | null): void {
    const p = this.begin(this.base);
    if (p && this.layout && picture) drawMap(p, { layout: this.layout, ...picture });
  }

  paintOverlay(state: OverlayState): void {
    const p = this.begin(this.overlay);
    if (!p || !this.layout) return;
    drawMarks(p, this.layout, state.marks, state.theme);
    if (state.tokenCells) drawTokenExperts(p, this.layout, state.tokenCells, state.theme);
    if (state.hovered) drawHover(p, this.layout, state.hovered, state.theme);
  }

  /** The cell under a pointer event, or null. */
  cellAt(event: MouseEvent): Cell | null {
    if (!this.layout) return null;
    const r = this.overlay.getBoundingClientRect();
    return cellAt(this.layout, event.clientX - r.left, event.clientY - r.top);
  }

  /** A cell's box on the page (for the tooltip). */
  cellRect(cell: Cell): DOMRect {
    const r = this.overlay.getBoundingClientRect();
    const [x, y, w, hgt] = cellBox(this.layout!, cell.layer, cell.expert);
    return new DOMRect(r.left + x, r.top + y, w, hgt);
  }

  private begin(canvas: HTMLCanvasElement): Painter | null {
    const ctx = canvasContext(canvas);
    if (!ctx) return null;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return new CanvasPainter(ctx);
  }
}

export interface CellFacts {
  cell: Cell;
  dense: boolean;
  maps: Maps | null;
  scores: ScoreChoice[];
  /** The measure the map shows (its row is highlighted). */
  current: ScoreChoice;
  state: "off" | "on" | null;
}

/** A cell's tooltip: both sets' numbers and their difference in every measure, and the cell's mark. */
export function cellInfo({ cell, dense, maps, scores, current, state }: CellFacts): HTMLElement[] {
  const { layer, expert } = cell;
  if (dense) return [h("b", {}, `layer ${layer}`), h("div", { class: "il-muted" }, "dense layer: no router, no experts")];
  if (!maps) return [h("b", {}, `layer ${layer}, expert ${expert}`)];
  const i = layer * maps.nExperts + expert;
  const row = (score: ScoreChoice) => {
    const m = maps.measures[score.map];
    return h(
      "tr",
      { class: score.value === current.value ? "il-current" : "", attrs: { title: score.unit } },
      h("td", {}, score.name),
      h("td", { class: "il-num" }, formatValue(m.behaviour[i])),
      h("td", { class: "il-num" }, formatValue(m.control[i])),
      h("td", { class: "il-num" }, formatValue(m.score[i], true)),
    );
  };
  const muted = (text: string) => h("td", { class: "il-muted" }, text);
  return [
    h("div", {}, h("b", {}, `layer ${layer} · expert ${expert}`), state ? h("span", { class: `il-state il-state-${state}` }, state === "off" ? " switched off" : " forced on") : null),
    h("table", {}, h("tr", {}, h("td", {}), muted("behaviour"), muted("control"), muted("difference")), ...scores.map(row)),
    h("div", { class: "il-muted" }, state ? "click again to clear" : "click: switch off · shift-click: force on"),
  ];
}

export interface ExportParts {
  title: string;
  legendTitle: string;
  signed: boolean;
  layout: Layout;
  picture: Picture | null;
  marks: Marks;
}

/** The map for PNG/SVG: a title, the legend with its unit, the map with its axes, the marks listed below. */
export function mapDrawing({ title, legendTitle, signed, layout, picture, marks }: ExportParts, theme: Theme): Drawing {
  const bold = { family: theme.font, size: theme.fontSize, weight: "bold" as const };
  const small = { fill: theme.muted, family: theme.font, size: Math.min(11, theme.fontSize), baseline: "middle" as const };
  const listed = (list: [number, number][]) => list.map(([l, e]) => `L${l}E${e}`).join(", ");
  const footer = [marks.off.length ? `switched off: ${listed(marks.off)}` : "", marks.on.length ? `forced on: ${listed(marks.on)}` : ""]
    .filter(Boolean)
    .join("   ");
  const header = 46;
  const footerH = footer ? 22 : 4;
  const measure = (text: string, style: object) => measureWithCanvas(text, cssFont(style));
  const legendWidth = 300 + measure(legendTitle, small);
  const width = Math.ceil(Math.max(layout.width, measure(title, bold) + 16, legendWidth, measure(footer, small) + 16, 320));
  return {
    width,
    height: header + layout.height + footerH,
    background: theme.background,
    draw(p: Painter) {
      p.text(8, 14, title, { ...bold, fill: theme.foreground, baseline: "middle" });
      if (picture) {
        const used = drawLegend(p, 8, 34, picture.scale, theme, (v) => formatValue(v, signed));
        p.text(8 + used + 8, 34, legendTitle, small);
      }
      p.save();
      p.translate(0, header);
      if (picture) drawMap(p, { layout, ...picture });
      drawMarks(p, layout, marks, theme);
      p.restore();
      if (footer) p.text(8, header + layout.height + 10, footer, small);
    },
  };
}
