// The scan's maps as the kernel sends them (float32 [n_layers, n_experts] buffers, NaN rows for
// dense layers), the map a view shows (behaviour, control, or their difference, in one of the two
// measures) and the colour scale that fits it.

import { type ArrayMeta, decodeArray } from "../shared/codecs";
import { diverging, type Scale, sequential, type Theme } from "../shared/theme";

export type Mode = "behaviour" | "control" | "score";
export type Score = "contrast" | "risk_diff";

export interface SetInfo {
  n_prompts: number;
  n_tokens: number;
}

/** The `_maps` trait. */
export interface MapsTrait {
  behaviour_rate: ArrayMeta;
  control_rate: ArrayMeta;
  behaviour_weight: ArrayMeta;
  control_weight: ArrayMeta;
  behaviour: SetInfo;
  control: SetInfo;
}

export interface Maps {
  nLayers: number;
  nExperts: number;
  rate: { behaviour: Float32Array; control: Float32Array; score: Float32Array };
  weight: { behaviour: Float32Array; control: Float32Array; score: Float32Array };
  behaviour: SetInfo;
  control: SetInfo;
}

function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i]; // float32 rounding, as torch computes it
  return out;
}

function decodeMap(meta: ArrayMeta, name: string): Float32Array {
  const array = decodeArray(meta);
  if (array.dtype !== "float32" || array.shape.length !== 2) {
    throw new Error(`map ${name} must be float32 [n_layers, n_experts]; got ${array.dtype} [${array.shape}]`);
  }
  return array.data as Float32Array;
}

export function decodeMaps(trait: MapsTrait, nLayers: number, nExperts: number): Maps {
  const get = (name: keyof MapsTrait) => {
    const data = decodeMap(trait[name] as ArrayMeta, name);
    if (data.length !== nLayers * nExperts) throw new Error(`map ${name} has ${data.length} values, expected ${nLayers} x ${nExperts}`);
    return data;
  };
  const rate = { behaviour: get("behaviour_rate"), control: get("control_rate") };
  const weight = { behaviour: get("behaviour_weight"), control: get("control_weight") };
  return {
    nLayers,
    nExperts,
    rate: { ...rate, score: difference(rate.behaviour, rate.control) },
    weight: { ...weight, score: difference(weight.behaviour, weight.control) },
    behaviour: trait.behaviour,
    control: trait.control,
  };
}

export function measureOf(maps: Maps, score: Score) {
  return score === "risk_diff" ? maps.rate : maps.weight;
}

export function valuesFor(maps: Maps, mode: Mode, score: Score): Float32Array {
  return measureOf(maps, score)[mode];
}

function extent(values: ArrayLike<number>, abs: boolean): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const v = abs ? Math.abs(values[i]) : values[i];
    if (v > m) m = v; // NaN compares false
  }
  return m;
}

/**
 * The scale of the shown map: diverging around 0 for the difference, sequential for one set's
 * map, with one maximum for both sets so that behaviour and control compare by eye.
 */
export function scaleFor(maps: Maps, mode: Mode, score: Score, theme: Theme): Scale {
  const measure = measureOf(maps, score);
  if (mode === "score") return diverging(theme, extent(measure.score, true) || 1);
  return sequential(theme, Math.max(extent(measure.behaviour, false), extent(measure.control, false)) || 1);
}

export const MODE_LABELS: Record<Mode, string> = {
  behaviour: "behaviour",
  control: "control",
  score: "behaviour − control",
};

export const SCORE_LABELS: Record<Score, string> = {
  contrast: "mean routing weight (contrast)",
  risk_diff: "selection rate (risk difference)",
};

/** Numbers for tooltips and legends: 3 significant digits, a sign when asked. */
export function formatValue(v: number, signed = false): string {
  if (!Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const text = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) < 1e-3 ? v.toExponential(1) : v.toPrecision(3);
  return signed && v > 0 ? `+${text}` : text;
}
