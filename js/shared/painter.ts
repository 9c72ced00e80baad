// A tiny drawing interface with two backends: Canvas2D for the screen and PNG export, an SVG
// string builder for vector export. A view draws once through `Painter`; both exports are real.

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

export interface Painter {
  rect(x: number, y: number, w: number, h: number, style: ShapeStyle & { radius?: number }): void;
  line(x1: number, y1: number, x2: number, y2: number, style: ShapeStyle): void;
  circle(cx: number, cy: number, r: number, style: ShapeStyle): void;
  /** An SVG path string (`M0 0 L10 10 Z`), drawn with Path2D on canvas. */
  path(d: string, style: ShapeStyle): void;
  text(x: number, y: number, value: string, style: TextStyle): void;
  /** The width `value` takes in `style`'s font. */
  measureText(value: string, style: Omit<TextStyle, "fill">): number;
  /** Move the origin for everything drawn until the matching `restore`. */
  save(): void;
  translate(dx: number, dy: number): void;
  restore(): void;
}

export type Measure = (value: string, font: string) => number;

const DEFAULT_FAMILY = "system-ui, sans-serif";

export function cssFont(style: Omit<TextStyle, "fill">): string {
  return `${style.weight ?? "normal"} ${style.size ?? 12}px ${style.family ?? DEFAULT_FAMILY}`;
}

let measureContext: CanvasRenderingContext2D | null | undefined;

/** Text width from an offscreen canvas; a width estimate where no canvas exists (jsdom). */
export const measureWithCanvas: Measure = (value, font) => {
  if (measureContext === undefined) {
    const isJsdom = typeof navigator !== "undefined" && /jsdom/i.test(navigator.userAgent);
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
    ctx.fillText(value, x, y);
    ctx.restore();
  }

  measureText(value: string, style: Omit<TextStyle, "fill">): number {
    return this.measure(value, cssFont(style));
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

export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
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
    this.parts.push(`<text ${a.join(" ")}>${escapeXml(value)}</text>`);
  }

  measureText(value: string, style: Omit<TextStyle, "fill">): number {
    return this.measure(value, cssFont(style));
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
