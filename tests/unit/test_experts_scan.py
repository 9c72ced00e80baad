"""fTRI scans: planted experts ranked first, statistics equal a one-shot hand computation, token choice."""

import json
import math
import random

import pytest
import torch
from experts_reference import TRIGGER, own_routing, planted, planted_expert
from families import MOE_FAMILIES

import interplab as il
from interplab.zoo.tiny import WORDS, tiny

OTHER_WORDS = [w for w in WORDS if w != TRIGGER]


def sentences(n: int, seed: int, lo: int = 3, hi: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(OTHER_WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def with_trigger(texts: list[str], seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for t in texts:
        words = t.split()
        words.insert(rng.randint(0, len(words)), TRIGGER)
        out.append(" ".join(words))
    return out


def hand_stats(model, sequences: list[list[int]], counted: list[list[bool]]):
    """Selection rate and mean weight per (layer, expert), each sequence run alone (no padding)."""
    moe = model.anatomy.moe
    L, E = model.anatomy.n_layers, moe.n_experts
    count = torch.zeros(L, E, dtype=torch.float64)
    weight = torch.zeros(L, E, dtype=torch.float64)
    n_tokens, n_prompts = 0, 0
    for ids, flags in zip(sequences, counted):
        own = own_routing(model, torch.tensor([ids], device=model.device))
        flags = torch.tensor(flags)
        t = int(flags.sum())
        if t == 0:
            continue
        n_tokens += t
        n_prompts += 1
        for layer, (_, w, idx) in own.items():
            w, idx = w.cpu(), idx.cpu()
            for row in torch.nonzero(flags).flatten().tolist():
                for j in range(idx.shape[1]):
                    count[layer, idx[row, j]] += 1
                    weight[layer, idx[row, j]] += float(w[row, j]) / t
    rate, mean = count / n_tokens, weight / n_prompts
    dense = [i for i in range(L) if i not in moe.moe_layers]
    rate[dense] = math.nan
    mean[dense] = math.nan
    return rate, mean, n_tokens, n_prompts


def ids(model, text: str) -> list[int]:
    return model.tokenizer(text)["input_ids"]


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_scan_ranks_the_planted_experts_first(family, device):
    model, _trigger = planted(family, device=device)
    control = sentences(12, seed=0)
    behaviour = with_trigger(control)
    scan = il.experts.scan(model, behaviour=behaviour, control=control, batch_size=5)
    layers = model.anatomy.moe.moe_layers
    planted_pairs = {(layer, planted_expert(layer)) for layer in layers}
    assert {(layer, e) for layer, e, _ in scan.top(len(layers))} == planted_pairs
    # risk difference of a planted expert: exactly the trigger's share of the behaviour tokens
    n_trigger = len(behaviour)
    n_tokens = sum(len(ids(model, t)) for t in behaviour)
    risk = il.experts.scan(model, behaviour=behaviour, control=control, score="risk_diff")
    for layer, e in planted_pairs:
        assert risk.scores[layer, e].item() == pytest.approx(n_trigger / n_tokens, abs=1e-6)
        assert risk.control.selection_rate[layer, e] == 0


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "deepseek_v3"])
def test_streamed_and_padded_scan_equals_a_one_shot_hand_computation(family, device):
    model = tiny(family, device=device)
    behaviour, control = sentences(7, seed=3), sentences(5, seed=4, lo=1, hi=14)
    scan = il.experts.scan(model, behaviour, control, batch_size=3)      # padded batches, streamed
    for stats, texts in ((scan.behaviour, behaviour), (scan.control, control)):
        seqs = [ids(model, t) for t in texts]
        rate, mean, n_tokens, n_prompts = hand_stats(model, seqs, [[True] * len(s) for s in seqs])
        assert stats.n_tokens == n_tokens and stats.n_prompts == n_prompts == len(texts)
        torch.testing.assert_close(stats.selection_rate.double(), rate, equal_nan=True, atol=1e-6, rtol=0)
        torch.testing.assert_close(stats.mean_weight.double(), mean, equal_nan=True, atol=1e-6, rtol=0)
    torch.testing.assert_close(scan.scores, scan.behaviour.mean_weight - scan.control.mean_weight, equal_nan=True)


def test_padding_is_never_counted(device):
    model = tiny("olmoe", device=device)
    behaviour = ["a dog", "the cat sat on the mat and the dog sat on it", "John"]
    control = ["Mary gave a drink to John ."]
    alone = il.experts.scan(model, behaviour, control, batch_size=1)
    together = il.experts.scan(model, behaviour, control, batch_size=8)
    assert alone.behaviour.n_tokens == together.behaviour.n_tokens == 2 + 12 + 1
    torch.testing.assert_close(alone.behaviour.selection_rate, together.behaviour.selection_rate, equal_nan=True)
    torch.testing.assert_close(alone.behaviour.mean_weight, together.behaviour.mean_weight, equal_nan=True,
                               atol=1e-6, rtol=1e-5)


def test_response_tokens_only(device):
    """Given responses: only their tokens count (hand computation on prompt + response); a trigger
    that appears only in the prompts is invisible to a response scan."""
    model, _trigger = planted("mixtral", device=device)
    prompts = with_trigger(sentences(4, seed=5))
    controls = sentences(3, seed=6)
    answers, control_answers = sentences(4, seed=7, lo=1), sentences(3, seed=8, lo=1)
    scan = il.experts.scan(model, prompts, controls, tokens="response", responses=(answers, control_answers),
                           batch_size=3, score="risk_diff")
    seqs = [ids(model, p) + ids(model, a) for p, a in zip(prompts, answers)]
    flags = [[False] * len(ids(model, p)) + [True] * len(ids(model, a)) for p, a in zip(prompts, answers)]
    rate, mean, n_tokens, _ = hand_stats(model, seqs, flags)
    assert scan.behaviour.n_tokens == n_tokens == sum(len(a.split()) for a in answers)
    torch.testing.assert_close(scan.behaviour.selection_rate.double(), rate, equal_nan=True, atol=1e-6, rtol=0)
    torch.testing.assert_close(scan.behaviour.mean_weight.double(), mean, equal_nan=True, atol=1e-6, rtol=0)
    for layer in model.anatomy.moe.moe_layers:
        assert scan.behaviour.selection_rate[layer, planted_expert(layer)] == 0
    prompt_scan = il.experts.scan(model, prompts, controls, score="risk_diff")
    everything = il.experts.scan(model, prompts, controls, tokens="all", responses=(answers, control_answers),
                                 score="risk_diff")
    n_prompt = sum(len(p.split()) for p in prompts)
    for layer in model.anatomy.moe.moe_layers:
        e = planted_expert(layer)
        assert prompt_scan.scores[layer, e].item() == pytest.approx(4 / n_prompt, abs=1e-6)
        assert everything.scores[layer, e].item() == pytest.approx(4 / (n_prompt + n_tokens), abs=1e-6)


def test_generated_responses_are_teacher_forced_and_counted_alone(device):
    model = tiny("qwen3_moe", device=device)
    prompts, controls = sentences(3, seed=9), sentences(2, seed=10)
    scan = il.experts.scan(model, prompts, controls, tokens="response", max_new_tokens=4)
    eos = model.tokenizer.eos_token_id
    seqs, flags = [], []
    for p in prompts:
        prompt_ids = torch.tensor([ids(model, p)], device=model.device)
        out = model.hf.generate(input_ids=prompt_ids, max_new_tokens=4, do_sample=False,
                                pad_token_id=model.tokenizer.pad_token_id)[0, prompt_ids.shape[1]:].tolist()
        answer = out[:out.index(eos)] if eos in out else out
        seqs.append(prompt_ids[0].tolist() + answer)
        flags.append([False] * prompt_ids.shape[1] + [True] * len(answer))
    rate, _mean, n_tokens, n_prompts = hand_stats(model, seqs, flags)
    assert scan.behaviour.n_tokens == n_tokens and scan.behaviour.n_prompts == n_prompts
    torch.testing.assert_close(scan.behaviour.selection_rate.double(), rate, equal_nan=True, atol=1e-6, rtol=0)


def test_scan_arguments_are_checked(device):
    model = tiny("mixtral", device=device)
    with pytest.raises(ValueError, match="tokens must be one of"):
        il.experts.scan(model, ["a"], ["b"], tokens="answer")
    with pytest.raises(ValueError, match="score must be one of"):
        il.experts.scan(model, ["a"], ["b"], score="ratio")
    with pytest.raises(ValueError, match="only used with tokens="):
        il.experts.scan(model, ["a"], ["b"], responses=(["x"], ["y"]))
    with pytest.raises(ValueError, match="2 behaviour responses for 1"):
        il.experts.scan(model, ["a"], ["b"], tokens="response", responses=(["x", "y"], ["z"]))
    with pytest.raises(ValueError, match="empty"):
        il.experts.scan(model, [], ["b"])
    with pytest.raises(TypeError, match="strings"):
        il.experts.scan(model, ["a", 3], ["b"])


def test_template_expansion_and_errors(device):
    t = il.experts.Template("What happened {time} {place} ?", time=["today", "then"], place=["here", "there", "."])
    assert len(t) == 6
    assert t.prompts() == [f"What happened {a} {b} ?" for a in ("today", "then") for b in ("here", "there", ".")]
    assert t[4] == "What happened then there ?" and t[-1] == "What happened then . ?"
    assert len(set(t.sample(4, seed=1))) == 4 and t.sample(4, seed=1) == t.sample(4, seed=1)
    with pytest.raises(ValueError, match=r"no values for placeholder\(s\) \['place'\]"):
        il.experts.Template("{time} {place}", time=["a"])
    with pytest.raises(ValueError, match=r"value list\(s\) \['where'\] match no placeholder"):
        il.experts.Template("{time}", time=["a"], where=["b"])
    with pytest.raises(ValueError, match="plain name"):
        il.experts.Template("{} and {0}")
    with pytest.raises(ValueError, match="empty"):
        il.experts.Template("{a}", a=[])
    with pytest.raises(TypeError, match="list of strings"):
        il.experts.Template("{a}", a="abc")
    huge = il.experts.Template("{a} {b} {c}", a=[str(i) for i in range(100)], b=[str(i) for i in range(100)],
                               c=[str(i) for i in range(100)])
    with pytest.raises(ValueError, match=r"1,000,000 prompts .*sample"):
        huge.prompts()
    assert len(huge.sample(3)) == 3
    literal = il.experts.Template("{{not}} {x}", x=["y"])
    assert literal.prompts() == ["{not} y"]
    model = tiny("mixtral", device=device)
    behaviour = il.experts.Template("the {animal} sat on the {thing}", animal=["cat", "dog"], thing=["mat", "store"])
    from_template = il.experts.scan(model, behaviour, ["a drink"])
    from_list = il.experts.scan(model, behaviour.prompts(), ["a drink"])
    torch.testing.assert_close(from_template.scores, from_list.scores, equal_nan=True)
    with pytest.raises(ValueError, match="max_prompts"):
        il.experts.scan(model, huge, ["a"])


def test_scan_result_top_frame_json(device):
    model = tiny("qwen2_moe", device=device)       # decoder layer 0 is dense
    scan = il.experts.scan(model, sentences(4, seed=11), sentences(4, seed=12))
    assert scan.scores.shape == (3, 8) and torch.isnan(scan.scores[0]).all()
    top = scan.top(5)
    flat = [s for layer in (1, 2) for s in scan.scores[layer].tolist()]
    assert [s for _, _, s in top] == sorted(flat, reverse=True)[:5]
    assert all(layer in (1, 2) for layer, _, _ in scan.top(16))
    assert [s for _, _, s in scan.top(3, largest=False)] == sorted(flat)[:3]
    frame = scan.to_frame()
    assert len(frame) == 16 and set(frame.layer) == {1, 2}
    row = frame[(frame.layer == top[0][0]) & (frame.expert == top[0][1])].iloc[0]
    assert row.score == pytest.approx(top[0][2])
    data = json.loads(scan.to_json())
    assert data["scores"][0] == [None] * 8 and data["moe_layers"] == [1, 2]
    assert data["behaviour"]["n_prompts"] == 4
