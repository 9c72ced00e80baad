// A stand-in for anywidget's model in unit tests: traits in a Map, events, recorded sends.

import type { AnyModel, Listener } from "./types";

export interface Sent {
  content: any;
  buffers: (ArrayBuffer | ArrayBufferView)[];
}

export class MockModel implements AnyModel {
  readonly sent: Sent[] = [];
  /** No other widgets' models here: interplab's widgets never ask for one. */
  readonly widget_manager = { get_model: (): Promise<never> => Promise.reject(new Error("no widget manager")) };
  saves = 0;
  private readonly state: Map<string, unknown>;
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(state: Record<string, unknown> = {}) {
    this.state = new Map(Object.entries(state));
  }

  get(key: string): any {
    return this.state.get(key);
  }

  set(key: string, value: unknown): void {
    this.state.set(key, value);
    this.emit(`change:${key}`, value);
  }

  save_changes(): void {
    this.saves++;
  }

  on(event: string, callback: Listener): void {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(callback);
  }

  off(event?: string | null, callback?: Listener | null): void {
    if (!event) this.listeners.clear();
    else if (!callback) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(callback);
  }

  send(content: unknown, _callbacks?: unknown, buffers: (ArrayBuffer | ArrayBufferView)[] = []): void {
    this.sent.push({ content, buffers });
  }

  emit(event: string, ...args: unknown[]): void {
    for (const callback of [...(this.listeners.get(event) ?? [])]) callback(...args);
  }

  listenerCount(event: string): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Answer the last command sent, as the kernel would. */
  reply(response: unknown, buffers: DataView[] = []): void {
    const last = this.sent[this.sent.length - 1]?.content;
    this.emit("msg:custom", { id: last.id, kind: "anywidget-command-response", response }, buffers);
  }
}

export const hexBytes = (hex: string): DataView => {
  const bytes = new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
  return new DataView(bytes.buffer);
};

export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
