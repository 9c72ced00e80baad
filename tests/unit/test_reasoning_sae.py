"""SAE: encoding matches the sae-lens object it came from, files round-trip, and editing features
inside an nnsight trace keeps the reconstruction error.

sae-lens is not installed here: ``FakeSaeLens`` below has the attribute layout of a sae-lens 6.x
SAE (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc``, ``b_dec``, ``threshold`` for
JumpReLU, and ``cfg`` with ``architecture()``, ``k``, ``apply_b_dec_to_input``,
``normalize_activations``, ``meta.hook_name``) and encodes the way sae-lens' own classes do
(``process_sae_in`` subtracts ``b_dec`` when asked; TopK takes the top k pre-activations, then ReLU).
"""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

import interplab as il
from interplab.reasoning import SAE


class FakeConfig:
    def __init__(self, architecture, d_in, d_sae, k=None, centre=True, hook="blocks.1.hook_resid_post",
                 normalize="none"):
        self._architecture = architecture
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        self.apply_b_dec_to_input = centre
        self.normalize_activations = normalize
        self.meta = SimpleNamespace(hook_name=hook, hook_layer=None)

    def architecture(self):
        return self._architecture


class FakeSaeLens:
    def __init__(self, architecture, d_in=32, d_sae=48, k=None, seed=0, **cfg):
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.nn.Parameter(torch.randn(d_in, d_sae, generator=g) * 0.3)
        self.W_dec = torch.nn.Parameter(torch.randn(d_sae, d_in, generator=g))
        self.b_enc = torch.nn.Parameter(torch.randn(d_sae, generator=g) * 0.1)
        self.b_dec = torch.nn.Parameter(torch.randn(d_in, generator=g) * 0.1)
        self.threshold = torch.nn.Parameter(torch.rand(d_sae, generator=g) * 0.3)
        self.cfg = FakeConfig(architecture, d_in, d_sae, k=k, **cfg)

    def encode(self, x):
        sae_in = x - self.b_dec * self.cfg.apply_b_dec_to_input
        hidden_pre = sae_in @ self.W_enc + self.b_enc
        arch = self.cfg.architecture()
        if arch == "topk":
            top = torch.topk(hidden_pre, k=self.cfg.k, dim=-1)
            return torch.zeros_like(hidden_pre).scatter(-1, top.indices, torch.relu(top.values))
        if arch == "jumprelu":
            return torch.relu(hidden_pre) * (hidden_pre > self.threshold)
        return torch.relu(hidden_pre)

    def decode(self, f):
        return f @ self.W_dec + self.b_dec


@pytest.mark.parametrize("architecture,k,centre", [("standard", None, True), ("standard", None, False),
                                                    ("topk", 5, True), ("jumprelu", None, True)])
def test_encoding_matches_sae_lens_object(architecture, k, centre):
    fake = FakeSaeLens(architecture, k=k, centre=centre)
    sae = SAE.from_sae_lens(fake)
    x = torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, recon = fake.encode(x), fake.decode(fake.encode(x))
    assert torch.allclose(sae.encode(x), expected, atol=1e-6)
    assert torch.allclose(sae.decode(sae.encode(x)), recon, atol=1e-5)
    assert (sae.layer, sae.site) == (1, "output")
    picked = torch.tensor([3, 0, 17])
    assert torch.allclose(sae.encode_features(x, picked), expected[..., picked], atol=1e-6)
    if architecture == "topk":
        assert int((sae.encode(x) > 0).sum(-1).max()) <= 5


def test_sae_lens_hook_names_and_unsupported_configs():
    assert SAE.from_sae_lens(FakeSaeLens("standard", hook="blocks.3.hook_resid_pre")).layer == 3
    assert SAE.from_sae_lens(FakeSaeLens("standard", hook="blocks.3.hook_resid_pre")).site == "input"
    with pytest.raises(ValueError, match="not a residual-stream hook"):
        SAE.from_sae_lens(FakeSaeLens("standard", hook="blocks.3.attn.hook_z"))
    assert SAE.from_sae_lens(FakeSaeLens("standard", hook="blocks.3.attn.hook_z"), layer=2).layer == 2
    with pytest.raises(ValueError, match="normalises its input"):
        SAE.from_sae_lens(FakeSaeLens("standard", normalize="expected_average_only_in"))
    with pytest.raises(ValueError, match="gated"):
        SAE.from_sae_lens(FakeSaeLens("gated"))
    with pytest.raises(TypeError, match=r"no \.cfg"):
        SAE.from_sae_lens(object())


@pytest.mark.parametrize("architecture,k", [("topk", 4), ("jumprelu", None), ("standard", None)])
def test_safetensors_round_trip(tmp_path, architecture, k):
    sae = SAE.from_sae_lens(FakeSaeLens(architecture, k=k, centre=False))
    sae.save(tmp_path / "sae.safetensors")
    back = SAE.load(tmp_path / "sae.safetensors")
    x = torch.randn(10, 32)
    assert torch.equal(back.encode(x), sae.encode(x))
    assert (back.activation, back.k, back.layer, back.site, back.centre) == (
        sae.activation, sae.k, sae.layer, sae.site, False)


def test_loads_the_ontology_training_format(tmp_path):
    """The zoo's TopK SAE file: W_enc/W_dec/b_enc/b_dec and string metadata layer, activation, k."""
    g = torch.Generator().manual_seed(2)
    tensors = {"W_enc": torch.randn(16, 40, generator=g), "W_dec": torch.randn(40, 16, generator=g),
               "b_enc": torch.randn(40, generator=g), "b_dec": torch.randn(16, generator=g)}
    save_file(tensors, str(tmp_path / "sae.safetensors"), metadata={"layer": "2", "activation": "topk", "k": "6"})
    sae = SAE.load(tmp_path / "sae.safetensors")
    x = torch.randn(5, 16, generator=g)
    pre = torch.relu((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"])  # the trainer's encoder
    top = pre.topk(6, dim=-1)
    expected = torch.zeros_like(pre).scatter_(-1, top.indices, top.values)
    assert torch.allclose(sae.encode(x), expected, atol=1e-5)
    assert (sae.layer, sae.k, sae.site) == (2, 6, "output")


def test_bad_files_and_shapes(tmp_path):
    save_file({"W_enc": torch.zeros(4, 8)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="lacks the tensors"):
        SAE.load(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError):
        SAE.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"W_dec has shape \(4, 8\)"):
        SAE(torch.zeros(4, 8), torch.zeros(4, 8), torch.zeros(8), torch.zeros(4))
    with pytest.raises(ValueError, match="needs k"):
        SAE(torch.zeros(4, 8), torch.zeros(8, 4), torch.zeros(8), torch.zeros(4), activation="topk")


def test_feature_edit_inside_a_trace_keeps_the_error(device):
    """Zeroing feature j with the error-preserving write-back moves the residual by exactly
    -f_j * W_dec[j]; an edit that changes nothing leaves the model's output unchanged."""
    model = il.zoo.tiny("llama", device=device)
    sae = SAE.from_sae_lens(FakeSaeLens("topk", k=6, hook="blocks.0.hook_resid_post")).to(device)
    enc = model.encode(["the cat sat on the mat"])
    with torch.no_grad():
        hidden = model.hf(**enc, output_hidden_states=True).hidden_states[1]  # output of block 0
    f = sae.encode(hidden)
    j = int(f[0, 2].argmax())
    assert f[0, 2, j] > 0
    with torch.no_grad(), model.trace(**enc):
        h = model.blocks[0].envoy.output
        model.blocks[0].envoy.output = sae.edit(h, lambda codes: codes.index_fill(-1, torch.tensor([j], device=device),
                                                                                   0.0))
        edited = model.blocks[1].envoy.input.save()
    expected = hidden - f[..., j:j + 1] * sae.W_dec[j]
    assert torch.allclose(edited, expected, atol=1e-5)
    with torch.no_grad(), model.trace(**enc):
        h = model.blocks[0].envoy.output
        model.blocks[0].envoy.output = sae.edit(h, lambda codes: codes)
        logits = model.unembed.output.save()
    with torch.no_grad():
        reference = model.hf(**enc).logits
    assert torch.allclose(logits, reference, atol=1e-5)
