import { describe, expect, it } from "vitest";
import { SvgPainter } from "./painter";
import { readTheme } from "./theme";
import { displayPieces, displayText, fitText, TokenStrip } from "./tokenstrip";

const EVIL = "<img src=x onerror=alert(1)>";

describe("token display", () => {
  it("makes whitespace visible and keeps other characters", () => {
    expect(displayText(" the")).toBe("·the");
    expect(displayText("\n\n")).toBe("↵↵");
    expect(displayText("\ta b")).toBe("→a·b");
    expect(displayText("")).toBe("∅");
    expect(displayText("a\r\u00a0\u2003\u3000b")).toBe("a\\r\\xa0\\u2003\\u3000b");
    expect(displayPieces(" x ")).toEqual([
      { text: "·", whitespace: true },
      { text: "x", whitespace: false },
      { text: "·", whitespace: true },
    ]);
  });
});

describe("tokens that are hard to show", () => {
  const RLO = String.fromCharCode(0x202e);
  const HIGH = String.fromCharCode(0xd83d);
  const LOW = String.fromCharCode(0xde00);
  // as a byte- or code-unit-level tokenizer splits "a\u202eb\x07c😀d": the emoji into its two halves
  const odd = ["a", RLO, "b", "\x07", "c", HIGH, LOW, "d", "\x00", "\\ud83d"];

  it("shows every one as a visible mark in the DOM and in SVG, and each token stays in its box", () => {
    const strip = new TokenStrip({ tokens: odd });
    const spans = Array.from(strip.el.querySelectorAll<HTMLElement>(".il-token"));
    expect(spans.map((s) => s.textContent)).toEqual(["a", "\\u202e", "b", "\\x07", "c", "\\ud83d", "\\ude00", "d", "\\x00", "\\ud83d"]);
    expect(spans[1].querySelector(".il-ws")!.textContent).toBe("\\u202e"); // drawn as a mark, not as text
    expect(spans[9].querySelector(".il-ws")).toBeNull(); // the kernel's escape of a lone half: plain text
    const text = strip.el.textContent!;
    expect(/[\u202a-\u202e\u2066-\u2069\x00-\x1f]/.test(text)).toBe(false);
    expect(/[\ud800-\udfff]/.test(text)).toBe(false);

    const theme = readTheme();
    const p = new SvgPainter((s) => s.length * 8);
    strip.paint(p, theme, strip.layout(theme, 400, (s) => s.length * 8));
    const doc = new DOMParser().parseFromString(p.toString(400, 40), "image/svg+xml");
    expect(doc.getElementsByTagName("parsererror")).toHaveLength(0);
    expect(Array.from(doc.getElementsByTagName("text"), (t) => t.textContent)).toEqual(spans.map((s) => s.textContent));
  });

  it("cuts a token too long for the export's width, keeping whole characters", () => {
    const measure = (s: string) => Array.from(s).length * 10;
    expect(fitText("short", 100, measure)).toBe("short");
    expect(fitText("abcdefghijklmnop", 100, measure)).toBe("abcdefghi…");
    expect(fitText("😀😀😀😀😀😀😀😀😀😀😀😀", 50, measure)).toBe("😀😀😀😀…");
    const long = "x".repeat(500);
    const theme = { ...readTheme(), fontSize: 10 };
    const strip = new TokenStrip({ tokens: ["a", long, "b"] });
    const layout = strip.layout(theme, 200, measure);
    expect(Math.max(...layout.boxes.map((b) => b.x + b.w))).toBeLessThanOrEqual(200);
    expect(layout.boxes[1].label.endsWith("…")).toBe(true);
    expect(strip.tokenElement(1)!.textContent).toBe(long); // the screen wraps it whole (CSS)
  });
});

describe("TokenStrip", () => {
  const tokens = ["Hello", " world", "\n", EVIL];

  it("renders tokens as text, a line break after a newline token", () => {
    const strip = new TokenStrip({ tokens });
    const spans = strip.el.querySelectorAll(".il-token");
    expect(spans).toHaveLength(4);
    expect(Array.from(spans, (s) => s.textContent)).toEqual(["Hello", "·world", "↵", "<img·src=x·onerror=alert(1)>"]);
    expect(strip.el.querySelector("img")).toBeNull();
    expect(spans[2].nextElementSibling!.tagName).toBe("BR");
  });

  it("colours tokens, with readable text, and none where the colour is null", () => {
    const strip = new TokenStrip({ tokens, colour: (i) => (i === 0 ? null : i === 1 ? "#000000" : "#ffffff") });
    const spans = strip.el.querySelectorAll<HTMLElement>(".il-token");
    expect(spans[0].style.background).toBe("");
    expect(spans[1].style.color).toBe("rgb(245, 245, 245)");
    expect(spans[2].style.color).toBe("rgb(17, 17, 17)");
  });

  it("reports hover and click with the token index", () => {
    const events: string[] = [];
    const strip = new TokenStrip({
      tokens,
      onHover: (i) => events.push(`hover ${i}`),
      onClick: (i) => events.push(`click ${i}`),
    });
    const span = strip.el.querySelectorAll(".il-token")[1];
    span.firstChild!.parentElement!.dispatchEvent(new MouseEvent("pointerover", { bubbles: true }));
    span.querySelector(".il-ws")!.dispatchEvent(new MouseEvent("pointerover", { bubbles: true })); // same token
    (span as HTMLElement).click();
    strip.el.dispatchEvent(new MouseEvent("pointerleave"));
    expect(events).toEqual(["hover 1", "click 1", "hover null"]);
  });

  it("keeps one selected token", () => {
    const strip = new TokenStrip({ tokens });
    strip.setSelected(1);
    strip.setSelected(3);
    const selected = strip.el.querySelectorAll(".il-selected");
    expect(selected).toHaveLength(1);
    expect(selected[0].getAttribute("data-i")).toBe("3");
    strip.setSelected(null);
    expect(strip.el.querySelectorAll(".il-selected")).toHaveLength(0);
    strip.setSelected(99);
    expect(strip.el.querySelectorAll(".il-selected")).toHaveLength(0);
  });

  it("marks named highlight sets in their colours, several per token", () => {
    const strip = new TokenStrip({ tokens });
    strip.setHighlight("animal", "#ff0000", [0, 1]);
    strip.setHighlight("place", "#00ff00", [1, 7]);
    expect(strip.marksOf(1)).toEqual(["#ff0000", "#00ff00"]);
    expect(strip.tokenElement(1)!.querySelectorAll(".il-marks i")).toHaveLength(2);
    strip.setHighlight("animal", "#ff0000", [3]);
    expect(strip.marksOf(0)).toEqual([]);
    expect(strip.marksOf(3)).toEqual(["#ff0000"]);
    strip.clearHighlights("place");
    expect(strip.marksOf(1)).toEqual([]);
    expect(strip.tokenElement(1)!.querySelectorAll(".il-marks i")).toHaveLength(0);
  });

  it("lays out for export with the screen's wrapping and paints every token", () => {
    const theme = { ...readTheme(), fontSize: 10 };
    const strip = new TokenStrip({ tokens: ["aaaa", "bbbb", "\n", "cc", "dddddd"], colour: () => "#abcdef" });
    const measure = (s: string) => s.length * 10;
    const layout = strip.layout(theme, 100, measure);
    // widths: 46 46 16 26 66 (chars*10 + 2*3 padding); gap 2
    expect(layout.boxes.map((b) => [b.x, b.y])).toEqual([
      [0, 0],
      [48, 0],
      [0, 23],
      [0, 46],
      [28, 46],
    ]);
    expect(layout.height).toBe(69);
    strip.setSelected(1);
    const p = new SvgPainter(measure);
    strip.paint(p, theme, layout);
    const svg = p.toString(100, layout.height);
    expect(svg.match(/<text/g)).toHaveLength(5);
    expect(svg).toContain(">↵</text>");
    expect(svg.match(new RegExp(`stroke="${theme.accent}"`, "g"))).toHaveLength(1);
  });
});
