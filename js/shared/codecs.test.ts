import { describe, expect, it } from "vitest";
import { decode, decodeArray, encode, row } from "./codecs";
import { hexBytes } from "./testing";

// Bytes written by numpy: np.array([1.5, -2, nan, 3.25e-3], "<f4").tobytes().hex()
const FLOATS = "0000c03f000000c00000c07ff4fd543b";
// np.array([[1, -1, 70000], [2**31 - 1, 0, 5]], "<i4").tobytes().hex()
const INTS = "01000000ffffffff70110100ffffff7f0000000005000000";

describe("codecs", () => {
  it("reads numpy's float32 bytes", () => {
    const a = decode(hexBytes(FLOATS), "float32");
    expect(a.shape).toEqual([4]);
    expect(a.data[0]).toBe(1.5);
    expect(a.data[1]).toBe(-2);
    expect(Number.isNaN(a.data[2])).toBe(true);
    expect(a.data[3]).toBeCloseTo(3.25e-3, 9);
  });

  it("reads numpy's int32 bytes with a 2-D shape, row by row", () => {
    const a = decodeArray({ dtype: "int32", shape: [2, 3], data: hexBytes(INTS) });
    expect(Array.from(row(a, 0))).toEqual([1, -1, 70000]);
    expect(Array.from(row(a, 1))).toEqual([2 ** 31 - 1, 0, 5]);
  });

  it("takes a command reply's buffer by index", () => {
    const a = decodeArray({ dtype: "float32", shape: [4], buffer: 1 }, [hexBytes(INTS), hexBytes(FLOATS)]);
    expect(a.data[0]).toBe(1.5);
  });

  it("copies bytes that are not aligned for the element type", () => {
    const raw = new Uint8Array(17);
    raw.set(new Uint8Array(hexBytes(FLOATS).buffer), 1);
    const view = new DataView(raw.buffer, 1, 16);
    expect(Array.from(decode(view, "float32").data).slice(0, 2)).toEqual([1.5, -2]);
  });

  it("round-trips through encode", () => {
    const x = new Float32Array([0.25, -7, 1e-8, 3]);
    const { meta, buffer } = encode(x, [2, 2]);
    expect(meta).toEqual({ dtype: "float32", shape: [2, 2] });
    const back = decodeArray({ ...meta, data: buffer });
    expect(Array.from(back.data)).toEqual(Array.from(x));
    const ints = encode(new Int32Array([5, -6]));
    expect(Array.from(decodeArray({ ...ints.meta, data: new DataView(ints.buffer) }).data)).toEqual([5, -6]);
  });

  it("refuses mismatched shapes, missing buffers and unknown dtypes", () => {
    expect(() => decode(hexBytes(FLOATS), "float32", [3])).toThrow(/needs 3 values but the buffer holds 4/);
    expect(() => decode(hexBytes("000000"), "float32")).toThrow(/whole number/);
    expect(() => decodeArray({ dtype: "float32", shape: [1], buffer: 2 }, [])).toThrow(/buffer 2/);
    expect(() => decodeArray({ dtype: "complex64", shape: [1], data: hexBytes(FLOATS) })).toThrow(/unsupported/);
  });
});
