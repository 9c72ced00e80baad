// The run panel: generate with and without the marked experts for the first prompts of each set
// (the `_run` command calls the same engine path as `scanner.run()` in Python) and show the
// outputs side by side, with the behaviour rate before and after when a classifier was given.

import { h, replaceChildren } from "../shared/dom";

export interface RunRow {
  set: string;
  prompt: string;
  baseline: string;
  intervened: string;
  baseline_flag: boolean | null;
  intervened_flag: boolean | null;
}

export interface RunRate {
  baseline: number;
  intervened: number;
  n: number;
}

/** One entry of the `runs` trait. */
export interface Run {
  off: [number, number][];
  on: [number, number][];
  max_new_tokens: number;
  classifier: string | null;
  rows: RunRow[];
  rates: Record<string, RunRate> | null;
}

export interface RunPanelOptions {
  run(n: number, maxNewTokens: number): Promise<unknown>;
  showError(error: unknown): void;
}

const pairs = (list: [number, number][]) => (list.length ? list.map(([l, e]) => `L${l}E${e}`).join(", ") : "none");
const percent = (x: number) => `${Math.round(100 * x)}%`;

function numberInput(label: string, value: number, min: number): [HTMLElement, HTMLInputElement] {
  const input = h("input", { class: "il-input", attrs: { type: "number", min, step: 1, value, "aria-label": label } });
  return [h("label", { class: "il-field" }, `${label} `, input), input];
}

/** A positive integer from an input, clamped to [1, max] (the field's own text otherwise). */
export function readCount(input: HTMLInputElement, fallback: number, max: number): number {
  const v = Math.round(Number(input.value));
  return Number.isFinite(v) && v >= 1 ? Math.min(v, max) : fallback;
}

/** The ranges the kernel accepts (the `limits` of the `_choices` trait). */
export type Limits = Record<string, { min: number; max: number }>;

export class RunPanel {
  readonly el: HTMLElement;
  readonly button: HTMLButtonElement;
  private readonly count: HTMLInputElement;
  private readonly tokens: HTMLInputElement;
  private readonly summary: HTMLElement;
  private readonly table: HTMLElement;
  private limits: Limits = {};

  constructor(private readonly options: RunPanelOptions) {
    const [countField, count] = numberInput("prompts per set", 4, 1);
    const [tokensField, tokens] = numberInput("new tokens", 32, 1);
    this.count = count;
    this.tokens = tokens;
    this.button = h("button", { class: "il-button il-primary", attrs: { title: "generate with and without the marked experts" }, on: { click: () => this.start() } }, "Run");
    this.summary = h("div", { class: "il-run-summary" });
    this.table = h("div", { class: "il-run-table" });
    this.el = h(
      "div",
      { class: "il-panel il-run-panel" },
      h("div", { class: "il-panel-title" }, "Run: outputs without and with the marks"),
      h("div", { class: "il-row" }, countField, tokensField, this.button),
      this.summary,
      this.table,
    );
  }

  setDefaults(n: number, maxNewTokens: number, limits: Limits = {}): void {
    this.limits = limits;
    this.count.value = String(n);
    this.tokens.value = String(maxNewTokens);
    this.count.max = String(limits.run_n?.max ?? "");
    this.tokens.max = String(limits.max_new_tokens?.max ?? "");
  }

  private async start(): Promise<void> {
    const n = readCount(this.count, 4, this.limits.run_n?.max ?? Infinity);
    const maxNewTokens = readCount(this.tokens, 32, this.limits.max_new_tokens?.max ?? Infinity);
    this.button.disabled = true;
    try {
      await this.options.run(n, maxNewTokens);
    } catch (error) {
      this.options.showError(error);
    } finally {
      this.button.disabled = false;
    }
  }

  render(runs: Run[]): void {
    const run = runs[runs.length - 1];
    if (!run) {
      this.summary.textContent = "Mark experts on the map, then press Run to compare the outputs.";
      replaceChildren(this.table);
      return;
    }
    const lines = [
      h("div", {}, h("b", {}, `Run ${runs.length}`), ` · off: ${pairs(run.off)} · on: ${pairs(run.on)} · ${run.max_new_tokens} new tokens`),
    ];
    if (run.rates && run.classifier) {
      const parts = Object.entries(run.rates).map(([set, r]) =>
        h(
          "span",
          { class: "il-rate" },
          `${set}: `,
          h("b", {}, percent(r.baseline)),
          " → ",
          h("b", { class: r.intervened !== r.baseline ? "il-changed-rate" : "" }, percent(r.intervened)),
          ` of ${r.n}`,
        ),
      );
      lines.push(h("div", {}, `behaviour rate (${run.classifier}): `, ...parts));
    } else {
      lines.push(h("div", { class: "il-muted" }, "no classifier: outputs only"));
    }
    if (!run.off.length && !run.on.length) lines.push(h("div", { class: "il-muted" }, "No experts were marked: both columns come from the same routing."));
    replaceChildren(this.summary, ...lines);

    const flag = (value: boolean | null) => (value === null ? null : h("span", { class: value ? "il-flag il-flag-yes" : "il-flag" }, value ? "●" : "○"));
    const rows = run.rows.map((row) =>
      h(
        "tr",
        {},
        h("td", { class: "il-muted" }, row.set),
        h("td", { class: "il-mono il-prompt" }, row.prompt),
        h("td", { class: "il-mono" }, flag(row.baseline_flag), row.baseline),
        h("td", { class: `il-mono${row.intervened !== row.baseline ? " il-changed" : ""}` }, flag(row.intervened_flag), row.intervened),
      ),
    );
    replaceChildren(
      this.table,
      h("table", {}, h("tr", {}, h("th", {}, "set"), h("th", {}, "prompt"), h("th", {}, "baseline"), h("th", {}, "with the marks")), ...rows),
    );
  }
}
