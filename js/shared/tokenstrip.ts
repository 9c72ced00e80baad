// The token strip: a text's tokens in a wrapped row, each coloured by a value, with hover and
// click callbacks, a selected token, and named highlight sets (a colour bar under each member
// token: the rule editor marks detected concepts this way). Whitespace, control characters,
// bidirectional controls and lone surrogates are drawn as visible marks (./text.ts), so no token
// can hide, reorder its neighbours or break the page; a very long token wraps inside its box.
// The screen view is DOM (selectable, accessible text); `layout` + `paint` draw the same strip
// through a Painter for PNG/SVG export.

import { h, replaceChildren } from "./dom";
import { cssFont, type Measure, type Painter } from "./painter";
import { pieces } from "./text";
import { textOn, type Theme } from "./theme";

// Spaces, line ends and tabs as marks; other whitespace as its escape (plain ASCII: every font has it).
const WHITESPACE: Record<string, string> = { " ": "·", "\n": "↵", "\t": "→", "\r": "\\r", "\u00a0": "\\xa0" };
const escape = (ch: string) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, "0")}`;
const EMPTY = "∅";

export interface TokenPiece {
  text: string;
  /** A mark standing for whitespace or a character that would not show as itself. */
  whitespace: boolean;
}

/** A token split into visible pieces: runs of ordinary characters and of marks. */
export function displayPieces(token: string): TokenPiece[] {
  if (token === "") return [{ text: EMPTY, whitespace: true }];
  return pieces(token, (ch) => WHITESPACE[ch] ?? (/\s/.test(ch) ? escape(ch) : undefined)).map((p) => ({
    text: p.text,
    whitespace: p.mark,
  }));
}

export const displayText = (token: string) => displayPieces(token).map((p) => p.text).join("");

/** `text`, or its longest start that fits `width` with "…" after it (whole code points). */
export function fitText(text: string, width: number, measure: (text: string) => number): string {
  if (measure(text) <= width) return text;
  const points = Array.from(text);
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(`${points.slice(0, mid).join("")}…`) <= width) lo = mid;
    else hi = mid - 1;
  }
  return `${points.slice(0, lo).join("")}…`;
}
const endsLine = (token: string) => token.includes("\n");

export interface TokenStripOptions {
  tokens: string[];
  /** Background colour of token i (null: none). */
  colour?: (i: number) => string | null;
  onHover?: (i: number | null, el: HTMLElement | null) => void;
  onClick?: (i: number, event: MouseEvent) => void;
}

interface Highlight {
  colour: string;
  members: Set<number>;
}

export interface TokenBox {
  i: number;
  x: number;
  y: number;
  w: number;
  label: string;
}

export interface StripLayout {
  boxes: TokenBox[];
  width: number;
  height: number;
  lineHeight: number;
}

export class TokenStrip {
  readonly el: HTMLElement;
  private tokens: string[] = [];
  private spans: HTMLElement[] = [];
  private colour: (i: number) => string | null;
  private selected: number | null = null;
  private readonly highlights = new Map<string, Highlight>();
  private hovered: number | null = null;

  constructor(private readonly options: TokenStripOptions) {
    this.colour = options.colour ?? (() => null);
    this.el = h("div", {
      class: "il-tokenstrip",
      on: {
        pointerover: (e) => this.hover(this.indexAt(e.target)),
        pointerleave: () => this.hover(null),
        click: (e) => {
          const i = this.indexAt(e.target);
          if (i !== null) this.options.onClick?.(i, e);
        },
      },
    });
    this.setTokens(options.tokens);
  }

  get length(): number {
    return this.tokens.length;
  }

  tokenElement(i: number): HTMLElement | undefined {
    return this.spans[i];
  }

  setTokens(tokens: string[]): void {
    this.tokens = [...tokens];
    this.spans = this.tokens.map((token, i) => {
      const span = h("span", { class: "il-token", attrs: { "data-i": i } });
      for (const piece of displayPieces(token)) {
        span.appendChild(piece.whitespace ? h("span", { class: "il-ws" }, piece.text) : document.createTextNode(piece.text));
      }
      span.appendChild(h("span", { class: "il-marks" }));
      return span;
    });
    const children: Node[] = [];
    this.spans.forEach((span, i) => {
      children.push(span);
      if (endsLine(this.tokens[i])) children.push(h("br"));
    });
    replaceChildren(this.el, ...children);
    this.hovered = null;
    this.recolour();
    this.setSelected(this.selected !== null && this.selected < tokens.length ? this.selected : null);
    for (const i of this.spans.keys()) this.renderMarks(i);
  }

  setColours(colour: (i: number) => string | null): void {
    this.colour = colour;
    this.recolour();
  }

  setSelected(i: number | null): void {
    if (this.selected !== null) this.spans[this.selected]?.classList.remove("il-selected");
    this.selected = i !== null && i >= 0 && i < this.spans.length ? i : null;
    if (this.selected !== null) this.spans[this.selected].classList.add("il-selected");
  }

  /** Mark `indices` with a bar in `colour` under each token; `name` identifies the set. */
  setHighlight(name: string, colour: string, indices: Iterable<number>): void {
    const old = this.highlights.get(name)?.members ?? new Set<number>();
    const members = new Set([...indices].filter((i) => i >= 0 && i < this.spans.length));
    this.highlights.set(name, { colour, members });
    for (const i of new Set([...old, ...members])) this.renderMarks(i);
  }

  clearHighlights(name?: string): void {
    const touched = new Set<number>();
    for (const [key, set] of this.highlights) {
      if (name !== undefined && key !== name) continue;
      set.members.forEach((i) => touched.add(i));
      this.highlights.delete(key);
    }
    touched.forEach((i) => this.renderMarks(i));
  }

  /** The highlight colours on token i, in the order the sets were added. */
  marksOf(i: number): string[] {
    return [...this.highlights.values()].filter((s) => s.members.has(i)).map((s) => s.colour);
  }

  private recolour(): void {
    this.spans.forEach((span, i) => {
      const bg = this.colour(i);
      if (bg) {
        span.style.background = bg;
        span.style.color = textOn(bg);
      } else {
        span.style.removeProperty("background");
        span.style.removeProperty("color");
      }
    });
  }

  private renderMarks(i: number): void {
    const marks = this.spans[i]?.querySelector(".il-marks");
    if (!marks) return;
    replaceChildren(marks, ...this.marksOf(i).map((c) => h("i", { style: { background: c } })));
  }

  private indexAt(target: EventTarget | null): number | null {
    const token = target instanceof Element ? target.closest(".il-token") : null;
    if (!token || !this.el.contains(token)) return null;
    const i = Number(token.getAttribute("data-i"));
    return Number.isInteger(i) ? i : null;
  }

  private hover(i: number | null): void {
    if (i === this.hovered) return;
    this.hovered = i;
    this.options.onHover?.(i, i === null ? null : this.spans[i]);
  }

  // --- export -------------------------------------------------------------------------------

  /** Where each token goes when the strip is drawn `width` wide (same wrapping as the screen). */
  layout(theme: Theme, width: number, measure: Measure): StripLayout {
    const font = cssFont({ family: theme.monoFont, size: theme.fontSize });
    const pad = 3;
    const gap = 2;
    const lineHeight = Math.round(theme.fontSize * 1.5) + 8;
    const boxes: TokenBox[] = [];
    let x = 0;
    let y = 0;
    let right = 0;
    this.tokens.forEach((token, i) => {
      const label = fitText(displayText(token), width - 2 * pad, (text) => measure(text, font));
      const w = measure(label, font) + 2 * pad;
      if (x > 0 && x + w > width) {
        x = 0;
        y += lineHeight;
      }
      boxes.push({ i, x, y, w, label });
      x += w + gap;
      right = Math.max(right, x);
      if (endsLine(token)) {
        x = 0;
        y += lineHeight;
      }
    });
    const height = boxes.length ? y + lineHeight : 0;
    return { boxes, width: Math.min(width, right), height, lineHeight };
  }

  paint(painter: Painter, theme: Theme, layout: StripLayout): void {
    const size = theme.fontSize;
    const boxH = layout.lineHeight - 4;
    for (const box of layout.boxes) {
      const bg = this.colour(box.i);
      const selected = box.i === this.selected;
      painter.rect(box.x, box.y, box.w, boxH, {
        fill: bg,
        stroke: selected ? theme.accent : null,
        lineWidth: 2,
        radius: 3,
      });
      painter.text(box.x + 3, box.y + boxH / 2, box.label, {
        fill: bg ? textOn(bg) : theme.foreground,
        family: theme.monoFont,
        size,
        baseline: "middle",
      });
      this.marksOf(box.i).forEach((c, k) => painter.rect(box.x + 1, box.y + boxH - 3 - 3 * k, box.w - 2, 2, { fill: c }));
    }
  }
}
