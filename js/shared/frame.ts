// The frame every interplab widget view sits in: a toolbar, the error banner, the progress bar,
// the view's kernel commands, the current theme (kept current), PNG/SVG export (buttons, and
// requests from Python's `Widget.export`), the watch on the kernel (a view whose kernel is gone
// says so and stops waiting for it), all torn down together.

import { h } from "./dom";
import { blobBytes, type Drawing, download, type ExportFormat, exportBlob } from "./export";
import { Commands, KernelGoneError } from "./rpc";
import { errorBanner, progressBar, watchKernel } from "./status";
import { onThemeChange, readTheme, type Theme } from "./theme";
import type { AnyModel } from "./types";

export interface Frame {
  root: HTMLElement;
  /** The left part of the toolbar, for the widget's own controls (progress and export sit right). */
  toolbar: HTMLElement;
  /** The right part of the toolbar, where the export buttons go (a widget may add its own). */
  actions: HTMLElement;
  body: HTMLElement;
  commands: Commands;
  theme: Theme;
  showError(error: unknown): void;
  /** Hide an error the browser showed (after a later success); a kernel error clears with its trait. */
  clearError(): void;
  /** Called with the new theme after JupyterLab switches theme. */
  onTheme(listener: (theme: Theme) => void): void;
  /** Add PNG/SVG export buttons and answer Python's export requests with `drawing()`. */
  exportable(drawing: () => Drawing, basename: string): void;
  /** Run `fn` when the view is removed. */
  onDispose(fn: () => void): void;
  /** Call `fn` on the model's `event` (e.g. "change:tokens") until the view is removed. */
  listen(event: string, fn: () => void): void;
  dispose(): void;
}

interface ExportRequest {
  kind: "interplab-export";
  id: string;
  format: ExportFormat;
}

export function createFrame(model: AnyModel, el: HTMLElement, className: string): Frame {
  const commands = new Commands(model);
  const banner = errorBanner(model);
  const progress = progressBar(model, commands);
  // The status pieces never move the view: progress has its place in the toolbar, errors come
  // below the view (a token under the pointer stays under it).
  const toolbar = h("div", { class: "il-toolbar-main" });
  const actions = h("div", { class: "il-toolbar-actions" });
  const body = h("div", { class: "il-body" });
  const root = h(
    "div",
    { class: `il-root ${className}` },
    h("div", { class: "il-toolbar" }, toolbar, progress.el, actions),
    body,
    banner.el,
  );
  el.appendChild(root);

  const unwatch = watchKernel(model, el, () => {
    commands.disconnect();
    banner.show(new KernelGoneError());
  });
  const disposers: (() => void)[] = [unwatch, () => commands.dispose(), () => banner.dispose(), () => progress.dispose()];
  const themeListeners: ((t: Theme) => void)[] = [];

  const frame: Frame = {
    root,
    toolbar,
    actions,
    body,
    commands,
    theme: readTheme(root),
    showError: (error) => banner.show(error),
    clearError: () => banner.clear(),
    onTheme(listener) {
      themeListeners.push(listener);
    },
    exportable(drawing, basename) {
      const save = async (format: ExportFormat) => {
        try {
          download(await exportBlob(drawing(), format), `${basename}.${format}`);
        } catch (error) {
          banner.show(error);
        }
      };
      actions.append(
        h("button", { class: "il-button", attrs: { title: "download as PNG" }, on: { click: () => save("png") } }, "PNG"),
        h("button", { class: "il-button", attrs: { title: "download as SVG" }, on: { click: () => save("svg") } }, "SVG"),
      );
      const onRequest = async (message: ExportRequest) => {
        if (!message || message.kind !== "interplab-export") return;
        try {
          const bytes = await blobBytes(await exportBlob(drawing(), message.format));
          await commands.invoke("_receive_export", { id: message.id, format: message.format }, { buffers: [new Uint8Array(bytes)] });
        } catch (error) {
          banner.show(error);
        }
      };
      model.on("msg:custom", onRequest);
      disposers.push(() => model.off("msg:custom", onRequest));
    },
    onDispose(fn) {
      disposers.push(fn);
    },
    listen(event, fn) {
      model.on(event, fn);
      disposers.push(() => model.off(event, fn));
    },
    dispose() {
      for (const fn of disposers.splice(0).reverse()) fn();
      root.remove();
    },
  };

  disposers.push(
    onThemeChange(() => {
      frame.theme = readTheme(root);
      for (const listener of themeListeners) listener(frame.theme);
    }),
  );
  return frame;
}
