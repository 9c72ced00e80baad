"""What every widget guarantees at its edges: what the browser may change, text and numbers that
travel as JSON, payloads that are checked, and views that follow the model they show."""

import json
import math

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers
from jupyter_client.session import json_packer
from odd_tokens import ODD_TEXT, odd_model
from widget_channel import Browser

import interplab as il
from interplab.widgets.base import Widget, check_payload, command, wire, wire_text
from interplab.widgets.codecs import decode_array

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def model(device):
    return il.zoo.tiny("gpt2", device=device)


def packed(state: dict) -> dict:
    """What Jupyter's message packer sends for a state (it refuses NaN and lone surrogates)."""
    state, _, _ = _remove_buffers(state)
    return json.loads(json_packer(state))


def logprobs(model, text: str) -> list[float]:
    """log p(token i | tokens before it), from the plain transformers forward pass."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]], device=model.device)
    with torch.no_grad():
        logp = model.hf(ids).logits[0].float().log_softmax(-1)
    return [math.nan] + [logp[i - 1, ids[0, i]].item() for i in range(1, ids.shape[1])]


# --- the wire -------------------------------------------------------------------------------------
def test_wire_text_joins_pairs_and_escapes_lone_surrogates():
    assert wire_text("plain") == "plain" and wire_text("é😀") == "é😀"
    assert wire_text("\ud83d\ude00") == "😀"  # two code units that make one character
    assert wire_text("a\ud83d") == "a\\ud83d" and wire_text("\udcc3x") == "\\udcc3x"
    with pytest.raises(UnicodeEncodeError):
        json_packer(["\ud83d"])  # why: Jupyter cannot send a lone surrogate at all
    assert wire({"a": [1.5, math.nan, -math.inf], "b": (np.float32(2), np.int64(3), "\ud800")}) == {
        "a": [1.5, None, None], "b": [2.0, 3, "\\ud800"]}
    assert wire({"bytes": b"\x00\xff"}) == {"bytes": b"\x00\xff"}
    with pytest.raises(TypeError, match="cannot send a set"):
        wire({"s": {1, 2}})


def test_odd_tokens_travel_and_stay_distinguishable():
    model = odd_model()
    view = il.TokenView(model, ODD_TEXT)
    assert view.tokens[5:7] == ["\ud83d", "\ude00"]  # the Python side keeps the true strings
    state = packed(view.get_state())
    assert state["tokens"] == ["a", "\u202e", "b", "\x07", "c", "\\ud83d", "\\ude00", "d", "\x1b", "\x00", "e"]
    browser = Browser(view)
    for position in range(len(view.tokens)):
        response, buffers = browser.invoke("_top_k", {"position": position})
        reply = json.loads(json_packer(response))
        expected = view.predictions().at(position)
        assert reply["result"]["tokens"] == [wire_text(t) for t, _, _ in expected]
        assert decode_array(response["result"]["ids"], buffers).tolist() == [i for _, i, _ in expected]


class Careless(Widget, bundle="tokenview"):
    """A widget whose command returns something JSON cannot hold."""

    @command()
    def _odd(self, msg, buffers):
        return {"odd": {1, 2}}, []


def test_a_probe_of_the_connection_is_ignored(model):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    browser = Browser(view)
    view._handle_custom_msg({"kind": "interplab-probe"}, [])
    assert browser.received == [] and view.error is None


def test_a_reply_that_cannot_travel_becomes_an_error_reply():
    widget = Careless()
    response, _ = Browser(widget).invoke("_odd", {})
    assert "cannot send a set" in response["error"]["message"] and widget.error["command"] == "_odd"


# --- payloads --------------------------------------------------------------------------------------
def test_check_payload():
    fields = {"n": int, "name": (str, None)}
    assert check_payload("c", {"n": 3}, fields) == {"n": 3, "name": None}
    assert check_payload("c", {"n": 3, "name": "x"}, fields) == {"n": 3, "name": "x"}
    for msg, error in (([3], "takes an object"), ({}, r"needs the field 'n' \(int\)"), ({"n": True}, "must be int"),
                       ({"n": 3.0}, "must be int; got 3.0"), ({"n": 3, "name": 4}, "must be str or null"),
                       ({"n": 3, "extra": 1}, r"has no field\(s\) \['extra'\]")):
        with pytest.raises(TypeError, match=error):
            check_payload("c", msg, fields)


@pytest.mark.parametrize(("payload", "error"), [
    ({"position": "2"}, "field 'position' must be int"),
    ({"position": True}, "field 'position' must be int"),
    ({}, "needs the field 'position'"),
    ({"position": 2, "k": 9}, "has no field(s) ['k']"),
    ("2", "takes an object of fields"),
    ({"position": 99}, "not a token index"),
])
def test_tokenview_commands_check_their_payload(model, payload, error):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    response, _ = Browser(view).invoke("_top_k", payload)
    assert error in response["error"]["message"]
    response, _ = Browser(view).invoke("_receive_export", {"id": 3})
    assert "field 'id' must be str" in response["error"]["message"]


# --- what the browser may change ----------------------------------------------------------------------
def sent_states(widget) -> list:
    """The key lists the widget sends back to the browser with ``send_state`` (a single trait's own
    change notifications, which send its name as a string, are not recorded)."""
    sent = []
    widget.send_state = lambda key=None: sent.append(sorted(key)) if isinstance(key, list) else None
    return sent


def test_the_browser_changes_only_view_state(model):
    view = il.TokenView(model, TEXT, values=np.arange(6.0))
    sent = sent_states(view)
    view.set_state({"selected": 2})
    assert view.selected == 2 and view.error is None and sent == []
    for update, refused in (({"label": "forged"}, "label"), ({"_values": {"dtype": "float32"}}, "_values"),
                            ({"tokens": ["x"], "selected": 1}, "tokens")):
        view.set_state(update)
        assert view.error["type"] == "PermissionError" and f"cannot change {refused}" in view.error["message"]
        assert sent[-1] == [refused]  # the browser's copy is put back
    assert view.label == "value" and view.values.tolist() == list(range(6)) and view.selected == 1
    view.set_state({"selected": False})  # a bool is no index
    assert view.selected == 1 and "not a token index" in view.error["message"] and sent[-1] == ["selected"]
    view.set_state({"error": {"type": "Forged", "message": "x"}})  # the banner is the kernel's to fill
    assert view.error["type"] == "PermissionError" and sent[-1] == ["error"]
    view.set_state({"error": None})  # ... and the browser's to dismiss
    assert view.error is None


def test_a_failing_observer_shows_in_the_banner(model):
    """An observer of the user's that fails on an update from the browser: the error shows in the
    banner (not only in the kernel's log) and the browser gets the kernel's state back."""
    view = il.TokenView(model, TEXT, values=np.arange(6.0))
    sent = sent_states(view)

    def refuse(change):
        raise RuntimeError("planted observer failure")

    view.observe(refuse, names="selected")
    view.set_state({"selected": 3})
    assert "planted observer failure" in view.error["message"] and view.error["command"] == "update"
    assert sent == [["selected"]]


def test_scanner_traits_owned_by_the_kernel(device):
    model = il.zoo.load("experts", device=device)
    scanner = il.ExpertScanner(model, ["Q: What is 1 plus 2? A:"], ["Q: What colour is the sky? A:"],
                               classify=False, progress=False)
    sent = sent_states(scanner)
    scanner.set_state({"mode": "behaviour", "score": "risk_diff"})
    assert (scanner.mode, scanner.score, scanner.scan.score) == ("behaviour", "risk_diff", "risk_diff")
    for name, value in (("off", [[0, 1]]), ("runs", [{"rows": []}]), ("tokens", "all"), ("run_n", 50)):
        scanner.set_state({name: value})
        assert f"cannot change {name}" in scanner.error["message"] and sent[-1] == [name]
    assert (scanner.off, scanner.runs, scanner.tokens, scanner.run_n) == ([], [], "prompt", 4)
    scanner.set_state({"mode": "sideways"})
    assert scanner.mode == "behaviour" and "expected any of" in scanner.error["message"] and sent[-1] == ["mode"]
    assert scanner._choices["score"][1] == {"value": "risk_diff", "label": "selection rate (risk difference)",
                                            "map": "rate", "name": "selection rate",
                                            "unit": "share of counted tokens that select the expert"}
    assert scanner._choices["limits"] == {"run_n": {"min": 1, "max": 1}, "max_new_tokens": {"min": 1, "max": 4096}}
    assert [c["value"] for c in scanner._choices["tokens"]] == list(il.experts.scan.__globals__["TOKENS"])


# --- views that follow the model ------------------------------------------------------------------------
def test_tokenview_follows_weight_edits(device):
    model = il.zoo.tiny("gpt2", device=device)
    view = il.TokenView(model, TEXT)
    browser = Browser(view)
    np.testing.assert_allclose(view.values, logprobs(model, TEXT), atol=1e-5)
    with torch.no_grad():
        model.module("unembed").weight.data.mul_(-2)  # through .data: no version counter moves
    response, _ = browser.invoke("_top_k", {"position": 2})
    assert [t for t, _, _ in view.predictions().at(2)] == response["result"]["tokens"]
    np.testing.assert_allclose(view.values, logprobs(model, TEXT), atol=1e-5)  # the colours follow too
    ids = torch.tensor([model.tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        top = model.hf(ids).logits[0, 2].topk(5).indices.tolist()
    assert [i for _, i, _ in view.predictions().at(2)] == top


def test_tokenview_follows_added_tokens(device):
    model = il.zoo.tiny("gpt2", device=device)
    own = il.TokenView(model, "the zebra sat")
    given = il.TokenView(model, "the cat sat", values=[1.0, 2.0, 3.0])
    assert own.tokens == ["the", "<unk>", "sat"]
    model.tokenizer.add_tokens(["zebra", "cat sat"])
    response, _ = Browser(own).invoke("_top_k", {"position": 0})
    assert "resize_token_embeddings" in response["error"]["message"]  # a clear error, not an IndexError
    model.hf.resize_token_embeddings(len(model.tokenizer), mean_resizing=False)
    assert model.anatomy.vocab_size == len(model.tokenizer) == 130
    response, _ = Browser(own).invoke("_top_k", {"position": 1})
    assert "result" in response and own.tokens == ["the", "zebra", "sat"]
    np.testing.assert_allclose(own.values, logprobs(model, "the zebra sat"), atol=1e-5)
    response, _ = Browser(given).invoke("_top_k", {"position": 0})  # now 2 tokens for 3 values
    assert "splits the text into 2 tokens" in response["error"]["message"] and given.tokens == ["the", "cat", "sat"]
