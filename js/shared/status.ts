// The status pieces every widget shows: an error banner (kernel errors from the synced `error`
// trait, and errors raised in the browser, among them a kernel that is gone or silent), a
// busy/progress bar (the synced `progress` trait, and pending kernel commands), and the watch on
// the view's connection to its kernel.

import { h, replaceChildren } from "./dom";
import { CommandError, type Commands, isAbort } from "./rpc";
import type { AnyModel, KernelError, Progress } from "./types";

export type { KernelError, Progress };

/** What the banner calls errors raised in the browser, by their name. */
const TITLES: Record<string, string> = { KernelGone: "Not connected", NoAnswer: "No answer" };

export interface ErrorBanner {
  el: HTMLElement;
  /** Show an error raised in the browser (a kernel error arrives through the trait). */
  show(error: unknown): void;
  /** Hide an error shown by `show` (not one from the trait: the kernel clears that). */
  clear(): void;
  dispose(): void;
}

function asKernelError(error: unknown): KernelError {
  if (error instanceof CommandError) {
    return { type: error.type, message: error.message, command: error.command, traceback: error.traceback };
  }
  if (error instanceof Error) return { type: TITLES[error.name] ?? error.name, message: error.message };
  return { type: "Error", message: String(error) };
}

export function errorBanner(model: AnyModel): ErrorBanner {
  const el = h("div", { class: "il-error", attrs: { role: "alert", hidden: true } });
  let fromTrait = false;

  const render = (error: KernelError | null, trait: boolean) => {
    fromTrait = trait;
    if (!error) {
      el.hidden = true;
      replaceChildren(el);
      return;
    }
    const where = error.command ? ` in ${error.command}` : "";
    replaceChildren(
      el,
      h("span", { class: "il-error-title" }, `${error.type}${where}: `),
      h("span", { class: "il-error-message" }, error.message),
      h("button", { class: "il-error-close", attrs: { title: "dismiss", "aria-label": "dismiss" }, on: { click: dismiss } }, "×"),
      error.traceback ? h("details", {}, h("summary", {}, "traceback"), h("pre", {}, error.traceback)) : null,
    );
    el.hidden = false;
  };

  function dismiss() {
    if (fromTrait) {
      model.set("error", null);
      model.save_changes();
    }
    render(null, false);
  }

  const onTrait = () => render((model.get("error") as KernelError | null) ?? null, true);
  model.on("change:error", onTrait);
  if (model.get("error")) onTrait();

  return {
    el,
    show(error) {
      if (!isAbort(error)) render(asKernelError(error), false);
    },
    clear() {
      if (!fromTrait) render(null, false);
    },
    dispose() {
      model.off("change:error", onTrait);
    },
  };
}

export interface ProgressBar {
  el: HTMLElement;
  dispose(): void;
}

export function progressBar(model: AnyModel, commands?: Commands): ProgressBar {
  const fill = h("div", { class: "il-progress-fill" });
  const label = h("span", { class: "il-progress-label" });
  const el = h("div", { class: "il-progress il-idle", attrs: { role: "progressbar" } }, h("div", { class: "il-progress-track" }, fill), label);
  let pending = 0;

  const update = () => {
    const p = (model.get("progress") as Progress | null) ?? null;
    // Idle keeps its space (visibility, not display): nothing around it moves.
    el.classList.toggle("il-idle", !p && pending === 0);
    if (!p && pending === 0) {
      label.textContent = "";
      return;
    }
    const determinate = !!p && typeof p.total === "number" && p.total > 0;
    el.classList.toggle("il-indeterminate", !determinate);
    if (determinate) {
      const frac = Math.min(1, Math.max(0, (p!.done ?? 0) / p!.total!));
      fill.style.width = `${(100 * frac).toFixed(1)}%`;
      el.setAttribute("aria-valuenow", String(Math.round(100 * frac)));
    } else {
      fill.style.removeProperty("width");
      el.removeAttribute("aria-valuenow");
    }
    const count = determinate ? ` ${p!.done ?? 0}/${p!.total}` : "";
    label.textContent = p ? `${p.label ?? "working"}${count}` : "waiting for the kernel…";
    label.title = label.textContent;
  };

  model.on("change:progress", update);
  const stop = commands?.onPending((n) => {
    pending = n;
    update();
  });
  update();
  return {
    el,
    dispose() {
      model.off("change:progress", update);
      stop?.();
    },
  };
}

/** JupyterLab's widget manager puts this class on a view rebuilt from widget state saved with the
 * notebook: its model never had a connection to a kernel. */
export const DISCONNECTED = "jupyter-widgets-disconnected";

/**
 * Call `onLost` once the view at `el` has lost its kernel, also when it never had one; returns a
 * function that stops watching. Two signs: the `DISCONNECTED` class on the view (saved state), and,
 * when the widget manager reports a change of the connection (`comm_live_update`, which it fires
 * when the kernel restarts), a message that can no longer be sent (JupyterLab: "Cannot send").
 */
export function watchKernel(model: AnyModel, el: HTMLElement, onLost: () => void): () => void {
  let done = false;
  const observer = typeof MutationObserver === "function" ? new MutationObserver(() => check()) : null;
  const stop = () => {
    done = true;
    observer?.disconnect();
    model.off("comm_live_update", onLive);
  };
  const lose = () => {
    if (done) return;
    stop();
    onLost();
  };
  function check() {
    if (el.closest(`.${DISCONNECTED}`)) lose();
  }
  function onLive() {
    try {
      model.send({ kind: "interplab-probe" }); // the kernel ignores it, if there is one
    } catch {
      lose();
    }
    setTimeout(check, 0);
  }
  observer?.observe(el, { attributes: true, attributeFilter: ["class"] });
  model.on("comm_live_update", onLive);
  check();
  return stop;
}
