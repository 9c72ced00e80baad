// The rule language for CodeMirror: a hand lexer (pure, tested on its own) behind a StreamLanguage,
// and a highlight style in JupyterLab's editor colours. Known concepts (the dictionary's names)
// and other names (concepts rules derive, or typos) look different, so a misspelling shows
// before the kernel's diagnostic arrives.

import { HighlightStyle, StreamLanguage, syntaxHighlighting } from "@codemirror/language";
import type { Extension } from "@codemirror/state";
import { tags } from "@lezer/highlight";

export type RuleTokenType = "comment" | "keyword" | "arrow" | "paren" | "concept" | "name" | "invalid" | "space";

export interface LexToken {
  from: number;
  to: number;
  type: RuleTokenType;
}

export const KEYWORDS: ReadonlySet<string> = new Set(["and", "or", "not", "suppress"]);
// Python's `[^\W\d]\w*` (the kernel's NAME_PATTERN), in JavaScript's Unicode classes.
const NAME = /^[\p{L}\p{Nl}_][\p{L}\p{N}\p{Mn}\p{Mc}_]*/u;
const SPACE = /^[ \t\f\r\v]+/;

/** The token at the start of `rest` (never empty, so a lexer always advances). */
export function nextToken(rest: string, known: ReadonlySet<string>): { length: number; type: RuleTokenType } {
  if (rest.startsWith("#")) return { length: rest.length, type: "comment" };
  if (rest.startsWith("->")) return { length: 2, type: "arrow" };
  if (rest[0] === "(" || rest[0] === ")") return { length: 1, type: "paren" };
  const space = SPACE.exec(rest);
  if (space) return { length: space[0].length, type: "space" };
  const name = NAME.exec(rest);
  if (name) {
    const word = name[0];
    const type = KEYWORDS.has(word) ? "keyword" : known.has(word) ? "concept" : "name";
    return { length: word.length, type };
  }
  const char = String.fromCodePoint(rest.codePointAt(0)!);
  return { length: char.length, type: "invalid" };
}

/** One line of rule text as tokens (spaces left out). */
export function lexLine(line: string, known: ReadonlySet<string>): LexToken[] {
  const out: LexToken[] = [];
  let at = 0;
  while (at < line.length) {
    const { length, type } = nextToken(line.slice(at), known);
    if (type !== "space") out.push({ from: at, to: at + length, type });
    at += length;
  }
  return out;
}

const STYLE: Record<RuleTokenType, string | null> = {
  comment: "comment",
  keyword: "keyword",
  arrow: "operator",
  paren: "paren",
  concept: "atom",
  name: "variableName",
  invalid: "invalid",
  space: null,
};

/** The rule language with its highlighting; `known` is read on every token (it may change). */
export function ruleLanguage(known: () => ReadonlySet<string>): Extension {
  const language = StreamLanguage.define<null>({
    name: "interplab-rules",
    startState: () => null,
    token(stream) {
      const { length, type } = nextToken(stream.string.slice(stream.pos), known());
      stream.pos += length;
      return STYLE[type];
    },
    languageData: { commentTokens: { line: "#" } },
  });
  const style = HighlightStyle.define([
    { tag: tags.comment, color: "var(--jp-mirror-editor-comment-color, #408080)", fontStyle: "italic" },
    { tag: tags.keyword, color: "var(--jp-mirror-editor-keyword-color, #008000)", fontWeight: "bold" },
    { tag: tags.operator, color: "var(--jp-mirror-editor-operator-color, #aa22ff)", fontWeight: "bold" },
    { tag: tags.atom, color: "var(--jp-mirror-editor-variable-2-color, #05a)" },
    { tag: tags.variableName, color: "var(--jp-mirror-editor-variable-3-color, #085)", fontStyle: "italic" },
    { tag: tags.paren, color: "var(--jp-mirror-editor-bracket-color, #997)" },
    { tag: tags.invalid, color: "var(--jp-mirror-editor-error-color, #f00)" },
  ]);
  return [language, syntaxHighlighting(style)];
}
