// Text from a model or a user that would be invisible, would reorder what follows it, or could
// not be written at all: control characters, bidirectional controls (e.g. U+202E, which flips the
// text after it), zero-width and other format characters, non-characters, and lone surrogates (half
// of a UTF-16 pair, e.g. a byte-level token decoded alone; the kernel sends those already escaped
// as the text `\udXXX`). Each is shown as a visible mark instead, written as Python's repr writes
// it (plain ASCII, so every font can show it): a control character as `\x07`, every other one as
// `\uXXXX` (`\u{e0001}` beyond the Basic Multilingual Plane).

/** Code points shown as marks (besides control characters); lone surrogates are checked apart. */
const HIDDEN = /^[\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff0-\ufff8\ufffe\uffff]$/;

const hex = (code: number) => code.toString(16).padStart(4, "0");

/** The visible mark of one code point (a string of one or two UTF-16 units), or null if it shows as itself. */
export function markOf(ch: string): string | null {
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return `\\x${code.toString(16).padStart(2, "0")}`;
  if (ch.length === 1 && code >= 0xd800 && code <= 0xdfff) return `\\u${hex(code)}`;
  if (HIDDEN.test(ch)) return `\\u${hex(code)}`;
  if (code >= 0xe0000 && code <= 0xe0fff) return `\\u{${code.toString(16)}}`; // tags, variation selectors
  return null;
}

export interface Piece {
  text: string;
  /** True for a mark standing for a character that would not show as itself. */
  mark: boolean;
}

/**
 * `text` as runs of characters that show as themselves and marks for those that do not;
 * `extra` may give further characters (e.g. spaces, for tokens) marks of their own.
 */
export function pieces(text: string, extra: (ch: string) => string | undefined = () => undefined): Piece[] {
  const out: Piece[] = [];
  for (const ch of text) {
    const mark = extra(ch) ?? markOf(ch);
    const piece = mark !== null ? { text: mark, mark: true } : { text: ch, mark: false };
    const last = out[out.length - 1];
    if (last && last.mark === piece.mark) last.text += piece.text;
    else out.push(piece);
  }
  return out;
}

const KEEP: Record<string, string> = { "\t": "\t", "\n": "\n", "\r": "\r" };

/** `text` with every character that would not show as itself replaced by its mark (tabs, line
 * ends and spaces stay). Safe for the DOM, a canvas and XML. */
export function visible(text: string): string {
  return pieces(text, (ch) => KEEP[ch]).map((p) => p.text).join("");
}

const ESCAPES: Record<string, string> = { '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r" };

/** A token in quotes for tooltips and notes, e.g. `"a\nb"`: quotes, tabs and line ends escaped,
 * every other hidden character as its mark (a backslash stays itself, so the kernel's `\ud83d`
 * for a lone surrogate reads the same as one met here). */
export function quote(text: string): string {
  return `"${pieces(text, (ch) => ESCAPES[ch]).map((p) => p.text).join("")}"`;
}
