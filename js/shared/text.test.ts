import { describe, expect, it } from "vitest";
import { markOf, pieces, quote, visible } from "./text";

// Built from code points so that this file holds no invisible characters itself.
const RLO = String.fromCharCode(0x202e);
const PDF = String.fromCharCode(0x202c);
const HIGH = String.fromCharCode(0xd83d); // half of the pair of U+1F600
const LOW = String.fromCharCode(0xde00);
const ZWJ = String.fromCharCode(0x200d);

describe("hidden characters", () => {
  it("marks controls as \\xNN and everything else hidden as \\uXXXX, as Python's repr", () => {
    expect(markOf("\x00")).toBe("\\x00");
    expect(markOf("\x07")).toBe("\\x07");
    expect(markOf("\x1b")).toBe("\\x1b");
    expect(markOf("\x7f")).toBe("\\x7f");
    expect(markOf("\x85")).toBe("\\x85");
    expect(markOf(RLO)).toBe("\\u202e");
    expect(markOf(ZWJ)).toBe("\\u200d");
    expect(markOf(HIGH)).toBe("\\ud83d");
    expect(markOf(LOW)).toBe("\\ude00");
    expect(markOf("\ufeff")).toBe("\\ufeff");
    for (const ch of ["a", "é", "😀", "ש", "ي", "中"]) expect(markOf(ch)).toBeNull();
  });

  it("keeps a surrogate pair as its character and marks the halves alone", () => {
    expect(visible(HIGH + LOW)).toBe("😀");
    expect(visible(`a${HIGH}b${LOW}`)).toBe("a\\ud83db\\ude00");
    expect(visible(LOW + HIGH)).toBe("\\ude00\\ud83d"); // the wrong order is no pair
  });

  it("never lets a bidirectional override through, so what follows keeps its order", () => {
    const text = `${RLO}evil${PDF} tail`;
    expect(visible(text)).toBe("\\u202eevil\\u202c tail");
    expect(Array.from(visible(text)).some((c) => c.charCodeAt(0) >= 0x202a && c.charCodeAt(0) <= 0x202e)).toBe(false);
  });

  it("splits into runs of plain text and marks, with extra marks of the caller's", () => {
    expect(pieces(`a b\x07${RLO}c`, (ch) => (ch === " " ? "·" : undefined))).toEqual([
      { text: "a", mark: false },
      { text: "·", mark: true },
      { text: "b", mark: false },
      { text: "\\x07\\u202e", mark: true },
      { text: "c", mark: false },
    ]);
    expect(visible("tab\there\nnew line")).toBe("tab\there\nnew line");
  });

  it("quotes tokens for tooltips", () => {
    expect(quote(' a"b\n')).toBe('" a\\"b\\n"');
    expect(quote(`${HIGH}\x00`)).toBe('"\\ud83d\\x00"');
    expect(quote("\\ud83d")).toBe('"\\ud83d"'); // the kernel's escape reads the same as the real thing
  });
});
