// The offline runtime of interplab's HTML reports (`interplab tour`): it renders the widget views
// embedded in the page in the standard Jupyter widget formats
// (`application/vnd.jupyter.widget-state+json` with base64 buffers,
// `application/vnd.jupyter.widget-view+json`) without a kernel and without fetching anything:
// each anywidget's `_esm` is imported from a Blob URL, its `_css` injected once. Kernel commands
// are answered with an error saying that the page is a snapshot.

import type { AnyModel, Listener } from "../shared/types";

interface BufferSpec {
  path: (string | number)[];
  data: string;
  encoding: "base64" | "hex";
}

interface ModelSpec {
  model_name: string;
  model_module: string;
  state: Record<string, any>;
  buffers?: BufferSpec[];
}

interface WidgetModule {
  initialize?(ctx: { model: AnyModel }): unknown;
  render?(ctx: { model: AnyModel; el: HTMLElement }): unknown;
}

const STATE_TYPE = "application/vnd.jupyter.widget-state+json";
const VIEW_TYPE = "application/vnd.jupyter.widget-view+json";
const SNAPSHOT = "this is a static report: hovering and clicking work, but kernel computations need the live notebook";

function decodeBuffer(spec: BufferSpec): DataView {
  if (spec.encoding === "hex") {
    const bytes = new Uint8Array((spec.data.match(/../g) ?? []).map((b) => parseInt(b, 16)));
    return new DataView(bytes.buffer);
  }
  const raw = atob(spec.data);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** Put each binary buffer back at its place in the state (ipywidgets' `put_buffers`). */
export function putBuffers(state: Record<string, any>, buffers: BufferSpec[] = []): void {
  for (const spec of buffers) {
    let target: any = state;
    for (const key of spec.path.slice(0, -1)) target = target[key];
    target[spec.path[spec.path.length - 1]] = decodeBuffer(spec);
  }
}

/** A kernel-less model: traits live in the page; commands get an error reply. */
export class StaticModel implements AnyModel {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** No other widgets' models here: interplab's widgets never ask for one. */
  readonly widget_manager = { get_model: (): Promise<never> => Promise.reject(new Error("no widget manager")) };

  constructor(private readonly state: Record<string, any>) {}

  get(key: string): any {
    return this.state[key];
  }

  set(key: string, value: unknown): void {
    this.state[key] = value;
    this.emit(`change:${key}`);
  }

  save_changes(): void {}

  on(event: string, callback: Listener): void {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(callback);
  }

  off(event?: string | null, callback?: Listener | null): void {
    if (!event) this.listeners.clear();
    else if (!callback) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(callback);
  }

  send(content: any): void {
    if (content?.kind !== "anywidget-command") return;
    const reply = { id: content.id, kind: "anywidget-command-response", response: { error: { type: "NoKernel", message: SNAPSHOT } } };
    setTimeout(() => this.emit("msg:custom", reply, []), 0);
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const callback of [...(this.listeners.get(event) ?? [])]) callback(...args);
  }
}

const modules = new Map<string, Promise<WidgetModule>>();
const styled = new Set<string>();

function loadModule(id: string, esm: string): Promise<WidgetModule> {
  if (!modules.has(id)) {
    const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
    modules.set(
      id,
      import(/* @vite-ignore */ url).then((m) => (m.default ?? m) as WidgetModule),
    );
  }
  return modules.get(id)!;
}

function addStyle(id: string, css: string | undefined): void {
  if (!css || styled.has(id)) return;
  styled.add(id);
  const style = document.createElement("style");
  style.setAttribute("data-anywidget", id);
  style.textContent = css;
  document.head.appendChild(style);
}

function note(el: HTMLElement, message: string): void {
  const p = document.createElement("p");
  p.className = "il-report-note";
  p.textContent = message;
  el.appendChild(p);
}

async function renderView(script: HTMLScriptElement, models: Record<string, ModelSpec>): Promise<void> {
  const el = document.createElement("div");
  el.className = "il-report-widget";
  script.before(el);
  try {
    const { model_id } = JSON.parse(script.textContent ?? "{}");
    const spec = models[model_id];
    if (!spec) throw new Error(`the page has no state for widget ${model_id}`);
    if (spec.model_module !== "anywidget") {
      note(el, `(${spec.model_name} needs a running notebook to show)`);
      return;
    }
    const state = structuredClone(spec.state);
    putBuffers(state, spec.buffers);
    const id = String(state._anywidget_id ?? model_id);
    addStyle(id, state._css);
    const mod = await loadModule(id, state._esm);
    const model = new StaticModel({ ...state, _interplab_static: true }); // widgets may say what needs a kernel
    await mod.initialize?.({ model });
    await mod.render?.({ model, el });
  } catch (error) {
    note(el, `This widget could not be shown: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function followColourScheme(): void {
  const query = window.matchMedia?.("(prefers-color-scheme: dark)");
  const apply = () => document.body.setAttribute("data-jp-theme-light", query?.matches ? "false" : "true");
  apply();
  query?.addEventListener?.("change", apply);
}

export async function renderPage(): Promise<void> {
  followColourScheme();
  const stateScript = document.querySelector(`script[type="${STATE_TYPE}"]`);
  const models: Record<string, ModelSpec> = stateScript ? JSON.parse(stateScript.textContent ?? "{}").state ?? {} : {};
  const views = Array.from(document.querySelectorAll<HTMLScriptElement>(`script[type="${VIEW_TYPE}"]`));
  await Promise.all(views.map((script) => renderView(script, models)));
  document.body.setAttribute("data-widgets-rendered", String(views.length));
}
