"""The run layer: padding conventions, decoding, length limits, progress observers, standing edits."""

import pytest
import torch

import interplab as il
from interplab import run
from interplab.zoo.tiny import tiny


@pytest.fixture(scope="module")
def model(device):
    return tiny("llama", device=device)


def test_left_and_right_padding_by_hand():
    rows = [[5, 6, 7], [8]]
    right = run.pad(rows, "right", 0)
    assert right.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert right.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]
    left = run.pad(rows, "left", 0)
    assert left.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert left.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert left.lengths == (3, 1)
    assert right.spread([[True, False, True], [True]]).tolist() == [[True, False, True], [True, False, False]]
    with pytest.raises(ValueError, match="'left' or 'right'"):
        run.pad(rows, "middle", 0)


def test_a_left_padded_row_computes_what_it_computes_alone(model):
    texts = ["the cat sat on the mat", "a dog"]
    batch = run.encode(model, texts, side="left")
    with torch.no_grad():
        together = model.hf(**batch.inputs()).logits[1, -1]
        alone = model.hf(input_ids=torch.tensor([model.tokenizer(texts[1])["input_ids"]])).logits[0, -1]
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_decode_each_and_token_ids(model):
    ids = model.tokenizer("the cat sat")["input_ids"]
    assert run.decode_each(model, torch.tensor(ids)) == [model.tokenizer.decode([i]) for i in ids]
    assert run.token_ids(model, "the cat sat") == [ids]
    with pytest.raises(ValueError, match="no texts"):
        run.token_ids(model, [])
    with pytest.raises(TypeError, match="strings"):
        run.token_ids(model, [3])


def test_texts_longer_than_the_position_table_are_refused_everywhere(model):
    limit = model.hf.config.max_position_embeddings
    long_text = " ".join(["the"] * (limit + 5))
    with pytest.raises(ValueError, match=f"at most {limit} positions"):
        run.encode(model, [long_text])
    with pytest.raises(ValueError, match=f"at most {limit} positions"):
        il.tokens.tokenize(model, long_text)
    task = il.tasks.ContrastTask([long_text], [long_text.replace("the", "a", 1)], " cat", " dog")
    with pytest.raises(ValueError, match=f"at most {limit} positions"):
        il.circuits.attribute(model, task, method="atp")
    with pytest.raises(ValueError, match=f"at most {limit} positions"):
        il.TokenView(model, long_text)


def test_words_outside_a_word_level_vocabulary_are_refused(model):
    with pytest.raises(il.tasks.TaskError, match="not in this tokenizer's vocabulary"):
        il.tasks.ContrastTask.build(model, ["the cat sat"], ["the dog sat"], " zebra", " cat")
    with pytest.raises(il.tasks.TaskError, match="outside this tokenizer's vocabulary"):
        il.tasks.ContrastTask.build(model, ["the aardvark sat"], ["the dog sat"], " on", " cat")


def test_progress_observers_see_every_step():
    seen = []
    with run.observe_progress(lambda *a: seen.append(a)):
        chunks = [chunk for _, chunk in run.steps(list(range(5)), 2, desc="work", progress=False)]
    assert chunks == [[0, 1], [2, 3], [4]]
    assert seen == [("work", 0, 5), ("work", 2, 5), ("work", 4, 5), ("work", 5, 5)]
    with pytest.raises(ValueError, match="positive integer"):
        list(run.steps([1], 0, desc="x"))


def test_edited_applies_inside_the_block_only(model):
    enc = model.encode(["the cat sat on the mat"])

    def zero_mlp():
        model.blocks[0].mlp.output[:] = 0

    with torch.no_grad():
        with model.edited(zero_mlp), model.trace(**enc):
            inside = model.blocks[0].mlp.output.save()
        with model.trace(**enc):
            after = model.blocks[0].mlp.output.save()
    assert float(inside.abs().max()) == 0 and float(after.abs().max()) > 0
