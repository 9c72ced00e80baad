// The traits TokenView syncs (interplab.widgets.tokenview.TokenView), checked against the Python
// class by tests/unit/test_wire_traits.py.

import type { ArrayMeta } from "../shared/codecs";
import type { BaseTraits } from "../shared/types";

/** Predictions for every position, sent ahead by `TokenView.preload_predictions()` (for reports). */
export interface Preloaded {
  tokens: string[]; // [seq * k], row-major
  ids: ArrayMeta; // int32 [seq, k]
  logprobs: ArrayMeta; // float32 [seq, k]
}

export interface TokenViewTraits extends BaseTraits {
  tokens: string[];
  label: string;
  ends: [string, string];
  selected: number | null;
  _token_ids: ArrayMeta;
  _values: ArrayMeta;
  _predictions: Preloaded | null;
}
