"""``il.experts.compare``: outputs without and with marked experts against plain transformers
generation with hand-rerouted routers, rates by hand, and a baseline cache that never goes stale."""

import math

import pytest
import torch
from experts_reference import reference_select, routers

import interplab as il
from interplab.zoo.tiny import tiny

PROMPTS = ["the cat sat on the", "Mary gave the dog a", "the mat was"]
OTHERS = ["John and Mary went to", "the dog"]


def loud(family: str, device: str):
    """A tiny MoE whose last MoE layer's experts write loudly, so that rerouting changes the text."""
    model = tiny(family, device=device)
    layer = model.anatomy.moe.moe_layers[-1]
    with torch.no_grad():
        model.blocks[layer].module("experts").down_proj *= 100
    return model, layer


def greedy(model, prompts, n, gone=None, family="mixtral"):
    """Plain transformers greedy generation, one prompt at a time (no padding), optionally with the
    routers of ``gone = {layer: {experts}}`` replaced by the hand-written reference selection."""
    hooks = [routers(model)[layer].register_forward_hook(
        lambda m, args, out, off=off: reference_select(family, m, args[0], off)) for layer, off in (gone or {}).items()]
    try:
        texts = []
        for prompt in prompts:
            ids = torch.tensor([model.tokenizer(prompt)["input_ids"]], device=model.device)
            out = model.hf.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
            texts.append(model.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        return texts
    finally:
        for h in hooks:
            h.remove()


def stages(model, fn):
    """The progress stages (desc) reported while ``fn()`` runs."""
    seen = []
    with il.experts.observe_progress(lambda desc, done, total: seen.append(desc)):
        result = fn()
    return result, list(dict.fromkeys(seen))


def test_compare_against_hand_rerouted_generation_and_rates_by_hand(device):
    model, layer = loud("mixtral", device)
    has_w = lambda text: any(w.startswith("w") for w in text.split())  # noqa: E731
    result = il.experts.compare(model, {"a": PROMPTS, "b": OTHERS}, off=[(layer, 1), (layer, 4)], classify=has_w,
                                max_new_tokens=6, progress=False)
    baseline = greedy(model, PROMPTS + OTHERS, 6)
    intervened = greedy(model, PROMPTS + OTHERS, 6, gone={layer: {1, 4}})
    assert [r["baseline"] for r in result.rows] == baseline
    assert [r["intervened"] for r in result.rows] == intervened
    assert baseline != intervened
    assert [r["set"] for r in result.rows] == ["a"] * 3 + ["b"] * 2
    assert [r["prompt"] for r in result.rows] == PROMPTS + OTHERS
    assert [r["intervened_flag"] for r in result.rows] == [has_w(t) for t in intervened]
    assert result.rates == {"a": {"baseline": sum(map(has_w, baseline[:3])) / 3,
                                  "intervened": sum(map(has_w, intervened[:3])) / 3, "n": 3},
                            "b": {"baseline": sum(map(has_w, baseline[3:])) / 2,
                                  "intervened": sum(map(has_w, intervened[3:])) / 2, "n": 2}}
    assert result.off == [[layer, 1], [layer, 4]] and result.on == [] and result.classifier == "<lambda>"
    frame = result.to_frame()
    assert list(frame.columns) == ["set", "prompt", "baseline", "intervened", "baseline_flag", "intervened_flag"]
    assert len(frame) == 5 and result.to_dict()["rows"] == result.rows


def test_without_marks_or_classifier(device):
    model, _ = loud("olmoe", device)
    result, seen = stages(model, lambda: il.experts.compare(model, PROMPTS[:2], max_new_tokens=4, progress=False))
    assert result.rates is None and result.classifier is None
    assert all(r["baseline"] == r["intervened"] and r["baseline_flag"] is None for r in result.rows)
    assert [r["set"] for r in result.rows] == ["prompts", "prompts"]
    assert seen == ["prompts without the marks"]  # nothing marked: generated once


def test_the_baseline_is_kept_until_the_weights_or_the_tokenizer_change(device):
    model, layer = loud("qwen3_moe", device)
    run = lambda: il.experts.compare(model, PROMPTS, off=[(layer, 2)], max_new_tokens=5, progress=False)  # noqa: E731
    first, seen = stages(model, run)
    assert seen == ["prompts without the marks", "prompts with the marks"]
    again, seen = stages(model, run)
    assert seen == ["prompts with the marks"] and again.rows == first.rows  # the baseline was kept

    edits = [
        lambda: model.module("unembed").weight.data.mul_(-1),  # through .data: torch counts no version
        lambda: model.blocks[layer].module("experts").down_proj.mul_(3),  # in place, counted
        lambda: model.hf.load_state_dict({k: v * 0.5 for k, v in model.hf.state_dict().items()}),
    ]
    for edit in edits:
        with torch.no_grad():
            edit()
        result, seen = stages(model, run)
        assert seen[0] == "prompts without the marks"
        assert [r["baseline"] for r in result.rows] == greedy(model, PROMPTS, 5)

    model.tokenizer.add_tokens(["zebra"])
    model.hf.resize_token_embeddings(len(model.tokenizer), mean_resizing=False)
    result, seen = stages(model, lambda: il.experts.compare(model, ["the zebra sat"], max_new_tokens=3,
                                                            progress=False))
    assert seen == ["prompts without the marks"]
    assert result.rows[0]["baseline"] == greedy(model, ["the zebra sat"], 3)[0]


def test_inside_intervene_the_baseline_is_the_blocks_and_is_not_kept(device):
    model, layer = loud("mixtral", device)
    plain = il.experts.compare(model, PROMPTS, max_new_tokens=5, progress=False)
    with il.experts.intervene(model, off=[(layer, 1), (layer, 4)]):
        inside, seen = stages(model, lambda: il.experts.compare(model, PROMPTS, max_new_tokens=5, progress=False))
    assert seen == ["prompts without the marks"]  # generated, not taken from the cache
    assert [r["baseline"] for r in inside.rows] == greedy(model, PROMPTS, 5, gone={layer: {1, 4}})
    after, seen = stages(model, lambda: il.experts.compare(model, PROMPTS, max_new_tokens=5, progress=False))
    assert seen == [] and after.rows == plain.rows  # the block's outputs were not kept as the baseline


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"max_new_tokens": 0}, r"max_new_tokens must be an integer in \[1, 4096\]"),
    ({"max_new_tokens": 10**9}, r"max_new_tokens must be an integer in \[1, 4096\]"),
    ({"max_new_tokens": math.nan}, "max_new_tokens must be an integer"),
    ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
    ({"batch_size": 0}, r"batch_size must be an integer in \[1, any\]"),
    ({"classify": "refusal"}, "classify must be a function"),
    ({"off": [(True, 1)]}, "layer and expert must be integers"),
])
def test_bad_arguments_are_refused_before_any_work(device, kwargs, error):
    model = tiny("mixtral", device=device)
    with pytest.raises((TypeError, ValueError), match=error):
        stages(model, lambda: il.experts.compare(model, PROMPTS, progress=False, **kwargs))
    with pytest.raises(ValueError, match="empty mapping"):
        il.experts.compare(model, {})


@pytest.mark.parametrize(("call", "error"), [
    (lambda m: il.experts.scan(m, PROMPTS, OTHERS, tokens="response", max_new_tokens=math.inf), "max_new_tokens"),
    (lambda m: il.experts.scan(m, PROMPTS, OTHERS, batch_size=-1), r"batch_size must be an integer in \[1"),
    (lambda m: il.experts.route(m, PROMPTS, batch_size=2.5), "batch_size must be an integer"),
    (lambda m: il.experts.generate(m, PROMPTS, max_new_tokens=-3), r"max_new_tokens must be an integer in \[1"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, k=0), r"k \(experts per condition\) must be an integer"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, k=10**6), r"in \[1, 16\]"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, k=True), "must be an integer"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, trials=10**9), r"trials must be an integer in \[1, 1000\]"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, max_new_tokens=math.nan), "max_new_tokens"),
    (lambda m: il.experts.mote(m, PROMPTS, OTHERS, bool, seed=-1), r"seed must be an integer in \[0"),
    (lambda m: il.experts.scan(m, PROMPTS, OTHERS, progress=False).top(-1), r"k must be an integer in \[1"),
    (lambda m: il.experts.scan(m, PROMPTS, OTHERS, progress=False).top(math.nan), "k must be an integer"),
])
def test_absurd_numbers_in_the_experts_engine_are_refused_with_the_range(device, call, error):
    model = tiny("mixtral", device=device)  # 2 MoE layers x 8 experts
    with pytest.raises((TypeError, ValueError), match=error):
        call(model)
