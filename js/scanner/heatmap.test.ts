import { describe, expect, it } from "vitest";
import { toSvg } from "../shared/export";
import { SvgPainter } from "../shared/painter";
import { diverging, parseColor, readTheme, sequential, type Theme } from "../shared/theme";
import {
  binColours,
  binIndex,
  binOf,
  cellAt,
  cellBox,
  drawLegend,
  drawMap,
  drawMarks,
  hatch,
  LEVELS,
  layoutHeatmap,
} from "./heatmap";

const theme: Theme = { ...readTheme(), background: "#ffffff", dark: false };
const measure = (value: string) => value.length * 6;

/** Rectangles of an SVG path made of `M x y h w v h h -w z` pieces. */
function rects(d: string): [number, number, number, number][] {
  return [...d.matchAll(/M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+z/g)].map((m) => [1, 2, 3, 4].map((i) => Number(m[i])) as [number, number, number, number]);
}

function close(a: string, b: string, tolerance = 1) {
  const x = parseColor(a)!;
  const y = parseColor(b)!;
  return x.every((v, i) => Math.abs(v - y[i]) <= tolerance);
}

describe("colour bins", () => {
  const scale = diverging(theme, 0.5);

  it("maps 0 to bin 0 (the background), the domain ends to ±LEVELS, NaN to nothing", () => {
    expect(binOf(scale, 0)).toBe(0);
    expect(binOf(scale, 0.5)).toBe(LEVELS);
    expect(binOf(scale, -0.5)).toBe(-LEVELS);
    expect(binOf(scale, 0.25)).toBe(LEVELS / 2);
    expect(binOf(scale, 3)).toBe(LEVELS); // clamped
    expect(binOf(scale, Number.NaN)).toBeNull();
    // a value less than half a step from zero stays background
    expect(binOf(scale, 0.5 / LEVELS / 2 - 1e-6)).toBe(0);
  });

  it("gives the theme's colours at the centre and the two ends", () => {
    const colours = binColours(scale);
    expect(colours).toHaveLength(2 * LEVELS + 1);
    expect(close(colours[LEVELS], "#ffffff")).toBe(true);
    expect(close(colours[2 * LEVELS], "#b2182b")).toBe(true); // red: more in the behaviour set
    expect(close(colours[0], "#2166ac")).toBe(true); // blue: more in the control set
  });

  it("bins a one-signed map from 0 up", () => {
    const seq = sequential(theme, 0.8);
    expect(binOf(seq, 0)).toBe(0);
    expect(binOf(seq, 0.8)).toBe(LEVELS);
    expect(binOf(seq, -1)).toBe(0); // below the domain: clamped to its low end
    expect(close(binColours(seq)[2 * LEVELS], "#6a3d9a")).toBe(true);
  });
});

describe("layout and hit-testing at DeepSeek-V3 scale (58 x 256)", () => {
  const layout = layoutHeatmap(58, 256, 900);

  it("fits the width with whole-pixel cells and readable ticks", () => {
    expect(layout.width).toBeLessThanOrEqual(900);
    expect(Number.isInteger(layout.cellW) && layout.cellW >= 1).toBe(true);
    expect(layout.cellW).toBe(Math.floor((900 - layout.left - 8) / 256));
    expect(layout.cellH).toBeGreaterThanOrEqual(layout.cellW);
    expect(layout.height).toBe(layout.top + 58 * layout.cellH + 4);
    expect(layout.tick * layout.cellW).toBeGreaterThanOrEqual(3 * 11 * 0.62); // "255" fits between ticks
  });

  it("finds every cell at its centre and at its corners", () => {
    for (let layer = 0; layer < 58; layer++) {
      for (let expert = 0; expert < 256; expert++) {
        const [x, y, w, h] = cellBox(layout, layer, expert);
        expect(cellAt(layout, x + w / 2, y + h / 2)).toEqual({ layer, expert });
        if ((layer * 256 + expert) % 97 === 0) {
          expect(cellAt(layout, x, y)).toEqual({ layer, expert });
          expect(cellAt(layout, x + w - 0.01, y + h - 0.01)).toEqual({ layer, expert });
        }
      }
    }
  });

  it("finds nothing on the axes or past the map", () => {
    const { left, top, cellW, cellH } = layout;
    expect(cellAt(layout, left - 0.5, top + 1)).toBeNull();
    expect(cellAt(layout, left + 1, top - 0.5)).toBeNull();
    expect(cellAt(layout, left + 256 * cellW, top + 1)).toBeNull();
    expect(cellAt(layout, left + 1, top + 58 * cellH)).toBeNull();
    expect(cellAt(layout, left + 256 * cellW - 0.5, top + 58 * cellH - 0.5)).toEqual({ layer: 57, expert: 255 });
  });

  it("keeps small maps large", () => {
    const small = layoutHeatmap(4, 32, 900);
    expect(small.cellW).toBe(Math.min(28, Math.floor((900 - small.left - 8) / 32)));
    expect(small.gap).toBe(1);
    expect(small.tick).toBe(1);
  });
});

describe("cell colours for the painter", () => {
  it("indexes the bin colours, leaving out zeros and NaN", () => {
    const scale = diverging(theme, 1);
    const index = binIndex([1, 0.5, 0, Number.NaN, -1, 7, 0.01], scale);
    expect(Array.from(index)).toEqual([2 * LEVELS, LEVELS + LEVELS / 2, -1, -1, 0, 2 * LEVELS, -1]);
    const values = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1.3);
    Array.from(binIndex(values, scale)).forEach((k, i) => {
      const bin = binOf(scale, values[i])!;
      expect(k).toBe(bin === 0 ? -1 : bin + LEVELS);
    });
  });
});

describe("hatching", () => {
  it("stays inside its box", () => {
    const d = hatch(10, 10, 30, 8);
    const points = [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(points.length).toBeGreaterThan(4);
    for (const [x, y] of points) {
      expect(x).toBeGreaterThanOrEqual(10);
      expect(x).toBeLessThanOrEqual(40);
      expect(y).toBeGreaterThanOrEqual(10);
      expect(y).toBeLessThanOrEqual(18);
    }
  });
});

describe("SVG export of a 58 x 256 map", () => {
  const nLayers = 58;
  const nExperts = 256;
  const layout = layoutHeatmap(nLayers, nExperts, 900);
  const dense = Array.from({ length: nLayers }, (_, l) => l < 3); // DeepSeek-V3: the first 3 layers are dense
  // A planted map: NaN in dense rows, else a pattern with both signs and zeros
  const values = new Float32Array(nLayers * nExperts).map((_, i) => {
    const layer = Math.floor(i / nExperts);
    const expert = i % nExperts;
    if (dense[layer]) return Number.NaN;
    return ((layer * 7 + expert * 13) % 11) - 5 === 0 ? 0 : (((layer * 7 + expert * 13) % 11) - 5) / 50;
  });
  const scale = diverging(theme, 0.1);

  function svgOf(marks = { off: [] as [number, number][], on: [] as [number, number][] }) {
    return toSvg({
      width: layout.width,
      height: layout.height + 40,
      background: theme.background,
      draw(p) {
        drawLegend(p, 8, 12, scale, theme, (v) => v.toFixed(2));
        p.save();
        p.translate(0, 30);
        drawMap(p, { layout, values, dense, scale, theme });
        drawMarks(p, layout, marks, theme);
        p.restore();
      },
    });
  }

  it("covers every non-zero cell exactly once, in its bin's colour", () => {
    const svg = svgOf();
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    const colours = binColours(scale);
    const covered = new Map<number, string>();
    for (const path of doc.querySelectorAll("path[fill]:not([fill='none'])")) {
      const fill = path.getAttribute("fill")!;
      for (const [x, y, w, h] of rects(path.getAttribute("d")!)) {
        expect(h).toBe(layout.cellH);
        const layer = (y - layout.top) / layout.cellH;
        for (let e = (x - layout.left) / layout.cellW; e < (x - layout.left + w) / layout.cellW; e++) {
          const i = layer * nExperts + e;
          expect(covered.has(i)).toBe(false);
          covered.set(i, fill);
        }
      }
    }
    let expected = 0;
    values.forEach((v, i) => {
      const bin = binOf(scale, v);
      if (bin === null || bin === 0) return;
      expected++;
      expect(covered.get(i)).toBe(colours[bin + LEVELS]);
    });
    expect(covered.size).toBe(expected);
    expect(expected).toBeGreaterThan(10000);
  });

  it("has the legend, the axes, the dense rows and the marks", () => {
    const svg = svgOf({ off: [[5, 17]], on: [[6, 3]] });
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    const texts = [...doc.querySelectorAll("text")].map((t) => t.textContent);
    expect(texts).toContain("-0.10"); // legend ends
    expect(texts).toContain("0.10");
    expect(texts).toContain("L0");
    expect(texts).toContain("0");
    const legendStops = [...doc.querySelectorAll("rect[width='4'][height='10']")];
    expect(legendStops).toHaveLength(33);
    const surfaceRows = [...doc.querySelectorAll(`rect[fill='${theme.surface}']`)];
    expect(surfaceRows).toHaveLength(3);
    const [x, y] = cellBox(layout, 5, 17);
    const offMark = doc.querySelector(`rect[x='${x - 1}'][y='${y - 1}'][stroke='${theme.foreground}']`);
    expect(offMark).not.toBeNull();
    const [x2, y2] = cellBox(layout, 6, 3);
    expect(doc.querySelector(`rect[x='${x2 - 1}'][y='${y2 - 1}'][stroke='#1b5e20']`)).not.toBeNull();
  });

  it("draws far fewer elements than cells", () => {
    const p = new SvgPainter(measure);
    drawMap(p, { layout, values, dense, scale, theme });
    const svg = p.toString(layout.width, layout.height);
    expect((svg.match(/<path/g) ?? []).length).toBeLessThan(2 * LEVELS + 1 + 3);
  });
});
