import math

import pytest
import torch

import interplab as il


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3", "granite"])  # logits soft-capped, scaled
def model(request, device):
    return il.zoo.tiny(request.param, device=device)


TEXT = "the cat sat on the mat . John gave a drink to Mary"


def reference_logprobs(model, text):
    """log_softmax of the plain transformers forward pass (no nnsight)."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]], device=model.device)
    with torch.no_grad():
        return ids[0], model.hf(ids).logits[0].float().log_softmax(-1)


def test_next_token_logprobs_match_the_plain_forward_pass(model):
    result = il.tokens.next_token_logprobs(model, TEXT)
    ids, logp = reference_logprobs(model, TEXT)
    assert result.tokens == TEXT.split()
    assert result.ids.tolist() == ids.tolist()
    assert math.isnan(result.values[0])
    for i in range(1, len(ids)):  # value i belongs to token i, predicted from tokens < i
        assert result.values[i].item() == pytest.approx(logp[i - 1, ids[i]].item(), abs=1e-5)
    frame = result.to_frame()
    assert list(frame.columns) == ["position", "id", "token", "value"]
    assert frame.token.tolist() == TEXT.split()


def test_top_predictions_match_topk_of_the_plain_forward_pass(model):
    preds = il.tokens.top_predictions(model, TEXT, k=4)
    ids, logp = reference_logprobs(model, TEXT)
    for position in (0, 5, len(ids) - 1):
        top = logp[position].topk(4)
        rows = preds.at(position)
        assert [i for _, i, _ in rows] == top.indices.tolist()
        assert [lp for _, _, lp in rows] == pytest.approx(top.values.tolist(), abs=1e-5)
        assert [t for t, _, _ in rows] == [model.tokenizer.decode([i]) for i in top.indices.tolist()]
    frame = preds.to_frame()
    assert len(frame) == 4 * len(ids) and frame["rank"].tolist()[:4] == [1, 2, 3, 4]


def test_bad_requests_say_what_is_wrong(model):
    with pytest.raises(ValueError, match="empty"):
        il.tokens.next_token_logprobs(model, "")
    with pytest.raises(TypeError, match="must be a string"):
        il.tokens.next_token_logprobs(model, ["the cat"])
    with pytest.raises(ValueError, match="k=0"):
        il.tokens.top_predictions(model, TEXT, k=0)
    with pytest.raises(IndexError, match="outside"):
        il.tokens.top_predictions(model, "the cat", k=2).at(5)
