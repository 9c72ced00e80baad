// ExpertScanner: an fTRI scan as a layer x expert heatmap (behaviour, control, or their
// difference, in routing weight or selection rate), a token panel (a prompt's tokens and the
// experts each one routes to), marks (click: switch an expert off, shift-click: force it on) kept
// in the synced `off`/`on` traits, and a run panel that generates with and without the marks.
//
// The map is drawn on a canvas through the shared Painter (and the same drawing exports as PNG
// and SVG); the marks, the clicked token's experts and the hover live on an overlay canvas, so a
// mousemove repaints the overlay only.

import "../shared/base.css";
import "./scanner.css";
import { canvasContext, choice, h, replaceChildren } from "../shared/dom";
import { download, type Drawing } from "../shared/export";
import { createFrame } from "../shared/frame";
import { CanvasPainter, cssFont, measureWithCanvas, type Painter } from "../shared/painter";
import type { Scale, Theme } from "../shared/theme";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import {
  binColours,
  binOf,
  type Cell,
  cellAt,
  cellBox,
  drawHover,
  drawLegend,
  drawMap,
  drawMarks,
  drawTokenExperts,
  LEVELS,
  type Layout,
  layoutHeatmap,
  type Marks,
  markColours,
} from "./heatmap";
import { decodeMaps, formatValue, type Maps, type MapsTrait, type Mode, MODE_LABELS, type Score, SCORE_LABELS, scaleFor, valuesFor } from "./maps";
import { decodeRouting, type PromptLists, type RoutingMessage, RoutingPanel } from "./routing";
import { type Run, RunPanel } from "./runs";

const TOKEN_LABELS = { prompt: "prompt tokens", response: "response tokens", all: "prompt + response" };

const samePairs = (a: [number, number][], b: [number, number][]) =>
  a.length === b.length && a.every(([l, e], i) => b[i][0] === l && b[i][1] === e);

export function render({ model, el }: { model: AnyModel; el: HTMLElement }): Cleanup {
  const frame = createFrame(model, el, "il-scanner");
  const tooltip = createTooltip("il-scanner-tooltip");
  frame.onDispose(() => tooltip.dispose());

  const nLayers = (): number => model.get("n_layers");
  const nExperts = (): number => model.get("n_experts");
  const mode = (): Mode => model.get("mode") ?? "score";
  const score = (): Score => model.get("score") ?? "contrast";
  const marks = (): Marks => ({ off: model.get("off") ?? [], on: model.get("on") ?? [] });
  const dense = (): boolean[] => {
    const moe = new Set<number>(model.get("moe_layers") ?? []);
    return Array.from({ length: nLayers() }, (_, l) => !moe.has(l));
  };

  // --- toolbar ---------------------------------------------------------------------------
  const modeChoice = choice(MODE_LABELS, "map", (v) => {
    model.set("mode", v);
    model.save_changes();
    restyle();
  });
  const scoreChoice = choice(SCORE_LABELS, "measure", (v) => {
    model.set("score", v);
    model.save_changes();
    restyle();
  });
  const tokensChoice = choice(TOKEN_LABELS, "tokens", (v) => void rescan(v));
  const legend = h("span", { class: "il-legend" });
  frame.toolbar.append(modeChoice.field, scoreChoice.field, tokensChoice.field, legend);

  // --- body --------------------------------------------------------------------------------
  const info = h("div", { class: "il-info il-muted" });
  const base = h("canvas", { class: "il-heatmap" });
  const overlay = h("canvas", { class: "il-heatmap-overlay" });
  const stack = h("div", { class: "il-heatmap-stack" }, base, overlay);
  const marksBar = h("div", { class: "il-marks-bar" });
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
      drawOverlay();
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
  frame.body.append(info, stack, marksBar, h("div", { class: "il-panels" }, routingPanel.el, runPanel.el));

  // --- state ---------------------------------------------------------------------------------
  let maps: Maps | null = null;
  let values: Float32Array = new Float32Array(0);
  let scale: Scale | null = null;
  let colours: string[] = [];
  let layout: Layout | null = null;
  let hovered: Cell | null = null;
  let tokenCells: Cell[] | null = null;

  function colourOf(layer: number, expert: number): string | null {
    if (!scale || !maps) return null;
    const bin = binOf(scale, values[layer * maps.nExperts + expert]);
    return bin === null || bin === 0 ? null : colours[bin + LEVELS];
  }

  function readMaps(): void {
    try {
      maps = decodeMaps(model.get("_maps") as MapsTrait, nLayers(), nExperts());
    } catch (error) {
      maps = null;
      frame.showError(error);
    }
    updateInfo();
  }

  function updateInfo(): void {
    const moe = (model.get("moe_layers") ?? []).length;
    const sets = maps
      ? ` · behaviour: ${maps.behaviour.n_prompts} prompts, ${maps.behaviour.n_tokens} counted tokens · control: ${maps.control.n_prompts} prompts, ${maps.control.n_tokens} counted tokens`
      : "";
    info.textContent = `${model.get("model_name") || "model"} · ${moe} MoE of ${nLayers()} layers × ${nExperts()} experts, top-${model.get("top_k")}${sets}`;
  }

  function updateLegend(): void {
    if (!scale) return;
    const stops = scale.stops(9).join(", ");
    const signed = mode() === "score";
    replaceChildren(
      legend,
      h("span", {}, formatValue(scale.domain[0], signed)),
      h("span", { class: "il-legend-bar", style: { background: `linear-gradient(to right, ${stops})` } }),
      h("span", {}, formatValue(scale.domain[1], signed)),
    );
  }

  function recolour(theme: Theme): void {
    if (!maps) return;
    values = valuesFor(maps, mode(), score());
    scale = scaleFor(maps, mode(), score(), theme);
    colours = binColours(scale);
    updateLegend();
  }

  function relayout(): boolean {
    const width = Math.max(320, frame.body.clientWidth || 800);
    const next = layoutHeatmap(nLayers(), nExperts(), width, { fontSize: Math.min(11, frame.theme.fontSize) });
    if (layout && next.width === layout.width && next.height === layout.height && next.cellW === layout.cellW) return false;
    layout = next;
    const dpr = window.devicePixelRatio || 1;
    for (const canvas of [base, overlay]) {
      canvas.width = Math.max(1, Math.round(layout.width * dpr));
      canvas.height = Math.max(1, Math.round(layout.height * dpr));
      canvas.style.width = `${layout.width}px`;
      canvas.style.height = `${layout.height}px`;
    }
    stack.style.width = `${layout.width}px`;
    stack.style.height = `${layout.height}px`;
    const attrs: Record<string, number> = {
      "data-left": layout.left,
      "data-top": layout.top,
      "data-cell-width": layout.cellW,
      "data-cell-height": layout.cellH,
      "data-layers": layout.nLayers,
      "data-experts": layout.nExperts,
    };
    for (const [k, v] of Object.entries(attrs)) overlay.setAttribute(k, String(v));
    return true;
  }

  function begin(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
    const ctx = canvasContext(canvas);
    if (!ctx) return null;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  function drawBase(): void {
    const ctx = begin(base);
    if (!ctx || !layout || !scale) return;
    drawMap(new CanvasPainter(ctx), { layout, values, dense: dense(), scale, theme: frame.theme });
  }

  function drawOverlay(): void {
    const ctx = begin(overlay);
    if (!ctx || !layout) return;
    const p = new CanvasPainter(ctx);
    drawMarks(p, layout, marks(), frame.theme);
    if (tokenCells) drawTokenExperts(p, layout, tokenCells, frame.theme);
    if (hovered) drawHover(p, layout, hovered, frame.theme);
  }

  /** Colours, map and overlay again (mode, measure, theme or data changed). */
  function restyle(): void {
    modeChoice.select.value = mode();
    scoreChoice.select.value = score();
    recolour(frame.theme);
    drawBase();
    drawOverlay();
    routingPanel.restyle();
    if (hovered && tooltip.visible) tooltip.update(...tooltipContent(hovered));
  }

  // --- marks -----------------------------------------------------------------------------------
  function stateOf(cell: Cell): "off" | "on" | null {
    const m = marks();
    if (m.off.some(([l, e]) => l === cell.layer && e === cell.expert)) return "off";
    if (m.on.some(([l, e]) => l === cell.layer && e === cell.expert)) return "on";
    return null;
  }

  async function mark(cell: Cell, state: "off" | "on" | null): Promise<void> {
    try {
      await frame.commands.invoke("_mark", { layer: cell.layer, expert: cell.expert, state });
    } catch (error) {
      frame.showError(error);
    }
  }

  function renderMarksBar(): void {
    const m = marks();
    const chip = (cell: [number, number], state: "off" | "on") =>
      h(
        "button",
        {
          class: `il-mark il-mark-${state}`,
          attrs: { title: `clear this mark (layer ${cell[0]}, expert ${cell[1]})` },
          on: { click: () => void mark({ layer: cell[0], expert: cell[1] }, null) },
        },
        `L${cell[0]}E${cell[1]} ×`,
      );
    const clear = h(
      "button",
      {
        class: "il-button",
        on: {
          click: async () => {
            try {
              await frame.commands.invoke("_set_marks", { off: [], on: [] });
            } catch (error) {
              frame.showError(error);
            }
          },
        },
      },
      "clear all",
    );
    replaceChildren(
      marksBar,
      h("span", { class: "il-muted" }, "Click a cell: switch the expert off · shift-click: force it on · again: clear."),
      m.off.length ? h("span", { class: "il-mark-group" }, "off: ", ...m.off.map((c) => chip(c, "off"))) : null,
      m.on.length ? h("span", { class: "il-mark-group" }, "on: ", ...m.on.map((c) => chip(c, "on"))) : null,
      m.off.length || m.on.length ? clear : null,
    );
  }

  // --- hover and click -------------------------------------------------------------------------
  function tooltipContent(cell: Cell) {
    const { layer, expert } = cell;
    if (dense()[layer]) return [h("b", {}, `layer ${layer}`), h("div", { class: "il-muted" }, "dense layer: no router, no experts")];
    if (!maps) return [h("b", {}, `layer ${layer}, expert ${expert}`)];
    const i = layer * maps.nExperts + expert;
    const current = score() === "risk_diff" ? "rate" : "weight";
    const row = (name: string, key: "rate" | "weight") =>
      h(
        "tr",
        { class: key === current ? "il-current" : "" },
        h("td", {}, name),
        h("td", { class: "il-num" }, formatValue(maps![key].behaviour[i])),
        h("td", { class: "il-num" }, formatValue(maps![key].control[i])),
        h("td", { class: "il-num" }, formatValue(maps![key].score[i], true)),
      );
    const state = stateOf(cell);
    return [
      h("div", {}, h("b", {}, `layer ${layer} · expert ${expert}`), state ? h("span", { class: `il-state il-state-${state}` }, state === "off" ? " switched off" : " forced on") : null),
      h(
        "table",
        {},
        h("tr", {}, h("td", {}), h("td", { class: "il-muted" }, "behaviour"), h("td", { class: "il-muted" }, "control"), h("td", { class: "il-muted" }, "difference")),
        row("selection rate", "rate"),
        row("mean weight", "weight"),
      ),
      h("div", { class: "il-muted" }, state ? "click again to clear" : "click: switch off · shift-click: force on"),
    ];
  }

  function pointAt(event: MouseEvent): Cell | null {
    if (!layout) return null;
    const r = overlay.getBoundingClientRect();
    return cellAt(layout, event.clientX - r.left, event.clientY - r.top);
  }

  function onMove(event: MouseEvent): void {
    const cell = pointAt(event);
    if (cell?.layer === hovered?.layer && cell?.expert === hovered?.expert) return;
    hovered = cell;
    drawOverlay();
    if (!cell || !layout) {
      tooltip.hide();
      return;
    }
    const r = overlay.getBoundingClientRect();
    const [x, y, w, hgt] = cellBox(layout, cell.layer, cell.expert);
    tooltip.show(new DOMRect(r.left + x, r.top + y, w, hgt), ...tooltipContent(cell));
  }

  function onLeave(): void {
    hovered = null;
    tooltip.hide();
    drawOverlay();
  }

  function onClick(event: MouseEvent): void {
    const cell = pointAt(event);
    if (!cell) return;
    const requested = event.shiftKey ? "on" : "off";
    void mark(cell, stateOf(cell) === requested ? null : requested);
  }

  overlay.addEventListener("pointermove", onMove);
  overlay.addEventListener("pointerleave", onLeave);
  overlay.addEventListener("click", onClick);

  // --- kernel actions ----------------------------------------------------------------------------
  async function rescan(tokens: string): Promise<void> {
    try {
      await frame.commands.invoke("_rescan", { tokens });
    } catch (error) {
      frame.showError(error);
    } finally {
      tokensChoice.select.value = model.get("tokens");
    }
  }

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

  // --- export ----------------------------------------------------------------------------------
  function drawing(): Drawing {
    const theme = frame.theme;
    const lay = layout ?? layoutHeatmap(nLayers(), nExperts(), 800);
    const sc = scale;
    const title = `${model.get("model_name") || "model"}: ${MODE_LABELS[mode()]}, ${SCORE_LABELS[score()]}, ${TOKEN_LABELS[model.get("tokens") as keyof typeof TOKEN_LABELS] ?? model.get("tokens")}`;
    const bold = { family: theme.font, size: theme.fontSize, weight: "bold" as const };
    const m = marks();
    const listed = (list: [number, number][]) => list.map(([l, e]) => `L${l}E${e}`).join(", ");
    const footer = [m.off.length ? `switched off: ${listed(m.off)}` : "", m.on.length ? `forced on: ${listed(m.on)}` : ""].filter(Boolean).join("   ");
    const small = { fill: theme.muted, family: theme.font, size: Math.min(11, theme.fontSize), baseline: "middle" as const };
    const header = 46;
    const footerH = footer ? 22 : 4;
    const width = Math.ceil(
      Math.max(lay.width, measureWithCanvas(title, cssFont(bold)) + 16, measureWithCanvas(footer, cssFont(small)) + 16, 320),
    );
    return {
      width,
      height: header + lay.height + footerH,
      background: theme.background,
      draw(p: Painter) {
        p.text(8, 14, title, { ...bold, fill: theme.foreground, baseline: "middle" });
        if (sc) drawLegend(p, 8, 34, sc, theme, (v) => formatValue(v, mode() === "score"));
        p.save();
        p.translate(0, header);
        if (sc) drawMap(p, { layout: lay, values, dense: dense(), scale: sc, theme });
        drawMarks(p, lay, m, theme);
        p.restore();
        if (footer) p.text(8, header + lay.height + 10, footer, small);
      },
    };
  }

  frame.exportable(drawing, "expert-scan");
  frame.actions.append(jsonButton);
  frame.onTheme(() => {
    restyle();
    renderMarksBar();
  });

  // --- trait changes -----------------------------------------------------------------------------
  const onMaps = () => {
    readMaps();
    relayout();
    restyle();
  };
  const onMarks = () => {
    renderMarksBar();
    drawOverlay();
    routingPanel.refresh();
    if (hovered && tooltip.visible) tooltip.update(...tooltipContent(hovered));
  };
  const onRuns = () => runPanel.render((model.get("runs") ?? []) as Run[]);
  const onPrompts = () => routingPanel.setPrompts(model.get("_prompts") as PromptLists);
  const onTokens = () => (tokensChoice.select.value = model.get("tokens"));
  const onRunDefaults = () => runPanel.setDefaults(model.get("run_n") ?? 4, model.get("max_new_tokens") ?? 32);
  const onInfo = () => updateInfo();
  const listeners: [string, () => void][] = [
    ["change:_maps", onMaps],
    ["change:n_layers", onMaps],
    ["change:n_experts", onMaps],
    ["change:moe_layers", onMaps],
    ["change:mode", restyle],
    ["change:score", restyle],
    ["change:off", onMarks],
    ["change:on", onMarks],
    ["change:runs", onRuns],
    ["change:_prompts", onPrompts],
    ["change:tokens", onTokens],
    ["change:run_n", onRunDefaults],
    ["change:max_new_tokens", onRunDefaults],
    ["change:model_name", onInfo],
  ];
  for (const [event, fn] of listeners) frame.listen(event, fn);

  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => relayout() && (drawBase(), drawOverlay())) : null;
  resize?.observe(frame.body);

  frame.onDispose(() => {
    resize?.disconnect();
    overlay.removeEventListener("pointermove", onMove);
    overlay.removeEventListener("pointerleave", onLeave);
    overlay.removeEventListener("click", onClick);
  });

  // --- first paint ---------------------------------------------------------------------------------
  onTokens();
  onPrompts();
  onRunDefaults();
  onRuns();
  renderMarksBar();
  readMaps();
  relayout();
  restyle();
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
