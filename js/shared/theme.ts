// JupyterLab theme for widgets drawn on canvas: the `--jp-*` CSS variables resolved to colours
// (with fallbacks outside JupyterLab), dark/light detection, change notifications, and colour
// scales whose neutral end is the theme's background.

export interface Theme {
  dark: boolean;
  background: string;
  surface: string;
  foreground: string;
  muted: string;
  border: string;
  accent: string;
  error: string;
  font: string;
  monoFont: string;
  fontSize: number;
}

type Rgb = [number, number, number];

const LIGHT: Theme = {
  dark: false,
  background: "#ffffff",
  surface: "#f5f5f5",
  foreground: "#212121",
  muted: "#616161",
  border: "#bdbdbd",
  accent: "#1976d2",
  error: "#d32f2f",
  font: "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
  monoFont: "Menlo, Consolas, 'DejaVu Sans Mono', monospace",
  fontSize: 13,
};

const DARK: Theme = {
  ...LIGHT,
  dark: true,
  background: "#111111",
  surface: "#212121",
  foreground: "#e0e0e0",
  muted: "#9e9e9e",
  border: "#616161",
  accent: "#42a5f5",
  error: "#ef5350",
};

const VARIABLES: [Exclude<keyof Theme, "dark">, string][] = [
  ["background", "--jp-layout-color0"],
  ["surface", "--jp-layout-color1"],
  ["foreground", "--jp-content-font-color1"],
  ["muted", "--jp-content-font-color2"],
  ["border", "--jp-border-color1"],
  ["accent", "--jp-brand-color1"],
  ["error", "--jp-error-color1"],
  ["font", "--jp-ui-font-family"],
  ["monoFont", "--jp-code-font-family"],
  ["fontSize", "--jp-code-font-size"],
];

/** Dark mode: JupyterLab's `body[data-jp-theme-light]`, else the browser's colour-scheme preference. */
export function isDark(doc: Document = document): boolean {
  const light = doc.body?.getAttribute("data-jp-theme-light");
  if (light === "true") return false;
  if (light === "false") return true;
  const view = doc.defaultView;
  return typeof view?.matchMedia === "function" && view.matchMedia("(prefers-color-scheme: dark)").matches;
}

/** The current theme, read from the CSS variables in scope at `el` (fallbacks where unset). */
export function readTheme(el: Element = document.body): Theme {
  const dark = isDark(el.ownerDocument);
  const theme: Theme = { ...(dark ? DARK : LIGHT) };
  const style = el.ownerDocument.defaultView?.getComputedStyle(el);
  if (!style) return theme;
  const read = (name: string) => style.getPropertyValue(name).trim();
  const background = parseColor(read("--jp-layout-color0"));
  if (background) theme.background = toHex(background);
  for (const [key, name] of VARIABLES) {
    const raw = read(name);
    if (!raw || key === "background") continue;
    if (key === "fontSize") {
      const px = parseFloat(raw);
      if (px > 0) theme.fontSize = px;
    } else if (key === "font" || key === "monoFont") {
      theme[key] = raw;
    } else {
      const rgb = parseColor(raw, parseColor(theme.background)!);
      if (rgb) theme[key] = toHex(rgb);
    }
  }
  return theme;
}

// --- change notifications ------------------------------------------------------------------

type ThemeListener = (theme: Theme) => void;
const listeners = new Set<ThemeListener>();
let observer: MutationObserver | null = null;
let pending: ReturnType<typeof setTimeout> | null = null;

function notify(): void {
  // JupyterLab sets the body attributes when a theme's CSS has loaded; read the variables
  // once the burst of attribute changes is over.
  if (pending !== null) clearTimeout(pending);
  pending = setTimeout(() => {
    pending = null;
    const theme = readTheme();
    for (const listener of [...listeners]) listener(theme);
  }, 0);
}

/** Call `listener` with the new theme whenever JupyterLab switches theme. Returns the unsubscribe. */
export function onThemeChange(listener: ThemeListener): () => void {
  listeners.add(listener);
  if (!observer) {
    observer = new MutationObserver(notify);
    observer.observe(document.body, {
      attributes: true,
      attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"],
    });
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && observer) {
      observer.disconnect();
      observer = null;
      if (pending !== null) clearTimeout(pending);
      pending = null;
    }
  };
}

/** How many theme listeners are subscribed (for tests of widget teardown). */
export function themeListenerCount(): number {
  return listeners.size;
}

// --- colours ---------------------------------------------------------------------------------

const NAMED: Record<string, Rgb> = { white: [255, 255, 255], black: [0, 0, 0], transparent: [255, 255, 255] };

/**
 * `#rgb`, `#rrggbb`, `#rrggbbaa`, `rgb()`/`rgba()` or a few names; null when not understood.
 * A translucent colour is blended over `over` (white by default), as it would be seen.
 */
export function parseColor(value: string, over: Rgb = [255, 255, 255]): Rgb | null {
  const s = value.trim().toLowerCase();
  if (s in NAMED) return NAMED[s];
  let rgb: Rgb;
  let alpha = 1;
  let m = /^#([0-9a-f]{3,4})$/.exec(s);
  if (m) {
    const d = m[1].split("").map((c) => parseInt(c + c, 16));
    rgb = [d[0], d[1], d[2]];
    if (d.length === 4) alpha = d[3] / 255;
  } else if ((m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/.exec(s))) {
    rgb = [0, 2, 4].map((i) => parseInt(m![1].slice(i, i + 2), 16)) as Rgb;
    if (m[2]) alpha = parseInt(m[2], 16) / 255;
  } else if ((m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(s))) {
    rgb = [1, 2, 3].map((i) => Math.min(255, Number(m![i]))) as Rgb;
    if (m[4] !== undefined) alpha = m[4].endsWith("%") ? parseFloat(m[4]) / 100 : Number(m[4]);
  } else {
    return null;
  }
  const a = Math.max(0, Math.min(1, alpha));
  return rgb.map((c, i) => Math.round(c * a + over[i] * (1 - a))) as Rgb;
}

export function toHex([r, g, b]: Rgb): string {
  return "#" + [r, g, b].map((c) => Math.round(c).toString(16).padStart(2, "0")).join("");
}

const toLinear = (c: number) => {
  const x = c / 255;
  return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
};
const fromLinear = (x: number) => {
  const c = x <= 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055;
  return Math.max(0, Math.min(255, c * 255));
};

// OKLab (Björn Ottosson, 2020): mixing there keeps the perceived lightness steps even.
function toOklab([r, g, b]: Rgb): Rgb {
  const [R, G, B] = [toLinear(r), toLinear(g), toLinear(b)];
  const l = Math.cbrt(0.4122214708 * R + 0.5363325363 * G + 0.0514459929 * B);
  const m = Math.cbrt(0.2119034982 * R + 0.6806995451 * G + 0.1073969566 * B);
  const s = Math.cbrt(0.0883024619 * R + 0.2817188376 * G + 0.6299787005 * B);
  return [
    0.2104542553 * l + 0.793617785 * m - 0.0040720468 * s,
    1.9779984951 * l - 2.428592205 * m + 0.4505937099 * s,
    0.0259040371 * l + 0.7827717662 * m - 0.808675766 * s,
  ];
}

function fromOklab([L, a, b]: Rgb): Rgb {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  return [
    fromLinear(4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s),
    fromLinear(-1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s),
    fromLinear(-0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s),
  ];
}

/** The colour a fraction `t` (0..1) of the way from `a` to `b`, mixed in OKLab. */
export function mix(a: string, b: string, t: number): string {
  const A = toOklab(parseColor(a) ?? [0, 0, 0]);
  const B = toOklab(parseColor(b) ?? [0, 0, 0]);
  const u = Math.max(0, Math.min(1, t));
  return toHex(fromOklab([A[0] + (B[0] - A[0]) * u, A[1] + (B[1] - A[1]) * u, A[2] + (B[2] - A[2]) * u]));
}

/** WCAG relative luminance (0 black .. 1 white). */
export function luminance(color: string): number {
  const [r, g, b] = (parseColor(color) ?? [0, 0, 0]).map(toLinear);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** A readable text colour on `background`. */
export function textOn(background: string): string {
  return luminance(background) > 0.18 ? "#111111" : "#f5f5f5";
}

// --- scales ----------------------------------------------------------------------------------

export interface Scale {
  (value: number): string | null; // null: no value (NaN), draw nothing
  kind: "diverging" | "sequential";
  domain: [number, number];
  /** Colours at evenly spaced points of the domain, for a legend. */
  stops(n: number): string[];
}

function ends(theme: Theme) {
  return theme.dark
    ? { negative: "#4f9dff", positive: "#ff6b5e", sequential: "#c49bff" }
    : { negative: "#2166ac", positive: "#b2182b", sequential: "#6a3d9a" };
}

function makeScale(kind: Scale["kind"], domain: [number, number], colour: (v: number) => string | null): Scale {
  const scale = colour as Scale;
  scale.kind = kind;
  scale.domain = domain;
  scale.stops = (n) =>
    Array.from({ length: n }, (_, i) => colour(domain[0] + ((domain[1] - domain[0]) * i) / Math.max(1, n - 1)) ?? "");
  return scale;
}

/** Signed scores: the background at 0, blue for negative, red for positive, saturated at ±limit. */
export function diverging(theme: Theme, limit: number): Scale {
  const { negative, positive } = ends(theme);
  const L = limit > 0 && Number.isFinite(limit) ? limit : 1;
  return makeScale("diverging", [-L, L], (v) => {
    if (!Number.isFinite(v)) return null;
    return v < 0 ? mix(theme.background, negative, -v / L) : mix(theme.background, positive, v / L);
  });
}

/** One-signed values: the background at 0, more colour with magnitude, saturated at |max|. */
export function sequential(theme: Theme, max: number): Scale {
  const { sequential: end } = ends(theme);
  const M = Math.abs(max) > 0 && Number.isFinite(max) ? Math.abs(max) : 1;
  const domain: [number, number] = max < 0 ? [-M, 0] : [0, M];
  return makeScale("sequential", domain, (v) => (Number.isFinite(v) ? mix(theme.background, end, Math.abs(v) / M) : null));
}

/** Diverging when the values take both signs, sequential by magnitude otherwise. NaNs are ignored. */
export function autoScale(theme: Theme, values: ArrayLike<number>): Scale {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return sequential(theme, 1);
  if (lo < 0 && hi > 0) return diverging(theme, Math.max(-lo, hi));
  return hi <= 0 ? sequential(theme, lo) : sequential(theme, hi);
}
