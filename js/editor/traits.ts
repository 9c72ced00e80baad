// The traits RuleEditor syncs (interplab.widgets.editor.RuleEditor), checked against the Python
// class by tests/unit/test_wire_traits.py.

import type { BaseTraits } from "../shared/types";
import type { InferenceState, KernelDiagnostic } from "./lint";

export interface ConceptInfo {
  name: string;
  method: string;
  detected: boolean;
}

export interface DetectionState {
  text: string;
  tokens: string[];
  detected: Record<string, number[]>;
}

export interface GenerationState {
  prompt: string;
  strength: number;
  base: string | null;
  steered: string;
  derived: string[];
  suppressed: string[];
  steering: Record<string, number>;
}

export interface EditorTraits extends BaseTraits {
  rules: string;
  text: string;
  strength: number;
  max_new_tokens: number;
  diagnostics: KernelDiagnostic[];
  generation: GenerationState | null;
  _concepts: ConceptInfo[];
  _detection: DetectionState;
  _inference: InferenceState | Record<string, never>;
}
