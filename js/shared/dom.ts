// Safe DOM building: strings from a model or a user only ever become text nodes or attribute
// values, never markup. No innerHTML anywhere in interplab's front ends.

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  style?: Partial<Record<string, string>>;
  attrs?: Record<string, string | number | boolean | null | undefined>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (event: HTMLElementEventMap[K]) => void }>;
}

const URL_ATTRIBUTES = new Set(["href", "src", "xlink:href", "action", "formaction"]);

/** Attribute names that would run code or inject markup are refused outright. */
function checkAttribute(name: string, value: string): void {
  const lower = name.toLowerCase();
  if (lower.startsWith("on") || lower === "srcdoc" || lower === "innerhtml") {
    throw new Error(`refusing to set attribute ${JSON.stringify(name)}: use Props.on for events`);
  }
  if (URL_ATTRIBUTES.has(lower) && !/^(https?:|blob:|data:image\/(png|svg\+xml);|#|[^:]*$)/i.test(value.trim())) {
    throw new Error(`refusing a ${name} URL with an unexpected scheme: ${JSON.stringify(value.slice(0, 40))}`);
  }
}

export function setAttributes(el: Element, attrs: NonNullable<Props["attrs"]>): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      el.removeAttribute(name);
      continue;
    }
    const text = value === true ? "" : String(value);
    checkAttribute(name, text);
    el.setAttribute(name, text);
  }
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" || typeof child === "number" ? text(String(child)) : child);
  }
}

/** `h("div", {class: "x"}, "text", h("b", {}, name))`: strings are always text. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.style) for (const [k, v] of Object.entries(props.style)) if (v !== undefined) el.style.setProperty(k, v);
  if (props.attrs) setAttributes(el, props.attrs);
  if (props.on) {
    for (const [event, handler] of Object.entries(props.on)) el.addEventListener(event, handler as EventListener);
  }
  append(el, children);
  return el;
}

export function text(value: string): Text {
  return document.createTextNode(value);
}

/** Replace all children of `el` (strings as text). */
export function replaceChildren(el: Element, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/** True under jsdom (the JS unit tests), which has no canvas to draw on. */
export const isJsdom = typeof navigator !== "undefined" && /jsdom/i.test(navigator.userAgent);

/** A canvas's 2D context, or null where there is none (jsdom). */
export function canvasContext(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
  return isJsdom ? null : canvas.getContext("2d");
}

/** A `<select>` of `labels` (value -> shown text) inside a `<label>` field; `onChange` gets the chosen value. */
export function choice<K extends string>(labels: Record<K, string>, label: string, onChange: (value: K) => void) {
  const select = h(
    "select",
    { class: "il-select", attrs: { "aria-label": label }, on: { change: () => onChange(select.value as K) } },
    ...Object.entries(labels).map(([value, text]) => h("option", { attrs: { value } }, text as string)),
  );
  return { select, field: h("label", { class: "il-field" }, `${label} `, select) };
}
