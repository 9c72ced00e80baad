// The kernel's diagnostics in the editor. The kernel reports 1-based lines and columns counted in
// Unicode code points, with an exclusive end column; CodeMirror wants UTF-16 offsets into the
// document. `toRanges` converts (pure); `KernelLint` asks the kernel by setting the `rules` trait
// and waits for the `_inference` trait that answers that very text.

import type { Diagnostic as CmDiagnostic } from "@codemirror/lint";
import type { AnyModel } from "../shared/types";
import type { Proofs } from "./proofs";

export interface KernelDiagnostic {
  line: number;
  column: number;
  end_line: number;
  end_column: number;
  severity: "error" | "warning";
  message: string;
  code?: string;
}

/** UTF-16 offset of code-point column `column` (1-based) in `line`, clamped to the line. */
export function columnOffset(line: string, column: number): number {
  let offset = 0;
  for (let k = 1; k < column && offset < line.length; k++) {
    offset += line.codePointAt(offset)! > 0xffff ? 2 : 1;
  }
  return Math.min(offset, line.length);
}

/** Kernel diagnostics as CodeMirror ranges over `doc` (lines split on "\n", as the kernel does).
 *  An empty span is widened to one character (the last one of the line at its end) so it shows. */
export function toRanges(diagnostics: KernelDiagnostic[], doc: string): CmDiagnostic[] {
  const lines = doc.split("\n");
  const starts: number[] = [];
  let at = 0;
  for (const line of lines) {
    starts.push(at);
    at += line.length + 1;
  }
  const offset = (line: number, column: number) => {
    const i = Math.min(Math.max(line, 1), lines.length) - 1;
    return starts[i] + columnOffset(lines[i], column);
  };
  return diagnostics.map((d) => {
    let from = offset(d.line, d.column);
    let to = Math.max(from, offset(d.end_line ?? d.line, d.end_column ?? d.column + 1));
    if (from === to) {
      const lineIndex = Math.min(Math.max(d.line, 1), lines.length) - 1;
      const lineEnd = starts[lineIndex] + lines[lineIndex].length;
      if (to < lineEnd) to += 1;
      else if (from > starts[lineIndex]) from -= 1;
    }
    return { from, to, severity: d.severity, message: d.message, source: d.code ?? "rules" };
  });
}

/** What the kernel computed for one rule text (the `_inference` trait): `Inference.to_dict` with flat
 *  proofs, tagged with the text it answers. */
export interface InferenceState {
  rules: string;
  stale: boolean;
  diagnostics: KernelDiagnostic[];
  given: string[];
  derived: string[];
  facts: string[];
  suppressed: string[];
  conflicts: string[];
  proofs: Proofs;
  suppression_proofs: Proofs;
  elapsed_ms: number;
}

export class KernelTimeout extends Error {
  constructor(seconds: number) {
    super(`the kernel did not check the rules within ${seconds} s: is it busy, or was it restarted?`);
    this.name = "KernelTimeout";
  }
}

/** Send `doc` as the rules and resolve with the kernel's analysis of exactly that text. */
export function analyse(model: AnyModel, doc: string, timeoutMs = 20_000): Promise<InferenceState> {
  const current = model.get("_inference") as InferenceState | undefined;
  if (current && current.rules === doc) return Promise.resolve(current);
  return new Promise((resolve, reject) => {
    const done = () => {
      model.off("change:_inference", onChange);
      clearTimeout(timer);
    };
    const onChange = () => {
      const state = model.get("_inference") as InferenceState | undefined;
      if (state && state.rules === doc) {
        done();
        resolve(state);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new KernelTimeout(Math.round(timeoutMs / 1000)));
    }, timeoutMs);
    model.on("change:_inference", onChange);
    if (model.get("rules") !== doc) {
      model.set("rules", doc);
      model.save_changes();
    }
  });
}
