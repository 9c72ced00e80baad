"""intervene / generate_with against plain forwards with torch hooks, one prompt at a time."""

import pytest
import torch
from circuit_reference import (
    capture,
    feature_slice,
    hooked,
    ids_of,
    il_task,
    last_metric,
    patch_reference,
    site_module,
    token_id,
)

from interplab.circuits import Node, generate_with, intervene, verify
from interplab.zoo.tiny import tiny

# equal lengths, so the mean reference is a plain mean over prompts at each position
EVEN = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("a dog was in the store , it was", "a cat was in the store , it was", " on", " in"),
]
# different lengths: the window is right-aligned
UNEVEN = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John", "John gave a drink to Mary", " and", " the"),
]


@pytest.fixture(scope="module")
def model(device):
    return tiny("llama", seed=3, device=device)


def prompts_of(model, texts):
    return [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in texts]


def run(model, text, answer, distractor, edits):
    """The metric of one prompt with ``edits`` [(component, layer, fn)] applied by hooks."""
    contexts = [hooked(*site_module(model, c, layer), fn) for c, layer, fn in edits]
    for c in contexts:
        c.__enter__()
    try:
        with torch.no_grad():
            return float(last_metric(model.hf(input_ids=ids_of(model, text)).logits[0, -1], answer, distractor))
    finally:
        for c in reversed(contexts):
            c.__exit__(None, None, None)


def setter(position, features, value):
    def put(t):
        t = t.clone()
        t[:, position, features] = value if not callable(value) else value(t[:, position, features])
        return t
    return put


def test_mean_and_zero_ablation_per_prompt(model):
    prompts = prompts_of(model, EVEN)
    task = il_task(model, prompts)
    nodes = [Node("head", 1, 2, 8), Node("mlp", 0, None, 3)]
    acts = [capture(model, ids_of(model, c), [("head", 1), ("mlp", 0)])[0] for c, *_ in prompts]
    means = {key: torch.cat([a[key] for a in acts]).mean(0) for key in acts[0]}
    head = feature_slice(model, 2)
    expected_mean, expected_zero, clean = [], [], []
    for clean_text, _, answer, distractor in prompts:
        edits = [("head", 1, setter(8, head, means[("head", 1)][8, head])),
                 ("mlp", 0, setter(3, slice(None), means[("mlp", 0)][3]))]
        expected_mean.append(run(model, clean_text, answer, distractor, edits))
        zero = [("head", 1, setter(8, head, 0.0)), ("mlp", 0, setter(3, slice(None), 0.0))]
        expected_zero.append(run(model, clean_text, answer, distractor, zero))
        clean.append(run(model, clean_text, answer, distractor, []))
    r = intervene(model, task, nodes, "mean")
    torch.testing.assert_close(r.after, torch.tensor(expected_mean), rtol=0, atol=2e-5)
    torch.testing.assert_close(r.before, torch.tensor(clean), rtol=0, atol=2e-5)
    assert r.run == "clean" and r.metric_after == pytest.approx(sum(expected_mean) / 3, abs=2e-5)
    z = intervene(model, task, [n.id for n in nodes], "zero")
    torch.testing.assert_close(z.after, torch.tensor(expected_zero), rtol=0, atol=2e-5)


def test_corrupt_ablation_takes_the_partners_activation(model):
    prompts = prompts_of(model, EVEN)
    task = il_task(model, prompts)
    expected = []
    for clean_text, corrupt_text, answer, distractor in prompts:
        other = capture(model, ids_of(model, corrupt_text), [("attn", 0)])[0][("attn", 0)]
        edits = [("attn", 0, setter(slice(None), slice(None), other[0]))]
        expected.append(run(model, clean_text, answer, distractor, edits))
    r = intervene(model, task, [Node("attn", 0)], "corrupt")  # no position: every position
    torch.testing.assert_close(r.after, torch.tensor(expected), rtol=0, atol=2e-5)


def test_scale_multiplies_the_activation(model):
    prompts = prompts_of(model, UNEVEN)
    task = il_task(model, prompts)
    window = task.encode(model).seq_len
    node = Node("head", 0, 1, window - 1)
    expected = []
    for clean_text, _, answer, distractor in prompts:
        edits = [("head", 0, setter(-1, feature_slice(model, 1), lambda x: 2.5 * x))]
        expected.append(run(model, clean_text, answer, distractor, edits))
    r = intervene(model, task, [node], "scale", factor=2.5)
    torch.testing.assert_close(r.after, torch.tensor(expected), rtol=0, atol=2e-5)
    same = intervene(model, task, [node], "scale", factor=1.0)
    torch.testing.assert_close(same.after, same.before, rtol=0, atol=1e-5)


def test_patch_of_one_node_is_its_exact_score_per_prompt(model):
    prompts = prompts_of(model, UNEVEN)
    task = il_task(model, prompts)
    node = Node("mlp", 1, None, task.encode(model).seq_len - 2)
    r = intervene(model, task, [node], "patch")
    # a single prompt's window is its own length: shift the position into it
    lengths = [ids_of(model, c).shape[1] for c, *_ in prompts]
    window = max(lengths)
    per_prompt = [patch_reference(model, [p], [("mlp", 1, None, node.position - (window - n))])[0]
                  for p, n in zip(prompts, lengths)]
    torch.testing.assert_close(r.effect, torch.tensor(per_prompt), rtol=0, atol=2e-5)
    assert r.run == "corrupt"
    assert float(r.effect.mean()) == pytest.approx(verify(model, task, [node], progress=False).exact[node], abs=2e-5)


def greedy(model, text, edits, steps):
    ids = ids_of(model, text)
    contexts = [hooked(*site_module(model, c, layer), fn) for c, layer, fn in edits]
    for c in contexts:
        c.__enter__()
    try:
        with torch.no_grad():
            for _ in range(steps):
                nxt = model.hf(input_ids=ids).logits[0, -1].argmax()
                ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    finally:
        for c in reversed(contexts):
            c.__exit__(None, None, None)
    return model.tokenizer.decode(ids[0, -steps:].tolist())


def test_generation_before_and_after(model):
    prompts = prompts_of(model, UNEVEN)
    task = il_task(model, prompts)
    window = task.encode(model).seq_len
    short = prompts[1][0]
    length = ids_of(model, short).shape[1]
    # node at the short prompt's third token; the edit must stay on that prompt position
    position = window - length + 2
    g = generate_with(model, task, [Node("mlp", 0, None, position)], "scale", factor=-3.0, prompt=1,
                      max_new_tokens=5)
    assert g.prompt == short
    assert g.before == greedy(model, short, [], 5)

    def scale_prompt_position(t):
        t = t.clone()
        t[:, 2] = -3.0 * t[:, 2]
        return t
    assert g.after == greedy(model, short, [("mlp", 0, scale_prompt_position)], 5)


def test_patch_generation_runs_the_corrupted_prompt(model):
    prompts = prompts_of(model, EVEN)
    task = il_task(model, prompts)
    g = generate_with(model, task, [Node("attn", 1)], "patch", max_new_tokens=3)
    assert g.prompt == prompts[0][1]
    clean = capture(model, ids_of(model, prompts[0][0]), [("attn", 1)])[0][("attn", 1)]
    n = clean.shape[1]

    def put_clean(t):
        t = t.clone()
        t[:, :n] = clean
        return t
    assert g.before == greedy(model, prompts[0][1], [], 3)
    assert g.after == greedy(model, prompts[0][1], [("attn", 1, put_clean)], 3)


def test_bad_requests_are_refused(model):
    task = il_task(model, prompts_of(model, EVEN))
    node = Node("mlp", 0, None, 1)
    with pytest.raises(ValueError, match="unknown intervention 'melt'"):
        intervene(model, task, [node], "melt")
    with pytest.raises(ValueError, match="pass factor="):
        intervene(model, task, [node], "scale")
    with pytest.raises(ValueError, match="finite number"):
        intervene(model, task, [node], "scale", factor=float("inf"))
    with pytest.raises(ValueError, match="factor= goes with mode='scale'"):
        intervene(model, task, [node], "mean", factor=2.0)
    with pytest.raises(ValueError, match="residual-stream state"):
        intervene(model, task, [Node("resid", 0, None, 1)], "zero")
    with pytest.raises(ValueError, match="at least one node"):
        intervene(model, task, [], "zero")
    with pytest.raises(ValueError, match=r"max_new_tokens must be an integer in 1\.\.64"):
        generate_with(model, task, [node], "zero", max_new_tokens=0)
    with pytest.raises(ValueError, match=r"prompt must be a prompt index in 0\.\.2"):
        generate_with(model, task, [node], "zero", prompt=3)
