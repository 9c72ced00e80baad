// What a tooltip says about a drawn item: a node (its layer, component, token, every computed
// method's score, its rank, its exact score once verified, what a click does), or a cell or group
// (the sum of its nodes and the largest of them).

import { type Child, h } from "../shared/dom";
import { componentOf, formatScore, type Nodes, nodeId, type Verified, type Vocab } from "./data";
import { GROUP, type Item, type Layout } from "./layout";

export interface TooltipData {
  nodes: Nodes;
  labels: string[];
  layout: Layout;
  vocab: Vocab;
  method: string;
  scoresOf(method: string): ArrayLike<number> | null;
  rank: Int32Array;
  total: number;
  kept: Uint8Array;
  ablated: Set<string>;
  pinned: Set<string>;
  verified: Record<string, Verified>;
}

function positionsText(d: TooltipData, column: number): string {
  const a = d.layout.first[column];
  const b = d.layout.last[column];
  return a === b ? `position ${a} ${JSON.stringify(d.labels[a] ?? "")}` : `positions ${a}–${b}`;
}

export function describe(it: Item, fromLayer: boolean, d: TooltipData): Child[] {
  const n = d.nodes;
  const scores = d.scoresOf(d.method) ?? [];
  if (it.members.length === 1 && !fromLayer && it.kind !== GROUP) {
    const i = it.members[0];
    const id = nodeId(n, i);
    const head = n.head[i] >= 0 ? ` · head ${n.head[i]}` : "";
    const methods = d.vocab.methods.map(([m]) => [m, d.scoresOf(m)] as const).filter(([, s]) => s);
    const v = d.verified[id];
    const circuitNode = d.vocab.circuit_components.includes(componentOf(n, i));
    const state = !circuitNode ? "residual stream: read-only" : d.ablated.has(id) ? "ablated · click to restore" : d.kept[i] ? "in the circuit · click to ablate" : "pruned · click to ablate";
    return [
      h("div", {}, h("b", {}, `layer ${n.layer[i]} · ${componentOf(n, i)}${head}`), h("span", { class: "il-muted" }, `  ${id}`)),
      h("div", {}, "token ", h("code", {}, JSON.stringify(d.labels[n.position[i]] ?? "")), ` (position ${n.position[i]})`),
      h(
        "table",
        {},
        ...methods.map(([m, s]) => h("tr", { class: m === d.method ? "il-current" : "" }, h("td", {}, m), h("td", { class: "il-num" }, formatScore(s![i])))),
        d.rank[i] >= 0 ? h("tr", {}, h("td", {}, "rank"), h("td", { class: "il-num" }, `${d.rank[i] + 1} of ${d.total}`)) : null,
        v ? h("tr", { class: "il-verified" }, h("td", {}, "exact (patching)"), h("td", { class: "il-num" }, formatScore(v.exact))) : null,
        v ? h("tr", {}, h("td", {}, `estimate (${v.method})`), h("td", { class: "il-num" }, formatScore(v.estimate))) : null,
        v?.frozen !== undefined ? h("tr", {}, h("td", {}, "with patterns frozen"), h("td", { class: "il-num" }, formatScore(v.frozen))) : null,
        v?.through_patterns !== undefined ? h("tr", {}, h("td", {}, "through patterns (q/k)"), h("td", { class: "il-num" }, formatScore(v.through_patterns))) : null,
      ),
      h("div", { class: "il-muted" }, state, d.pinned.has(id) ? " · pinned (ctrl/cmd-click: unpin)" : " · ctrl/cmd-click: pin"),
    ];
  }
  const sum = it.members.reduce((s, i) => s + scores[i], 0);
  const top = [...it.members].sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a])).slice(0, 6);
  const what = it.kind === GROUP ? `group ${it.label}` : `${fromLayer ? "" : "collapsed: "}layer ${it.layer}, ${positionsText(d, it.column)}`;
  return [
    h("div", {}, h("b", {}, what)),
    h("div", {}, `sum of ${it.members.length} nodes: ${formatScore(sum)}`),
    h("table", {}, ...top.map((i) => h("tr", {}, h("td", { class: "il-mono" }, nodeId(n, i)), h("td", { class: "il-num" }, formatScore(scores[i]))))),
    h("div", { class: "il-muted" }, fromLayer ? "click to zoom in" : "click: ablate all (again: restore) · ctrl/cmd-click: pin all"),
  ];
}
