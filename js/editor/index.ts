// RuleEditor: a CodeMirror editor for rules (the kernel's diagnostics inline, a moment after typing
// stops), a text box, the text's tokens marked with the concepts detected on each (one colour per
// concept), the inferred facts with expandable proofs (click a detected leaf: its tokens light
// up), and base vs steered continuations with a strength slider.
//
// Traits: `rules` and `text` (synced both ways; the editor sets `rules` when it lints), `_concepts`
// (the dictionary), `_detection` (tokens and detected positions), `_inference` (what the kernel
// inferred, tagged with the rule text it answers), `generation`, `strength`, `max_new_tokens`.

import "../shared/base.css";
import "./editor.css";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { bracketMatching } from "@codemirror/language";
import { forceLinting, lintGutter, linter } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { drawSelection, EditorView, keymap, lineNumbers } from "@codemirror/view";
import { h, replaceChildren } from "../shared/dom";
import { createFrame } from "../shared/frame";
import { TokenStrip } from "../shared/tokenstrip";
import { createTooltip } from "../shared/tooltip";
import type { AnyModel, Cleanup } from "../shared/types";
import type { ConceptInfo, DetectionState, EditorTraits, GenerationState } from "./traits";
import { ruleLanguage } from "./language";
import { analyse, type InferenceState, toRanges } from "./lint";
import { chip, conceptColours, type FlatProof, type Proofs, proofPositions, proofStep, summaryText } from "./proofs";

export const LINT_DELAY_MS = 250;
const TEXT_DELAY_MS = 500;

const S_KEY_CODE = 83;

/** Keys typed here are the widget's: JupyterLab's shortcuts (and the notebook's) must not see them,
 *  except save (Ctrl/Cmd+S), which is handed on from `outside` (where shortcuts are not suppressed)
 *  as the same keystroke, so the notebook saves as it would anywhere else. */
function keepKeys(el: HTMLElement, outside: HTMLElement): HTMLElement {
  el.classList.add("lm-suppress-shortcuts");
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (!isSave(event)) return;
    event.preventDefault();
    const save = new KeyboardEvent("keydown", {
      key: event.key,
      code: "KeyS",
      ctrlKey: event.ctrlKey,
      metaKey: event.metaKey,
      shiftKey: event.shiftKey,
      bubbles: true,
      cancelable: true,
    });
    Object.defineProperty(save, "keyCode", { get: () => S_KEY_CODE }); // what Lumino's keyboard layout reads
    outside.dispatchEvent(save);
  });
  return el;
}

const isSave = (event: KeyboardEvent) => (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "s";

/** CodeMirror's own panels and tooltips (the lint tooltip) in JupyterLab's theme colours, light or dark. */
const jupyterTheme = EditorView.theme({
  ".cm-tooltip": {
    backgroundColor: "var(--jp-layout-color1, #fff)",
    color: "var(--jp-ui-font-color1, #212121)",
    border: "1px solid var(--jp-border-color1, #bdbdbd)",
  },
  ".cm-tooltip .cm-diagnostic": { color: "var(--jp-ui-font-color1, #212121)" },
  ".cm-diagnostic-error": { borderLeftColor: "var(--jp-error-color1, #d32f2f)" },
  ".cm-diagnostic-warning": { borderLeftColor: "var(--jp-warn-color1, #f57c00)" },
  ".cm-panels": { backgroundColor: "var(--jp-layout-color2, #eee)", color: "var(--jp-ui-font-color1, #212121)" },
});

function render({ model, el }: { model: AnyModel<EditorTraits>; el: HTMLElement }): Cleanup {
  const frame = createFrame(model, el, "il-editor");
  const tooltip = createTooltip();
  frame.onDispose(() => tooltip.dispose());

  const concepts = (): ConceptInfo[] => model.get("_concepts") ?? [];
  let colours = conceptColours(concepts().map((c) => c.name));
  let known: ReadonlySet<string> = new Set(colours.keys());
  const colour = (name: string) => colours.get(name) ?? null;
  const detection = (): DetectionState => model.get("_detection") ?? { text: "", tokens: [], detected: {} };
  const inference = (): InferenceState | null => {
    const published = model.get("_inference");
    return published && "rules" in published ? (published as InferenceState) : null; // {} until the first inference
  };

  // --- the rule editor ------------------------------------------------------------------------
  const status = h("div", { class: "il-lint-status il-muted", attrs: { "aria-live": "polite" } });
  const host = keepKeys(h("div", { class: "il-rule-editor" }), el);
  const view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc: model.get("rules") ?? "",
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        bracketMatching(),
        keymap.of([...defaultKeymap, ...historyKeymap]),
        ruleLanguage(() => known),
        linter(
          async (v) => {
            const doc = v.state.doc.toString();
            try {
              const state = await analyse(model, doc);
              return toRanges(state.diagnostics, doc);
            } catch (error) {
              frame.showError(error);
              return [];
            }
          },
          { delay: LINT_DELAY_MS },
        ),
        lintGutter(),
        jupyterTheme,
        EditorView.contentAttributes.of({ "aria-label": "rules", spellcheck: "false" }),
      ],
    }),
  });
  frame.onDispose(() => view.destroy());

  const onRules = () => {
    const rules: string = model.get("rules") ?? "";
    if (rules === view.state.doc.toString()) return;
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: rules } });
    forceLinting(view);
  };
  frame.listen("change:rules", onRules);

  // --- the text -------------------------------------------------------------------------------
  const input = h("textarea", {
    class: "il-input il-text-input",
    attrs: { rows: 2, "aria-label": "input text", placeholder: "a text for the rules to reason over", spellcheck: "false" },
  });
  keepKeys(input, el);
  input.value = model.get("text") ?? "";
  let textTimer: ReturnType<typeof setTimeout> | undefined;
  const sendText = () => {
    clearTimeout(textTimer);
    if (input.value === model.get("text")) return;
    model.set("text", input.value);
    model.save_changes();
  };
  input.addEventListener("input", () => {
    clearTimeout(textTimer);
    textTimer = setTimeout(sendText, TEXT_DELAY_MS);
  });
  input.addEventListener("change", sendText);
  const onText = () => {
    const text = model.get("text") ?? "";
    if (text !== input.value && document.activeElement !== input) input.value = text;
  };
  frame.listen("change:text", onText);
  frame.onDispose(() => clearTimeout(textTimer));

  // --- tokens and detected concepts -----------------------------------------------------------
  const legend = h("div", { class: "il-concept-legend" });
  const focusNote = h("span", { class: "il-focus-note il-muted" });
  let focused: number[] = [];
  const conceptsAt = new Map<number, string[]>();
  const strip = new TokenStrip({
    tokens: [],
    onHover: (i, span) => {
      if (i === null || !span) {
        tooltip.hide();
        return;
      }
      const token = detection().tokens[i] ?? "";
      const names = conceptsAt.get(i) ?? [];
      tooltip.show(
        span.getBoundingClientRect(),
        h("div", {}, h("b", {}, `token ${i}`), "  ", h("span", { class: "il-mono" }, JSON.stringify(token))),
        names.length ? h("div", {}, "detected: ", names.join(", ")) : h("div", { class: "il-muted" }, "no concept detected"),
      );
    },
  });

  function focus(label: string, positions: number[]) {
    for (const i of focused) strip.tokenElement(i)?.classList.remove("il-focus");
    focused = positions.filter((i) => strip.tokenElement(i));
    for (const i of focused) strip.tokenElement(i)!.classList.add("il-focus");
    focusNote.textContent = label
      ? positions.length
        ? `${label}: token${positions.length > 1 ? "s" : ""} ${positions.join(", ")}`
        : `${label}: no tokens (detected over the whole text, or not detected)`
      : "";
    if (focused.length) strip.tokenElement(focused[0])!.scrollIntoView?.({ block: "nearest" });
  }

  function drawTokens() {
    tooltip.hide(); // the token under it may be gone
    const d = detection();
    strip.setTokens(d.tokens);
    strip.clearHighlights();
    conceptsAt.clear();
    for (const [name, positions] of Object.entries(d.detected ?? {})) {
      strip.setHighlight(name, colour(name) ?? "#888", positions);
      for (const p of positions) conceptsAt.set(p, [...(conceptsAt.get(p) ?? []), name]);
    }
    focused = [];
    focusNote.textContent = "";
    const detected = d.detected ?? {};
    replaceChildren(
      legend,
      ...concepts().map((c) => {
        const positions = detected[c.name] ?? [];
        const chip = h(
          "button",
          {
            class: `il-concept-chip${positions.length ? " il-on" : ""}`,
            attrs: { type: "button", "data-concept": c.name, title: c.detected ? `${c.method}: show its tokens` : `${c.method}: steering only (no threshold)` },
            on: { click: () => focus(c.name, positions) },
          },
          h("i", { class: "il-swatch", style: { background: colour(c.name) ?? "" } }),
          c.name,
          positions.length ? h("span", { class: "il-count" }, ` ${positions.length}`) : null,
        );
        return chip;
      }),
    );
  }

  // --- facts and proofs -----------------------------------------------------------------------
  const facts = h("div", { class: "il-facts" });
  const open = new Set<string>();

  /** A fact (or suppressed concept) with its proof's first step, drawn when opened. */
  function factItem(concept: string, proof: FlatProof, proofs: Proofs, tokens: string[]) {
    const key = `${proof.kind}:${concept}`;
    const details = h(
      "details",
      { class: `il-fact il-fact-${proof.kind}`, attrs: { "data-concept": concept } },
      h("summary", {}, chip(concept, colour(concept)), h("span", { class: "il-muted" }, ` ${summaryText(proof)}`)),
    );
    const show = () => {
      if (details.children.length === 1) details.append(proofStep(proof, { colour, tokens, proofs, onLeaf: (name, positions) => focus(name, positions) }, concept));
    };
    details.addEventListener("toggle", () => {
      if (details.open) {
        open.add(key);
        show();
        focus(concept, proofPositions(proof, proofs));
      } else open.delete(key);
    });
    if (open.has(key)) {
      details.open = true;
      show();
    }
    return details;
  }

  function drawFacts() {
    const state = inference();
    const d = detection();
    if (!state) {
      replaceChildren(facts, h("div", { class: "il-muted" }, "waiting for the kernel…"));
      return;
    }
    const errors = state.diagnostics.filter((x) => x.severity === "error").length;
    const warnings = state.diagnostics.length - errors;
    status.textContent = errors
      ? `${errors} error${errors > 1 ? "s" : ""}${warnings ? `, ${warnings} warning${warnings > 1 ? "s" : ""}` : ""}: the facts below are those of the last rules without errors`
      : `${warnings ? `${warnings} warning${warnings > 1 ? "s" : ""} · ` : ""}checked and inferred in ${state.elapsed_ms.toFixed(1)} ms`;
    status.classList.toggle("il-stale", state.stale);
    const entries = Object.entries(state.proofs);
    const suppressed = Object.entries(state.suppression_proofs);
    replaceChildren(
      facts,
      h("div", { class: "il-section-title" }, `facts (${entries.length})`, state.stale ? h("span", { class: "il-stale-badge" }, " stale") : null),
      entries.length ? null : h("div", { class: "il-muted" }, d.tokens.length ? "no concept detected, nothing inferred" : "type a text to reason over"),
      h("div", { class: "il-fact-list" }, ...entries.map(([c, proof]) => factItem(c, proof, state.proofs, d.tokens))),
      suppressed.length ? h("div", { class: "il-section-title" }, `suppressed (${suppressed.length})`) : null,
      suppressed.length ? h("div", { class: "il-fact-list" }, ...suppressed.map(([c, proof]) => factItem(c, proof, state.proofs, d.tokens))) : null,
      state.conflicts.length ? h("div", { class: "il-muted" }, `both a fact and suppressed: ${state.conflicts.join(", ")}`) : null,
    );
  }

  // --- generation -----------------------------------------------------------------------------
  // Strength 1 adds a fifth of the layer's typical residual norm: real models keep their text up to
  // about 1-2; a small demo model may want more, so the range grows to twice the strength set.
  const slider = h("input", {
    class: "il-strength",
    attrs: { type: "range", min: -4, max: 4, step: 0.05, "aria-label": "steering strength" },
  });
  const fitRange = (strength: number) => {
    const top = Math.max(4, Math.ceil(2 * Math.abs(strength)));
    slider.min = String(-top);
    slider.max = String(top);
  };
  const strengthValue = h("span", { class: "il-num" });
  const showStrength = () => (strengthValue.textContent = Number(slider.value).toFixed(2));
  slider.addEventListener("input", showStrength);
  slider.addEventListener("change", () => {
    model.set("strength", Number(slider.value));
    model.save_changes();
  });
  const onStrength = () => {
    const strength = Number(model.get("strength") ?? 0.5);
    fitRange(strength);
    slider.value = String(strength);
    showStrength();
  };
  frame.listen("change:strength", onStrength);
  onStrength();
  const button = h("button", { class: "il-button il-primary il-generate", attrs: { type: "button" } }, "generate");
  const outputs = h("div", { class: "il-generation" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await frame.commands.invoke("_generate", { strength: Number(slider.value), max_new_tokens: model.get("max_new_tokens") ?? 24 });
    } catch (error) {
      frame.showError(error);
    } finally {
      button.disabled = false;
    }
  });

  function drawGeneration() {
    const g = model.get("generation") as GenerationState | null;
    if (!g) {
      replaceChildren(outputs, h("div", { class: "il-muted" }, "generate: the text's continuation without steering and steered by what the rules infer"));
      return;
    }
    const steering = Object.entries(g.steering ?? {});
    replaceChildren(
      outputs,
      h("div", { class: "il-gen-col il-gen-base" }, h("div", { class: "il-section-title" }, "base"), h("div", { class: "il-gen-text" }, g.base ?? "")),
      h(
        "div",
        { class: "il-gen-col il-gen-steered" },
        h("div", { class: "il-section-title" }, `steered (strength ${g.strength})`),
        h("div", { class: `il-gen-text${g.base !== null && g.base !== g.steered ? " il-changed" : ""}` }, g.steered),
        h(
          "div",
          { class: "il-muted" },
          steering.length ? `steering: ${steering.map(([c, a]) => `${c} ${a > 0 ? "+" : ""}${a}`).join(", ")}` : "no dictionary concept was inferred or suppressed: nothing to steer",
        ),
      ),
    );
  }

  // --- layout ---------------------------------------------------------------------------------
  frame.toolbar.append(h("span", { class: "il-label" }, "rules"), status);
  frame.body.append(
    host,
    h("label", { class: "il-field il-text-field" }, "text ", input),
    legend,
    strip.el,
    focusNote,
    facts,
    h(
      "div",
      { class: "il-generate-bar" },
      h("label", { class: "il-field" }, "strength ", slider),
      strengthValue,
      button,
    ),
    outputs,
  );

  const onConcepts = () => {
    colours = conceptColours(concepts().map((c) => c.name));
    known = new Set(colours.keys());
    drawTokens();
    drawFacts();
  };
  const onDetection = () => {
    drawTokens();
    drawFacts();
  };
  frame.listen("change:_concepts", onConcepts);
  frame.listen("change:_detection", onDetection);
  frame.listen("change:_inference", drawFacts);
  frame.listen("change:generation", drawGeneration);
  drawTokens();
  drawFacts();
  drawGeneration();

  return () => frame.dispose();
}

export default { render };
