// Painting the explorer through the shared Painter (canvas on screen and for PNG, SVG on export):
// layer bands, edges between the nodes they join (edges.ts), nodes batched by colour, their marks (kept,
// pinned, ablated, verified, found), supernodes, and axes drawn in screen space (layer labels on
// the left, tokens along the bottom) so that they stay readable at any zoom. Also the scatter of
// two methods' scores, with ticks.

import type { Painter } from "../shared/painter";
import { diverging, type Theme } from "../shared/theme";
import { niceTicks, tickLabel } from "../shared/ticks";
import type { Insets, Transform } from "../shared/viewport";
import { componentOf, formatScore, type Nodes } from "./data";
import { type DrawnEdges, drawEdges, drawIncident } from "./edges";
import { ANCHOR_H, COL_W, GAP, GROUP, type Item, type Layout, ROW_H } from "./layout";

export const KEPT = 1;
export const PINNED = 2;
export const ABLATED = 4;
export const VERIFIED = 8;
export const MATCHED = 16;

/** Colour levels per sign: intensities are drawn in 2 * LEVELS + 1 colours, one fill each. */
export const LEVELS = 12;
/** Below this many CSS pixels per sub-row, layers are drawn as one cell per position (their sum). */
export const ROW_PX_MIN = 3.5;
export const INSETS: Insets = { left: 70, right: 8, top: 16, bottom: 40 };

export interface Picture {
  layout: Layout;
  items: Item[];
  intensity: Float32Array;
  flags: Uint8Array;
  score: Float64Array;
  edges: DrawnEdges;
  labels: string[];
  t: Transform;
  width: number;
  height: number;
  theme: Theme;
  /** The position a range starts at (a first click on the token axis), or -1. */
  rangeStart: number;
}

export function palette(theme: Theme): string[] {
  const scale = diverging(theme, LEVELS);
  return Array.from({ length: 2 * LEVELS + 1 }, (_, k) => scale(k - LEVELS)!);
}

/** A string cut to `width` pixels with an ellipsis. */
export function fit(p: Painter, value: string, width: number, size: number, family: string): string {
  const style = { size, family };
  if (width <= 0) return "";
  if (p.measureText(value, style) <= width) return value;
  let cut = value;
  while (cut.length > 0 && p.measureText(`${cut}…`, style) > width) cut = cut.slice(0, -1);
  return cut.length ? `${cut}…` : "";
}

/** Screen-space layer geometry. */
function screenY(t: Transform, y: number): number {
  return y * t.sy + t.ty;
}

function screenX(t: Transform, x: number): number {
  return x * t.sx + t.tx;
}

export function zoomedOut(t: Transform): boolean {
  return ROW_H * t.sy < ROW_PX_MIN;
}

function bucketOf(intensity: number): number {
  if (!Number.isFinite(intensity)) return -1;
  return Math.max(0, Math.min(2 * LEVELS, Math.round(intensity * LEVELS) + LEVELS));
}

function drawItems(p: Painter, f: Picture): void {
  const { t, items, theme, width, height } = f;
  const colours = palette(theme);
  const visible = (it: Item) => {
    const x = screenX(t, it.x);
    const y = screenY(t, it.y);
    return x + it.w * t.sx >= INSETS.left && x <= width && y + it.h * t.sy >= 0 && y <= height - INSETS.bottom;
  };
  const shown = items.map(visible);
  const rect = (path: { rect(x: number, y: number, w: number, h: number): void }, it: Item, grow = 0) =>
    path.rect(screenX(t, it.x) - grow, screenY(t, it.y) - grow, Math.max(1, it.w * t.sx) + 2 * grow, Math.max(1, it.h * t.sy) + 2 * grow);
  // fills: kept nodes opaque, pruned ones faint; non-finite scores hatched grey
  for (const kept of [false, true]) {
    for (let c = -1; c < colours.length; c++) {
      p.shapes({ fill: c < 0 ? theme.muted : colours[c], opacity: kept ? 1 : 0.3 }, (path) => {
        for (let k = 0; k < items.length; k++) {
          if (!shown[k] || items[k].kind === GROUP || (f.flags[k] & KEPT ? 1 : 0) !== (kept ? 1 : 0)) continue;
          if (bucketOf(f.intensity[k]) === c) rect(path, items[k]);
        }
      });
    }
  }
  const strokeWhere = (flag: number, style: Parameters<Painter["shapes"]>[0], grow: number) =>
    p.shapes(style, (path) => {
      for (let k = 0; k < items.length; k++) if (shown[k] && items[k].kind !== GROUP && f.flags[k] & flag) rect(path, items[k], grow);
    });
  strokeWhere(KEPT, { stroke: theme.foreground, lineWidth: 1 }, 0);
  strokeWhere(MATCHED, { stroke: "#e6a100", lineWidth: 2 }, 2);
  strokeWhere(PINNED, { stroke: theme.accent, lineWidth: 2.5 }, 1.5);
  // ablated: a cross at least 8 px tall, so that it shows on thin bars
  p.shapes({ stroke: theme.error, lineWidth: 2 }, (path) => {
    for (let k = 0; k < items.length; k++) {
      if (!shown[k] || !(f.flags[k] & ABLATED)) continue;
      const it = items[k];
      const cx = screenX(t, it.x + it.w / 2);
      const cy = screenY(t, it.y + it.h / 2);
      const hw = Math.max(4, Math.min(it.w * t.sx, 16) / 2);
      const hh = Math.max(4, (it.h * t.sy) / 2);
      path.moveTo(cx - hw, cy - hh);
      path.lineTo(cx + hw, cy + hh);
      path.moveTo(cx - hw, cy + hh);
      path.lineTo(cx + hw, cy - hh);
    }
  });
  // verified: a tick at the node's right end
  p.shapes({ stroke: theme.foreground, lineWidth: 2 }, (path) => {
    for (let k = 0; k < items.length; k++) {
      if (!shown[k] || !(f.flags[k] & VERIFIED)) continue;
      const it = items[k];
      const x = screenX(t, it.x + it.w) - 9;
      const y = screenY(t, it.y + it.h / 2);
      path.moveTo(x, y);
      path.lineTo(x + 3, y + 3);
      path.lineTo(x + 8, y - 4);
    }
  });
  // supernodes: one box each, dashed, with the group's name
  const small = Math.min(11, theme.fontSize);
  for (let k = 0; k < items.length; k++) {
    const it = items[k];
    if (it.kind !== GROUP || !shown[k]) continue;
    const x = screenX(t, it.x);
    const y = screenY(t, it.y);
    const w = Math.max(36, it.w * t.sx);
    const h = Math.max(14, it.h * t.sy);
    const fill = colours[Math.max(0, bucketOf(f.intensity[k]))];
    p.rect(x, y, w, h, { fill, stroke: f.flags[k] & PINNED ? theme.accent : theme.foreground, lineWidth: f.flags[k] & PINNED ? 2.5 : 1.5, dash: [4, 2], radius: 3 });
    p.text(x + w / 2, y + h / 2, fit(p, it.label, w - 4, small, theme.font), { fill: theme.foreground, family: theme.font, size: small, weight: "bold", align: "center", baseline: "middle" });
  }
  // scores inside nodes once there is room
  let labelled = 0;
  for (let k = 0; k < items.length && labelled < 800; k++) {
    const it = items[k];
    if (!shown[k] || it.kind === GROUP) continue;
    const w = it.w * t.sx;
    const h = it.h * t.sy;
    if (w < 40 || h < 11 || f.score[k] === 0) continue;
    labelled++;
    p.text(screenX(t, it.x) + 3, screenY(t, it.y) + h / 2, formatScore(f.score[k]), {
      fill: Math.abs(f.intensity[k]) > 0.55 ? "#ffffff" : theme.foreground,
      family: theme.font,
      size: Math.min(10, h - 2),
      baseline: "middle",
    });
  }
}

function drawAxes(p: Painter, f: Picture): void {
  const { t, layout, theme, width, height } = f;
  const font = theme.font;
  const small = Math.min(11, theme.fontSize);
  const muted = { fill: theme.muted, family: font, size: small, baseline: "middle" as const };
  // the axis panels cover whatever was drawn under them
  p.rect(0, 0, INSETS.left, height, { fill: theme.background });
  p.rect(0, height - INSETS.bottom, width, INSETS.bottom, { fill: theme.background });
  p.line(INSETS.left, 0, INSETS.left, height - INSETS.bottom, { stroke: theme.border });
  p.line(INSETS.left, height - INSETS.bottom, width, height - INSETS.bottom, { stroke: theme.border });
  // layers: a label per band with room, else every k-th; sub-row labels when rows are tall enough
  const bandPx = (l: number) => layout.layerHeight[l] * t.sy;
  const every = Math.max(1, Math.ceil(12 / Math.max(0.1, ROW_H * layout.rows.length * t.sy)));
  const rowPx = ROW_H * t.sy;
  for (let l = 0; l < layout.nLayers; l++) {
    const y = screenY(t, layout.layerTop[l] + layout.layerHeight[l] / 2);
    if (y < INSETS.top || y > height - INSETS.bottom - 4) continue;
    if (!(layout.collapsed[l] || bandPx(l) >= 12 || l % every === 0)) continue;
    const label = layout.collapsed[l] ? `L${l} ▸` : `L${l}`;
    p.text(4, y, label, { ...muted, fill: theme.foreground, weight: layout.collapsed[l] ? "bold" : "normal" });
    if (!layout.collapsed[l] && rowPx >= 9) {
      for (let r = 0; r < layout.rows.length; r++) {
        const ry = screenY(t, layout.layerTop[l] + layout.layerHeight[l] - GAP / 2 - (r + 0.5) * ROW_H);
        if (ry < INSETS.top || ry > height - INSETS.bottom - 4) continue;
        p.text(INSETS.left - 4, ry, layout.rows[r], { ...muted, size: Math.min(small - 1, rowPx - 1), align: "right" });
      }
    }
  }
  const anchors: [string, number][] = [
    ["logits", ANCHOR_H / 2],
    ["embed", layout.height - ANCHOR_H / 2],
  ];
  for (const [name, y] of anchors) {
    const sy = screenY(t, y);
    if (ANCHOR_H * t.sy >= 10 && sy > 0 && sy < height - INSETS.bottom) p.text(4, sy, name, { ...muted, size: small - 1 });
  }
  p.rect(0, 0, INSETS.left - 1, 14, { fill: theme.background });
  p.text(4, 8, "layer ↑", { ...muted, size: small - 1, weight: "bold" });
  // tokens: one label per column, cut to the column's width on screen
  const colPx = COL_W * t.sx;
  for (let c = 0; c < layout.nColumns; c++) {
    const x = screenX(t, (c + 0.5) * COL_W);
    if (x < INSETS.left - colPx / 2 || x > width + colPx / 2) continue;
    const a = layout.first[c];
    const b = layout.last[c];
    const token = a === b ? (f.labels[a] ?? "") : `${f.labels[a] ?? ""}…${f.labels[b] ?? ""}`;
    const range = a === b ? String(a) : `${a}–${b} ▸`;
    const strong = a === f.rangeStart;
    p.text(x, height - INSETS.bottom + 11, fit(p, JSON.stringify(token).slice(1, -1), colPx - 4, small, theme.monoFont), {
      fill: strong ? theme.accent : theme.foreground,
      family: theme.monoFont,
      size: small,
      align: "center",
      baseline: "middle",
    });
    p.text(x, height - INSETS.bottom + 25, fit(p, range, colPx - 2, small - 1, font), { ...muted, size: small - 1, align: "center", weight: a !== b || strong ? "bold" : "normal" });
  }
  p.text(4, height - INSETS.bottom + 11, "token", { ...muted, size: small - 1, weight: "bold" });
  p.text(4, height - INSETS.bottom + 25, "position →", { ...muted, size: small - 1 });
}

/** The whole graph view: bands, edges, nodes and marks, axes. */
export function drawGraph(p: Painter, f: Picture): void {
  const { t, layout, theme, width, height } = f;
  p.rect(0, 0, width, height, { fill: theme.background });
  const gridX0 = Math.max(INSETS.left, screenX(t, 0));
  const gridX1 = Math.min(width, screenX(t, layout.nColumns * COL_W));
  for (let l = 1; l < layout.nLayers; l += 2) {
    const y = screenY(t, layout.layerTop[l]);
    p.rect(gridX0, y, gridX1 - gridX0, layout.layerHeight[l] * t.sy, { fill: theme.surface });
  }
  drawEdges(p, f.edges, { t, theme, left: INSETS.left, top: 0, right: width, bottom: height - INSETS.bottom });
  drawItems(p, f);
  drawAxes(p, f);
}

/** The hover mark: the item outlined, its drawn edges in the accent colour (`item`: its index in
 * the scene's items, -1 for a zoomed-out cell, which has no edges of its own). */
export function drawHover(p: Painter, t: Transform, theme: Theme, it: Item | undefined, edges: DrawnEdges, item: number): void {
  if (!it) return;
  if (item >= 0) drawIncident(p, edges, t, theme, item);
  p.rect(screenX(t, it.x) - 2, screenY(t, it.y) - 2, Math.max(4, it.w * t.sx) + 4, Math.max(4, it.h * t.sy) + 4, { stroke: theme.accent, lineWidth: 2 });
}

// --- legend bar ----------------------------------------------------------------------------------

/** The colour bar of the legend: negative to positive, `width` x `height`. */
export function drawColourBar(p: Painter, theme: Theme, width: number, height: number): void {
  const colours = palette(theme);
  const w = width / colours.length;
  colours.forEach((c, k) => p.rect(k * w, 0, w + 0.5, height, { fill: c }));
  p.rect(0.5, 0.5, width - 1, height - 1, { stroke: theme.border });
}

// --- scatter -------------------------------------------------------------------------------------

export interface ScatterState {
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  nodes: Nodes;
  xLabel: string;
  yLabel: string;
  r: number;
  theme: Theme;
  size: number;
}

export const COMPONENT_COLOURS: Record<string, string> = { resid: "#7f7f7f", attn: "#1f77b4", head: "#1f77b4", mlp: "#ff7f0e" };

export function drawScatter(p: Painter, s: ScatterState): void {
  const { theme, size } = s;
  const left = 46;
  const bottom = 34;
  const top = 8;
  const right = 8;
  const inner = size - left - right;
  const innerH = size - top - bottom;
  let lim = 0;
  for (const series of [s.x, s.y]) for (let i = 0; i < series.length; i++) if (Number.isFinite(series[i])) lim = Math.max(lim, Math.abs(series[i]));
  lim = lim || 1;
  const px = (v: number) => left + ((v + lim) / (2 * lim)) * inner;
  const py = (v: number) => top + innerH - ((v + lim) / (2 * lim)) * innerH;
  const small = Math.min(10, theme.fontSize);
  const muted = { fill: theme.muted, family: theme.font, size: small };
  p.rect(left, top, inner, innerH, { stroke: theme.border, fill: null });
  const ticks = niceTicks(-lim, lim, 4);
  for (const v of ticks) {
    p.line(px(v), top + innerH, px(v), top + innerH + 4, { stroke: theme.muted });
    p.text(px(v), top + innerH + 12, tickLabel(v), { ...muted, align: "center", baseline: "middle" });
    p.line(left - 4, py(v), left, py(v), { stroke: theme.muted });
    p.text(left - 6, py(v), tickLabel(v), { ...muted, align: "right", baseline: "middle" });
  }
  p.line(px(-lim), py(-lim), px(lim), py(lim), { stroke: theme.border, dash: [3, 3] });
  p.line(px(0), top, px(0), top + innerH, { stroke: theme.border, lineWidth: 0.5 });
  p.line(left, py(0), left + inner, py(0), { stroke: theme.border, lineWidth: 0.5 });
  for (let i = 0; i < s.x.length; i++) {
    if (!Number.isFinite(s.x[i]) || !Number.isFinite(s.y[i])) continue;
    p.circle(px(s.x[i]), py(s.y[i]), 2.2, { fill: COMPONENT_COLOURS[componentOf(s.nodes, i)] ?? theme.foreground, opacity: 0.75 });
  }
  p.text(left + inner / 2, size - 6, s.xLabel, { ...muted, fill: theme.foreground, align: "center", baseline: "bottom" });
  p.text(left + 4, top + 10, `↑ ${s.yLabel}`, { ...muted, fill: theme.foreground, baseline: "middle" });
  p.text(left + 4, top + 24, `r = ${Number.isFinite(s.r) ? s.r.toFixed(3) : "–"}`, { ...muted, fill: theme.foreground, weight: "bold", baseline: "middle" });
}
