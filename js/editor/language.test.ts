import { describe, expect, it } from "vitest";
import { lexLine, nextToken } from "./language";

const known = new Set(["cat", "dog", "tiger"]);
const kinds = (line: string) => lexLine(line, known).map((t) => [line.slice(t.from, t.to), t.type]);

describe("rule lexer", () => {
  it("splits a rule into keywords, names, arrow, parentheses and a comment", () => {
    expect(kinds("(cat or dog) and not wild -> suppress pet  # note")).toEqual([
      ["(", "paren"],
      ["cat", "concept"],
      ["or", "keyword"],
      ["dog", "concept"],
      [")", "paren"],
      ["and", "keyword"],
      ["not", "keyword"],
      ["wild", "name"],
      ["->", "arrow"],
      ["suppress", "keyword"],
      ["pet", "name"],
      ["# note", "comment"],
    ]);
  });

  it("keeps keywords lowercase, takes Unicode names and digits after the first letter", () => {
    expect(kinds("AND _x1 Ärger2")).toEqual([
      ["AND", "name"],
      ["_x1", "name"],
      ["Ärger2", "name"],
    ]);
    expect(kinds("android")).toEqual([["android", "name"]]); // a keyword prefix is no keyword
  });

  it("marks characters the language has no place for, one code point at a time", () => {
    expect(kinds("cat & 2dog => 😀")).toEqual([
      ["cat", "concept"],
      ["&", "invalid"],
      ["2", "invalid"],
      ["dog", "concept"],
      ["=", "invalid"],
      [">", "invalid"],
      ["😀", "invalid"],
    ]);
    expect(nextToken("-x", known)).toEqual({ length: 1, type: "invalid" });
  });

  it("always advances", () => {
    for (const s of ["\u0000", "\u200b", "-", ">", "\uD800"]) expect(nextToken(s, known).length).toBeGreaterThan(0);
  });
});
