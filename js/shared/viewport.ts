// A pannable, zoomable drawing surface for any widget: two stacked canvases (a base layer and a
// cheap overlay for hover marks) at the device pixel ratio, drag to pan, wheel to zoom around the
// pointer, clicks told apart from drags, redraws batched per animation frame.
//
// The transform maps drawing coordinates to CSS pixels of the canvas, with separate x and y
// scales (a graph of 30 layers and 16 positions fits a wide, short view): screen = d * s + t.

import { h, isJsdom } from "./dom";

export interface Transform {
  sx: number;
  sy: number;
  tx: number;
  ty: number;
}

export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Space kept free around the drawing when fitting (e.g. for axes drawn in screen space). */
export interface Insets {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export interface PointerInfo {
  /** Drawing coordinates. */
  x: number;
  y: number;
  /** CSS pixels inside the canvas. */
  sx: number;
  sy: number;
  event: PointerEvent | MouseEvent;
}

export interface ViewportOptions {
  className?: string;
  /** Paint the base layer; `ctx` is scaled for the device pixel ratio only (CSS pixels). */
  draw(ctx: CanvasRenderingContext2D, t: Transform): void;
  /** Paint the overlay (hover marks), cleared before each call. */
  drawOverlay?(ctx: CanvasRenderingContext2D, t: Transform): void;
  onHover?(p: PointerInfo): void;
  onLeave?(): void;
  onClick?(p: PointerInfo): void;
  /** After the user pans or zooms (not after setTransform / fit). */
  onUserMove?(t: Transform): void;
  /** Allowed scales per axis, given the current size (default: anything positive). */
  limits?(): { sx: [number, number]; sy: [number, number] };
  /** Which axes a wheel event zooms (default: both). */
  wheelAxes?(event: WheelEvent): { x: boolean; y: boolean };
}

export interface Viewport {
  el: HTMLDivElement;
  base: HTMLCanvasElement;
  overlay: HTMLCanvasElement;
  readonly width: number;
  readonly height: number;
  readonly transform: Transform;
  /** Milliseconds the last base-layer paint took. */
  readonly lastDrawMs: number;
  resize(width: number, height: number): void;
  setTransform(t: Transform): void;
  /** Show `rect` (drawing coordinates) inside the canvas minus `insets`. */
  fit(rect: Rect, insets?: Insets): void;
  /** The drawing rectangle in view (inside `insets`). */
  visible(insets?: Insets): Rect;
  toDrawing(clientX: number, clientY: number): [number, number];
  toClient(x: number, y: number): [number, number];
  redraw(): void;
  redrawOverlay(): void;
  /** Paint now (not on the next frame); returns the milliseconds it took. */
  paintNow(): number;
  dispose(): void;
}

const NO_INSETS: Insets = { left: 0, right: 0, top: 0, bottom: 0 };
const DRAG_THRESHOLD = 3;

function clamp(v: number, [lo, hi]: [number, number]): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Zoom by `factor` around the CSS point (px, py) along `axes`, each scale clamped to its limits. */
export function zoomAround(
  t: Transform,
  factor: number,
  px: number,
  py: number,
  limits?: { sx: [number, number]; sy: [number, number] },
  axes: { x: boolean; y: boolean } = { x: true, y: true },
): Transform {
  const fx = axes.x ? factor : 1;
  const fy = axes.y ? factor : 1;
  const sx = limits ? clamp(t.sx * fx, limits.sx) : t.sx * fx;
  const sy = limits ? clamp(t.sy * fy, limits.sy) : t.sy * fy;
  return { sx, sy, tx: px - ((px - t.tx) * sx) / t.sx, ty: py - ((py - t.ty) * sy) / t.sy };
}

/** The transform showing `rect` in a `width` x `height` canvas minus `insets`. */
export function fitTransform(rect: Rect, width: number, height: number, insets: Insets = NO_INSETS): Transform {
  const w = Math.max(1, width - insets.left - insets.right);
  const hgt = Math.max(1, height - insets.top - insets.bottom);
  const sx = w / Math.max(1e-9, rect.x1 - rect.x0);
  const sy = hgt / Math.max(1e-9, rect.y1 - rect.y0);
  return { sx, sy, tx: insets.left - rect.x0 * sx, ty: insets.top - rect.y0 * sy };
}

export function createViewport(o: ViewportOptions): Viewport {
  const base = h("canvas", { class: "il-viewport-base" });
  const overlay = h("canvas", { class: "il-viewport-overlay" });
  const el = h("div", { class: `il-viewport ${o.className ?? ""}`.trim() }, base, overlay);
  let width = 1;
  let height = 1;
  let t: Transform = { sx: 1, sy: 1, tx: 0, ty: 0 };
  let frame = 0;
  let baseDirty = false;
  let lastDrawMs = 0;

  const dpr = () => (typeof window !== "undefined" && window.devicePixelRatio) || 1;

  function context(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
    if (isJsdom) return null;
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(dpr(), 0, 0, dpr(), 0, 0);
    return ctx;
  }

  function publish(): void {
    for (const [k, v] of Object.entries({ sx: t.sx, sy: t.sy, tx: t.tx, ty: t.ty })) overlay.setAttribute(`data-${k}`, String(v));
  }

  function paintBase(): number {
    const started = performance.now();
    const ctx = context(base);
    if (ctx) o.draw(ctx, t);
    lastDrawMs = performance.now() - started;
    el.setAttribute("data-draw-ms", lastDrawMs.toFixed(2));
    return lastDrawMs;
  }

  function paintOverlay(): void {
    const ctx = context(overlay);
    if (ctx && o.drawOverlay) o.drawOverlay(ctx, t);
  }

  function schedule(baseToo: boolean): void {
    baseDirty = baseDirty || baseToo;
    if (frame) return;
    const run = () => {
      frame = 0;
      if (baseDirty) paintBase();
      baseDirty = false;
      paintOverlay();
    };
    if (typeof requestAnimationFrame === "function" && !isJsdom) frame = requestAnimationFrame(run);
    else run();
  }

  function setTransform(next: Transform): void {
    t = { ...next };
    publish();
    schedule(true);
  }

  function info(event: PointerEvent | MouseEvent): PointerInfo {
    const r = overlay.getBoundingClientRect();
    const sx = event.clientX - r.left;
    const sy = event.clientY - r.top;
    return { x: (sx - t.tx) / t.sx, y: (sy - t.ty) / t.sy, sx, sy, event };
  }

  let drag: { x: number; y: number; t: Transform; moved: boolean; id: number } | null = null;

  /** Keep receiving the drag outside the canvas (a synthetic or finished pointer has none to capture). */
  function capture(id: number, on: boolean): void {
    try {
      if (on) overlay.setPointerCapture?.(id);
      else overlay.releasePointerCapture?.(id);
    } catch {
      // no active pointer with this id
    }
  }

  function onDown(event: PointerEvent): void {
    if (event.button !== 0) return;
    drag = { x: event.clientX, y: event.clientY, t: { ...t }, moved: false, id: event.pointerId };
  }

  function onMove(event: PointerEvent): void {
    if (drag && event.buttons & 1) {
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > DRAG_THRESHOLD) {
        drag.moved = true;
        capture(drag.id, true);
      }
      if (drag.moved) {
        setTransform({ ...drag.t, tx: drag.t.tx + dx, ty: drag.t.ty + dy });
        o.onUserMove?.(t);
        return;
      }
    }
    o.onHover?.(info(event));
  }

  function onUp(event: PointerEvent): void {
    const wasDrag = drag?.moved;
    if (drag?.moved) capture(drag.id, false);
    drag = null;
    if (!wasDrag && event.button === 0) o.onClick?.(info(event));
  }

  function onWheel(event: WheelEvent): void {
    event.preventDefault();
    const p = info(event);
    const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
    setTransform(zoomAround(t, factor, p.sx, p.sy, o.limits?.(), o.wheelAxes?.(event)));
    o.onUserMove?.(t);
    o.onHover?.(p);
  }

  const onLeave = () => {
    if (!drag) o.onLeave?.();
  };

  overlay.addEventListener("pointerdown", onDown);
  overlay.addEventListener("pointermove", onMove);
  overlay.addEventListener("pointerup", onUp);
  overlay.addEventListener("pointerleave", onLeave);
  overlay.addEventListener("wheel", onWheel, { passive: false });

  return {
    el,
    base,
    overlay,
    get width() {
      return width;
    },
    get height() {
      return height;
    },
    get transform() {
      return { ...t };
    },
    get lastDrawMs() {
      return lastDrawMs;
    },
    resize(w, hgt) {
      width = Math.max(1, Math.round(w));
      height = Math.max(1, Math.round(hgt));
      const ratio = dpr();
      for (const canvas of [base, overlay]) {
        canvas.width = Math.max(1, Math.round(width * ratio));
        canvas.height = Math.max(1, Math.round(height * ratio));
        canvas.style.width = `${width}px`;
        canvas.style.height = `${height}px`;
      }
      el.style.width = `${width}px`;
      el.style.height = `${height}px`;
      schedule(true);
    },
    setTransform,
    fit(rect, insets = NO_INSETS) {
      setTransform(fitTransform(rect, width, height, insets));
    },
    visible(insets = NO_INSETS) {
      return {
        x0: (insets.left - t.tx) / t.sx,
        y0: (insets.top - t.ty) / t.sy,
        x1: (width - insets.right - t.tx) / t.sx,
        y1: (height - insets.bottom - t.ty) / t.sy,
      };
    },
    toDrawing(clientX, clientY) {
      const r = overlay.getBoundingClientRect();
      return [(clientX - r.left - t.tx) / t.sx, (clientY - r.top - t.ty) / t.sy];
    },
    toClient(x, y) {
      const r = overlay.getBoundingClientRect();
      return [r.left + x * t.sx + t.tx, r.top + y * t.sy + t.ty];
    },
    redraw: () => schedule(true),
    redrawOverlay: () => schedule(false),
    paintNow() {
      if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
      frame = 0;
      baseDirty = false;
      const ms = paintBase();
      paintOverlay();
      return ms;
    },
    dispose() {
      if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
      overlay.removeEventListener("pointerdown", onDown);
      overlay.removeEventListener("pointermove", onMove);
      overlay.removeEventListener("pointerup", onUp);
      overlay.removeEventListener("pointerleave", onLeave);
      overlay.removeEventListener("wheel", onWheel);
    },
  };
}
