import { describe, expect, it } from "vitest";
import { toSvg } from "./export";
import { CanvasPainter, type CellGrid, escapeXml, gridPaths, SvgPainter } from "./painter";

const measure = (value: string) => value.length * 7;

describe("SvgPainter", () => {
  it("writes the shapes it is given", () => {
    const p = new SvgPainter(measure);
    p.rect(1, 2, 30, 40, { fill: "#ff0000", stroke: "#000", lineWidth: 2, radius: 3 });
    p.line(0, 0, 10, 5.5, { stroke: "#333", dash: [2, 1] });
    p.circle(5, 6, 2.25, { fill: "blue" });
    p.path("M0 0 L5 5 Z", { stroke: "green" });
    expect(p.toString(100, 50)).toBe(
      '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50">' +
        '<rect x="1" y="2" width="30" height="40" rx="3" fill="#ff0000" stroke="#000" stroke-width="2"/>' +
        '<line x1="0" y1="0" x2="10" y2="5.5" fill="none" stroke="#333" stroke-width="1" stroke-dasharray="2 1"/>' +
        '<circle cx="5" cy="6" r="2.25" fill="blue"/>' +
        '<path d="M0 0 L5 5 Z" fill="none" stroke="green" stroke-width="1"/>' +
        "</svg>",
    );
  });

  it("escapes text, keeps its spaces, and places it with anchors", () => {
    const p = new SvgPainter(measure);
    p.text(3, 4, '<img src=x onerror=alert(1)> & "q"', { fill: "#111", size: 13, align: "center", baseline: "middle" });
    const svg = p.toString(10, 10);
    expect(svg).toContain("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</text>");
    expect(svg).toContain('text-anchor="middle"');
    expect(svg).toContain('dominant-baseline="central"');
    expect(svg).toContain('xml:space="preserve"');
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    expect(doc.querySelector("img")).toBeNull();
    expect(doc.querySelector("text")!.textContent).toBe('<img src=x onerror=alert(1)> & "q"');
  });

  it("nests translations in groups and closes them on restore", () => {
    const p = new SvgPainter(measure);
    p.save();
    p.translate(10, 20);
    p.rect(0, 0, 1, 1, { fill: "#000" });
    p.restore();
    p.rect(0, 0, 2, 2, { fill: "#fff" });
    const svg = p.toString(5, 5);
    expect(svg).toMatch(/<g transform="translate\(10 20\)"><rect[^>]*width="1"[^>]*\/><\/g><rect[^>]*width="2"/);
  });

  it("escapeXml covers the five XML specials", () => {
    expect(escapeXml(`<>&"'`)).toBe("&lt;&gt;&amp;&quot;&#39;");
  });

  it("writes well-formed XML whatever the text holds", () => {
    const high = String.fromCharCode(0xd83d);
    const rlo = String.fromCharCode(0x202e);
    const label = `bell\x07 nul\x00 ${high} ${rlo}flip <b>&`;
    expect(escapeXml(label)).toBe(`bell\\x07 nul\\x00 \\ud83d ${rlo}flip &lt;b&gt;&amp;`); // attributes: XML-safe
    const painter = new SvgPainter(() => 10);
    painter.text(0, 0, label, { fill: "#000" });
    painter.text(0, 9, "😀\tok", { fill: "#000" });
    const svg = painter.toString(100, 20);
    expect(svg).toContain(">bell\\x07 nul\\x00 \\ud83d \\u202eflip &lt;b&gt;&amp;</text>");
    expect(svg).toContain(">😀\tok</text>");
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    expect(doc.getElementsByTagName("parsererror")).toHaveLength(0);
    expect(doc.getElementsByTagName("text")[0].textContent).toBe("bell\\x07 nul\\x00 \\ud83d \\u202eflip <b>&");
  });
});

describe("toSvg", () => {
  it("draws a Drawing once, with its background", () => {
    const svg = toSvg({ width: 20, height: 10, background: "#fafafa", draw: (p) => p.text(0, 0, "hi", { fill: "#000" }) });
    expect(svg).toContain('<rect width="100%" height="100%" fill="#fafafa"/>');
    expect(svg.match(/<text/g)).toHaveLength(1);
  });
});

describe("CanvasPainter", () => {
  it("turns the same calls into Canvas2D calls", () => {
    const calls: string[] = [];
    const record =
      (name: string) =>
      (...args: unknown[]) =>
        calls.push(`${name}(${args.join(",")})`);
    const state: Record<string, unknown> = {};
    const ctx = new Proxy(state, {
      get: (target, key: string) => (key in target ? target[key] : record(key)),
      set: (target, key: string, value) => {
        calls.push(`${key}=${value}`);
        target[key] = value;
        return true;
      },
    }) as unknown as CanvasRenderingContext2D;
    const p = new CanvasPainter(ctx, measure);
    p.rect(1, 2, 3, 4, { fill: "#f00" });
    p.text(5, 6, "ab", { fill: "#000", size: 10, family: "mono" });
    expect(calls).toEqual([
      "save()",
      "beginPath()",
      "rect(1,2,3,4)",
      "fillStyle=#f00",
      "fill()",
      "restore()",
      "save()",
      "font=normal 10px mono",
      "fillStyle=#000",
      "textAlign=left",
      "textBaseline=alphabetic",
      "fillText(ab,5,6)",
      "restore()",
    ]);
    expect(p.measureText("abc", { size: 10 })).toBe(21);
  });
});

describe("cell grids", () => {
  const grid = (over: Partial<CellGrid> = {}): CellGrid => ({
    x: 10,
    y: 20,
    cellW: 4,
    cellH: 5,
    rows: 2,
    cols: 3,
    index: [1, 1, -1, -1, 0, 1],
    palette: ["#0000ff", "#ff0000"],
    ...over,
  });

  it("merges neighbours of one colour in a row and leaves out -1", () => {
    const paths = gridPaths(grid());
    expect(paths.get(1)).toBe("M10 20h8v5h-8zM18 25h4v5h-4z");
    expect(paths.get(0)).toBe("M14 25h4v5h-4z");
  });

  it("keeps cells apart when there is a gap", () => {
    expect(gridPaths(grid({ gap: 1, index: [1, 1, -1, -1, -1, -1] })).get(1)).toBe("M10 20h3v4h-3zM14 20h3v4h-3z");
  });

  it("draws one filled path per colour in SVG", () => {
    const p = new SvgPainter(measure);
    p.cells(grid());
    const svg = p.toString(40, 40);
    expect(svg).toContain('<path d="M10 20h8v5h-8zM18 25h4v5h-4z" fill="#ff0000"/>');
    expect(svg).toContain('<path d="M14 25h4v5h-4z" fill="#0000ff"/>');
  });
});
