// Export a view as PNG (Canvas2D, at a chosen pixel ratio) or SVG (the SVG painter), download it
// through an anchor, or hand the bytes back to the kernel.

import { CanvasPainter, type Painter, SvgPainter } from "./painter";

/** What a view can draw: its size in CSS pixels and a function that paints it. */
export interface Drawing {
  width: number;
  height: number;
  background?: string;
  draw(painter: Painter): void;
}

export type ExportFormat = "png" | "svg";

export function toSvg(drawing: Drawing): string {
  const painter = new SvgPainter();
  drawing.draw(painter);
  return painter.toString(drawing.width, drawing.height, drawing.background);
}

/** Paint `drawing` on a new canvas at `scale` device pixels per CSS pixel. */
export function toCanvas(drawing: Drawing, scale = 2): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.ceil(drawing.width * scale));
  canvas.height = Math.max(1, Math.ceil(drawing.height * scale));
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser gives no 2D canvas context: PNG export is not possible");
  ctx.scale(scale, scale);
  if (drawing.background) {
    ctx.fillStyle = drawing.background;
    ctx.fillRect(0, 0, drawing.width, drawing.height);
  }
  drawing.draw(new CanvasPainter(ctx));
  return canvas;
}

export function toPng(drawing: Drawing, scale = 2): Promise<Blob> {
  const canvas = toCanvas(drawing, scale);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas could not be encoded as PNG"))), "image/png"),
  );
}

/** The exported file as a Blob. */
export async function exportBlob(drawing: Drawing, format: ExportFormat, scale = 2): Promise<Blob> {
  if (format === "svg") return new Blob([toSvg(drawing)], { type: "image/svg+xml" });
  if (format === "png") return toPng(drawing, scale);
  throw new Error(`unknown export format ${JSON.stringify(format)}: use "png" or "svg"`);
}

/** Save a blob through a temporary anchor (the browser's download). */
export function download(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function blobBytes(blob: Blob): Promise<ArrayBuffer> {
  if (typeof blob.arrayBuffer === "function") return blob.arrayBuffer();
  return new Response(blob).arrayBuffer();
}
