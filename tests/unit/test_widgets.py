"""The Python half of the widgets, without a browser: traits, command replies, errors, export."""

import numpy as np
import pytest
import torch
import traitlets
from widget_channel import Browser, assert_freed_after_close

import interplab as il
from interplab.widgets import base
from interplab.widgets.codecs import decode_array

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def model(device):
    return il.zoo.tiny("gpt2", device=device)


def test_default_values_are_the_models_logprobs(model):
    view = il.TokenView(model, TEXT)
    ids = torch.tensor([model.tokenizer(TEXT)["input_ids"]], device=model.device)
    with torch.no_grad():
        logp = model.hf(ids).logits[0].float().log_softmax(-1)
    expected = [float("nan")] + [logp[i - 1, ids[0, i]].item() for i in range(1, ids.shape[1])]
    np.testing.assert_allclose(view.values, expected, atol=1e-5)
    assert view.tokens == TEXT.split()
    assert view.token_ids.tolist() == ids[0].tolist()
    assert view.label == il.tokens.LOGPROB_LABEL
    assert view._values["dtype"] == "float32" and isinstance(view._values["data"], bytes)


def test_custom_values_of_every_kind(model):
    for values in ([1, 2, 3, 4, 5, 6], np.arange(6.0), torch.arange(6, dtype=torch.bfloat16, device=model.device)):
        view = il.TokenView(model, TEXT, values=values, label="position")
        np.testing.assert_array_equal(view.values, np.arange(6) + (1 if isinstance(values, list) else 0))
    view.values = [0, 0, 0, 0, 0, 1]
    assert view.values[-1] == 1
    with pytest.raises(ValueError, match=r"values has 3 entries but the text has 6 tokens \['the', 'cat'"):
        il.TokenView(model, TEXT, values=[1, 2, 3])
    with pytest.raises(ValueError, match="1-D"):
        il.TokenView(model, TEXT, values=np.zeros((6, 2)))
    with pytest.raises(ValueError, match="values has 2 entries"):
        view.values = [1, 2]


def test_selected_is_validated(model):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    view.selected = 5
    view.selected = None
    with pytest.raises(traitlets.TraitError, match=r"not a token index: choose 0\.\.5"):
        view.selected = 6


def test_predictions_command_replies_with_binary_arrays(model):
    view = il.TokenView(model, TEXT, k=3)
    response, buffers = Browser(view).invoke("_top_k", {"position": 2})
    result = response["result"]
    expected = il.tokens.top_predictions(model, TEXT, k=3).at(2)
    assert result["tokens"] == [t for t, _, _ in expected]
    assert decode_array(result["ids"], buffers).tolist() == [i for _, i, _ in expected]
    np.testing.assert_allclose(decode_array(result["logprobs"], buffers), [lp for _, _, lp in expected], atol=1e-6)


def test_predictions_for_custom_values_are_computed_once_with_progress(model):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    progress = []
    view.observe(lambda change: progress.append(change["new"]), "progress")
    browser = Browser(view)
    browser.invoke("_top_k", {"position": 1})
    assert progress == [{"label": "computing next-token predictions", "done": 0, "total": None}, None]
    first = view.predictions()
    browser.invoke("_top_k", {"position": 4})
    assert view.predictions() is first and len(progress) == 2


def test_a_failing_command_answers_with_the_error_and_records_it(model):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    browser = Browser(view)
    response, _ = browser.invoke("_top_k", {"position": 99})
    assert response["error"]["type"] == "ValueError"
    assert "position 99 is not a token index" in response["error"]["message"]
    assert view.error["command"] == "_top_k" and "Traceback" in view.error["traceback"]
    assert isinstance(view.last_exception, ValueError)

    def interrupted():
        raise KeyboardInterrupt

    view.predictions = interrupted
    response, _ = browser.invoke("_top_k", {"position": 1})
    assert response["error"]["type"] == "KeyboardInterrupt"
    del view.predictions
    response, _ = browser.invoke("_top_k", {"position": 1})  # still works afterwards
    assert "result" in response


def test_an_unknown_command_gets_an_error_reply_instead_of_silence(model):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    response, _ = Browser(view).invoke("predictions_v0", {})
    assert response["error"]["type"] == "LookupError"
    assert "no command 'predictions_v0'" in response["error"]["message"]


def test_export_writes_what_the_browser_sends_once(model, tmp_path):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    browser = Browser(view)
    view.export(tmp_path / "view.svg")
    request = browser.received[-1][0]
    assert request["kind"] == "interplab-export" and request["format"] == "svg"
    response, _ = browser.invoke("_receive_export", {"id": request["id"], "format": "svg"}, [b"<svg/>"])
    assert response["result"]["bytes"] == 6
    assert (tmp_path / "view.svg").read_bytes() == b"<svg/>" == view.exports["svg"]
    response, _ = browser.invoke("_receive_export", {"id": request["id"], "format": "svg"}, [b"<svg>2</svg>"])
    assert response["result"]["saved"] is None  # a second view's answer is ignored
    with pytest.raises(ValueError, match="cannot export as 'jpg'"):
        view.export(tmp_path / "view.jpg")


def test_a_missing_bundle_says_how_to_build_it(monkeypatch, tmp_path, model):
    monkeypatch.setattr(base, "STATIC", tmp_path)
    base._bundle_file.cache_clear()
    try:
        with pytest.raises(base.BundleMissingError, match="npm run build"):
            il.TokenView(model, TEXT, values=np.zeros(6))
    finally:
        base._bundle_file.cache_clear()


def test_a_closed_widget_is_freed(model):
    assert isinstance(il.TokenView(model, TEXT, values=np.zeros(6))._esm, str)  # not anywidget's file watcher
    assert_freed_after_close(lambda: il.TokenView(model, TEXT, values=np.zeros(6)))


def test_the_browser_cannot_change_kernel_owned_traits(model, monkeypatch):
    view = il.TokenView(model, TEXT, values=np.zeros(6))
    sent = []
    monkeypatch.setattr(view, "send_state", lambda key=None: sent.append(key))
    monkeypatch.setattr(type(view), "_browser_writable", frozenset({"selected"}))
    view.set_state({"selected": 2, "label": "hacked"})
    assert view.selected == 2 and view.label != "hacked"
    assert "cannot change label" in view.error["message"] and ["label"] in sent
    view.set_state({"selected": 99})  # invalid: refused, reverted
    assert view.selected == 2 and "not a token index" in view.error["message"] and sent[-1] == ["selected"]
