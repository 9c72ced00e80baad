import { describe, expect, it } from "vitest";
import { niceTicks, tickLabel } from "./ticks";

describe("ticks", () => {
  it("puts ticks at 1, 2, 5 times a power of ten", () => {
    expect(niceTicks(-3.2, 3.2, 4)).toEqual([-2, 0, 2]); // a step of 1.6 rounds up to 2
    expect(niceTicks(-3.2, 3.2, 8)).toEqual([-3, -2, -1, 0, 1, 2, 3]);
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(-0.07, 0.07, 4)).toEqual([-0.05, 0, 0.05]);
    expect(niceTicks(2, 2)).toEqual([2]);
    expect(niceTicks(Number.NaN, 1)).toEqual([]);
  });

  it("labels without float noise", () => {
    expect(tickLabel(0.30000000000000004)).toBe("0.3");
    expect(tickLabel(0)).toBe("0");
    expect(tickLabel(20000)).toBe("2e+4");
  });
});
