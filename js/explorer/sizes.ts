// A size control over one of Python's rankings: a number box (how many of the top items), a
// logarithmic slider (previews while it moves, commits on release) and a cumulative-share box
// (the fewest top items whose |scores| add up to the share), with the total beside them.

import { h } from "../shared/dom";
import { countForShare, countToSlider, shareOfCount, SLIDER_STEPS, sliderToCount } from "./graph";

export interface SizeControl {
  /** The label and the three inputs. */
  field: HTMLElement;
  total: HTMLElement;
  /** Show `k` of a ranking with these cumulative shares; `suffix` follows the total. */
  show(k: number, cumulative: ArrayLike<number>, suffix: string): void;
}

export interface SizeOptions {
  label: string;
  title: string;
  shareTitle: string;
  /** The ranking's cumulative |score| shares (its length is the number of items). */
  cumulative(): ArrayLike<number>;
  preview(k: number): void;
  commit(k: number): void;
}

function numberInput(label: string, title: string, step: string, commit: (v: number) => void): HTMLInputElement {
  const input = h("input", {
    class: "il-input il-number",
    attrs: { type: "number", min: 0, step, "aria-label": label, title },
    on: { change: () => commit(Number(input.value)), keydown: (e) => e.key === "Enter" && commit(Number(input.value)) },
  });
  return input;
}

export function sizeControl(o: SizeOptions): SizeControl {
  const count = () => o.cumulative().length;
  const box = numberInput(o.label, o.title, "1", (k) => o.commit(k));
  const slider = h("input", {
    class: "il-range",
    attrs: { type: "range", min: 0, max: SLIDER_STEPS, step: 1, "aria-label": `${o.label} (logarithmic)` },
    on: { input: () => o.preview(sliderToCount(Number(slider.value), count())), change: () => o.commit(sliderToCount(Number(slider.value), count())) },
  });
  const share = numberInput(`${o.label} share`, o.shareTitle, "0.05", (s) => o.commit(countForShare(o.cumulative(), s)));
  const total = h("span", { class: "il-total il-muted" });
  return {
    field: h("label", { class: "il-field" }, `${o.label} `, box, slider, "share ", share),
    total,
    show(k, cumulative, suffix) {
      const n = cumulative.length;
      box.value = String(k);
      box.max = String(n);
      slider.value = String(countToSlider(k, n));
      share.value = shareOfCount(cumulative, k).toFixed(2);
      total.textContent = `of ${n} ${suffix}`;
    },
  };
}
