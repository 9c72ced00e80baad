// A tiny drawing interface with two backends: Canvas2D for the screen and PNG export, an SVG
// string builder for vector export. A view draws once through `Painter`; both exports are real.
// Text goes through `visible` (./text.ts): a control character, a bidirectional override or a
// lone surrogate is drawn as a mark, the same on screen, in PNG and in SVG (where XML could not
// hold it at all).

import { isJsdom } from "./dom";
import { markOf, visible } from "./text";
import { parseColor } from "./theme";

export interface ShapeStyle {
  fill?: string | null;
  stroke?: string | null;
  lineWidth?: number;
  dash?: number[];
  opacity?: number;
}

export interface TextStyle {
  fill: string;
  family?: string;
  size?: number;
  weight?: "normal" | "bold";
  align?: "left" | "center" | "right";
  baseline?: "top" | "middle" | "alphabetic" | "bottom";
}

/**
 * A grid of equal cells (a heatmap), each coloured by an index into `palette` (-1: no cell).
 * Drawn as one image on canvas (thousands of cells in a millisecond or two) and as one path per
 * palette colour in SVG.
 */
export interface CellGrid {
  x: number;
  y: number;
  cellW: number;
  cellH: number;
  rows: number;
  cols: number;
  /** Space left between neighbouring cells (default 0: cells touch). */
  gap?: number;
  /** Row-major, `rows * cols` entries. */
  index: ArrayLike<number>;
  palette: string[];
}

/** The outline of many shapes drawn as one path (one fill or stroke for all of them). */
export interface PathBuilder {
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
  bezierCurveTo(c1x: number, c1y: number, c2x: number, c2y: number, x: number, y: number): void;
  rect(x: number, y: number, w: number, h: number): void;
  closePath(): void;
}

export interface Painter {
  /** Many shapes in one path, filled and/or stroked once: thousands of nodes or edges per call. */
  shapes(style: ShapeStyle, build: (b: PathBuilder) => void): void;
  rect(x: number, y: number, w: number, h: number, style: ShapeStyle & { radius?: number }): void;
  line(x1: number, y1: number, x2: number, y2: number, style: ShapeStyle): void;
  circle(cx: number, cy: number, r: number, style: ShapeStyle): void;
  /** An SVG path string (`M0 0 L10 10 Z`), drawn with Path2D on canvas. */
  path(d: string, style: ShapeStyle): void;
  text(x: number, y: number, value: string, style: TextStyle): void;
  cells(grid: CellGrid): void;
  /** An RGBA image of `cols` x `rows` pixels (row-major, 4 bytes each) drawn over (x, y, w, h). */
  bitmap(x: number, y: number, w: number, h: number, rgba: Uint8ClampedArray, cols: number, rows: number): void;
  /** The width `value` takes in `style`'s font. */
  measureText(value: string, style: Omit<TextStyle, "fill">): number;
  /** Move the origin for everything drawn until the matching `restore`. */
  save(): void;
  translate(dx: number, dy: number): void;
  restore(): void;
}

export type Measure = (value: string, font: string) => number;

const DEFAULT_FAMILY = "system-ui, sans-serif";

const fixed = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/**
 * The cells of `grid` as SVG path data, one string per palette index that occurs: a rectangle
 * `M x y h w v h h -w z` per cell, or per run of neighbouring same-colour cells of a row when the
 * cells touch (no gap).
 */
export function gridPaths(grid: CellGrid): Map<number, string> {
  const { x, y, cellW, cellH, rows, cols, index } = grid;
  const gap = grid.gap ?? 0;
  const h = fixed(cellH - gap);
  const parts = new Map<number, string[]>();
  const add = (k: number, left: number, top: number, width: number) => {
    let list = parts.get(k);
    if (!list) parts.set(k, (list = []));
    list.push(`M${fixed(left)} ${fixed(top)}h${fixed(width)}v${h}h${fixed(-width)}z`);
  };
  for (let r = 0; r < rows; r++) {
    const top = y + r * cellH;
    let run = -1;
    let start = 0;
    for (let c = 0; c <= cols; c++) {
      const k = c < cols ? index[r * cols + c] : -1;
      if (gap > 0) {
        if (k >= 0) add(k, x + c * cellW, top, cellW - gap);
        continue;
      }
      if (k === run) continue;
      if (run >= 0) add(run, x + start * cellW, top, (c - start) * cellW);
      run = k;
      start = c;
    }
  }
  return new Map([...parts].map(([k, list]) => [k, list.join("")]));
}

export function cssFont(style: Omit<TextStyle, "fill">): string {
  return `${style.weight ?? "normal"} ${style.size ?? 12}px ${style.family ?? DEFAULT_FAMILY}`;
}

let measureContext: CanvasRenderingContext2D | null | undefined;

/** Text width from an offscreen canvas; a width estimate where no canvas exists (jsdom). */
export const measureWithCanvas: Measure = (value, font) => {
  if (measureContext === undefined) {
    measureContext = isJsdom || typeof document === "undefined" ? null : document.createElement("canvas").getContext("2d");
  }
  if (!measureContext) {
    const size = parseFloat(/(\d+(?:\.\d+)?)px/.exec(font)?.[1] ?? "12");
    return value.length * size * 0.6;
  }
  measureContext.font = font;
  return measureContext.measureText(value).width;
};

// --- Canvas2D ----------------------------------------------------------------------------------

/** A canvas holding an RGBA image (null where there is no canvas, e.g. jsdom). */
function bitmapCanvas(rgba: Uint8ClampedArray, cols: number, rows: number): HTMLCanvasElement | null {
  if (isJsdom || typeof document === "undefined" || cols < 1 || rows < 1) return null;
  const tile = document.createElement("canvas");
  tile.width = cols;
  tile.height = rows;
  const ctx = tile.getContext("2d");
  if (!ctx) return null;
  ctx.putImageData(new ImageData(rgba as Uint8ClampedArray<ArrayBuffer>, cols, rows), 0, 0);
  return tile;
}

export class CanvasPainter implements Painter {
  constructor(
    private readonly ctx: CanvasRenderingContext2D,
    private readonly measure: Measure = measureWithCanvas,
  ) {}

  private paint(style: ShapeStyle, trace: () => void, path?: Path2D): void {
    const ctx = this.ctx;
    ctx.save();
    if (style.opacity !== undefined) ctx.globalAlpha = style.opacity;
    if (!path) {
      ctx.beginPath();
      trace();
    }
    if (style.fill) {
      ctx.fillStyle = style.fill;
      if (path) ctx.fill(path);
      else ctx.fill();
    }
    if (style.stroke) {
      ctx.strokeStyle = style.stroke;
      ctx.lineWidth = style.lineWidth ?? 1;
      ctx.setLineDash(style.dash ?? []);
      if (path) ctx.stroke(path);
      else ctx.stroke();
    }
    ctx.restore();
  }

  shapes(style: ShapeStyle, build: (b: PathBuilder) => void): void {
    this.paint(style, () => build(this.ctx));
  }

  rect(x: number, y: number, w: number, h: number, style: ShapeStyle & { radius?: number }): void {
    this.paint(style, () => {
      if (style.radius && typeof this.ctx.roundRect === "function") this.ctx.roundRect(x, y, w, h, style.radius);
      else this.ctx.rect(x, y, w, h);
    });
  }

  line(x1: number, y1: number, x2: number, y2: number, style: ShapeStyle): void {
    this.paint({ ...style, fill: null }, () => {
      this.ctx.moveTo(x1, y1);
      this.ctx.lineTo(x2, y2);
    });
  }

  circle(cx: number, cy: number, r: number, style: ShapeStyle): void {
    this.paint(style, () => this.ctx.arc(cx, cy, r, 0, 2 * Math.PI));
  }

  path(d: string, style: ShapeStyle): void {
    this.paint(style, () => undefined, new Path2D(d));
  }

  text(x: number, y: number, value: string, style: TextStyle): void {
    const ctx = this.ctx;
    ctx.save();
    ctx.font = cssFont(style);
    ctx.fillStyle = style.fill;
    ctx.textAlign = style.align ?? "left";
    ctx.textBaseline = style.baseline ?? "alphabetic";
    ctx.fillText(visible(value), x, y);
    ctx.restore();
  }

  /** Touching cells: one pixel per cell in an image, scaled up without smoothing; with gaps: rectangles. */
  cells(grid: CellGrid): void {
    const { x, y, cellW, cellH, rows, cols, index, palette } = grid;
    const gap = grid.gap ?? 0;
    const ctx = this.ctx;
    if (rows < 1 || cols < 1) return;
    if (gap > 0) {
      let current = -1;
      for (let i = 0; i < rows * cols; i++) {
        const k = index[i];
        if (k < 0) continue;
        if (k !== current) ctx.fillStyle = palette[(current = k)];
        ctx.fillRect(x + (i % cols) * cellW, y + Math.floor(i / cols) * cellH, cellW - gap, cellH - gap);
      }
      return;
    }
    // RGBA as one little-endian 32-bit word per pixel (ImageData's byte order r, g, b, a)
    const words = Uint32Array.from(palette, (c) => {
      const [r, g, b] = parseColor(c) ?? [0, 0, 0];
      return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
    });
    const rgba = new Uint8ClampedArray(rows * cols * 4);
    const pixels = new Uint32Array(rgba.buffer);
    for (let i = 0; i < rows * cols; i++) {
      const k = index[i];
      if (k >= 0) pixels[i] = words[k];
    }
    const tile = bitmapCanvas(rgba, cols, rows);
    if (!tile) return;
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, x, y, cols * cellW, rows * cellH);
    ctx.restore();
  }

  bitmap(x: number, y: number, w: number, h: number, rgba: Uint8ClampedArray, cols: number, rows: number): void {
    const tile = bitmapCanvas(rgba, cols, rows);
    if (!tile) return;
    this.ctx.save();
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(tile, x, y, w, h);
    this.ctx.restore();
  }

  measureText(value: string, style: Omit<TextStyle, "fill">): number {
    return this.measure(visible(value), cssFont(style));
  }

  save(): void {
    this.ctx.save();
  }

  translate(dx: number, dy: number): void {
    this.ctx.translate(dx, dy);
  }

  restore(): void {
    this.ctx.restore();
  }
}

// --- SVG -------------------------------------------------------------------------------------------

/** Characters XML 1.0 cannot hold: C0 controls but tab and line ends, lone surrogates, U+FFFE/FFFF. */
const NOT_XML = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const XML_SPECIALS: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `value` as XML text or attribute: the five specials escaped, characters XML cannot hold as marks. */
export function escapeXml(value: string): string {
  return value.replace(NOT_XML, (c) => markOf(c) ?? "\ufffd").replace(/[&<>"']/g, (c) => XML_SPECIALS[c]);
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, ""));

const ANCHOR = { left: "start", center: "middle", right: "end" } as const;
const BASELINE = { top: "text-before-edge", middle: "central", alphabetic: "alphabetic", bottom: "text-after-edge" } as const;

export class SvgPainter implements Painter {
  private readonly parts: string[] = [];
  private depth = 0;
  private readonly opened: number[] = [];

  constructor(private readonly measure: Measure = measureWithCanvas) {}

  private attrs(style: ShapeStyle): string {
    const a: string[] = [];
    a.push(`fill="${style.fill ? escapeXml(style.fill) : "none"}"`);
    if (style.stroke) {
      a.push(`stroke="${escapeXml(style.stroke)}"`, `stroke-width="${num(style.lineWidth ?? 1)}"`);
      if (style.dash?.length) a.push(`stroke-dasharray="${style.dash.map(num).join(" ")}"`);
    }
    if (style.opacity !== undefined) a.push(`opacity="${num(style.opacity)}"`);
    return a.join(" ");
  }

  shapes(style: ShapeStyle, build: (b: PathBuilder) => void): void {
    const d: string[] = [];
    build({
      moveTo: (x, y) => d.push(`M${num(x)} ${num(y)}`),
      lineTo: (x, y) => d.push(`L${num(x)} ${num(y)}`),
      bezierCurveTo: (a, b, c, e, x, y) => d.push(`C${num(a)} ${num(b)} ${num(c)} ${num(e)} ${num(x)} ${num(y)}`),
      rect: (x, y, w, h) => d.push(`M${num(x)} ${num(y)}h${num(w)}v${num(h)}h${num(-w)}z`),
      closePath: () => d.push("Z"),
    });
    if (d.length) this.path(d.join(""), style);
  }

  rect(x: number, y: number, w: number, h: number, style: ShapeStyle & { radius?: number }): void {
    const r = style.radius ? ` rx="${num(style.radius)}"` : "";
    this.parts.push(`<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}"${r} ${this.attrs(style)}/>`);
  }

  line(x1: number, y1: number, x2: number, y2: number, style: ShapeStyle): void {
    this.parts.push(
      `<line x1="${num(x1)}" y1="${num(y1)}" x2="${num(x2)}" y2="${num(y2)}" ${this.attrs({ ...style, fill: null })}/>`,
    );
  }

  circle(cx: number, cy: number, r: number, style: ShapeStyle): void {
    this.parts.push(`<circle cx="${num(cx)}" cy="${num(cy)}" r="${num(r)}" ${this.attrs(style)}/>`);
  }

  path(d: string, style: ShapeStyle): void {
    this.parts.push(`<path d="${escapeXml(d)}" ${this.attrs(style)}/>`);
  }

  text(x: number, y: number, value: string, style: TextStyle): void {
    const a = [
      `x="${num(x)}"`,
      `y="${num(y)}"`,
      `fill="${escapeXml(style.fill)}"`,
      `font-family="${escapeXml(style.family ?? DEFAULT_FAMILY)}"`,
      `font-size="${num(style.size ?? 12)}"`,
      `text-anchor="${ANCHOR[style.align ?? "left"]}"`,
      `dominant-baseline="${BASELINE[style.baseline ?? "alphabetic"]}"`,
      `xml:space="preserve"`,
    ];
    if (style.weight === "bold") a.push(`font-weight="bold"`);
    this.parts.push(`<text ${a.join(" ")}>${escapeXml(visible(value))}</text>`);
  }

  cells(grid: CellGrid): void {
    for (const [k, d] of gridPaths(grid)) this.path(d, { fill: grid.palette[k] });
  }

  bitmap(x: number, y: number, w: number, h: number, rgba: Uint8ClampedArray, cols: number, rows: number): void {
    const tile = bitmapCanvas(rgba, cols, rows);
    if (!tile) return;
    const href = tile.toDataURL("image/png");
    this.parts.push(`<image x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" preserveAspectRatio="none" href="${escapeXml(href)}"/>`);
  }

  measureText(value: string, style: Omit<TextStyle, "fill">): number {
    return this.measure(visible(value), cssFont(style));
  }

  save(): void {
    this.opened.push(0);
  }

  translate(dx: number, dy: number): void {
    this.parts.push(`<g transform="translate(${num(dx)} ${num(dy)})">`);
    this.depth++;
    if (this.opened.length) this.opened[this.opened.length - 1]++;
  }

  restore(): void {
    const groups = this.opened.pop() ?? 0;
    for (let i = 0; i < groups; i++) this.parts.push("</g>");
    this.depth -= groups;
  }

  /** The finished document; any group left open is closed. */
  toString(width: number, height: number, background?: string): string {
    const bg = background ? `<rect width="100%" height="100%" fill="${escapeXml(background)}"/>` : "";
    const close = "</g>".repeat(this.depth);
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" ` +
      `viewBox="0 0 ${num(width)} ${num(height)}">${bg}${this.parts.join("")}${close}</svg>`
    );
  }
}
