import { describe, expect, it } from "vitest";
import { MockModel, tick } from "../shared/testing";
import { analyse, columnOffset, type InferenceState, KernelTimeout, type KernelDiagnostic, toRanges } from "./lint";

const diag = (line: number, column: number, end_column: number, message = "m"): KernelDiagnostic => ({
  line,
  column,
  end_line: line,
  end_column,
  severity: "error",
  message,
  code: "syntax",
});

const analysis = (rules: string, diagnostics: KernelDiagnostic[] = []): InferenceState => ({
  rules,
  stale: diagnostics.length > 0,
  diagnostics,
  given: [],
  derived: [],
  facts: [],
  suppressed: [],
  conflicts: [],
  proofs: {},
  suppression_proofs: {},
  elapsed_ms: 1,
});

describe("toRanges", () => {
  it("maps 1-based line/column spans to document offsets", () => {
    const doc = "cat -> pet\npet and -> calm\n";
    // the kernel's diagnostic for line 2: "expected a concept name after 'and', found '->'" at columns 9..11
    const [r] = toRanges([diag(2, 9, 11)], doc);
    expect(doc.slice(r.from, r.to)).toBe("->");
    expect(r).toMatchObject({ severity: "error", message: "m", source: "syntax" });
  });

  it("counts columns in code points, as Python does", () => {
    const doc = "𝒳 and dgo -> z";
    // check_rules(doc, known=["𝒳", "dog"]) marks the unknown "dgo" at columns 7..10 (𝒳 is one code point, two UTF-16 units)
    const [r] = toRanges([diag(1, 7, 10)], doc);
    expect(doc.slice(r.from, r.to)).toBe("dgo");
    expect(columnOffset("😀😀a", 3)).toBe(4);
  });

  it("widens an empty span to one character and clamps past the end", () => {
    const doc = "cat and\nx";
    const [atEnd, inside, beyond] = toRanges([diag(1, 8, 8), diag(1, 1, 1), diag(9, 40, 50)], doc);
    expect(doc.slice(atEnd.from, atEnd.to)).toBe("d"); // end of line: the last character
    expect(doc.slice(inside.from, inside.to)).toBe("c");
    expect(beyond.from).toBeLessThanOrEqual(doc.length);
    expect(beyond.to).toBeLessThanOrEqual(doc.length);
  });
});

describe("analyse", () => {
  it("answers at once when the kernel already analysed the text", async () => {
    const model = new MockModel({ rules: "a -> b", _inference: analysis("a -> b") });
    const state = await analyse(model, "a -> b");
    expect(state.rules).toBe("a -> b");
    expect(model.saves).toBe(0);
  });

  it("sends the text as `rules` and waits for the analysis of exactly that text", async () => {
    const model = new MockModel({ rules: "a -> b", _inference: analysis("a -> b") });
    let result: InferenceState | null = null;
    analyse(model, "a and -> b").then((s) => (result = s));
    expect(model.get("rules")).toBe("a and -> b");
    expect(model.saves).toBe(1);
    model.set("_inference", analysis("a an")); // an older text's answer is not this one
    await tick();
    expect(result).toBeNull();
    model.set("_inference", analysis("a and -> b", [diag(1, 7, 9)]));
    await tick();
    expect(result!.diagnostics).toHaveLength(1);
    expect(model.listenerCount("change:_inference")).toBe(0);
  });

  it("gives up with a clear error when the kernel never answers", async () => {
    const model = new MockModel({ rules: "", _inference: analysis("") });
    await expect(analyse(model, "x -> y", 20)).rejects.toBeInstanceOf(KernelTimeout);
    expect(model.listenerCount("change:_inference")).toBe(0);
  });
});
