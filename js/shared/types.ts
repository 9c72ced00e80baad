// The part of anywidget's model API that interplab's front ends use (anywidget 0.11).

export type Listener = (...args: any[]) => void;

/** Binary payloads as anywidget delivers them: DataViews, ArrayBuffers or typed arrays. */
export type BufferLike = DataView | ArrayBuffer | ArrayBufferView;

export interface AnyModel {
  get(key: string): any;
  set(key: string, value: unknown): void;
  save_changes(): void;
  on(event: string, callback: Listener): void;
  off(event?: string | null, callback?: Listener | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: (ArrayBuffer | ArrayBufferView)[]): void;
}

/** What a widget's `render` returns: a cleanup function, called when the view is removed. */
export type Cleanup = () => void;
