// Kernel commands over anywidget's command protocol, without anywidget's 3-second default
// timeout: interplab's computations can take minutes. A request is
// `{id, kind: "anywidget-command", name, msg}` (+ buffers); the kernel answers on `msg:custom`
// with `{id, kind: "anywidget-command-response", response}` (+ buffers), where interplab's
// Python side (widgets/base.py) makes `response` either `{result}` or `{error: {type, message}}`.

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

export interface Reply<T> {
  value: T;
  buffers: DataView[];
}

export interface InvokeOptions {
  buffers?: (ArrayBuffer | ArrayBufferView)[];
  /** Abort the wait (the kernel still finishes; its late reply is ignored). No timeout by default. */
  signal?: AbortSignal;
}

let counter = 0;
const nextId = () => `il-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("the command was aborted", "AbortError");
}

/** Run kernel command `name` and wait for its reply; a kernel error is thrown as a CommandError. */
export function invoke<T = unknown>(model: AnyModel, name: string, msg: unknown, options: InvokeOptions = {}): Promise<Reply<T>> {
  const { signal } = options;
  const id = nextId();
  return new Promise<Reply<T>>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const finish = () => {
      model.off("msg:custom", handler);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      finish();
      reject(abortReason(signal!));
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
    model.send({ id, kind: "anywidget-command", name, msg }, undefined, options.buffers ?? []);
  });
}

/** An abort (by name: the DOMException of another realm, e.g. Node's, is not `instanceof` this one). */
export function isAbort(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError";
}

/**
 * The commands of one widget view: every pending call is aborted when the view is torn down,
 * and the number of pending calls is observable (for a busy indicator).
 */
export class Commands {
  private readonly controller = new AbortController();
  private readonly listeners = new Set<(pending: number) => void>();
  pending = 0;

  constructor(private readonly model: AnyModel) {}

  async invoke<T = unknown>(name: string, msg: unknown, options: InvokeOptions = {}): Promise<Reply<T>> {
    const signal = options.signal ? anySignal([options.signal, this.controller.signal]) : this.controller.signal;
    this.setPending(this.pending + 1);
    try {
      return await invoke<T>(this.model, name, msg, { ...options, signal });
    } finally {
      this.setPending(this.pending - 1);
    }
  }

  onPending(listener: (pending: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Abort everything pending; later calls reject at once. */
  dispose(): void {
    this.controller.abort(new DOMException("the widget view was closed", "AbortError"));
    this.listeners.clear();
  }

  private setPending(n: number): void {
    this.pending = n;
    for (const listener of this.listeners) listener(n);
  }
}

/** A signal that aborts when any of `signals` does. */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => controller.abort(s.reason), { once: true, signal: controller.signal });
  }
  return controller.signal;
}
