// anywidget's model, typed by the traits each widget's Python class syncs (anywidget 0.11,
// `@anywidget/types`). Each widget declares its traits in its own `traits.ts`;
// tests/unit/test_wire_traits.py checks those interfaces against the Python classes.

import type { AnyModel as AnywidgetModel } from "@anywidget/types";

export type Listener = (...args: any[]) => void;

/** Binary payloads as anywidget delivers them: DataViews, ArrayBuffers or typed arrays. */
export type BufferLike = DataView | ArrayBuffer | ArrayBufferView;

/** The `error` trait: what Python's Widget records when a command or observer fails. */
export interface KernelError {
  type: string;
  message: string;
  command?: string;
  traceback?: string;
}

/** The `progress` trait: `done` of `total` steps (total null: unknown), with a label. */
export interface Progress {
  done?: number;
  total?: number | null;
  label?: string;
}

/** The traits every interplab widget syncs (interplab.widgets.base.Widget). */
export interface BaseTraits {
  error: KernelError | null;
  progress: Progress | null;
}

/** anywidget's model; `T` maps trait names to their types (default: untyped). */
export type AnyModel<T extends object = Record<string, any>> = AnywidgetModel<T & Record<string, any>>;

/** What a widget's `render` returns: a cleanup function, called when the view is removed. */
export type Cleanup = () => void;
