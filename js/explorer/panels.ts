// The explorer's panels below the graph, as DOM built from the traits: the metric (with what
// faithfulness means), the pinned nodes with verification and interventions, groups and their
// suggestions, a node's score per prompt, and the legend above the graph.

import { type Child, h, replaceChildren } from "../shared/dom";
import { type Breakdown, formatScore, type Intervention, type Metric, num, type Suggestion, type Verified } from "./data";
import { LOG_DECADES } from "./graph";

const row = (name: Child, value: Child, cls = "") => h("tr", {}, h("td", { class: "il-muted" }, name), h("td", { class: `il-num ${cls}`.trim() }, value));

export const FAITHFULNESS_NOTE =
  "f = (m(C) − m(∅)) / (m(M) − m(∅)): 1 = the whole model's metric, 0 = everything ablated. Above 1 the circuit alone " +
  "moves the metric further than the whole model (nodes left out work against it); below 0 it moves it the other way.";

export function renderMetric(box: HTMLElement, m: Metric | null, metricLabel: string, latency: number | null): void {
  if (!m || m.clean === undefined) {
    replaceChildren(box, h("span", { class: "il-muted" }, "no metric yet"));
    return;
  }
  const f = num(m.faithfulness);
  const fText = Number.isNaN(f) && m.full === m.empty ? "undefined (the model's metric equals the empty circuit's)" : formatScore(m.faithfulness);
  replaceChildren(
    box,
    h("div", { class: "il-metric-title" }, metricLabel),
    h(
      "table",
      {},
      row("clean / corrupted", `${formatScore(m.clean)} / ${formatScore(m.corrupt)}`),
      row(`with ${m.n_ablated} node${m.n_ablated === 1 ? "" : "s"} ablated (${m.ablation})`, formatScore(m.ablated), "il-metric-ablated"),
      row(`circuit (${m.size} of ${m.total} nodes)`, formatScore(m.circuit)),
      row(h("abbr", { attrs: { title: FAITHFULNESS_NOTE } }, "faithfulness f of the circuit"), fText, "il-metric-faithfulness"),
      row("model re-run", `${(m.seconds * 1000).toFixed(0)} ms${latency !== null ? ` · click to update ${latency.toFixed(0)} ms` : ""}`, "il-metric-time"),
    ),
    h("div", { class: "il-note il-muted" }, FAITHFULNESS_NOTE),
  );
  box.setAttribute("data-ablated", String(m.ablated));
  box.setAttribute("data-faithfulness", String(m.faithfulness));
  if (latency !== null) box.setAttribute("data-latency-ms", latency.toFixed(1));
}

export interface PinnedRow {
  id: string;
  token: string;
  score: number;
  verified?: Verified;
}

export interface PinnedActions {
  unpin(id: string): void;
  perPrompt(id: string): void;
}

export function renderPinned(box: HTMLElement, rows: PinnedRow[], actions: PinnedActions): void {
  if (!rows.length) {
    replaceChildren(box, h("div", { class: "il-muted" }, "No pinned nodes: ctrl/cmd-click a node (or explorer.pin([...])) to pin it."));
    return;
  }
  replaceChildren(
    box,
    h(
      "table",
      { class: "il-pinned-table" },
      h("tr", {}, h("th", {}, "node"), h("th", {}, "token"), h("th", {}, "score"), h("th", {}, "exact"), h("th", {})),
      ...rows.map((r) =>
        h(
          "tr",
          { attrs: { "data-node": r.id } },
          h("td", { class: "il-mono" }, r.id),
          h("td", { class: "il-mono" }, JSON.stringify(r.token)),
          h("td", { class: "il-num" }, formatScore(r.score)),
          h("td", { class: "il-num" }, r.verified ? formatScore(r.verified.exact) : "–"),
          h(
            "td",
            {},
            h("button", { class: "il-button il-small", attrs: { title: "exact score per prompt" }, on: { click: () => actions.perPrompt(r.id) } }, "per prompt"),
            h("button", { class: "il-button il-small", attrs: { title: "unpin" }, on: { click: () => actions.unpin(r.id) } }, "×"),
          ),
        ),
      ),
    ),
  );
}

export function renderIntervention(box: HTMLElement, r: Intervention | null, metricLabel: string): void {
  if (!r || !r.mode) {
    replaceChildren(box);
    return;
  }
  const how = r.mode === "scale" ? `scaled ×${r.factor}` : r.mode === "patch" ? "patched in from the clean run" : `${r.mode}-ablated`;
  const n = r.per_prompt.before.length;
  const perPrompt = Array.from({ length: n }, (_, i) => h("tr", {}, h("td", { class: "il-muted" }, `prompt ${i}`), h("td", { class: "il-num" }, formatScore(r.per_prompt.before[i])), h("td", { class: "il-num" }, formatScore(r.per_prompt.after[i]))));
  replaceChildren(
    box,
    h("div", {}, h("b", {}, `${r.nodes.length} node${r.nodes.length === 1 ? "" : "s"} ${how}`), ` on the ${r.run} prompts`),
    h("div", { class: "il-intervention-metric", attrs: { "data-before": String(r.before), "data-after": String(r.after) } }, `${metricLabel}: ${formatScore(r.before)} → `, h("b", {}, formatScore(r.after))),
    h("details", {}, h("summary", {}, "per prompt"), h("table", {}, h("tr", {}, h("th", {}), h("th", {}, "before"), h("th", {}, "after")), ...perPrompt)),
    r.generation
      ? h(
          "div",
          { class: "il-generation" },
          h("div", { class: "il-muted" }, "prompt ", h("code", {}, r.generation.prompt)),
          h("div", {}, "before: ", h("code", { class: "il-gen-before" }, r.generation.before)),
          h("div", {}, "after: ", h("code", { class: "il-gen-after" }, r.generation.after)),
        )
      : null,
  );
}

export interface GroupActions {
  ungroup(name: string): void;
  accept(index: number): void;
  reject(index: number): void;
}

export function renderGroups(box: HTMLElement, groups: Record<string, string[]>, scores: Record<string, number>, suggestions: Suggestion[], actions: GroupActions): void {
  const names = Object.keys(groups);
  replaceChildren(
    box,
    names.length
      ? h(
          "ul",
          { class: "il-groups" },
          ...names.map((name) =>
            h(
              "li",
              { attrs: { "data-group": name } },
              h("b", {}, name),
              ` · ${groups[name].length} nodes · score ${formatScore(scores[name])} `,
              h("button", { class: "il-button il-small", on: { click: () => actions.ungroup(name) } }, "ungroup"),
            ),
          ),
        )
      : h("div", { class: "il-muted" }, "No groups: pin nodes and group them, or ask for suggestions."),
    suggestions.length
      ? h(
          "ul",
          { class: "il-suggestions" },
          ...suggestions.map((s, k) =>
            h(
              "li",
              { attrs: { "data-suggestion": k } },
              `similar edges (cos ≥ ${formatScore(s.similarity)}): `,
              h("span", { class: "il-mono" }, s.nodes.join(", ")),
              " ",
              h("button", { class: "il-button il-small", on: { click: () => actions.accept(k) } }, "accept"),
              h("button", { class: "il-button il-small", on: { click: () => actions.reject(k) } }, "reject"),
            ),
          ),
        )
      : null,
  );
}

export function renderBreakdown(box: HTMLElement, b: Breakdown | null): void {
  if (!b || !b.node) {
    replaceChildren(box);
    return;
  }
  let max = 0;
  for (const v of b.effect) if (Number.isFinite(num(v))) max = Math.max(max, Math.abs(num(v)));
  const bar = (v: number) => {
    const width = max > 0 && Number.isFinite(v) ? (Math.abs(v) / max) * 50 : 0;
    return h("span", { class: `il-bar ${v < 0 ? "il-bar-negative" : "il-bar-positive"}`, style: { width: `${width.toFixed(1)}%`, "margin-left": v < 0 ? `${(50 - width).toFixed(1)}%` : "50%" } });
  };
  replaceChildren(
    box,
    h("div", {}, h("b", {}, b.node), `: exact score per prompt (patching it alone); mean ${formatScore(b.exact)}, ${b.method} estimate ${formatScore(b.estimate)}`),
    h(
      "table",
      { class: "il-breakdown" },
      ...b.prompts.map((prompt, i) =>
        h("tr", {}, h("td", { class: "il-num" }, formatScore(b.effect[i])), h("td", { class: "il-bar-cell" }, bar(num(b.effect[i]))), h("td", { class: "il-prompt" }, prompt)),
      ),
    ),
  );
}

/** The legend line's text: what colour and marks mean. */
export function legendText(mode: string, max: number): string {
  if (mode === "log") return `colour: log |score|, ${formatScore(max / 10 ** LOG_DECADES)} (pale) to ${formatScore(max)} (full), ${LOG_DECADES} decades`;
  if (mode === "rank") return "colour: rank by |score|, 1 − log(1+rank) / log(1+n)";
  return `colour: |score|, 0 (pale) to ${formatScore(max)} (full)`;
}
