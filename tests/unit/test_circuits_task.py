"""ContrastTask: validation errors that say what to fix, and the encoding (left padding, positions)."""

import pytest
import torch

from interplab.circuits import ContrastTask, TaskError
from interplab.zoo.tiny import tiny


@pytest.fixture(scope="module")
def model():
    return tiny("gpt2")


def ids(model, text):
    return model.tokenizer(text)["input_ids"]


def test_encoding_left_pads_and_right_aligns(model):
    task = ContrastTask.build(model, ["the cat sat", "a dog was on the mat"], ["the dog sat", "a cat was on the mat"],
                              [" on", " and"], " is")
    enc = task.encode(model)
    pad = model.tokenizer.pad_token_id
    assert enc.seq_len == 6 and enc.lengths == (3, 6) and enc.padded
    assert enc.clean_ids[0].tolist() == [pad, pad, pad, *ids(model, "the cat sat")]
    assert enc.corrupt_ids[1].tolist() == ids(model, "a cat was on the mat")
    assert enc.attention_mask.tolist() == [[0, 0, 0, 1, 1, 1], [1] * 6]
    assert enc.position_ids.tolist() == [[0, 0, 0, 0, 1, 2], [0, 1, 2, 3, 4, 5]]
    answer = model.tokenizer(" on", add_special_tokens=False)["input_ids"][0]
    distractor = model.tokenizer(" is", add_special_tokens=False)["input_ids"][0]
    assert enc.answer_ids.tolist()[0] == answer and enc.distractor_ids.tolist() == [distractor] * 2
    assert enc.labels == ("a", "dog", "was", "on", "the", "mat")
    inputs = enc.inputs(["clean", "corrupt", "corrupt"])
    assert inputs["input_ids"].shape == (6, 6)
    assert torch.equal(inputs["input_ids"][4:], enc.corrupt_ids)
    assert task.encode(model) is enc  # cached


def test_token_ids_are_accepted(model):
    clean = ids(model, "the cat sat")
    corrupt = ids(model, "the dog sat")
    task = ContrastTask.build(model, torch.tensor([clean]), [corrupt], [7], [8])
    enc = task.encode(model)
    assert enc.clean_ids.tolist() == [clean] and enc.answer_ids.tolist() == [7]


def test_unequal_list_lengths(model):
    with pytest.raises(TaskError, match="clean has 2 prompts but corrupt has 1"):
        ContrastTask(["the cat", "a dog"], ["the dog"], " sat", " is")
    with pytest.raises(TaskError, match="answer has 3 entries but there are 2 prompts"):
        ContrastTask(["the cat", "a dog"], ["the dog", "a cat"], [" sat", " is", " on"], " is")


def test_pairs_of_different_token_lengths_name_the_pair_and_both_token_lists(model):
    task = ContrastTask(["the cat sat", "the dog sat on"], ["the dog sat", "the cat sat"], " on", " is")
    with pytest.raises(TaskError) as err:
        task.encode(model)
    message = str(err.value)
    assert "pair 1" in message and "4 tokens" in message and "3" in message
    assert "['the', 'dog', 'sat', 'on']" in message and "['the', 'cat', 'sat']" in message
    assert "same number of tokens" in message


def test_answers_must_be_single_tokens(model):
    with pytest.raises(TaskError, match=r"answer 0 ' the mat' is 2 tokens \['the', 'mat'\].*single token"):
        ContrastTask.build(model, ["the cat sat on"], ["the dog sat on"], " the mat", " is")
    with pytest.raises(TaskError, match="distractor 0 is token id 5000, outside the model's vocabulary"):
        ContrastTask.build(model, ["the cat sat on"], ["the dog sat on"], " the", 5000)
    with pytest.raises(TaskError, match="same token"):
        ContrastTask.build(model, ["the cat sat on"], ["the dog sat on"], " the", " the")


def test_empty_sets_and_empty_prompts(model):
    with pytest.raises(TaskError, match="clean is empty"):
        ContrastTask([], [], " a", " b")
    with pytest.raises(TaskError, match="answer is empty"):
        ContrastTask(["the cat"], ["the dog"], [], " b")
    with pytest.raises(TaskError, match="corrupt prompt 0 is an empty string"):
        ContrastTask(["the cat"], ["  "], " a", " b")
    with pytest.raises(TaskError, match="list of token ids"):
        ContrastTask(["the cat"], [[1.5, 2]], " a", " b")


def test_subset_keeps_the_pairs(model):
    task = ContrastTask(["the cat", "a dog", "it was"], ["the dog", "a cat", "it is"], [" a", " b", " c"], " d")
    sub = task.subset([2, 0])
    assert sub.clean == ("it was", "the cat") and sub.corrupt == ("it is", "the dog")
    assert sub.answer == (" c", " a") and sub.distractor == (" d", " d")


def ioi_model(drop_names=()):
    """A tiny GPT-2 whose word-level vocabulary holds every IOI word except ``drop_names``."""
    import transformers as T

    import interplab as il
    from interplab.tasks.ioi_prompts import vocabulary_words
    from interplab.zoo.tiny import word_tokenizer

    tokenizer = word_tokenizer([w for w in vocabulary_words() if w not in set(drop_names)])
    config = T.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer), n_positions=64)
    torch.manual_seed(0)
    return il.load(T.GPT2LMHeadModel(config), tokenizer=tokenizer)


def test_ioi_task_swaps_the_repeated_name():
    import interplab as il
    from interplab.tasks.ioi_prompts import HELDOUT_NAMES

    model = ioi_model()
    task = il.tasks.ioi(model, n=12, seed=3)
    assert len(task) == 12 and task.name == "ioi"
    assert task.clean == il.tasks.ioi(model, n=12, seed=3).clean  # seeded
    assert task.clean != il.tasks.ioi(model, n=12, seed=4).clean
    for clean, corrupt, answer, distractor in zip(task.clean, task.corrupt, task.answer, task.distractor):
        io, s = answer.strip(), distractor.strip()
        assert io != s and {io, s} <= set(HELDOUT_NAMES)  # default split: held-out names
        a, b = clean.split(), corrupt.split()
        changed = [i for i in range(len(a)) if a[i] != b[i]]
        # one word differs: the second mention of the subject becomes the indirect object
        assert len(changed) == 1 and a[changed[0]] == s and b[changed[0]] == io
        assert a[:changed[0]].count(s) == 1 and a[:changed[0]].count(io) == 1
    enc = task.encode(model)
    assert enc.answer_ids.tolist() == [model.tokenizer.convert_tokens_to_ids(a.strip()) for a in task.answer]


def test_ioi_third_name_corruption_replaces_the_repeated_name_by_a_name_not_in_the_prompt():
    import interplab as il
    from interplab.tasks.ioi_prompts import HELDOUT_NAMES

    model = ioi_model()
    task = il.tasks.ioi(model, n=12, seed=3, corruption="third")
    swapped = il.tasks.ioi(model, n=12, seed=3)
    assert task.name == "ioi-third" and task.clean == swapped.clean and task.answer == swapped.answer
    thirds = set()
    for clean, corrupt, answer, distractor in zip(task.clean, task.corrupt, task.answer, task.distractor):
        io, s = answer.strip(), distractor.strip()
        a, b = clean.split(), corrupt.split()
        changed = [i for i in range(len(a)) if a[i] != b[i]]
        assert len(changed) == 1 and a[changed[0]] == s  # only the second mention of S changes
        third = b[changed[0]]
        assert third in HELDOUT_NAMES and third not in (io, s) and third not in a
        thirds.add(third)
    assert len(thirds) > 3  # drawn, not one fixed name
    with pytest.raises(TaskError, match="unknown IOI corruption 'abc'; choose one of io, third"):
        il.tasks.ioi(model, n=4, corruption="abc")


def test_ioi_task_skips_names_that_are_not_one_token():
    import interplab as il
    from interplab.tasks.ioi_prompts import HELDOUT_NAMES

    dropped = HELDOUT_NAMES[: len(HELDOUT_NAMES) // 2]
    task = il.tasks.ioi(ioi_model(dropped), n=20, seed=0)
    used = {t.strip() for t in (*task.answer, *task.distractor)}
    assert not used & set(dropped) and len(used) > 2
    with pytest.raises(TaskError, match=r"1 of \d+ names are one known token .*' " + HELDOUT_NAMES[0]):
        il.tasks.ioi(ioi_model(HELDOUT_NAMES[:-1]), n=4, seed=0)
    with pytest.raises(TaskError, match="n must be a positive number"):
        il.tasks.ioi(ioi_model(), n=0)
