import json
import re

import numpy as np
import pandas as pd
import pytest

import interplab as il
from interplab import tour
from interplab.widgets.report import Section, write_report


@pytest.fixture(scope="module")
def model(device):
    return il.zoo.tiny("gpt2", device=device)


def embedded_state(page: str) -> dict:
    return json.loads(re.search(r'widget-state\+json">\s*(.*?)\s*</script>', page, re.S).group(1))


def test_report_embeds_views_state_and_escapes_text(model, tmp_path):
    view = il.TokenView(model, "the cat sat", values=np.array([0.5, -1, 2]), label="</script><b>x</b>")
    sections = [Section("<Tokens>", ["a < b & c"], widgets=[view], tables=[pd.DataFrame({"t": ["<i>"]})])]
    page = write_report(tmp_path / "r.html", sections, title="t<1>").read_text()
    assert "<h2>&lt;Tokens&gt;</h2>" in page and "<p>a &lt; b &amp; c</p>" in page and "&lt;i&gt;" in page
    assert "</script><b>" not in page  # a label cannot close the state's script element
    spec = json.loads(re.search(r'widget-view\+json">(.*?)</script>', page).group(1))
    state = embedded_state(page)["state"]
    model_state = state[spec["model_id"]]
    assert model_state["model_module"] == "anywidget"
    assert model_state["state"]["label"] == "</script><b>x</b>"
    assert model_state["state"]["_esm"].startswith(("var ", "function", "import", "(", "const", "let"))
    values = next(b for b in model_state["buffers"] if b["path"] == ["_values", "data"])
    assert values["encoding"] == "base64"


def test_tour_sections_run_and_failures_are_reported(tmp_path, monkeypatch):
    def broken(demo):
        raise RuntimeError("planted section failure")

    monkeypatch.setattr(tour, "SECTIONS", [*tour.SECTIONS, broken])
    result = tour.run(tmp_path / "tour.html")
    page = result.path.read_text()
    assert result.failed == ["broken"]
    assert "planted section failure" in page
    assert "Tokens: how surprising is each token?" in page
    views = [m for m in embedded_state(page)["state"].values() if m["model_module"] == "anywidget"]
    with_experts = "experts" in il.zoo.available()
    with_ioi = "ioi" in il.zoo.available()
    with_ontology = "ontology" in il.zoo.available()
    assert len(views) == 1 + with_experts + with_ioi + with_ontology
    if with_ioi:
        assert "Circuits: which components carry indirect object identification?" in page
        explorer = next(v["state"] for v in views if "circuit" in v["state"])
        assert len(explorer["circuit"]) == 12 and explorer["ablated"][0] in explorer["circuit"]  # top 12, one ablated
        assert len(explorer["ablated"]) == 1 and explorer["metric"]["size"] == 11
        assert explorer["metric"]["n_ablated"] == 1 and explorer["method"] == "relp"
        assert set(explorer["_scores"]) == set(il.circuits.METHODS)  # every method computed
    if with_experts:
        for title in ("Experts: which experts does a behaviour route to?", "switching experts off and forcing them on",
                      "self-contrast decoding (SCMoE)"):
            assert title in page
        scanner = next(v["state"] for v in views if "off" in v["state"])
        assert len(scanner["off"]) == 4 and len(scanner["runs"]) == 1
        assert scanner["_routing"]["set"] == "behaviour" and scanner["_routing"]["tokens"][0] == "<bos>"


def test_rule_editor_state_renders_without_a_kernel(tmp_path):
    """The report carries what the editor shows: rules, the diagnostics and inference of exactly those
    rules (so the front end needs no kernel to draw them), tokens and detections, all as plain text."""
    import torch

    llama = il.zoo.tiny("llama")
    concepts = il.reasoning.Concepts(0)
    concepts.add("cat", direction=torch.ones(32), threshold=float("-inf"))  # fires on every token
    rules = "cat -> pet\n</script><b>x</b> -> y\n"
    editor = il.RuleEditor(llama, concepts, rules, text="the cat sat")
    page = write_report(tmp_path / "r.html", [Section("rules", widgets=[editor])]).read_text()
    assert "</script><b>" not in page
    [view] = [m["state"] for m in embedded_state(page)["state"].values() if m["model_module"] == "anywidget"]
    assert view["rules"] == rules and view["_inference"]["rules"] == rules
    assert [d["line"] for d in view["diagnostics"]] == [2] and view["_inference"]["stale"]
    assert view["_detection"]["tokens"] == ["the", "cat", "sat"]
    assert view["_detection"]["detected"] == {"cat": [0, 1, 2]}
    assert view["_esm"] == (il.widgets.base.STATIC / "editor.js").read_text()
