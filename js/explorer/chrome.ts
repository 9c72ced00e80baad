// The CircuitExplorer's controls as DOM: the toolbar (method, ablation, colour, fit, circuit and edge
// sizes, search) and the panels below the graph (the metric, the pinned nodes: verify, group, act
// on them; groups, the per-prompt breakdown, the methods' scatter). Building only: index.ts fills
// them (through panels.ts) and wires the actions.

import { choice, h } from "../shared/dom";
import { type SizeControl, sizeControl } from "./sizes";

/** What the toolbar's controls do. */
export interface ToolbarActions {
  method(m: string): void;
  ablation(a: string): void;
  colour(c: string): void;
  /** Search as the user types; with ``zoom`` (Enter), also zoom to the matches. */
  search(zoom: boolean): void;
  /** The cumulative |score| shares of the node and edge rankings (their lengths: how many). */
  nodeShares(): ArrayLike<number>;
  edgeShares(): ArrayLike<number>;
  previewCircuit(k: number): void;
  commitCircuit(k: number): void;
  previewEdges(k: number): void;
  commitEdges(k: number): void;
  fitAll(): void;
  fitCircuit(): void;
  expand(): void;
}

export interface Toolbar {
  methodChoice: ReturnType<typeof choice>;
  ablationChoice: ReturnType<typeof choice>;
  colourChoice: ReturnType<typeof choice>;
  searchBox: HTMLInputElement;
  searchCount: HTMLElement;
  circuitSize: SizeControl;
  edgeSize: SizeControl;
}

/** Append the toolbar's three rows to ``toolbar``; return the controls index.ts fills. */
export function buildToolbar(toolbar: HTMLElement, a: ToolbarActions): Toolbar {
  const methodChoice = choice({} as Record<string, string>, "method", a.method);
  const ablationChoice = choice({} as Record<string, string>, "ablation", a.ablation);
  const colourChoice = choice({} as Record<string, string>, "colour", a.colour);
  const searchBox = h("input", {
    class: "il-input il-search",
    attrs: { type: "search", placeholder: "search: L12 h3 @5 Mary", "aria-label": "search nodes by layer, head, position or token" },
    on: { input: () => a.search(false), keydown: (e) => e.key === "Enter" && a.search(true) },
  });
  const searchCount = h("span", { class: "il-search-count il-muted" });
  const circuitSize = sizeControl({
    label: "circuit",
    title: "nodes kept in the circuit (the top ones by |score|)",
    shareTitle: "keep the fewest top nodes whose |scores| add up to this share of all (cumulative influence, 0..1)",
    cumulative: a.nodeShares,
    preview: a.previewCircuit,
    commit: a.commitCircuit,
  });
  const edgeSize = sizeControl({
    label: "edges",
    title: "edges drawn (the top ones by |score|)",
    shareTitle: "draw the fewest top edges whose |scores| add up to this share of all (0..1)",
    cumulative: a.edgeShares,
    preview: a.previewEdges,
    commit: a.commitEdges,
  });
  toolbar.append(
    h(
      "div",
      { class: "il-row" },
      methodChoice.field,
      ablationChoice.field,
      colourChoice.field,
      button("fit", "show the whole graph", a.fitAll),
      button("circuit", "fit the view to the circuit", a.fitCircuit),
    ),
    h("div", { class: "il-row" }, circuitSize.field, circuitSize.total, h("label", { class: "il-field" }, "find ", searchBox), searchCount),
    h("div", { class: "il-row" }, edgeSize.field, edgeSize.total, button("expand", "undo every collapsed layer and position range", a.expand)),
  );
  return { methodChoice, ablationChoice, colourChoice, searchBox, searchCount, circuitSize, edgeSize };
}

/** What the panels' buttons do (index.ts's commands). */
export interface PanelActions {
  /** A page without a kernel (`to_html`): say that verifying and intervening need one. */
  offline: boolean;
  /** Put above the panels: the info line, the legend, the graph. */
  head: HTMLElement[];
  /** The scatter panel's parts. */
  scatter: HTMLElement[];
  clearAblations(): void;
  verify(): void;
  group(): void;
  unpinAll(): void;
  interventionChanged(): void;
  intervene(): void;
  suggest(): void;
}

export interface Panels {
  metricBox: HTMLElement;
  pinnedBox: HTMLElement;
  groupName: HTMLInputElement;
  interventionChoice: ReturnType<typeof choice>;
  factor: HTMLInputElement;
  interventionBox: HTMLElement;
  groupsBox: HTMLElement;
  breakdownBox: HTMLElement;
}

export const button = (text: string, title: string, click: () => void) =>
  h("button", { class: "il-button", attrs: { title }, on: { click } }, text);

const HINT = "Drag to pan, wheel to zoom the layers (shift: positions) · click a node to ablate it (again: restore) · " +
  "ctrl/cmd-click to pin · click a layer label to collapse it, two token labels to collapse the positions between.";

/** Append the head (graph) and the panels to ``body``; return the elements index.ts fills. */
export function buildPanels(body: HTMLElement, a: PanelActions): Panels {
  const metricBox = h("div", { class: "il-metric", attrs: { "aria-live": "polite" } });
  const clearAblations = button("clear ablations", "restore every ablated node", a.clearAblations);
  const pinnedBox = h("div", { class: "il-pinned" });
  const groupName = h("input", { class: "il-input il-group-name", attrs: { type: "text", placeholder: "group name", maxlength: 40, "aria-label": "group name" } });
  const interventionChoice = choice({} as Record<string, string>, "act", a.interventionChanged);
  const factor = h("input", { class: "il-input il-number", attrs: { type: "number", value: 2, step: 0.5, "aria-label": "factor", title: "the factor for scale" } });
  const interventionBox = h("div", { class: "il-intervention", attrs: { "aria-live": "polite" } });
  const kernelNote = h("div", { class: "il-note il-kernel-note il-muted", attrs: { hidden: !a.offline } }, "Verifying and intervening need a running kernel: this page is a snapshot.");
  const groupsBox = h("div", { class: "il-groups-panel" });
  const breakdownBox = h("div", { class: "il-breakdown-panel" });
  body.append(
    ...a.head,
    h("div", { class: "il-hint il-muted" }, HINT),
    h(
      "div",
      { class: "il-panels" },
      panel("metric", metricBox, clearAblations),
      panel(
        "pinned nodes",
        pinnedBox,
        h(
          "div",
          { class: "il-row" },
          button("verify", "exact activation patching of the pinned nodes (il.circuits.verify)", a.verify),
          groupName,
          button("group", "make the pinned nodes one supernode", a.group),
          button("unpin all", "unpin every node", a.unpinAll),
        ),
        h("div", { class: "il-row" }, interventionChoice.field, factor, button("run", "act on the pinned nodes: the metric and a generation before and after", a.intervene)),
        kernelNote,
        interventionBox,
      ),
      panel("groups", groupsBox, h("div", { class: "il-row" }, button("suggest groups", "groups of circuit nodes whose edge profiles have cosine similarity ≥ 0.75", a.suggest))),
      panel("per prompt", breakdownBox),
      panel("methods", ...a.scatter),
    ),
  );

  return { metricBox, pinnedBox, groupName, interventionChoice, factor, interventionBox, groupsBox, breakdownBox };
}

function panel(title: string, ...children: (HTMLElement | string | null)[]): HTMLElement {
  return h("section", { class: "il-panel" }, h("div", { class: "il-panel-title" }, title), ...children);
}
