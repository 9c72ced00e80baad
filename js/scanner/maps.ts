// The scan's maps as the kernel sends them (float32 [n_layers, n_experts] buffers, NaN rows for
// dense layers), the toolbar's choices as the kernel describes them (the `_choices` trait: which
// maps, measures and token scopes exist is Python's to say), the map a view shows (one set's map
// or the difference, in one measure) and the colour scale that fits it.

import { type ArrayMeta, decodeArray } from "../shared/codecs";
import { diverging, type Scale, sequential, type Theme } from "../shared/theme";

export interface Choice {
  value: string;
  label: string;
}

/** A map to show: one set's ("behaviour", "control") or their difference ("score"), signed. */
export interface ModeChoice extends Choice {
  signed: boolean;
}

/** A measure: the per-set maps (`behaviour_<map>`, `control_<map>` in `_maps`), their short name and unit. */
export interface ScoreChoice extends Choice {
  map: string;
  name: string;
  unit: string;
}

/** The `_choices` trait. */
export interface Choices {
  mode: ModeChoice[];
  score: ScoreChoice[];
  tokens: Choice[];
  limits: Record<string, { min: number; max: number }>;
}

/** `{value: label}` of a choice list, in its order (for a `<select>`). */
export function labels(choices: Choice[]): Record<string, string> {
  return Object.fromEntries(choices.map((c) => [c.value, c.label]));
}

/** The choice of `value`, or the first one (a value the kernel does not list is not shown). */
export function chosen<C extends Choice>(choices: C[], value: string): C {
  const found = choices.find((c) => c.value === value) ?? choices[0];
  if (!found) throw new Error("the kernel sent no choices for the scanner's toolbar");
  return found;
}

export interface SetInfo {
  n_prompts: number;
  n_tokens: number;
}

/** One measure: both sets' maps and their difference, float32 [n_layers * n_experts]. */
export interface Measure {
  behaviour: Float32Array;
  control: Float32Array;
  score: Float32Array;
}

export interface Maps {
  nLayers: number;
  nExperts: number;
  /** By map name (`weight`, `rate`). */
  measures: Record<string, Measure>;
  behaviour: SetInfo;
  control: SetInfo;
}

function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i]; // float32 rounding, as torch computes it
  return out;
}

function decodeMap(meta: unknown, name: string, size: number, nLayers: number, nExperts: number): Float32Array {
  if (!meta || typeof meta !== "object") throw new Error(`the scan sent no map ${name}`);
  const array = decodeArray(meta as ArrayMeta);
  if (array.dtype !== "float32" || array.shape.length !== 2) {
    throw new Error(`map ${name} must be float32 [n_layers, n_experts]; got ${array.dtype} [${array.shape}]`);
  }
  if (array.data.length !== size) throw new Error(`map ${name} has ${array.data.length} values, expected ${nLayers} x ${nExperts}`);
  return array.data as Float32Array;
}

/** The `_maps` trait decoded: for every measure the scores list, both sets' maps and the difference. */
export function decodeMaps(trait: Record<string, unknown>, scores: ScoreChoice[], nLayers: number, nExperts: number): Maps {
  const measures: Record<string, Measure> = {};
  for (const { map } of scores) {
    const get = (set: string) => decodeMap(trait[`${set}_${map}`], `${set}_${map}`, nLayers * nExperts, nLayers, nExperts);
    const behaviour = get("behaviour");
    const control = get("control");
    measures[map] = { behaviour, control, score: difference(behaviour, control) };
  }
  return { nLayers, nExperts, measures, behaviour: trait.behaviour as SetInfo, control: trait.control as SetInfo };
}

/** The values of the shown map: `mode` ("behaviour", "control" or "score") in `score`'s measure. */
export function valuesFor(maps: Maps, mode: ModeChoice, score: ScoreChoice): Float32Array {
  const values = maps.measures[score.map]?.[mode.value as keyof Measure];
  if (!values) throw new Error(`no map ${mode.value} of ${score.map}`);
  return values;
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
export function scaleFor(maps: Maps, mode: ModeChoice, score: ScoreChoice, theme: Theme): Scale {
  const measure = maps.measures[score.map];
  if (mode.signed) return diverging(theme, extent(measure.score, true) || 1);
  return sequential(theme, Math.max(extent(measure.behaviour, false), extent(measure.control, false)) || 1);
}

/** What the legend's numbers are: the measure's unit, and for the difference which way round. */
export function legendTitle(mode: ModeChoice, score: ScoreChoice): string {
  return mode.signed ? `${score.unit}: ${mode.label}` : `${score.unit} (${mode.label})`;
}

/** Numbers for tooltips and legends: 3 significant digits, a sign when asked. */
export function formatValue(v: number, signed = false): string {
  if (!Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const text = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) < 1e-3 ? v.toExponential(1) : v.toPrecision(3);
  return signed && v > 0 ? `+${text}` : text;
}
