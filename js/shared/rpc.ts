// Kernel commands over anywidget's command protocol. A request is
// `{id, kind: "anywidget-command", name, msg}` (+ buffers); the kernel answers on `msg:custom`
// with `{id, kind: "anywidget-command-response", response}` (+ buffers), where interplab's
// Python side (widgets/base.py) makes `response` either `{result}` or `{error: {type, message}}`
// and answers every command message exactly once.
//
// No call waits without end: interplab's computations can take minutes (anywidget's own 3-second
// timeout would cut them off), so a call gives up only when the kernel has been silent for
// `patience` (no reply, no progress) and says why; a call to a kernel that is gone (restarted, shut
// down, or a view reopened from saved widget state) fails at once with `KernelGoneError`.

import type { AnyModel } from "./types";

export class CommandError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly command: string,
    readonly traceback?: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

export const KERNEL_GONE =
  "this view has no kernel behind it: the kernel was restarted or shut down, or the notebook was reopened " +
  "with its saved widget state. Run the cell again to get a live view.";

/** The view's kernel is gone: nothing it sends can be answered. */
export class KernelGoneError extends Error {
  constructor(message: string = KERNEL_GONE) {
    super(message);
    this.name = "KernelGone";
  }
}

/** The kernel said nothing about a call for longer than its patience. */
export class NoAnswerError extends Error {
  constructor(
    readonly command: string,
    readonly seconds: number,
  ) {
    super(
      `no answer from the kernel to ${command} for ${seconds} s: it may be busy with another cell (its answer ` +
        "would still update this view's state), or gone (then run the cell again)",
    );
    this.name = "NoAnswer";
  }
}

/** How long a call waits through kernel silence (no reply and no progress) before it gives up. */
export const PATIENCE_MS = 5 * 60 * 1000;

export interface Reply<T> {
  value: T;
  buffers: DataView[];
}

export interface InvokeOptions {
  buffers?: ArrayBufferView[];
  /** Abort the wait (the kernel still finishes; its late reply is ignored). */
  signal?: AbortSignal;
  /** Give up after this long without a sign of life from the kernel (default `PATIENCE_MS`). */
  patience?: number;
  /** When the kernel was last heard from (default: when the call was sent). */
  heard?: () => number;
}

let counter = 0;
const nextId = () => `il-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("the command was aborted", "AbortError");
}

/** Run kernel command `name` and wait for its reply; a kernel error is thrown as a CommandError. */
export function invoke<T = unknown>(model: AnyModel, name: string, msg: unknown, options: InvokeOptions = {}): Promise<Reply<T>> {
  const { signal } = options;
  const patience = options.patience ?? PATIENCE_MS;
  const id = nextId();
  const sent = Date.now();
  const heard = options.heard ?? (() => sent);
  return new Promise<Reply<T>>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      clearTimeout(timer);
      model.off("msg:custom", handler);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      finish();
      reject(abortReason(signal!));
    };
    // Wake when the patience since the last sign of life runs out; sleep again if there was one.
    const watch = () => {
      const quiet = Date.now() - Math.max(sent, heard());
      if (quiet < patience) {
        timer = setTimeout(watch, patience - quiet);
        return;
      }
      finish();
      reject(new NoAnswerError(name, Math.round(patience / 1000)));
    };
    function handler(message: any, buffers?: DataView[]) {
      if (!message || message.id !== id || message.kind !== "anywidget-command-response") return;
      finish();
      const response = message.response;
      if (response && typeof response === "object" && "error" in response && response.error) {
        const e = response.error;
        reject(new CommandError(String(e.type ?? "Error"), String(e.message ?? "the kernel reported an error"), name, e.traceback));
      } else if (response && typeof response === "object" && "result" in response) {
        resolve({ value: response.result as T, buffers: buffers ?? [] });
      } else {
        resolve({ value: response as T, buffers: buffers ?? [] });
      }
    }
    signal?.addEventListener("abort", onAbort);
    model.on("msg:custom", handler);
    try {
      model.send({ id, kind: "anywidget-command", name, msg }, undefined, options.buffers ?? []);
    } catch {
      // JupyterLab throws "Cannot send" once the kernel behind the view is gone
      finish();
      reject(new KernelGoneError());
      return;
    }
    timer = setTimeout(watch, patience);
  });
}

/** An abort (by name: the DOMException of another realm, e.g. Node's, is not `instanceof` this one). */
export function isAbort(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError";
}

/**
 * The commands of one widget view: every pending call is aborted when the view is torn down or
 * its kernel is gone, the number of pending calls is observable (for a busy indicator), and any
 * message or progress from the kernel counts as a sign of life for every pending call's patience.
 */
export class Commands {
  private readonly controller = new AbortController();
  private readonly lost = new AbortController();
  private readonly listeners = new Set<(pending: number) => void>();
  private lastHeard = 0;
  private readonly onLife = () => {
    this.lastHeard = Date.now();
  };
  pending = 0;

  constructor(
    private readonly model: AnyModel,
    private readonly patience: number = PATIENCE_MS,
  ) {
    for (const event of ["msg:custom", "change:progress"]) model.on(event, this.onLife);
  }

  /** True once the kernel is known to be gone. */
  get gone(): boolean {
    return this.lost.signal.aborted;
  }

  async invoke<T = unknown>(name: string, msg: unknown, options: InvokeOptions = {}): Promise<Reply<T>> {
    const either = anySignal([this.controller.signal, this.lost.signal, ...(options.signal ? [options.signal] : [])]);
    this.setPending(this.pending + 1);
    try {
      return await invoke<T>(this.model, name, msg, {
        patience: this.patience,
        heard: () => this.lastHeard,
        ...options,
        signal: either.signal,
      });
    } catch (error) {
      if (error instanceof KernelGoneError) this.disconnect();
      throw error;
    } finally {
      either.release();
      this.setPending(this.pending - 1);
    }
  }

  onPending(listener: (pending: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The kernel is gone: pending calls and every later one fail with a KernelGoneError. */
  disconnect(): void {
    if (!this.gone) this.lost.abort(new KernelGoneError());
  }

  /** Abort everything pending; later calls reject at once. */
  dispose(): void {
    this.controller.abort(new DOMException("the widget view was closed", "AbortError"));
    this.listeners.clear();
    for (const event of ["msg:custom", "change:progress"]) this.model.off(event, this.onLife);
  }

  private setPending(n: number): void {
    this.pending = n;
    for (const listener of this.listeners) listener(n);
  }
}

/** A signal that aborts when any of `signals` does; `release()` unhooks it from them once done. */
export function anySignal(signals: AbortSignal[]): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const unhook = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => controller.abort(s.reason), { once: true, signal: unhook.signal });
  }
  return { signal: controller.signal, release: () => unhook.abort() };
}
