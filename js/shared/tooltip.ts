// One floating tooltip per view, attached to document.body (so no output-area overflow clips it)
// and removed with the view.

import { type Child, h, replaceChildren } from "./dom";

export interface Tooltip {
  readonly el: HTMLElement;
  /** Show `content` next to `anchor` (an element's box or a point). */
  show(anchor: DOMRect | { x: number; y: number }, ...content: Child[]): void;
  /** Replace the content in place (e.g. when a kernel reply arrives). */
  update(...content: Child[]): void;
  hide(): void;
  readonly visible: boolean;
  dispose(): void;
}

const GAP = 6;

export function createTooltip(className = ""): Tooltip {
  const el = h("div", { class: `il-tooltip ${className}`.trim(), attrs: { role: "tooltip", hidden: true } });
  let anchor: DOMRect | { x: number; y: number } | null = null;

  const place = () => {
    if (!anchor) return;
    const box = "width" in anchor ? anchor : new DOMRect(anchor.x, anchor.y, 0, 0);
    const tip = el.getBoundingClientRect();
    const vw = window.innerWidth;
    const vh = window.innerHeight;
    let left = box.left;
    let top = box.bottom + GAP;
    if (left + tip.width > vw - GAP) left = Math.max(GAP, vw - tip.width - GAP);
    if (top + tip.height > vh - GAP && box.top - tip.height - GAP > 0) top = box.top - tip.height - GAP;
    el.style.left = `${Math.round(left)}px`;
    el.style.top = `${Math.round(top)}px`;
  };

  return {
    el,
    show(where, ...content) {
      if (!el.isConnected) document.body.appendChild(el);
      anchor = where;
      replaceChildren(el, ...content);
      el.hidden = false;
      place();
    },
    update(...content) {
      replaceChildren(el, ...content);
      place();
    },
    hide() {
      el.hidden = true;
      anchor = null;
    },
    get visible() {
      return !el.hidden;
    },
    dispose() {
      el.remove();
    },
  };
}
