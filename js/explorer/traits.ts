// The traits CircuitExplorer syncs (interplab.widgets.explorer.CircuitExplorer), checked against the
// Python class by tests/unit/test_wire_traits.py. The payloads' shapes are in data.ts; enumerations
// are plain strings, their values and labels come from `_vocab`.

import type { ArrayMeta } from "../shared/codecs";
import type { BaseTraits } from "../shared/types";
import type { Rect } from "../shared/viewport";
import type {
  Breakdown, Collapsed, EdgesTrait, Intervention, Metric, NodesTrait, Suggestion, Verified, Vocab,
} from "./data";

export interface ExplorerTraits extends BaseTraits {
  model_name: string;
  task_name: string;
  n_prompts: number;
  level: string;
  n_layers: number;
  n_heads: number;
  labels: string[];
  method: string;
  ablation: string;
  colour: string;
  top_k: number;
  top_edges: number;
  circuit: string[];
  ablated: string[];
  pinned: string[];
  groups: Record<string, string[]>;
  suggestions: Suggestion[];
  collapsed: Collapsed;
  zoom: Partial<Rect>; // {} until a view is saved
  metric: Partial<Metric>; // {} until the first evaluation
  verified: Record<string, Verified>;
  intervention: Partial<Intervention>;
  breakdown: Partial<Breakdown>;
  _vocab: Vocab;
  _nodes: NodesTrait;
  _scores: Record<string, ArrayMeta>; // method -> float32 [nodes]
  _orders: Record<string, { order: ArrayMeta; cumulative: ArrayMeta }>;
  _edges: EdgesTrait;
}
