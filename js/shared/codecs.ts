// Binary arrays between the kernel and the browser. The Python side (interplab/widgets/codecs.py)
// sends `{dtype, shape, data}` where `data` is raw little-endian bytes (a DataView once anywidget
// has delivered it), or `{dtype, shape, buffer: i}` pointing into a command reply's buffers.

import type { BufferLike } from "./types";

export type DType = "float32" | "int32" | "float64" | "uint8";

type TypedArrayFor = {
  float32: Float32Array;
  int32: Int32Array;
  float64: Float64Array;
  uint8: Uint8Array;
};

const CONSTRUCTORS = {
  float32: Float32Array,
  int32: Int32Array,
  float64: Float64Array,
  uint8: Uint8Array,
} as const;

export interface NdArray<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: TypedArrayFor[D];
}

/** The wire form: metadata plus bytes inline (`data`) or an index into a message's buffers. */
export interface ArrayMeta {
  dtype: string;
  shape: number[];
  data?: BufferLike;
  buffer?: number;
}

function bytesOf(buffer: BufferLike): Uint8Array {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function checkDtype(dtype: string): DType {
  if (!(dtype in CONSTRUCTORS)) {
    throw new Error(`unsupported array dtype ${JSON.stringify(dtype)}: expected one of ${Object.keys(CONSTRUCTORS)}`);
  }
  return dtype as DType;
}

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A typed array over `buffer` (copied when the bytes are not aligned for the element type). */
export function decode<D extends DType>(buffer: BufferLike, dtype: D, shape?: number[]): NdArray<D> {
  checkDtype(dtype);
  const Ctor = CONSTRUCTORS[dtype];
  const bytes = bytesOf(buffer);
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  }
  const n = bytes.byteLength / size;
  const dims = shape ?? [n];
  if (product(dims) !== n) throw new Error(`shape [${dims}] needs ${product(dims)} values but the buffer holds ${n}`);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const data = new Ctor(aligned.buffer as ArrayBuffer, aligned.byteOffset, n) as TypedArrayFor[D];
  return { dtype, shape: dims, data };
}

/** Decode a wire-form array: inline bytes, or `buffers[meta.buffer]` of a command reply. */
export function decodeArray(meta: ArrayMeta, buffers: BufferLike[] = []): NdArray {
  const dtype = checkDtype(meta.dtype);
  let source = meta.data;
  if (source === undefined && meta.buffer !== undefined) {
    source = buffers[meta.buffer];
    if (source === undefined) throw new Error(`array refers to buffer ${meta.buffer} but the message has ${buffers.length}`);
  }
  if (source === undefined) throw new Error("array has neither inline data nor a buffer index");
  return decode(source, dtype, meta.shape);
}

/** The wire form of a typed array, its bytes as an ArrayBuffer of its own (for `model.send`). */
export function encode(data: Float32Array | Int32Array | Float64Array | Uint8Array, shape?: number[]) {
  const dtype = (Object.keys(CONSTRUCTORS) as DType[]).find((k) => data instanceof CONSTRUCTORS[k])!;
  const dims = shape ?? [data.length];
  if (product(dims) !== data.length) throw new Error(`shape [${dims}] does not fit ${data.length} values`);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
  return { meta: { dtype, shape: dims }, buffer: bytes };
}

/** Row `i` of a 2-D array (a view, no copy). */
export function row<D extends DType>(array: NdArray<D>, i: number): TypedArrayFor[D] {
  if (array.shape.length !== 2) throw new Error(`row() needs a 2-D array, this one has shape [${array.shape}]`);
  const w = array.shape[1];
  return array.data.subarray(i * w, (i + 1) * w) as TypedArrayFor[D];
}
