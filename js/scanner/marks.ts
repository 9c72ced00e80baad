// The marks bar under the map: how to mark, a chip per marked expert (click: clear it), "clear all".

import { h, replaceChildren } from "../shared/dom";
import type { Cell, Marks } from "./heatmap";

export interface MarksBarOptions {
  clear(cell: Cell): void;
  clearAll(): void;
}

export class MarksBar {
  readonly el = h("div", { class: "il-marks-bar" });

  constructor(private readonly options: MarksBarOptions) {}

  render(marks: Marks): void {
    const chip = ([layer, expert]: [number, number], state: "off" | "on") =>
      h(
        "button",
        {
          class: `il-mark il-mark-${state}`,
          attrs: { title: `clear this mark (layer ${layer}, expert ${expert})` },
          on: { click: () => this.options.clear({ layer, expert }) },
        },
        `L${layer}E${expert} ×`,
      );
    const any = marks.off.length > 0 || marks.on.length > 0;
    replaceChildren(
      this.el,
      h("span", { class: "il-muted" }, "Click a cell: switch the expert off · shift-click: force it on · again: clear."),
      marks.off.length ? h("span", { class: "il-mark-group" }, "off: ", ...marks.off.map((c) => chip(c, "off"))) : null,
      marks.on.length ? h("span", { class: "il-mark-group" }, "on: ", ...marks.on.map((c) => chip(c, "on"))) : null,
      any ? h("button", { class: "il-button", on: { click: () => this.options.clearAll() } }, "clear all") : null,
    );
  }
}

/** Whether `cell` is switched off, forced on, or neither. */
export function markOfCell(marks: Marks, cell: Cell): "off" | "on" | null {
  const has = (list: [number, number][]) => list.some(([l, e]) => l === cell.layer && e === cell.expert);
  return has(marks.off) ? "off" : has(marks.on) ? "on" : null;
}
