import { describe, expect, it } from "vitest";
import { toSvg } from "../shared/export";
import { diverging, readTheme } from "../shared/theme";
import { layoutHeatmap } from "./heatmap";
import { mapDrawing } from "./mapview";

describe("the map as exported", () => {
  it("names its axes and says what the legend's numbers are", () => {
    const theme = readTheme();
    const layout = layoutHeatmap(3, 4, 600);
    const values = [NaN, NaN, NaN, NaN, 0.2, -0.1, 0, 0.3, 0.1, 0.1, -0.3, 0];
    const picture = { values, dense: [true, false, false], scale: diverging(theme, 0.3), theme };
    const title = `demo${String.fromCharCode(0x202e)}: behaviour − control`; // a model name that would flip the title
    const svg = toSvg(
      mapDrawing(
        { title, legendTitle: "routing weight per counted token: behaviour − control", signed: true, layout, picture, marks: { off: [[1, 2]], on: [] } },
        theme,
      ),
    );
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    expect(doc.getElementsByTagName("parsererror")).toHaveLength(0);
    const texts = Array.from(doc.getElementsByTagName("text"), (t) => t.textContent);
    expect(texts).toContain("expert →");
    expect(texts).toContain("layer ↓");
    expect(texts).toContain("routing weight per counted token: behaviour − control");
    expect(texts).toContain("-0.300");
    expect(texts).toContain("+0.300");
    expect(texts).toContain("demo\\u202e: behaviour − control");
    expect(texts).toContain("switched off: L1E2");
    expect(texts).toContain("dense layer (no router)");
  });

  it("leaves room for the axis titles", () => {
    const layout = layoutHeatmap(58, 256, 900, { fontSize: 11 });
    expect(layout.top).toBeGreaterThanOrEqual(2 * 11 + 8); // title row + number row
    expect(layout.left).toBeGreaterThanOrEqual(7 * 11 * 0.62); // "layer ↓"
  });
});
