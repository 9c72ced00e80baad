import { afterEach, describe, expect, it, vi } from "vitest";
import { tick } from "./testing";
import {
  autoScale,
  diverging,
  isDark,
  luminance,
  mix,
  onThemeChange,
  parseColor,
  readTheme,
  sequential,
  textOn,
  type Theme,
  themeListenerCount,
} from "./theme";

afterEach(() => {
  document.body.removeAttribute("data-jp-theme-light");
  document.body.removeAttribute("style");
});

describe("theme detection", () => {
  it("follows body[data-jp-theme-light]", () => {
    expect(isDark()).toBe(false);
    document.body.setAttribute("data-jp-theme-light", "false");
    expect(isDark()).toBe(true);
    expect(readTheme().dark).toBe(true);
    document.body.setAttribute("data-jp-theme-light", "true");
    expect(isDark()).toBe(false);
  });

  it("reads --jp-* variables, blending translucent colours over the background", () => {
    document.body.style.setProperty("--jp-layout-color0", "#202020");
    document.body.style.setProperty("--jp-content-font-color2", "rgba(255, 255, 255, 0.5)");
    document.body.style.setProperty("--jp-code-font-size", "15px");
    const theme = readTheme();
    expect(theme.background).toBe("#202020");
    // 255 * 0.5 + 32 * 0.5 = 143.5 -> 144
    expect(theme.muted).toBe("#909090");
    expect(theme.fontSize).toBe(15);
    expect(theme.accent).toBe("#1976d2"); // unset: the fallback
  });

  it("tells subscribers when JupyterLab switches theme, until they unsubscribe", async () => {
    const seen: boolean[] = [];
    const stop = onThemeChange((t) => seen.push(t.dark));
    document.body.setAttribute("data-jp-theme-light", "false");
    await vi.waitFor(() => expect(seen).toEqual([true]));
    document.body.setAttribute("data-jp-theme-light", "true");
    await vi.waitFor(() => expect(seen).toEqual([true, false]));
    stop();
    expect(themeListenerCount()).toBe(0);
    document.body.setAttribute("data-jp-theme-light", "false");
    await tick(50);
    expect(seen).toEqual([true, false]);
  });
});

describe("colours", () => {
  it("parses hex, rgb(a) and names", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255]);
    expect(parseColor("#1976d2")).toEqual([25, 118, 210]);
    expect(parseColor("rgb(1, 2, 3)")).toEqual([1, 2, 3]);
    expect(parseColor("rgba(0, 0, 0, 0.25)")).toEqual([191, 191, 191]);
    expect(parseColor("rgb(0 0 0 / 50%)", [100, 100, 100])).toEqual([50, 50, 50]);
    expect(parseColor("white")).toEqual([255, 255, 255]);
    expect(parseColor("var(--x)")).toBeNull();
  });

  it("mixes from one end to the other", () => {
    expect(mix("#ff0000", "#0000ff", 0)).toBe("#ff0000");
    expect(mix("#ff0000", "#0000ff", 1)).toBe("#0000ff");
    // grey mixes stay grey, and the midpoint of black and white is OKLab's middle lightness
    const mid = parseColor(mix("#000000", "#ffffff", 0.5))!;
    expect(mid[0]).toBe(mid[1]);
    expect(mid[1]).toBe(mid[2]);
    expect(mid[0]).toBeGreaterThan(90);
    expect(mid[0]).toBeLessThan(120);
  });

  it("picks readable text", () => {
    expect(textOn("#ffffff")).toBe("#111111");
    expect(textOn("#101010")).toBe("#f5f5f5");
    expect(luminance("#ffffff")).toBeCloseTo(1);
    expect(luminance("#000000")).toBe(0);
  });
});

describe("scales", () => {
  const light = readTheme();
  const dark: Theme = { ...light, dark: true, background: "#111111" };

  it("diverging: the background at zero, opposite hues at ±limit, nothing for NaN", () => {
    const s = diverging(light, 2);
    expect(s(0)).toBe("#ffffff");
    expect(s(2)).toBe("#b2182b");
    expect(s(-2)).toBe("#2166ac");
    expect(s(5)).toBe("#b2182b"); // clamped
    expect(s(NaN)).toBeNull();
    expect(s.domain).toEqual([-2, 2]);
    expect(diverging(dark, 1)(0)).toBe("#111111");
  });

  it("sequential: more colour with magnitude, towards the theme's end colour", () => {
    const s = sequential(light, -4);
    expect(s.domain).toEqual([-4, 0]);
    expect(s(0)).toBe("#ffffff");
    expect(luminance(s(-4)!)).toBeLessThan(luminance(s(-2)!));
    expect(luminance(s(-2)!)).toBeLessThan(luminance(s(0)!));
    // on a dark background more colour means lighter
    const d = sequential(dark, 1);
    expect(luminance(d(1)!)).toBeGreaterThan(luminance(d(0)!));
  });

  it("auto: diverging for mixed signs, sequential otherwise, ignoring NaN", () => {
    expect(autoScale(light, [NaN, -1, 3]).kind).toBe("diverging");
    expect(autoScale(light, [NaN, -1, 3]).domain).toEqual([-3, 3]);
    expect(autoScale(light, [NaN, -5, -0.5]).domain).toEqual([-5, 0]);
    expect(autoScale(light, [0, 2, 1]).domain).toEqual([0, 2]);
    expect(autoScale(light, [NaN]).kind).toBe("sequential");
  });
});
