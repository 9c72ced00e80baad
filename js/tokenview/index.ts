// TokenView: a text's tokens coloured by one value per token (by default the model's
// log-probability of each token given the tokens before it), a legend whose ends say what a low
// and a high value mean (the `ends` trait), a tooltip per token with the model's top next-token
// predictions (asked of the kernel on every hover, so that they follow edits of the model; the
// last answer shows meanwhile), click to select a token (the synced `selected` trait).

import "../shared/base.css";
import { type ArrayMeta, decodeArray, type NdArray, row } from "../shared/codecs";
import { h, replaceChildren } from "../shared/dom";
import type { Drawing } from "../shared/export";
import { createFrame } from "../shared/frame";
import { cssFont, measureWithCanvas, type Painter } from "../shared/painter";
import { autoScale, type Scale, type Theme } from "../shared/theme";
import { quote } from "../shared/text";
import { TokenStrip } from "../shared/tokenstrip";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import type { Preloaded, TokenViewTraits } from "./traits";

interface Prediction {
  token: string;
  id: number;
  logprob: number;
}

interface PredictionsReply {
  position: number;
  tokens: string[];
  ids: ArrayMeta;
  logprobs: ArrayMeta;
}

const fmt = (v: number) => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : "–");

function render({ model, el }: { model: AnyModel<TokenViewTraits>; el: HTMLElement }): Cleanup {
  const frame = createFrame(model, el, "il-tokenview");
  const tooltip = createTooltip();
  frame.onDispose(() => tooltip.dispose());

  let tokens: string[] = model.get("tokens") ?? [];
  let ids: NdArray = decodeArray(model.get("_token_ids"));
  let values: NdArray = decodeArray(model.get("_values"));
  let scale: Scale = autoScale(frame.theme, values.data);
  const asking = new Map<number, Promise<Prediction[]>>(); // in flight, one per position
  const answered = new Map<number, Prediction[]>(); // the last answer, shown while asking again
  let hovered: number | null = null;

  const valueAt = (i: number) => (i < values.data.length ? values.data[i] : NaN);
  const strip = new TokenStrip({
    tokens,
    colour: (i) => scale(valueAt(i)),
    onHover: (i, span) => {
      hovered = i;
      if (i === null || !span) tooltip.hide();
      else showTooltip(i, span);
    },
    onClick: (i) => {
      model.set("selected", model.get("selected") === i ? null : i);
      model.save_changes();
    },
  });
  strip.setSelected(model.get("selected"));

  const label = h("span", { class: "il-label" });
  const legend = h("span", { class: "il-legend" });
  frame.toolbar.append(label, legend);
  frame.body.append(strip.el);

  /** What a low and a high value mean ("" where nobody said). */
  const ends = (): [string, string] => model.get("ends") ?? ["", ""];

  function updateHeader() {
    label.textContent = model.get("label") || "value";
    const stops = scale.stops(7).join(", ");
    const [low, high] = ends();
    replaceChildren(
      legend,
      low ? h("span", { class: "il-legend-end" }, `${low} ◀`) : null,
      h("span", {}, fmt(scale.domain[0])),
      h("span", { class: "il-legend-bar", style: { background: `linear-gradient(to right, ${stops})` } }),
      h("span", {}, fmt(scale.domain[1])),
      high ? h("span", { class: "il-legend-end" }, `▶ ${high}`) : null,
    );
  }

  function restyle(theme: Theme) {
    scale = autoScale(theme, values.data);
    strip.setColours((i) => scale(valueAt(i)));
    updateHeader();
  }

  function preloaded(i: number): Prediction[] | null {
    const p = model.get("_predictions") as Preloaded | null;
    if (!p) return null;
    const pid = decodeArray(p.ids);
    const lp = decodeArray(p.logprobs);
    const k = pid.shape[1];
    if (i >= pid.shape[0]) return null;
    return Array.from(row(pid, i), (id, r) => ({ token: p.tokens[i * k + r], id, logprob: row(lp, i)[r] }));
  }

  function fetchPredictions(i: number): Promise<Prediction[]> {
    const ready = preloaded(i);
    if (ready) return Promise.resolve(ready);
    let pending = asking.get(i);
    if (!pending) {
      pending = frame.commands.invoke<PredictionsReply>("_top_k", { position: i }).then(({ value, buffers }) => {
        const pid = decodeArray(value.ids, buffers).data;
        const lp = decodeArray(value.logprobs, buffers).data;
        const list = value.tokens.map((token, k) => ({ token, id: pid[k], logprob: lp[k] }));
        answered.set(i, list);
        return list;
      });
      const done = () => asking.delete(i);
      pending.then(done, done);
      asking.set(i, pending);
    }
    return pending;
  }

  function predictionTable(list: Prediction[]) {
    return h(
      "table",
      {},
      ...list.map((p, k) =>
        h(
          "tr",
          {},
          h("td", { class: "il-muted" }, `${k + 1}.`),
          h("td", { class: "il-mono" }, quote(p.token)),
          h("td", { class: "il-num" }, fmt(p.logprob)),
          h("td", { class: "il-num il-muted" }, `${(100 * Math.exp(p.logprob)).toFixed(1)}%`),
        ),
      ),
    );
  }

  function showTooltip(i: number, span: HTMLElement) {
    const v = valueAt(i);
    const head = [
      h("div", {}, h("b", {}, `token ${i}`), h("span", { class: "il-muted" }, `  id ${ids.data[i] ?? "?"}`)),
      h("div", { class: "il-mono" }, quote(tokens[i] ?? "")),
      h(
        "div",
        {},
        `${model.get("label") || "value"}: `,
        Number.isFinite(v) ? h("b", {}, fmt(v)) : h("span", { class: "il-muted" }, i === 0 ? "none (nothing precedes the first token)" : "none"),
      ),
      h("div", { class: "il-muted" }, `top next-token predictions after ${quote(tokens[i] ?? "")}:`),
    ];
    const last = answered.get(i);
    const body = last
      ? h("div", { class: "il-predictions" }, predictionTable(last))
      : h("div", { class: "il-predictions il-muted" }, "computing in the kernel…");
    tooltip.show(span.getBoundingClientRect(), ...head, body);
    fetchPredictions(i).then(
      (list) => {
        if (hovered === i) tooltip.update(...head, h("div", { class: "il-predictions" }, predictionTable(list)));
      },
      (error) => {
        if (hovered === i) {
          tooltip.update(...head, h("div", { class: "il-predictions il-muted" }, `not available: ${error?.message ?? error}`));
        }
      },
    );
  }

  /** The view for export: the label, the legend (with what its ends mean) and the strip, cropped to what they cover. */
  function drawing(): Drawing {
    const theme = frame.theme;
    const title = model.get("label") || "value";
    const bold = { family: theme.font, size: theme.fontSize, weight: "bold" as const };
    const small = { fill: theme.muted, family: theme.font, size: theme.fontSize - 2, baseline: "middle" as const };
    const measure = (text: string, style: object) => measureWithCanvas(text, cssFont(style));
    const [low, high] = ends();
    const lo = low ? `${low} ◀ ${fmt(scale.domain[0])}` : fmt(scale.domain[0]);
    const hi = high ? `${fmt(scale.domain[1])} ▶ ${high}` : fmt(scale.domain[1]);
    const stops = scale.stops(24);
    const legendX = 16 + measure(title, bold);
    const barX = legendX + measure(lo, small) + 4;
    const headerRight = barX + stops.length * 4 + 4 + measure(hi, small);
    const available = Math.max(320, frame.body.clientWidth || 800);
    const layout = strip.layout(theme, available - 16, measureWithCanvas);
    const header = theme.fontSize + 14;
    const mid = 8 + theme.fontSize / 2;
    return {
      width: Math.ceil(Math.max(headerRight, layout.width + 8) + 8),
      height: header + layout.height + 8,
      background: theme.background,
      draw(p: Painter) {
        p.text(8, mid, title, { ...bold, fill: theme.foreground, baseline: "middle" });
        p.text(legendX, mid, lo, small);
        stops.forEach((c, k) => p.rect(barX + k * 4, mid - 5, 4, 10, { fill: c }));
        p.text(barX + stops.length * 4 + 4, mid, hi, small);
        p.save();
        p.translate(8, header);
        strip.paint(p, theme, layout);
        p.restore();
      },
    };
  }

  frame.exportable(drawing, "tokenview");
  frame.onTheme(restyle);

  const onTokens = () => {
    tokens = model.get("tokens") ?? [];
    ids = decodeArray(model.get("_token_ids"));
    values = decodeArray(model.get("_values"));
    answered.clear();
    tooltip.hide();
    strip.setTokens(tokens);
    restyle(frame.theme);
  };
  const onSelected = () => strip.setSelected(model.get("selected"));
  const onLabel = () => updateHeader();
  const onValues = () => {
    values = decodeArray(model.get("_values"));
    restyle(frame.theme);
  };
  frame.listen("change:tokens", onTokens);
  frame.listen("change:_values", onValues);
  frame.listen("change:selected", onSelected);
  frame.listen("change:label", onLabel);
  frame.listen("change:ends", onLabel);
  updateHeader();
  return () => frame.dispose();
}

export default { render };
