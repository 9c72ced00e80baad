"""il.load: local folders offline and safetensors-only, modules, dtype/device, remote='local'."""

import json
import socket

import pytest
import torch

import interplab as il
from interplab.zoo.tiny import tiny


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny("llama", seed=3)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.hf.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return model, folder


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("interplab tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def logits(model, text="the cat sat on the mat"):
    enc = model.encode([text])
    with torch.no_grad():
        return model.hf(**enc).logits


def test_local_folder_loads_without_network(saved, no_network):
    original, folder = saved
    model = il.load(folder)
    assert model.anatomy == original.anatomy
    assert not model.hf.training
    torch.testing.assert_close(logits(model), logits(original))


def test_pickle_weights_refused_unless_allowed(saved, tmp_path, no_network):
    original, _ = saved
    state = original.hf.state_dict()
    original.hf.config.save_pretrained(tmp_path)
    original.tokenizer.save_pretrained(tmp_path)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match=r"safetensors"):
        il.load(tmp_path)
    model = il.load(tmp_path, allow_pickle=True)
    torch.testing.assert_close(logits(model), logits(original))


def test_remote_code_is_never_run_unless_asked(saved, tmp_path, no_network):
    original, _ = saved
    original.hf.save_pretrained(tmp_path)
    original.tokenizer.save_pretrained(tmp_path)
    marker = tmp_path / "executed"
    (tmp_path / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((tmp_path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "custom.Custom", "AutoConfig": "custom.CustomConfig"}
    config["model_type"] = "custom_unknown"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match=r"trust_remote_code|custom_unknown"):
        il.load(tmp_path)
    assert not marker.exists()


def test_dtype_and_device_are_honoured(saved):
    _, folder = saved
    model = il.load(folder, dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    model = il.load(tiny("gpt2").hf, tokenizer=tiny("gpt2").tokenizer, dtype=torch.float64)
    assert model.dtype == torch.float64


def test_module_needs_a_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        il.load(tiny("gpt2").hf)


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        il.load(tmp_path / "nope")


def test_contract_attributes(saved):
    model, _ = saved
    assert isinstance(model.hf, torch.nn.Module)
    assert model.tokenizer("the cat")["input_ids"]
    assert type(model.nn).__name__ == "TransformersModel"
    assert "llama" in repr(model)


def test_trace_through_nnsights_serialising_backend(saved):
    """remote='local' serialises the trace like NDIF would and runs it in-process."""
    original, _ = saved
    model = il.load(original.hf, tokenizer=original.tokenizer, remote="local")
    enc = model.encode(["the cat sat on the mat"])
    with torch.no_grad(), model.trace(**enc):
        hidden = model.blocks[0].envoy.output.save()
        out = model.unembed.output.save()
    with torch.no_grad():
        reference = original.hf(**enc, output_hidden_states=True)
    torch.testing.assert_close(out, reference.logits)
    torch.testing.assert_close(hidden, reference.hidden_states[1], rtol=1e-4, atol=1e-4)


def test_generate_traces_like_transformers_generates(saved):
    model, _ = saved
    enc = model.encode(["the cat sat", "a dog"])
    with model.generate(**enc, max_new_tokens=4, do_sample=False) as tracer:
        first_block = model.blocks[0].envoy.output.save()
        ids = tracer.result.save()
    with torch.no_grad():
        reference = model.hf.generate(**enc, max_new_tokens=4, do_sample=False)
    assert torch.equal(ids, reference)
    assert first_block.shape[:2] == enc["input_ids"].shape  # the prompt's forward pass is traced
