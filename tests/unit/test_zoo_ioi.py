"""The IOI prompt generator, its train/held-out split, the training script and the shipped model."""

import functools
import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interplab.tasks.ioi_prompts import (
    HELDOUT_ACTIONS,
    HELDOUT_INTROS,
    HELDOUT_NAMES,
    HELDOUT_TEMPLATES,
    TRAIN_ACTIONS,
    TRAIN_INTROS,
    TRAIN_NAMES,
    TRAIN_TEMPLATES,
    IOIPrompt,
    ioi_corpus,
    ioi_prompts,
)
from interplab.zoo import ROOT as ZOO
from training import train_ioi

SHIPPED = ZOO / "ioi"
SPLIT_POOLS = {
    "train": (TRAIN_NAMES, TRAIN_TEMPLATES),
    "test": (HELDOUT_NAMES, HELDOUT_TEMPLATES),
    "test_names": (HELDOUT_NAMES, TRAIN_TEMPLATES),
    "test_templates": (TRAIN_NAMES, HELDOUT_TEMPLATES),
}


@pytest.fixture(scope="module")
def corpus_text() -> str:
    return "\n".join(ioi_corpus(4000, seed=0, word_noise=train_ioi.TrainConfig.word_noise))


@pytest.fixture(scope="module")
def shipped_tokenizer():
    return AutoTokenizer.from_pretrained(SHIPPED)


def template_pattern(template: str) -> re.Pattern:
    """A regex matching any filling of `template`: its literal text, one word per slot."""
    parts = re.split(r"\{[A-Z]+\}", template)
    return re.compile(r"\w+".join(re.escape(p) for p in parts))


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+|[^\w\s]+", text))


def test_name_split_is_disjoint_and_large():
    assert not set(TRAIN_NAMES) & set(HELDOUT_NAMES)
    assert len(TRAIN_NAMES) >= 100 and len(HELDOUT_NAMES) >= 30
    assert len(TRAIN_TEMPLATES) >= 15 and len(HELDOUT_TEMPLATES) >= 3
    assert all(
        t.count("{A}") == t.count("{B}") == t.count("{S}") == 1 for t in TRAIN_TEMPLATES + HELDOUT_TEMPLATES
    )


def test_heldout_names_never_occur_in_training_text(corpus_text):
    seen = words(corpus_text)
    assert not seen & set(HELDOUT_NAMES)
    assert set(TRAIN_NAMES) <= seen  # the same check does find names that are there


def test_heldout_templates_never_occur_in_training_text(corpus_text):
    for template in HELDOUT_TEMPLATES:
        assert not template_pattern(template).search(corpus_text), template
    for intro in HELDOUT_INTROS:  # not even half of one
        assert not template_pattern(intro).search(corpus_text), intro
    # A held-out action occurs only in plain sentences of its own, never after any intro.
    for action in HELDOUT_ACTIONS:
        assert template_pattern(action).search(corpus_text), action
        for intro in TRAIN_INTROS:
            assert not template_pattern(f"{intro} {action}").search(corpus_text), (intro, action)
    for clause in TRAIN_INTROS + TRAIN_ACTIONS:  # the same check does find clauses that are there
        assert template_pattern(clause).search(corpus_text), clause
    assert set(HELDOUT_TEMPLATES).isdisjoint(TRAIN_TEMPLATES)


def test_heldout_templates_use_only_words_from_training_text(corpus_text):
    for template in HELDOUT_TEMPLATES:
        assert words(re.sub(r"\{[A-Z]+\}", " ", template)) <= words(corpus_text), template


@pytest.mark.parametrize("split", list(SPLIT_POOLS))
def test_prompts_follow_the_ioi_structure(split):
    names, templates = SPLIT_POOLS[split]
    patterns = [re.compile(template_pattern(t).pattern + "$") for t in templates]
    for p in ioi_prompts(200, seed=3, split=split):
        io, s = p.answer.strip(), p.distractor.strip()
        assert p.answer == " " + io and p.distractor == " " + s
        assert io != s and {io, s} <= set(names)
        clean, corrupt = re.findall(r"\w+", p.clean), re.findall(r"\w+", p.corrupt)
        assert (clean.count(io), clean.count(s)) == (1, 2)
        assert (corrupt.count(io), corrupt.count(s)) == (2, 1)
        # The corruption replaces the second S by IO and changes nothing else.
        diff = [i for i, (a, b) in enumerate(zip(clean, corrupt)) if a != b]
        assert len(clean) == len(corrupt) and len(diff) == 1
        assert clean[diff[0]] == s and corrupt[diff[0]] == io and s in clean[: diff[0]]
        assert any(pat.search(p.clean) for pat in patterns)


def test_word_noise_keeps_the_slots_and_the_final_to_and_uses_training_words_only():
    import random

    from interplab.tasks.ioi_prompts import _noisy

    rng = random.Random(0)
    training_words = words(re.sub(r"\{[A-Z]+\}", " ", " ".join(TRAIN_TEMPLATES)))
    changed = 0
    for template in rng.sample(TRAIN_TEMPLATES, 300):
        noisy = _noisy(template, rng, 0.5)
        assert re.findall(r"\{[A-Z]+\}", noisy) == re.findall(r"\{[A-Z]+\}", template)
        assert noisy.endswith(" to") and words(re.sub(r"\{[A-Z]+\}", " ", noisy)) <= training_words
        changed += noisy != template
    assert changed > 250
    assert _noisy(TRAIN_TEMPLATES[0], rng, 0.0) == TRAIN_TEMPLATES[0]


def test_prompts_cover_both_name_orders_and_are_seeded():
    prompts = ioi_prompts(100, seed=5)
    first_is_io = [p.clean.find(p.answer.strip()) < p.clean.find(p.distractor.strip()) for p in prompts]
    assert 20 < sum(first_is_io) < 80  # both ABBA and BABA
    assert ioi_prompts(100, seed=5) == prompts
    assert ioi_prompts(100, seed=6) != prompts
    assert isinstance(prompts[0], IOIPrompt)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown IOI split"):
        ioi_prompts(4, split="validation")
    with pytest.raises(ValueError, match="positive"):
        ioi_prompts(0)


@pytest.mark.parametrize("split", list(SPLIT_POOLS))
def test_prompts_tokenise_cleanly_with_the_shipped_tokenizer(split, shipped_tokenizer):
    tok = shipped_tokenizer
    for p in ioi_prompts(100, seed=7, split=split):
        clean, corrupt = tok(p.clean)["input_ids"], tok(p.corrupt)["input_ids"]
        assert len(clean) == len(corrupt)
        assert clean[0] == tok.bos_token_id
        assert tok.unk_token_id not in clean
        for word in (p.answer, p.distractor):
            ids = tok(word, add_special_tokens=False)["input_ids"]
            assert ids == tok(word.strip(), add_special_tokens=False)["input_ids"]
            assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == word.strip()


def test_shortened_training_writes_a_loadable_model(tmp_path):
    summary = train_ioi.train(tmp_path, steps=40, n_layer=1, n_embd=32, n_head=2, batch_size=16, warmup=5)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    losses = summary["losses"]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < losses[0] - 0.5

    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["n_layer"], config["n_embd"], config["n_head"]) == (1, 32, 2)
    assert config["vocab_size"] == len(tok) == model.get_input_embeddings().weight.shape[0]
    for name in ("bos", "eos", "pad"):
        token_id = config[f"{name}_token_id"]
        assert 0 <= token_id < config["vocab_size"] and token_id == getattr(tok, f"{name}_token_id")
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}) == 4
    with torch.no_grad():
        logits = model(**tok(["Then, Mary and John went to the park."], return_tensors="pt")).logits
    assert logits.shape[-1] == config["vocab_size"] and torch.isfinite(logits).all()
    # Names keep their fixed codes: input and output rows stay equal, while the tables are untied.
    names = tok.convert_tokens_to_ids([*TRAIN_NAMES, *HELDOUT_NAMES])
    rows_in, rows_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert torch.equal(rows_in[names], rows_out[names])
    others = tok.convert_tokens_to_ids(["Then", "went", "store", "gave"])
    assert not torch.allclose(rows_in[others], rows_out[others])


def test_per_sequence_name_codes_equal_writing_each_sequences_codes_into_the_tables():
    """The redraw phase gives every sequence its own name codes without touching the tables: its
    loss must be what each sequence scores with its codes written into both tables, token-weighted."""
    tok = train_ioi.build_tokenizer()
    model = train_ioi.build_model(tok, train_ioi.TrainConfig(n_layer=1, n_embd=32, n_head=2))
    names = train_ioi.NameCodes(tok, 32, seed=0)
    batch = train_ioi.encode_corpus(tok, ioi_corpus(3, seed=4), 48)
    heldout = torch.tensor(tok.convert_tokens_to_ids(list(HELDOUT_NAMES)))
    codes = names.draw(3)
    with torch.no_grad():
        mixed = train_ioi._lm_loss_with_codes(model, batch, tok.pad_token_id, heldout, names, codes)
        total, count = 0.0, 0
        for b in range(3):
            for table in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
                table[names.ids] = codes[b]
            n = int((batch[b, 1:] != tok.pad_token_id).sum())
            total += n * train_ioi._lm_loss(model, batch[b : b + 1], tok.pad_token_id, heldout).item()
            count += n
    assert mixed.item() == pytest.approx(total / count, rel=1e-5)
    assert not torch.allclose(codes[0], codes[1])


@functools.cache
def heldout_logit_diffs(split: str) -> tuple[list[float], list[float]]:
    """Answer minus distractor logit on clean and corrupted prompts, one prompt per forward
    pass, independent of train_ioi."""
    model = AutoModelForCausalLM.from_pretrained(SHIPPED).eval()
    tok = AutoTokenizer.from_pretrained(SHIPPED)
    clean_diffs, corrupt_diffs = [], []
    with torch.no_grad():
        for p in ioi_prompts(200, seed=2024, split=split):
            answer, distractor = tok.convert_tokens_to_ids([p.answer.strip(), p.distractor.strip()])
            for text, out in ((p.clean, clean_diffs), (p.corrupt, corrupt_diffs)):
                last = model(torch.tensor([tok(text)["input_ids"]])).logits[0, -1]
                out.append((last[answer] - last[distractor]).item())
    return clean_diffs, corrupt_diffs


@pytest.mark.parametrize("split", ["test", "test_names", "test_templates"])
def test_shipped_model_resolves_heldout_indirect_objects(split):
    """Issue 3's target: at least 95% accuracy on held-out names and templates."""
    clean_diffs, corrupt_diffs = heldout_logit_diffs(split)
    accuracy = sum(d > 0 for d in clean_diffs) / len(clean_diffs)
    assert accuracy >= 0.95, f"{split}: held-out accuracy {accuracy:.3f}"
    # The corruption makes the distractor the right answer, so the logit difference flips sign.
    assert sum(corrupt_diffs) / len(corrupt_diffs) < 0 < sum(clean_diffs) / len(clean_diffs)


def test_zoo_loads_the_shipped_model_as_a_gpt2(device):
    import interplab as il

    assert "ioi" in il.zoo.available()
    model = il.zoo.load("ioi", device=device)
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"]
    assert model.anatomy.family == "gpt2" and model.anatomy.moe is None
    assert (model.anatomy.n_layers, model.anatomy.d_model) == (config["n_layer"], config["n_embd"])
    files = {p.name for p in SHIPPED.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 10_000_000
