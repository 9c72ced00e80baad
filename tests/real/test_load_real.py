"""Loading the real models: GGUF through il.load, the cached copy, save and reload."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import interplab as il
from interplab.zoo.real import REAL_MODELS, gguf_path

TEXT = "When Mary and John went to the store, John gave a drink to"


def _logits(hf, ids):
    with torch.no_grad():
        return hf(ids).logits[0]


@pytest.fixture(scope="module")
def from_gguf():
    return il.load(gguf_path("smollm2"))


def test_gguf_load_equals_transformers_gguf_load(smollm2, from_gguf):
    gguf = gguf_path("smollm2")
    model = from_gguf
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    assert model.tokenizer(TEXT)["input_ids"] == ids[0].tolist()
    assert torch.equal(_logits(model.hf, ids), _logits(ref, ids))
    # the cached copy (what il.zoo.load gives) is the same model
    assert torch.equal(_logits(smollm2.hf, ids), _logits(ref, ids))
    # il.load(folder, gguf_file=...) is the same as il.load(path)
    same = il.load(gguf.parent, gguf_file=gguf.name)
    assert torch.equal(_logits(same.hf, ids), _logits(ref, ids))


def test_gguf_model_saves_and_reloads(tmp_path, from_gguf):
    model = from_gguf
    folder = model.save(tmp_path / "copy")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    again = il.load(folder)
    ids = model.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    assert torch.equal(_logits(model.hf, ids), _logits(again.hf, ids))
    assert again.tokenizer(TEXT)["input_ids"] == ids[0].tolist()


def test_real_models_predict_the_ioi_answer(real_model):
    ids = real_model.encode(TEXT)["input_ids"]
    top = _logits(real_model.hf, ids)[-1].argmax().item()
    assert real_model.tokenizer.decode([top]) == " Mary"


def test_bos_conventions(smollm2, gemma3):
    """What the cache builder keeps from each tokenizer: SmolLM2 adds no BOS, Gemma 3 does."""
    assert smollm2.tokenizer(TEXT)["input_ids"][0] != smollm2.tokenizer.bos_token_id
    assert gemma3.tokenizer(TEXT)["input_ids"][0] == gemma3.tokenizer.bos_token_id


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        il.load(tmp_path / "absent.gguf")
    with pytest.raises(FileNotFoundError, match="GGUF files there"):
        il.load(tmp_path, gguf_file="absent.gguf")


def test_missing_gguf_packages_name_the_extra(monkeypatch):
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find(name, *a))
    with pytest.raises(ImportError, match=r"interplab\[gguf\]"):
        il.load(gguf_path("smollm2"))


def test_unknown_real_model_names_the_choices():
    with pytest.raises(ValueError, match="smollm2"):
        il.zoo.real("llama-70b")
    assert set(REAL_MODELS) == {"smollm2", "gemma3"}
