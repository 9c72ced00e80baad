// The traits ExpertScanner syncs (interplab.widgets.scanner.ExpertScanner), checked against the
// Python class by tests/unit/test_wire_traits.py. Enumerations are strings here: their values
// come from Python (`_choices`), not from a copy in TypeScript.

import type { BaseTraits } from "../shared/types";
import type { Choices } from "./maps";
import type { PromptLists, RoutingMessage } from "./routing";
import type { Run } from "./runs";

export interface ScannerTraits extends BaseTraits {
  model_name: string;
  n_layers: number;
  n_experts: number;
  top_k: number;
  moe_layers: number[];
  tokens: string;
  score: string;
  mode: string;
  off: [number, number][];
  on: [number, number][];
  runs: Run[];
  run_n: number;
  max_new_tokens: number;
  classifier: string;
  _choices: Choices;
  _maps: Record<string, unknown>;
  _prompts: PromptLists;
  _routing: RoutingMessage | null;
}
