"""RuleEditor in a real JupyterLab: type a rule with an error, see the kernel's diagnostic inline,
fix it, and read the new rules and facts back in the kernel."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

SETUP = """\
import json
import torch
torch.set_num_threads(1)
import interplab as il
model = il.zoo.tiny("llama")
text = "the cat sat on the mat"
with torch.no_grad():
    h = model.hf(torch.tensor([model.tokenizer(text)["input_ids"]]), output_hidden_states=True).hidden_states[1][0]
concepts = il.reasoning.Concepts(0)
for word, position in (("cat", 1), ("mat", 5)):
    direction = h[position]
    scores = h @ (direction / direction.norm())
    concepts.add(word, direction=direction, threshold=float(scores[position] + scores.topk(2).values[1]) / 2)
editor = il.RuleEditor(model, concepts, "cat -> pet", text=text)
print(json.dumps({"facts": sorted(editor.facts)}))
"""

# Notes the time of the last keydown and of the first moment after it that the editor shows `selector`
# (`want` true) or no longer shows it, in the page's own clock.
WATCH = """([selector, want]) => {
  if (window.__il) {
    window.__il.observer.disconnect();
    document.removeEventListener('keydown', window.__il.onKey, true);
  }
  const root = document.querySelector('.il-editor');
  const il = {key: null, seen: null};
  il.onKey = () => { il.key = performance.now(); il.seen = null; };
  document.addEventListener('keydown', il.onKey, true);
  il.observer = new MutationObserver(() => {
    const has = root.querySelector(selector) !== null;
    if (has === want && il.seen === null && il.key !== null) il.seen = performance.now();
  });
  il.observer.observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
  window.__il = il;
}"""


def round_trip_ms(nb) -> float:
    nb.page.wait_for_function("() => window.__il && window.__il.seen !== null", timeout=30_000)
    return nb.page.evaluate("() => window.__il.seen - window.__il.key")


def test_type_an_error_see_it_fix_it_and_read_the_rules_in_the_kernel(notebook):
    nb = notebook("editor.ipynb", [SETUP, "editor"])
    nb.run_all()
    before = json.loads(nb.output(0).strip().splitlines()[-1])["facts"]
    assert before == ["cat", "mat", "pet"]
    root = nb.page.locator(".il-editor")
    expect(root.locator(".il-fact")).to_have_count(3)
    cells = nb.cells.count()

    content = root.locator(".cm-content")
    content.click()
    nb.page.keyboard.press("Control+End")
    nb.page.evaluate(WATCH, [".cm-lintRange-error", True])
    nb.page.keyboard.type("\npet and -> calm", delay=20)  # 'a', 'b', Enter: notebook shortcuts if they leaked
    error = root.locator(".cm-lintRange-error")
    expect(error).to_have_count(1, timeout=30_000)
    to_error = round_trip_ms(nb)
    expect(error).to_have_text("->")
    expect(root.locator(".il-lint-status")).to_contain_text("1 error")
    expect(root.locator(".il-stale-badge")).to_be_visible()
    assert nb.cells.count() == cells, "typing in the editor reached JupyterLab's shortcuts"

    error.hover()
    tip = nb.page.locator(".cm-tooltip-lint")
    expect(tip).to_contain_text("expected a concept name after 'and'", timeout=10_000)

    nb.page.keyboard.press("Control+End")
    for _ in range(len("-> calm")):
        nb.page.keyboard.press("Backspace")
    nb.page.evaluate(WATCH, [".il-fact[data-concept=calm]", True])
    nb.page.keyboard.type("mat -> calm", delay=20)
    expect(root.locator(".il-fact[data-concept=calm]")).to_be_visible(timeout=30_000)
    to_fixed = round_trip_ms(nb)
    expect(error).to_have_count(0)
    expect(root.locator(".il-lint-status")).to_contain_text("checked")

    out = nb.run_code("print(json.dumps({'rules': editor.rules, 'facts': sorted(editor.facts), "
                      "'diagnostics': editor.diagnostics}))")
    state = json.loads(out.strip().splitlines()[-1])
    assert state["rules"] == "cat -> pet\npet and mat -> calm"
    assert state["diagnostics"] == []
    assert state["facts"] == ["calm", "cat", "mat", "pet"] != before
    print(f"last key -> diagnostic shown: {to_error:.0f} ms; last key -> new fact shown: {to_fixed:.0f} ms "
          "(both include the editor's 250 ms typing pause)")

    # a proof leaf lights up its tokens
    calm = root.locator(".il-fact[data-concept=calm]")
    calm.locator("summary").click()
    calm.locator(".il-proof-leaf[data-concept=cat]").first.click()
    focused = root.locator(".il-token.il-focus")
    expect(focused).to_have_count(1)
    assert re.fullmatch(r"cat", focused.first.inner_text().split("\n")[0].strip())
