import { afterEach, describe, expect, it } from "vitest";
import { createViewport, fitTransform, type Transform, zoomAround } from "./viewport";

afterEach(() => document.body.replaceChildren());

describe("transforms", () => {
  it("zooms around a point, which stays where it was, each axis within its limits", () => {
    const t: Transform = { sx: 2, sy: 0.5, tx: 10, ty: -20 };
    const z = zoomAround(t, 3, 100, 50);
    const before = [(100 - t.tx) / t.sx, (50 - t.ty) / t.sy];
    expect([(100 - z.tx) / z.sx, (50 - z.ty) / z.sy]).toEqual(before.map((v) => expect.closeTo(v)));
    const clamped = zoomAround(t, 100, 0, 0, { sx: [1, 4], sy: [0.1, 100] });
    expect(clamped.sx).toBe(4);
    expect(clamped.sy).toBe(50);
    const yOnly = zoomAround(t, 2, 0, 0, undefined, { x: false, y: true });
    expect([yOnly.sx, yOnly.sy]).toEqual([2, 1]);
  });

  it("fits a rectangle inside insets, each axis on its own", () => {
    const t = fitTransform({ x0: 10, y0: 0, x1: 110, y1: 1000 }, 300, 240, { left: 50, right: 50, top: 20, bottom: 20 });
    expect([10 * t.sx + t.tx, 110 * t.sx + t.tx]).toEqual([50, 250]);
    expect([0 * t.sy + t.ty, 1000 * t.sy + t.ty]).toEqual([20, 220]);
  });
});

describe("viewport", () => {
  function mount() {
    const calls = { draw: 0, clicks: [] as number[][], moves: 0 };
    const v = createViewport({
      draw: () => calls.draw++,
      onClick: (p) => calls.clicks.push([p.x, p.y]),
      onUserMove: () => calls.moves++,
    });
    document.body.appendChild(v.el);
    v.resize(200, 100);
    v.setTransform({ sx: 2, sy: 2, tx: 0, ty: 0 });
    return { v, calls };
  }
  const pointer = (type: string, x: number, y: number, buttons = 1) => new MouseEvent(type, { clientX: x, clientY: y, buttons, button: 0, bubbles: true });

  it("tells a click from a drag; a drag pans", () => {
    const { v, calls } = mount();
    v.overlay.dispatchEvent(pointer("pointerdown", 20, 10));
    v.overlay.dispatchEvent(pointer("pointerup", 20, 10, 0));
    expect(calls.clicks).toEqual([[10, 5]]);
    v.overlay.dispatchEvent(pointer("pointerdown", 20, 10));
    v.overlay.dispatchEvent(pointer("pointermove", 60, 30));
    v.overlay.dispatchEvent(pointer("pointerup", 60, 30, 0));
    expect(calls.clicks).toHaveLength(1);
    expect(v.transform).toEqual({ sx: 2, sy: 2, tx: 40, ty: 20 });
    expect(calls.moves).toBe(1);
    expect(v.overlay.getAttribute("data-tx")).toBe("40");
    expect(v.visible()).toEqual({ x0: -20, y0: -10, x1: 80, y1: 40 });
    expect(v.toClient(10, 5)).toEqual([60, 30]);
    expect(v.el.getAttribute("data-draw-ms")).not.toBeNull();
    v.dispose();
  });

  it("zooms with the wheel around the pointer", () => {
    const { v, calls } = mount();
    v.overlay.dispatchEvent(new WheelEvent("wheel", { clientX: 50, clientY: 50, deltaY: -100, bubbles: true, cancelable: true }));
    const t = v.transform;
    expect(t.sx).toBeGreaterThan(2);
    expect((50 - t.tx) / t.sx).toBeCloseTo(25);
    expect(calls.moves).toBe(1);
  });
});
