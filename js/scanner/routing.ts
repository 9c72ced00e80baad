// The token panel: pick a prompt of the behaviour or control set, see its tokens (the shared token
// strip), click one to list the experts it selected in every layer with their weights, and, when
// experts are marked, where the marks reroute it. The routing comes from the kernel
// (`il.experts.route` through the `_route` command), or from the `_routing` trait of a snapshot.

import { type ArrayMeta, decodeArray, type NdArray } from "../shared/codecs";
import { h, replaceChildren } from "../shared/dom";
import { quote } from "../shared/text";
import { textOn } from "../shared/theme";
import { TokenStrip } from "../shared/tokenstrip";
import type { Cell, Marks } from "./heatmap";
import { formatValue } from "./maps";

export type SetName = "behaviour" | "control";

export interface PromptLists {
  behaviour: string[];
  control: string[];
  n_behaviour: number;
  n_control: number;
}

/** The `_route` reply and the `_routing` trait. */
export interface RoutingMessage {
  set: SetName;
  index: number;
  prompt: string;
  tokens: string[];
  indices: ArrayMeta; // int32 [tokens, n_layers, top_k], -1 in dense layers
  weights: ArrayMeta; // float32 [tokens, n_layers, top_k], NaN in dense layers
  marked: { off: [number, number][]; on: [number, number][]; indices: ArrayMeta; weights: ArrayMeta } | null;
}

export interface Routing {
  set: SetName;
  index: number;
  prompt: string;
  tokens: string[];
  indices: NdArray;
  weights: NdArray;
  marked: { off: [number, number][]; on: [number, number][]; indices: NdArray; weights: NdArray } | null;
}

export function decodeRouting(message: RoutingMessage, buffers: DataView[] = []): Routing {
  const indices = decodeArray(message.indices, buffers);
  const weights = decodeArray(message.weights, buffers);
  if (indices.shape.length !== 3 || indices.shape[0] !== message.tokens.length) {
    throw new Error(`routing indices must be [tokens, n_layers, top_k]; got [${indices.shape}] for ${message.tokens.length} tokens`);
  }
  const marked = message.marked
    ? {
        off: message.marked.off,
        on: message.marked.on,
        indices: decodeArray(message.marked.indices, buffers),
        weights: decodeArray(message.marked.weights, buffers),
      }
    : null;
  return { ...message, indices, weights, marked };
}

/** The experts token `t` selected in every MoE layer, with their weights (largest first). */
export function tokenExperts(indices: NdArray, weights: NdArray, t: number): { layer: number; expert: number; weight: number }[] {
  const [, nLayers, k] = indices.shape;
  const out = [];
  for (let layer = 0; layer < nLayers; layer++) {
    for (let r = 0; r < k; r++) {
      const i = (t * nLayers + layer) * k + r;
      const expert = indices.data[i];
      if (expert >= 0) out.push({ layer, expert, weight: weights.data[i] });
    }
  }
  return out;
}

export interface RoutingPanelOptions {
  fetch(set: SetName, index: number): Promise<Routing>;
  /** The cells of the clicked token's experts (null: none clicked), for the heatmap. */
  onToken(cells: Cell[] | null): void;
  /** The heatmap colour of a cell, for the expert chips. */
  colour(layer: number, expert: number): string | null;
  marks(): Marks;
  showError(error: unknown): void;
  offColour(): string;
}

export class RoutingPanel {
  readonly el: HTMLElement;
  private readonly select: HTMLSelectElement;
  private readonly strip: TokenStrip;
  private readonly table: HTMLElement;
  private readonly note: HTMLElement;
  private routing: Routing | null = null;
  private token: number | null = null;
  private request = 0;

  constructor(private readonly options: RoutingPanelOptions) {
    this.select = h("select", { class: "il-select", attrs: { "aria-label": "prompt" }, on: { change: () => this.choose() } });
    this.strip = new TokenStrip({ tokens: [], onClick: (i) => this.pick(this.token === i ? null : i) });
    this.note = h("div", { class: "il-muted il-note" });
    this.table = h("div", { class: "il-routing" });
    this.el = h(
      "div",
      { class: "il-panel il-token-panel" },
      h("div", { class: "il-panel-title" }, "Token routing"),
      h("label", { class: "il-field" }, "prompt ", this.select),
      this.strip.el,
      this.note,
      this.table,
    );
  }

  setPrompts(lists: PromptLists): void {
    const groups: [SetName, string[], number][] = [
      ["behaviour", lists.behaviour, lists.n_behaviour],
      ["control", lists.control, lists.n_control],
    ];
    const options = groups.map(([set, prompts, total]) =>
      h(
        "optgroup",
        { attrs: { label: prompts.length < total ? `${set} (first ${prompts.length} of ${total})` : set } },
        ...prompts.map((p, i) => h("option", { attrs: { value: `${set}:${i}` } }, p)),
      ),
    );
    replaceChildren(this.select, h("option", { attrs: { value: "" } }, "choose a prompt…"), ...options);
    this.routing = null;
    this.show(null);
  }

  /** Show `routing` (e.g. preloaded in a snapshot) without asking the kernel. */
  showRouting(routing: Routing): void {
    this.select.value = `${routing.set}:${routing.index}`;
    this.routing = routing;
    this.strip.setTokens(routing.tokens);
    this.pick(this.token !== null && this.token < routing.tokens.length ? this.token : null);
  }

  /** The marks changed: reload the shown prompt so that its rerouted experts follow. */
  refresh(): void {
    if (this.routing) void this.load(this.routing.set, this.routing.index);
    else this.render();
  }

  restyle(): void {
    this.render();
  }

  private choose(): void {
    const [set, index] = this.select.value.split(":");
    if (!set) {
      this.routing = null;
      this.show(null);
      return;
    }
    void this.load(set as SetName, Number(index));
  }

  private async load(set: SetName, index: number): Promise<void> {
    const request = ++this.request;
    this.note.textContent = "routing in the kernel…";
    try {
      const routing = await this.options.fetch(set, index);
      if (request !== this.request) return;
      const sameTokens = this.routing && this.routing.tokens.join("\u0000") === routing.tokens.join("\u0000");
      this.routing = routing;
      if (!sameTokens) {
        this.strip.setTokens(routing.tokens);
        this.token = null;
      }
      this.pick(this.token);
    } catch (error) {
      if (request !== this.request) return;
      this.note.textContent = `not available: ${error instanceof Error ? error.message : String(error)}`;
      this.options.showError(error);
    }
  }

  private show(routing: Routing | null): void {
    this.strip.setTokens(routing?.tokens ?? []);
    this.pick(null);
  }

  private pick(token: number | null): void {
    this.token = token;
    this.strip.setSelected(token);
    this.render();
    if (token === null || !this.routing) this.options.onToken(null);
    else this.options.onToken(tokenExperts(this.routing.indices, this.routing.weights, token).map(({ layer, expert }) => ({ layer, expert })));
  }

  private markTokens(): void {
    const routing = this.routing;
    if (!routing) return;
    const off = new Set(this.options.marks().off.map(([l, e]) => `${l}:${e}`));
    const hit: number[] = [];
    routing.tokens.forEach((_, t) => {
      if (tokenExperts(routing.indices, routing.weights, t).some(({ layer, expert }) => off.has(`${layer}:${expert}`))) hit.push(t);
    });
    this.strip.setHighlight("off", this.options.offColour(), hit);
  }

  private chip(layer: number, expert: number, weight: number, marks: { off: Set<string>; on: Set<string> }) {
    const key = `${layer}:${expert}`;
    const bg = this.options.colour(layer, expert);
    const state = marks.off.has(key) ? " il-chip-off" : marks.on.has(key) ? " il-chip-on" : "";
    return h(
      "span",
      { class: `il-chip${state}`, style: bg ? { background: bg, color: textOn(bg) } : {}, attrs: { title: `layer ${layer}, expert ${expert}` } },
      `E${expert} `,
      h("span", { class: "il-chip-weight" }, formatValue(weight)),
    );
  }

  private render(): void {
    this.markTokens();
    const routing = this.routing;
    if (!routing) {
      this.note.textContent = "Choose a prompt, then click one of its tokens to see the experts it routes to.";
      replaceChildren(this.table);
      return;
    }
    if (this.token === null) {
      const marked = this.options.marks().off.length ? " Tokens underlined in red route to a switched-off expert." : "";
      this.note.textContent = `Click a token to see the experts it routes to in every layer.${marked}`;
      replaceChildren(this.table);
      return;
    }
    const t = this.token;
    const m = this.options.marks();
    const marks = { off: new Set(m.off.map(([l, e]) => `${l}:${e}`)), on: new Set(m.on.map(([l, e]) => `${l}:${e}`)) };
    const base = tokenExperts(routing.indices, routing.weights, t);
    const rerouted = routing.marked ? tokenExperts(routing.marked.indices, routing.marked.weights, t) : null;
    const nLayers = routing.indices.shape[1];
    this.note.textContent = `token ${t} ${quote(routing.tokens[t])}: experts and routing weights per layer`;
    const header = h("tr", {}, h("th", {}, "layer"), h("th", {}, "experts"), rerouted ? h("th", {}, "with the marks") : null);
    const rows = [];
    for (let layer = 0; layer < nLayers; layer++) {
      const mine = base.filter((x) => x.layer === layer);
      const theirs = rerouted?.filter((x) => x.layer === layer) ?? [];
      const dense = mine.length === 0;
      rows.push(
        h(
          "tr",
          {},
          h("td", { class: "il-muted" }, `L${layer}`),
          dense ? h("td", { class: "il-muted" }, "dense") : h("td", {}, ...mine.map((x) => this.chip(layer, x.expert, x.weight, marks))),
          rerouted ? (dense ? h("td", {}) : h("td", {}, ...theirs.map((x) => this.chip(layer, x.expert, x.weight, marks)))) : null,
        ),
      );
    }
    replaceChildren(this.table, h("table", {}, header, ...rows));
  }
}
