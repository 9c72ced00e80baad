// The layer x expert heatmap: layout, hit-testing, colour binning and drawing through the shared
// Painter (Canvas2D on screen and for PNG, SVG for vector export), with the marks and the hover
// drawn separately so that a mousemove repaints only a small overlay.
//
// Values are binned into `LEVELS` steps per sign (bin 0, the theme's background, is not drawn)
// and the cells go to the painter as one grid: on canvas a one-pixel-per-cell image scaled up
// (a 58 x 256 map in a few milliseconds), in SVG one path per colour bin (about 65 <path>s
// instead of 14,848 rectangles).

import type { Painter } from "../shared/painter";
import type { Scale, Theme } from "../shared/theme";

export const LEVELS = 32;

export interface Layout {
  nLayers: number;
  nExperts: number;
  /** The map's top-left corner inside the drawing (the axes take the space around it). */
  left: number;
  top: number;
  cellW: number;
  cellH: number;
  /** Gap between cells (0 when cells are too small for one). */
  gap: number;
  /** Expert-axis label every `tick` experts. */
  tick: number;
  /** Layer-axis label every `layerTick` layers. */
  layerTick: number;
  width: number;
  height: number;
}

export interface LayoutOptions {
  /** Largest map height in CSS pixels before rows get thinner than the cells are wide. */
  maxMapHeight?: number;
  fontSize?: number;
}

const TICKS = [1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 256, 512, 1000];

/** The axis titles: decoder layers down the side, experts across the top. */
export const AXIS = { layer: "layer", expert: "expert" };

/** Where every cell goes when the map (with its axes) is drawn at most `width` CSS pixels wide. */
export function layoutHeatmap(nLayers: number, nExperts: number, width: number, options: LayoutOptions = {}): Layout {
  if (!(nLayers > 0 && nExperts > 0)) throw new Error(`a heatmap needs at least one layer and one expert (got ${nLayers} x ${nExperts})`);
  const fontSize = options.fontSize ?? 11;
  const maxMapHeight = options.maxMapHeight ?? 480;
  const digit = fontSize * 0.62;
  // room for "L57" and for the axis title "layer" above that column
  const left = Math.ceil(digit * Math.max(String(nLayers - 1).length + 2, AXIS.layer.length + 3) + 10);
  const top = Math.ceil(2 * fontSize + 12); // the axis title "expert", then the expert numbers
  const right = 8;
  const cellW = Math.max(1, Math.min(28, Math.floor((width - left - right) / nExperts)));
  const cellH = Math.max(4, Math.min(28, Math.max(cellW, Math.floor(maxMapHeight / nLayers))));
  const labelW = digit * String(nExperts - 1).length + 6;
  const tick = TICKS.find((t) => t * cellW >= labelW) ?? nExperts;
  const layerTick = TICKS.find((t) => t * cellH >= fontSize + 1) ?? nLayers;
  return {
    nLayers,
    nExperts,
    left,
    top,
    cellW,
    cellH,
    gap: cellW >= 10 && cellH >= 10 ? 1 : 0,
    tick,
    layerTick,
    width: left + nExperts * cellW + right,
    height: top + nLayers * cellH + 4,
  };
}

export interface Cell {
  layer: number;
  expert: number;
}

/** The cell under the point (x, y) in the drawing's CSS pixels, or null outside the map. */
export function cellAt(layout: Layout, x: number, y: number): Cell | null {
  const cx = x - layout.left;
  const cy = y - layout.top;
  if (cx < 0 || cy < 0) return null;
  const expert = Math.floor(cx / layout.cellW);
  const layer = Math.floor(cy / layout.cellH);
  if (expert >= layout.nExperts || layer >= layout.nLayers) return null;
  return { layer, expert };
}

/** The box of a cell: x, y, width, height in the drawing's CSS pixels. */
export function cellBox(layout: Layout, layer: number, expert: number): [number, number, number, number] {
  return [layout.left + expert * layout.cellW, layout.top + layer * layout.cellH, layout.cellW, layout.cellH];
}

// --- colours ---------------------------------------------------------------------------------

/**
 * The bin of `value` under `scale`: an integer in -LEVELS..LEVELS (0 at zero), or null for NaN.
 * Values beyond the scale's domain are clamped to its ends.
 */
export function binOf(scale: Scale, value: number, levels = LEVELS): number | null {
  if (!Number.isFinite(value)) return null;
  const [lo, hi] = scale.domain;
  const extent = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const v = Math.min(hi, Math.max(lo, value));
  return Math.round((v / extent) * levels);
}

/** The colour of every bin of `scale`, indexed by bin + levels. */
export function binColours(scale: Scale, levels = LEVELS): string[] {
  const extent = Math.max(Math.abs(scale.domain[0]), Math.abs(scale.domain[1])) || 1;
  return Array.from({ length: 2 * levels + 1 }, (_, i) => scale(((i - levels) / levels) * extent) ?? "");
}

/**
 * Every cell's colour as an index into `binColours(scale)` (bin + levels), or -1 where nothing
 * is drawn: NaN (dense layers) and bin 0 (the background).
 */
export function binIndex(values: ArrayLike<number>, scale: Scale, levels = LEVELS): Int16Array {
  const [lo, hi] = scale.domain;
  const extent = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const out = new Int16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = -1;
      continue;
    }
    const bin = Math.round(((v < lo ? lo : v > hi ? hi : v) / extent) * levels); // as binOf
    out[i] = bin === 0 ? -1 : bin + levels;
  }
  return out;
}

const px = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

// --- drawing ---------------------------------------------------------------------------------

export interface MapDrawing {
  layout: Layout;
  values: ArrayLike<number>; // [nLayers * nExperts], row-major
  dense: boolean[]; // per layer: true when the layer has no router
  scale: Scale;
  theme: Theme;
}

/** Diagonal hatch lines inside a box, as one path (for dense layers). */
export function hatch(x: number, y: number, w: number, h: number, step = 6): string {
  const segments: string[] = [];
  for (let c = step; c < w + h; c += step) {
    // the line x' + y' = c (box coordinates), clipped to the box
    const x1 = Math.max(0, c - h);
    const x2 = Math.min(w, c);
    if (x2 <= x1) continue;
    segments.push(`M${px(x + x1)} ${px(y + (c - x1))}L${px(x + x2)} ${px(y + (c - x2))}`);
  }
  return segments.join("");
}

/** The map, its dense rows and its axes (no marks, no hover). */
export function drawMap(p: Painter, d: MapDrawing): void {
  const { layout, theme } = d;
  const { left, top, cellW, cellH, nLayers, nExperts } = layout;
  const mapW = nExperts * cellW;
  const fontSize = Math.min(11, theme.fontSize);
  const label = { fill: theme.muted, family: theme.font, size: fontSize };

  p.cells({
    x: left,
    y: top,
    cellW,
    cellH,
    rows: nLayers,
    cols: nExperts,
    gap: layout.gap,
    index: binIndex(d.values, d.scale),
    palette: binColours(d.scale),
  });

  for (let layer = 0; layer < nLayers; layer++) {
    if (!d.dense[layer]) continue;
    const y = top + layer * cellH;
    p.rect(left, y, mapW, cellH, { fill: theme.surface });
    p.path(hatch(left, y, mapW, cellH), { stroke: theme.border, lineWidth: 0.75 });
    if (cellH >= 9) {
      p.text(left + mapW / 2, y + cellH / 2, "dense layer (no router)", { ...label, size: Math.min(fontSize, cellH - 2), align: "center", baseline: "middle" });
    }
  }
  p.rect(left - 0.5, top - 0.5, mapW + 1, nLayers * cellH + 1, { stroke: theme.border, lineWidth: 1 });

  for (let layer = 0; layer < nLayers; layer += layout.layerTick) {
    p.text(left - 5, top + layer * cellH + cellH / 2, `L${layer}`, { ...label, align: "right", baseline: "middle" });
  }
  for (let e = 0; e < nExperts; e += layout.tick) {
    p.text(left + e * cellW + cellW / 2, top - 4, String(e), { ...label, align: "center", baseline: "bottom" });
  }
  const title = { ...label, fill: theme.foreground, weight: "bold" as const, baseline: "bottom" as const };
  p.text(left + mapW / 2, top - fontSize - 8, `${AXIS.expert} →`, { ...title, align: "center" });
  p.text(left - 5, top - 4, `${AXIS.layer} ↓`, { ...title, align: "right" });
}

export interface Marks {
  off: [number, number][];
  on: [number, number][];
}

/** The colours of the marks: "off" in the theme's text colour (neither end of the diverging
 * palette), "on" in green; each drawn over a halo of the background so it shows on any cell. */
export function markColours(theme: Theme): { off: string; on: string; halo: string } {
  return { off: theme.foreground, on: theme.dark ? "#69f0ae" : "#1b5e20", halo: theme.background };
}

/** Switched-off experts: the cell outlined and crossed; forced-on experts: outlined with a ring. */
export function drawMarks(p: Painter, layout: Layout, marks: Marks, theme: Theme): void {
  const colours = markColours(theme);
  const outline = (x: number, y: number, w: number, h: number, colour: string) => {
    p.rect(x - 1, y - 1, w + 2, h + 2, { stroke: colours.halo, lineWidth: 4 });
    p.rect(x - 1, y - 1, w + 2, h + 2, { stroke: colour, lineWidth: 2 });
  };
  for (const [layer, expert] of marks.off) {
    if (layer >= layout.nLayers || expert >= layout.nExperts) continue;
    const [x, y, w, h] = cellBox(layout, layer, expert);
    outline(x, y, w, h, colours.off);
    if (w >= 6 && h >= 6) {
      const cross = `M${px(x + 3)} ${px(y + 3)}L${px(x + w - 3)} ${px(y + h - 3)}M${px(x + w - 3)} ${px(y + 3)}L${px(x + 3)} ${px(y + h - 3)}`;
      p.path(cross, { stroke: colours.halo, lineWidth: 3.5 });
      p.path(cross, { stroke: colours.off, lineWidth: 1.5 });
    }
  }
  for (const [layer, expert] of marks.on) {
    if (layer >= layout.nLayers || expert >= layout.nExperts) continue;
    const [x, y, w, h] = cellBox(layout, layer, expert);
    outline(x, y, w, h, colours.on);
    const r = Math.min(w, h) / 2 - 3;
    if (r >= 2) {
      p.circle(x + w / 2, y + h / 2, r, { stroke: colours.halo, lineWidth: 3.5 });
      p.circle(x + w / 2, y + h / 2, r, { stroke: colours.on, lineWidth: 1.5 });
    }
  }
}

/** The experts one token selected: a dot in each cell. */
export function drawTokenExperts(p: Painter, layout: Layout, cells: Cell[], theme: Theme): void {
  for (const { layer, expert } of cells) {
    const [x, y, w, h] = cellBox(layout, layer, expert);
    const r = Math.max(1.5, Math.min(w, h) / 4);
    p.circle(x + w / 2, y + h / 2, r, { fill: theme.foreground, stroke: theme.background, lineWidth: 1 });
  }
}

/** The hovered cell: its row and column faintly, the cell outlined. */
export function drawHover(p: Painter, layout: Layout, cell: Cell, theme: Theme): void {
  const [x, y, w, h] = cellBox(layout, cell.layer, cell.expert);
  const band = { fill: theme.foreground, opacity: 0.07 };
  p.rect(layout.left, y, layout.nExperts * layout.cellW, h, band);
  p.rect(x, layout.top, w, layout.nLayers * layout.cellH, band);
  p.rect(x - 0.5, y - 0.5, w + 1, h + 1, { stroke: theme.foreground, lineWidth: 1.5 });
}

/** A horizontal colour legend: low label, the bar, high label; returns the width it took. */
export function drawLegend(p: Painter, x: number, y: number, scale: Scale, theme: Theme, format: (v: number) => string): number {
  const style = { fill: theme.muted, family: theme.font, size: Math.min(11, theme.fontSize), baseline: "middle" as const };
  const [lo, hi] = scale.domain;
  const loText = format(lo);
  const hiText = format(hi);
  let cx = x;
  p.text(cx, y, loText, style);
  cx += p.measureText(loText, style) + 4;
  const stops = scale.stops(33);
  const step = 4;
  stops.forEach((colour, k) => p.rect(cx + k * step, y - 5, step, 10, { fill: colour }));
  p.rect(cx - 0.5, y - 5.5, stops.length * step + 1, 11, { stroke: theme.border, lineWidth: 1 });
  cx += stops.length * step + 4;
  p.text(cx, y, hiText, style);
  return cx + p.measureText(hiText, style) - x;
}
