"""ExpertScanner without a browser: traits, buffers, marks, commands, runs, export."""

import json
import math

import numpy as np
import pytest
import torch
import traitlets
from widget_channel import Browser

import interplab as il
from interplab.tasks import assistant
from interplab.widgets.codecs import decode_array

BEHAVIOUR = assistant.sensitive_prompts("heldout")[:8]
CONTROL = assistant.ordinary_prompts("heldout")[:8]


@pytest.fixture(scope="module")
def model(device):
    torch.manual_seed(0)
    return il.zoo.load("experts", device=device)


@pytest.fixture
def scanner(model):
    return il.ExpertScanner(model, BEHAVIOUR, CONTROL, max_new_tokens=12)


def greedy(model, prompt: str, max_new_tokens: int) -> str:
    """Plain transformers greedy decoding of one prompt (no nnsight, no padding)."""
    ids = torch.tensor([model.tokenizer(prompt)["input_ids"]], device=model.device)
    with torch.no_grad():
        out = model.hf.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=model.tokenizer.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    eos = model.tokenizer.eos_token_id
    return model.tokenizer.decode(new[:new.index(eos)] if eos in new else new, skip_special_tokens=True)


def test_maps_travel_as_float32_buffers(scanner, model):
    maps = scanner._maps
    scan = scanner.scan
    for which in ("behaviour", "control"):
        stats = getattr(scan, which)
        for key, expected in (("rate", stats.selection_rate), ("weight", stats.mean_weight)):
            meta = maps[f"{which}_{key}"]
            assert meta["dtype"] == "float32" and meta["shape"] == [4, 32]
            assert isinstance(meta["data"], bytes) and len(meta["data"]) == 4 * 32 * 4
            np.testing.assert_array_equal(decode_array(meta), expected.numpy())
        assert maps[which] == {"n_prompts": 8, "n_tokens": getattr(scan, which).n_tokens}
    # the selection rates of a set sum to top_k per layer (every counted token picks top_k experts)
    np.testing.assert_allclose(decode_array(maps["behaviour_rate"]).sum(axis=1), [2, 2, 2, 2], rtol=1e-5)
    assert (scanner.n_layers, scanner.n_experts, scanner.top_k, scanner.moe_layers) == (4, 32, 2, [0, 1, 2, 3])
    assert scanner.model_name == "experts"
    assert scanner._prompts["behaviour"] == BEHAVIOUR and scanner._prompts["n_control"] == 8


def test_dense_layers_are_nan_rows():
    model = il.zoo.tiny("deepseek_v3")  # layer 0 dense, layers 1-2 MoE
    view = il.ExpertScanner(model, ["the cat sat on the mat"], ["the mat sat on the cat"], classify=False)
    assert view.moe_layers == [1, 2]
    rates = decode_array(view._maps["behaviour_rate"])
    assert np.isnan(rates[0]).all() and not np.isnan(rates[1:]).any()
    with pytest.raises(traitlets.TraitError, match="decoder layer 0 is dense"):
        view.off = [(0, 1)]


def test_marks_are_normalised_and_validated(scanner):
    top = scanner.scan.top(3)
    scanner.off = top  # (layer, expert, score) triples are accepted
    assert scanner.off == sorted([[layer, e] for layer, e, _ in top])
    scanner.off = [(np.int64(1), np.int64(3)), [1, 3], (0, 5)]  # numpy ints, repeats
    assert scanner.off == [[0, 5], [1, 3]]
    with pytest.raises(traitlets.TraitError, match=r"3 experts forced on in layer 2 .* top_k=2"):
        scanner.on = [(2, 1), (2, 2), (2, 3)]
    assert scanner.on == []
    with pytest.raises(traitlets.TraitError, match="expert 40 is out of range"):
        scanner.on = [(2, 40)]
    with pytest.raises(traitlets.TraitError, match="both switched off and forced on"):
        scanner.on = [(1, 3)]
    for bad in ([(1.0, 3)], [(True, 3)], [("1", 3)], [(1,)], "1,3"):
        with pytest.raises(traitlets.TraitError):
            scanner.off = bad
    assert scanner.off == [[0, 5], [1, 3]]
    scanner.set_marks(off=[(0, 5)], on=[(1, 3)])  # moved from off to on: checked together
    assert (scanner.off, scanner.on) == ([[0, 5]], [[1, 3]])
    scanner.mark(1, 3, None)
    scanner.mark(2, 7, "off")
    assert (scanner.off, scanner.on) == ([[0, 5], [2, 7]], [])


def test_mark_command_errors_reach_the_banner_and_the_widget_stays_usable(scanner):
    browser = Browser(scanner)
    response, _ = browser.invoke("_mark", {"layer": 3, "expert": 1, "state": "on"})
    assert response == {"result": {"off": [], "on": [[3, 1]]}}
    response, _ = browser.invoke("_mark", {"layer": 3, "expert": 2, "state": "on"})
    assert response == {"result": {"off": [], "on": [[3, 1], [3, 2]]}}
    response, _ = browser.invoke("_mark", {"layer": 3, "expert": 9, "state": "on"})
    assert "force at most 2 per layer" in response["error"]["message"]
    assert scanner.error["command"] == "_mark" and "top_k=2" in scanner.error["message"]
    assert scanner.on == [[3, 1], [3, 2]]
    response, _ = browser.invoke("_mark", {"layer": 3, "expert": 1, "state": None})  # still usable
    assert response["result"]["on"] == [[3, 2]]
    response, _ = browser.invoke("_set_marks", {"off": [[0, 1], [0, 2]], "on": []})
    assert response["result"] == {"off": [[0, 1], [0, 2]], "on": []} and scanner.on == []


@pytest.mark.parametrize(("name", "payload", "error"), [
    ("_mark", {"layer": "3", "expert": 1, "state": "off"}, "field 'layer' must be int; got '3'"),
    ("_mark", {"layer": True, "expert": 1, "state": "off"}, "field 'layer' must be int; got True"),
    ("_mark", {"layer": 1, "state": "off"}, "needs the field 'expert'"),
    ("_mark", {"layer": 1, "expert": 1, "state": 3}, "field 'state' must be str or null"),
    ("_mark", {"layer": 1, "expert": 1, "state": "sideways"}, "state must be 'off', 'on' or None"),
    ("_mark", [1, 2, "off"], "takes an object of fields"),
    ("_mark", None, "takes an object of fields"),
    ("_mark", {"layer": 1, "expert": 1, "state": None, "extra": 0}, "has no field(s) ['extra']"),
    ("_set_marks", {"off": "0,1", "on": []}, "field 'off' must be list"),
    ("_set_marks", {"off": [[0, 1, 2, 3]], "on": []}, "must be a (layer, expert) pair"),
    ("_route", {"set": "behaviour"}, "needs the field 'index'"),
    ("_route", {"set": "behaviour", "index": 1.5}, "field 'index' must be int"),
    ("_run", {"n": "4"}, "field 'n' must be int or null"),
    ("_run", {"n": 0}, "run_n"),
    ("_run", {"max_new_tokens": 10**9}, "max_new_tokens"),
    ("_rescan", {}, "needs the field 'tokens'"),
    ("_rescan", {"tokens": "answers"}, "tokens must be one of"),
    ("_to_json", {"x": 1}, "has no field(s) ['x']"),
    ("_nonexistent", {}, "has no command '_nonexistent'"),
])
def test_malformed_commands_get_an_error_reply(scanner, name, payload, error):
    before = (scanner.off, scanner.on, len(scanner.runs), scanner.tokens)
    response, _ = Browser(scanner).invoke(name, payload)
    assert error in response["error"]["message"], response
    assert scanner.error["command"] == name
    assert (scanner.off, scanner.on, len(scanner.runs), scanner.tokens) == before


def test_a_malformed_envelope_still_gets_one_reply(scanner):
    """No payload, no name: the browser still hears back (anywidget itself would answer nothing)."""
    browser = Browser(scanner)
    for envelope in ({"id": "c1", "kind": "anywidget-command", "name": "_mark"},
                     {"id": "c1", "kind": "anywidget-command"}):
        browser.received.clear()
        scanner._handle_custom_msg(envelope, [])
        (reply, _), = [r for r in browser.received if r[0].get("kind") == "anywidget-command-response"]
        assert reply["id"] == "c1" and "error" in reply["response"]


def test_run_compares_baseline_and_marked_outputs(model):
    scanner = il.ExpertScanner(model, BEHAVIOUR, CONTROL, tokens="response", max_new_tokens=12, run_n=2)
    scanner.off = scanner.scan.top(4)
    record = scanner.run()
    assert scanner.runs == [record]
    assert [r["set"] for r in record["rows"]] == ["behaviour"] * 2 + ["control"] * 2
    prompts = BEHAVIOUR[:2] + CONTROL[:2]
    assert [r["prompt"] for r in record["rows"]] == prompts
    assert [r["baseline"] for r in record["rows"]] == [greedy(model, p, 12) for p in prompts]
    assert [r["intervened"] for r in record["rows"]] == il.experts.generate(model, prompts, off=scanner.off,
                                                                            max_new_tokens=12, progress=False)
    assert any(r["baseline"] != r["intervened"] for r in record["rows"])
    refusal = il.experts.refusal_classifier()
    for r in record["rows"]:
        assert (r["baseline_flag"], r["intervened_flag"]) == (refusal(r["baseline"]), refusal(r["intervened"]))
    behaviour_rows = record["rows"][:2]
    assert record["rates"]["behaviour"] == {
        "baseline": sum(refusal(r["baseline"]) for r in behaviour_rows) / 2,
        "intervened": sum(refusal(r["intervened"]) for r in behaviour_rows) / 2, "n": 2}
    assert record["classifier"] == "refusal_classifier" and record["max_new_tokens"] == 12
    assert record["off"] == scanner.off and record["on"] == []

    # the button: the same engine path, with the panel's settings; runs accumulate; progress in the widget
    seen = []
    scanner.observe(lambda change: seen.append(change["new"]), names="progress")
    response, _ = Browser(scanner).invoke("_run", {"n": 1, "max_new_tokens": 6})
    assert {"label": "control with the marks", "done": 1, "total": 1} in seen
    assert seen[-1] is None
    assert response["result"]["n_rows"] == 2 and len(scanner.runs) == 2
    assert (scanner.run_n, scanner.max_new_tokens) == (1, 6)
    assert scanner.runs[1]["rows"][0]["baseline"] == greedy(model, BEHAVIOUR[0], 6)
    response, _ = Browser(scanner).invoke("_run", {"n": 0})
    assert "run_n" in response["error"]["message"] and len(scanner.runs) == 2


def test_run_without_classifier_and_on_given_prompts(model):
    scanner = il.ExpertScanner(model, BEHAVIOUR, CONTROL, classify=False, max_new_tokens=8)
    record = scanner.run(prompts=["Q: What colour is the sky? A:"])
    assert record["rates"] is None and record["classifier"] is None
    assert record["rows"][0]["set"] == "custom" and record["rows"][0]["baseline_flag"] is None
    assert record["rows"][0]["baseline"] == record["rows"][0]["intervened"] == greedy(
        model, "Q: What colour is the sky? A:", 8)
    custom = il.ExpertScanner(model, BEHAVIOUR, CONTROL, classify=lambda text: "sky" in text, max_new_tokens=8)
    assert custom.run(prompts=["Q: What colour is the sky? A:"])["rates"]["custom"]["baseline"] == 1.0
    assert custom.classifier == "<lambda>"
    with pytest.raises(TypeError, match="classify must be a function"):
        il.ExpertScanner(model, BEHAVIOUR, CONTROL, classify="refusal")


def test_route_command_matches_the_models_own_routing(scanner, model):
    prompt = BEHAVIOUR[1]
    response, buffers = Browser(scanner).invoke("_route", {"set": "behaviour", "index": 1})
    result = response["result"]
    ids = model.tokenizer(prompt)["input_ids"]
    assert result["prompt"] == prompt and result["tokens"] == [model.tokenizer.decode([i]) for i in ids]
    indices = decode_array(result["indices"], buffers)
    weights = decode_array(result["weights"], buffers)
    assert indices.dtype == np.int32 and weights.dtype == np.float32 and indices.shape == (len(ids), 4, 2)
    with torch.no_grad():  # the reference: transformers' own router logits, softmax, top-2, renormalised
        logits = model.hf(torch.tensor([ids], device=model.device), output_router_logits=True).router_logits
    for layer in range(4):
        top = logits[layer].float().softmax(-1).topk(2)
        np.testing.assert_array_equal(indices[:, layer], top.indices.cpu().numpy())
        np.testing.assert_allclose(weights[:, layer], (top.values / top.values.sum(-1, keepdim=True)).cpu().numpy(),
                                   rtol=1e-5)
    assert result["marked"] is None

    scanner.off = [(0, int(indices[0, 0, 0]))]  # switch off the first token's favourite expert in layer 0
    response, buffers = Browser(scanner).invoke("_route", {"set": "behaviour", "index": 1})
    marked = response["result"]["marked"]
    rerouted = decode_array(marked["indices"], buffers)
    assert marked["off"] == scanner.off and rerouted.shape == indices.shape
    assert not (rerouted[:, 0] == indices[0, 0, 0]).any()
    np.testing.assert_array_equal(rerouted[0, 0, 0], indices[0, 0, 1])  # the second choice moves up

    for msg, error in (({"set": "both", "index": 0}, "'behaviour' or 'control'"),
                       ({"set": "control", "index": 8}, "out of range")):
        response, _ = Browser(scanner).invoke("_route", msg)
        assert error in response["error"]["message"]


def test_preloaded_routing_is_inline(scanner):
    scanner.preload_routing("control", 2)
    routing = scanner._routing
    assert routing["set"] == "control" and routing["index"] == 2
    assert isinstance(routing["indices"]["data"], bytes) and routing["indices"]["dtype"] == "int32"
    assert decode_array(routing["weights"]).shape == (len(routing["tokens"]), 4, 2)


def test_rescan_shows_engine_progress_and_replaces_the_maps(scanner):
    seen = []
    scanner.observe(lambda change: seen.append(change["new"]), names="progress")
    before = decode_array(scanner._maps["behaviour_weight"])
    response, _ = Browser(scanner).invoke("_rescan", {"tokens": "response"})
    assert response["result"] == {"tokens": "response"} and scanner.tokens == "response"
    assert scanner.scan.tokens == "response"
    assert not np.array_equal(before, decode_array(scanner._maps["behaviour_weight"]))
    labels = [p["label"] for p in seen if p]
    assert labels[0] == "scan behaviour"  # each batch is answered, then scanned
    assert {"scan behaviour", "scan control"} <= set(labels)
    assert {"label": "scan control", "done": 8, "total": 8} in seen and seen[-1] is None
    response, _ = Browser(scanner).invoke("_rescan", {"tokens": "answers"})
    assert "tokens must be one of" in response["error"]["message"] and scanner.tokens == "response"


def test_observe_progress_reports_every_batch(model):
    calls = []
    with il.experts.observe_progress(lambda *args: calls.append(args)):
        il.experts.route(model, BEHAVIOUR[:5], batch_size=2, progress=False)
    il.experts.route(model, BEHAVIOUR[:1], progress=False)  # outside the block: not reported
    assert calls == [("route", 0, 5), ("route", 2, 5), ("route", 4, 5), ("route", 5, 5)]


def test_score_and_mode(scanner):
    scanner.score = "risk_diff"
    assert scanner.scan.score == "risk_diff"
    torch.testing.assert_close(scanner.scan.scores, scanner.scan.behaviour.selection_rate
                               - scanner.scan.control.selection_rate, equal_nan=True)
    with pytest.raises(traitlets.TraitError, match=r"expected any of \['contrast', 'risk_diff'\]"):
        scanner.score = "odds"
    with pytest.raises(traitlets.TraitError, match=r"expected any of \['behaviour', 'control', 'score'\]"):
        scanner.mode = "both"
    with pytest.raises(ValueError, match="score must be one of"):
        il.ExpertScanner(scanner.model, BEHAVIOUR, CONTROL, score="odds")


def test_given_scan_is_reused_and_checked(model, scanner):
    given = il.experts.scan(model, BEHAVIOUR, CONTROL, tokens="response", max_new_tokens=12, progress=False)
    view = il.ExpertScanner(model, BEHAVIOUR, CONTROL, scan=given, score="risk_diff")
    assert view.tokens == "response" and view.scan.score == "risk_diff"
    np.testing.assert_array_equal(decode_array(view._maps["control_rate"]), given.control.selection_rate.numpy())
    with pytest.raises(ValueError, match="counted 'response' tokens but tokens='prompt'"):
        il.ExpertScanner(model, BEHAVIOUR, CONTROL, scan=given, tokens="prompt")
    other = il.experts.scan(il.zoo.tiny("mixtral"), ["the cat"], ["the dog"], progress=False)
    with pytest.raises(ValueError, match="does not fit this model"):
        il.ExpertScanner(model, BEHAVIOUR, CONTROL, scan=other)
    with pytest.raises(ValueError, match="needs a Mixture-of-Experts model"):
        il.ExpertScanner(il.zoo.tiny("gpt2"), ["the cat"], ["the dog"])


def test_json_export_holds_the_scan_and_the_marks(scanner):
    scanner.off = [(1, 2)]
    scanner.on = [(3, 4)]
    data = json.loads(scanner.to_json())
    assert data["off"] == [[1, 2]] and data["on"] == [[3, 4]] and data["runs"] == []
    scores = scanner.scan.scores
    assert data["scan"]["tokens"] == "prompt" and data["scan"]["n_experts"] == 32
    assert all(math.isclose(data["scan"]["scores"][layer][e], float(scores[layer, e]), rel_tol=1e-6)
               for layer in range(4) for e in range(32))
    response, _ = Browser(scanner).invoke("_to_json", {})
    assert json.loads(response["result"]["json"]) == data
