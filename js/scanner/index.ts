// ExpertScanner: an fTRI scan as a layer x expert heatmap (behaviour, control, or their
// difference, in one of the measures the kernel lists), a token panel (a prompt's tokens and the
// experts each one routes to), marks (click: switch an expert off, shift-click: force it on) kept
// in the synced `off`/`on` traits, and a run panel that generates with and without the marks.
//
// This file is the state and the wiring: traits in, commands out. The drawing is in mapview.ts
// (and heatmap.ts), the panels in marks.ts, routing.ts and runs.ts; every choice the toolbar offers
// comes from the kernel (`_choices`).

import "../shared/base.css";
import "./scanner.css";
import { choice, h, replaceChildren } from "../shared/dom";
import { download } from "../shared/export";
import { createFrame } from "../shared/frame";
import type { Scale } from "../shared/theme";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import type { ScannerTraits } from "./traits";
import { binColours, binOf, type Cell, LEVELS, type Marks, markColours } from "./heatmap";
import { cellInfo, MapView, mapDrawing, type Picture } from "./mapview";
import { type Choices, chosen, decodeMaps, formatValue, labels, legendTitle, type Maps, scaleFor, valuesFor } from "./maps";
import { MarksBar, markOfCell } from "./marks";
import { decodeRouting, type PromptLists, type RoutingMessage, RoutingPanel } from "./routing";
import { type Run, RunPanel } from "./runs";

const samePairs = (a: [number, number][], b: [number, number][]) =>
  a.length === b.length && a.every(([l, e], i) => b[i][0] === l && b[i][1] === e);

export function render({ model, el }: { model: AnyModel<ScannerTraits>; el: HTMLElement }): Cleanup {
  const frame = createFrame(model, el, "il-scanner");
  const tooltip = createTooltip("il-scanner-tooltip");
  frame.onDispose(() => tooltip.dispose());

  // --- state: traits, read when needed ----------------------------------------------------------
  const choices = (): Choices => model.get("_choices");
  const nLayers = (): number => model.get("n_layers");
  const nExperts = (): number => model.get("n_experts");
  const mode = () => chosen(choices().mode, model.get("mode"));
  const score = () => chosen(choices().score, model.get("score"));
  const marks = (): Marks => ({ off: model.get("off") ?? [], on: model.get("on") ?? [] });
  const dense = (): boolean[] => {
    const moe = new Set<number>(model.get("moe_layers") ?? []);
    return Array.from({ length: nLayers() }, (_, l) => !moe.has(l));
  };
  // derived from the traits
  let maps: Maps | null = null;
  let picture: Picture | null = null;
  let colours: string[] = [];
  let hovered: Cell | null = null;
  let tokenCells: Cell[] | null = null;

  // --- the parts ---------------------------------------------------------------------------------
  const setTrait = (name: string) => (value: string) => {
    model.set(name, value);
    model.save_changes();
    restyle();
  };
  const modeChoice = choice(labels(choices().mode), "map", setTrait("mode"));
  const scoreChoice = choice(labels(choices().score), "measure", setTrait("score"));
  const tokensChoice = choice(labels(choices().tokens), "tokens", (v) => void rescan(v));
  const legend = h("span", { class: "il-legend" });
  frame.toolbar.append(modeChoice.field, scoreChoice.field, tokensChoice.field, legend);

  const info = h("div", { class: "il-info il-muted" });
  const view = new MapView();
  const marksBar = new MarksBar({ clear: (cell) => void mark(cell, null), clearAll: () => void call("_set_marks", { off: [], on: [] }) });
  const routingPanel = new RoutingPanel({
    fetch: async (set, index) => {
      const pre = model.get("_routing") as RoutingMessage | null;
      const m = marks();
      const fresh = pre?.marked ? samePairs(pre.marked.off, m.off) && samePairs(pre.marked.on, m.on) : !m.off.length && !m.on.length;
      if (pre && pre.set === set && pre.index === index && fresh) return decodeRouting(pre);
      const { value, buffers } = await frame.commands.invoke<RoutingMessage>("_route", { set, index });
      return decodeRouting(value, buffers);
    },
    onToken: (cells) => {
      tokenCells = cells;
      paintOverlay();
    },
    colour: (layer, expert) => colourOf(layer, expert),
    marks,
    showError: (error) => frame.showError(error),
    offColour: () => markColours(frame.theme).off,
  });
  const runPanel = new RunPanel({
    run: (n, maxNewTokens) => frame.commands.invoke("_run", { n, max_new_tokens: maxNewTokens }),
    showError: (error) => frame.showError(error),
  });
  frame.body.append(info, view.el, marksBar.el, h("div", { class: "il-panels" }, routingPanel.el, runPanel.el));

  // --- from traits to the view ---------------------------------------------------------------------
  function colourOf(layer: number, expert: number): string | null {
    if (!picture || !maps) return null;
    const bin = binOf(picture.scale, picture.values[layer * maps.nExperts + expert]);
    return bin === null || bin === 0 ? null : colours[bin + LEVELS];
  }

  function readMaps(): void {
    try {
      maps = decodeMaps(model.get("_maps"), choices().score, nLayers(), nExperts());
    } catch (error) {
      maps = null;
      frame.showError(error);
    }
    const moe = (model.get("moe_layers") ?? []).length;
    const sets = maps
      ? ` · behaviour: ${maps.behaviour.n_prompts} prompts, ${maps.behaviour.n_tokens} counted tokens · control: ${maps.control.n_prompts} prompts, ${maps.control.n_tokens} counted tokens`
      : "";
    info.textContent = `${model.get("model_name") || "model"} · ${moe} MoE of ${nLayers()} layers × ${nExperts()} experts, top-${model.get("top_k")}${sets}`;
  }

  function showLegend(scale: Scale): void {
    const signed = mode().signed;
    replaceChildren(
      legend,
      h("span", {}, formatValue(scale.domain[0], signed)),
      h("span", { class: "il-legend-bar", style: { background: `linear-gradient(to right, ${scale.stops(9).join(", ")})` } }),
      h("span", {}, formatValue(scale.domain[1], signed)),
      h("span", { class: "il-legend-unit" }, legendTitle(mode(), score())),
    );
  }

  function relayout(): boolean {
    const width = Math.max(320, frame.body.clientWidth || 800);
    return view.relayout(nLayers(), nExperts(), width, Math.min(11, frame.theme.fontSize));
  }

  function paintOverlay(): void {
    view.paintOverlay({ marks: marks(), tokenCells, hovered, theme: frame.theme });
  }

  /** Colours, map and overlay again (mode, measure, theme or data changed). */
  function restyle(): void {
    modeChoice.select.value = mode().value;
    scoreChoice.select.value = score().value;
    picture = null;
    if (maps) {
      const scale = scaleFor(maps, mode(), score(), frame.theme);
      picture = { values: valuesFor(maps, mode(), score()), dense: dense(), scale, theme: frame.theme };
      colours = binColours(scale);
      showLegend(scale);
    }
    view.paint(picture);
    paintOverlay();
    routingPanel.restyle();
    if (hovered && tooltip.visible) tooltip.update(...tooltipOf(hovered));
  }

  const tooltipOf = (cell: Cell) =>
    cellInfo({ cell, dense: dense()[cell.layer], maps, scores: choices().score, current: score(), state: markOfCell(marks(), cell) });

  // --- from the user to the kernel -------------------------------------------------------------------
  async function call(name: string, msg: unknown): Promise<void> {
    try {
      await frame.commands.invoke(name, msg);
    } catch (error) {
      frame.showError(error);
    }
  }

  const mark = (cell: Cell, state: "off" | "on" | null) => call("_mark", { layer: cell.layer, expert: cell.expert, state });

  async function rescan(tokens: string): Promise<void> {
    await call("_rescan", { tokens });
    tokensChoice.select.value = model.get("tokens");
  }

  const onMove = (event: MouseEvent) => {
    const cell = view.cellAt(event);
    if (cell?.layer === hovered?.layer && cell?.expert === hovered?.expert) return;
    hovered = cell;
    paintOverlay();
    if (cell) tooltip.show(view.cellRect(cell), ...tooltipOf(cell));
    else tooltip.hide();
  };
  const onLeave = () => {
    hovered = null;
    tooltip.hide();
    paintOverlay();
  };
  const onClick = (event: MouseEvent) => {
    const cell = view.cellAt(event);
    if (!cell) return;
    const requested = event.shiftKey ? "on" : "off";
    void mark(cell, markOfCell(marks(), cell) === requested ? null : requested);
  };
  view.overlay.addEventListener("pointermove", onMove);
  view.overlay.addEventListener("pointerleave", onLeave);
  view.overlay.addEventListener("click", onClick);

  const jsonButton = h(
    "button",
    {
      class: "il-button",
      attrs: { title: "download the scan and the marks as JSON" },
      on: {
        click: async () => {
          try {
            const { value } = await frame.commands.invoke<{ json: string }>("_to_json", {});
            download(new Blob([value.json], { type: "application/json" }), "expert-scan.json");
          } catch (error) {
            frame.showError(error);
          }
        },
      },
    },
    "JSON",
  );

  frame.exportable(() => {
    const tokens = chosen(choices().tokens, model.get("tokens")).label;
    const title = `${model.get("model_name") || "model"}: ${mode().label}, ${score().label}, ${tokens}`;
    const parts = { title, legendTitle: legendTitle(mode(), score()), signed: mode().signed, picture, marks: marks() };
    return mapDrawing({ ...parts, layout: view.layout! }, frame.theme);
  }, "expert-scan");
  frame.actions.append(jsonButton);
  frame.onTheme(() => {
    restyle();
    marksBar.render(marks());
  });

  // --- trait changes -----------------------------------------------------------------------------
  const onMaps = () => {
    readMaps();
    relayout();
    restyle();
  };
  const onMarks = () => {
    marksBar.render(marks());
    paintOverlay();
    routingPanel.refresh();
    if (hovered && tooltip.visible) tooltip.update(...tooltipOf(hovered));
  };
  const onRuns = () => runPanel.render((model.get("runs") ?? []) as Run[]);
  const onPrompts = () => routingPanel.setPrompts(model.get("_prompts") as PromptLists);
  const onTokens = () => (tokensChoice.select.value = model.get("tokens"));
  const onRunSettings = () => runPanel.setDefaults(model.get("run_n") ?? 4, model.get("max_new_tokens") ?? 32, choices().limits);
  const listeners: [string, () => void][] = [
    ["change:_maps", onMaps],
    ["change:n_layers", onMaps],
    ["change:n_experts", onMaps],
    ["change:moe_layers", onMaps],
    ["change:model_name", readMaps],
    ["change:mode", restyle],
    ["change:score", restyle],
    ["change:off", onMarks],
    ["change:on", onMarks],
    ["change:runs", onRuns],
    ["change:_prompts", onPrompts],
    ["change:tokens", onTokens],
    ["change:run_n", onRunSettings],
    ["change:max_new_tokens", onRunSettings],
  ];
  for (const [event, fn] of listeners) frame.listen(event, fn);

  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => relayout() && restyle()) : null;
  resize?.observe(frame.body);
  frame.onDispose(() => {
    resize?.disconnect();
    view.overlay.removeEventListener("pointermove", onMove);
    view.overlay.removeEventListener("pointerleave", onLeave);
    view.overlay.removeEventListener("click", onClick);
  });

  // --- first paint ---------------------------------------------------------------------------------
  onTokens();
  onPrompts();
  onRunSettings();
  onRuns();
  marksBar.render(marks());
  onMaps();
  const pre = model.get("_routing") as RoutingMessage | null;
  if (pre) {
    try {
      routingPanel.showRouting(decodeRouting(pre));
    } catch (error) {
      frame.showError(error);
    }
  }
  return () => frame.dispose();
}

export default { render };
