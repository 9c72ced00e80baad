"""RuleEditor without a browser: diagnostics, detection and inference against independent
expectations on a tiny random Llama with planted concepts, generation, errors."""

import pytest
import torch
from widget_channel import Browser

import interplab as il
from interplab.reasoning import Concepts

LAYER = 0
TEXT_CAT = "the cat sat on the mat"
TEXT_DOG = "a dog sat on the mat"
RULES = "cat or dog -> pet\npet and not dog -> calm\ndog -> suppress calm\n"


@pytest.fixture(scope="module")
def model(device):
    return il.zoo.tiny("llama", device=device)


def residuals(model, text: str) -> torch.Tensor:
    """The residual leaving block LAYER at every token, read with plain transformers."""
    ids = torch.tensor([model.tokenizer(text)["input_ids"]], device=model.device)
    with torch.no_grad():
        out = model.hf(ids, output_hidden_states=True)
    return out.hidden_states[LAYER + 1][0].float().cpu()


def planted(model, text: str, word: str) -> tuple[torch.Tensor, float]:
    """A concept reading `word` in `text`: its residual as the direction, the threshold halfway
    between that token's score and the next highest one in the text."""
    h = residuals(model, text)
    position = text.split().index(word)
    direction = h[position]
    scores = h @ (direction / direction.norm())
    others = torch.cat([scores[:position], scores[position + 1:]])
    assert scores[position] > others.max() + 1e-3, "the planted token must stand out"
    return direction, float(scores[position] + others.max()) / 2


@pytest.fixture(scope="module")
def concepts(model):
    dictionary = Concepts(LAYER)
    for text, word in ((TEXT_CAT, "cat"), (TEXT_DOG, "dog")):
        direction, threshold = planted(model, text, word)
        dictionary.add(word, direction=direction, threshold=threshold)
    return dictionary


def expected_positions(model, concepts, text: str) -> dict[str, list[int]]:
    h = residuals(model, text)
    found = {}
    for c in concepts:
        scores = h @ (c.direction / c.direction.norm())
        positions = (scores >= c.threshold).nonzero().squeeze(-1).tolist()
        if positions:
            found[c.name] = positions
    return found


def by_hand(detected: set[str]) -> tuple[set[str], set[str]]:
    """RULES evaluated by hand: the facts and the suppressed concepts."""
    pet = "cat" in detected or "dog" in detected
    calm = pet and "dog" not in detected
    facts = set(detected) | ({"pet"} if pet else set()) | ({"calm"} if calm else set())
    return facts, ({"calm"} if "dog" in detected else set())


def test_detection_and_inference_match_planted_concepts_and_rules_by_hand(model, concepts):
    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT)
    for text in (TEXT_CAT, TEXT_DOG):
        editor.text = text
        expected = expected_positions(model, concepts, text)
        assert editor._detection["tokens"] == text.split()
        assert editor._detection["detected"] == expected
        facts, suppressed = by_hand(set(expected))
        assert editor.facts == facts and editor.suppressed == suppressed
        assert editor._inference["rules"] == RULES and editor.diagnostics == []
    assert "calm" not in editor.facts  # the dog text: calm is suppressed, not a fact
    editor.text = TEXT_CAT
    assert editor.facts == {"cat", "pet", "calm"}
    # the proofs reach the planted token, one flat entry per concept
    proofs = editor._inference["proofs"]
    calm = proofs["calm"]
    assert calm["rule"] == "pet and not dog -> calm" and calm["line"] == 2
    assert calm["premises"] == [{"concept": "pet", "holds": True}, {"concept": "dog", "holds": False}]
    assert proofs["pet"]["premises"] == [{"concept": "cat", "holds": True}]
    leaf = proofs["cat"]
    assert leaf["kind"] == "given" and [e["position"] for e in leaf["evidence"]] == [1]
    assert leaf["evidence"][0]["token"] == "cat"


def test_a_rule_error_is_diagnosed_where_it_is_and_the_inference_goes_stale(model, concepts):
    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT)
    before = editor.facts
    editor.rules = "cat or dog -> pet\npet and -> calm\n"  # line 2: '->' (columns 9-10) where a name belongs
    [d] = editor.diagnostics
    assert (d["line"], d["column"], d["end_column"], d["severity"]) == (2, 9, 11, "error")
    assert "after 'and'" in d["message"]
    assert editor.stale and editor._inference["stale"] and editor.facts == before
    assert editor._inference["rules"] == editor.rules  # the editor matches the answer to its text
    editor.rules = "cat or dog -> pet\npet -> cosy\n"
    assert editor.diagnostics == [] and not editor.stale
    assert editor.facts == {"cat", "pet", "cosy"}


def test_unknown_names_get_a_did_you_mean_and_hostile_text_is_only_text(model, concepts, tmp_path):
    marker = tmp_path / "ran"
    editor = il.RuleEditor(model, concepts, f"__import__('os').system('touch {marker}') -> x\ncta -> pet")
    kinds = [(d["line"], d["code"]) for d in editor.diagnostics]
    assert kinds[0] == (1, "syntax") and (2, "unknown-concept") in kinds
    assert any("did you mean 'cat'?" in d["message"] for d in editor.diagnostics)
    assert not marker.exists()


def test_empty_text_has_no_tokens_and_no_facts(model, concepts):
    editor = il.RuleEditor(model, concepts, RULES, text="")
    assert editor._detection["tokens"] == [] and editor.facts == frozenset()
    editor.text = TEXT_DOG
    assert "dog" in editor.facts


def test_generate_at_strength_zero_is_plain_greedy_decoding(model, concepts):
    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT, max_new_tokens=6)
    reply, _ = Browser(editor).invoke("_generate", {"strength": 0.0, "max_new_tokens": 6})
    ids = torch.tensor([model.tokenizer(TEXT_CAT)["input_ids"]], device=model.device)
    with torch.no_grad():
        out = model.hf.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
    greedy = model.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    result = reply["result"]
    assert result["base"] == result["steered"] == greedy
    assert editor.generation == result and editor.strength == 0.0


def test_generate_refuses_rules_with_errors_and_the_widget_stays_usable(model, concepts):
    editor = il.RuleEditor(model, concepts, "cat -> -> pet", text=TEXT_CAT)
    reply, _ = Browser(editor).invoke("_generate", {"strength": 1.0})
    assert reply["error"]["type"] == "ValueError" and "line 1, column" in reply["error"]["message"]
    assert editor.error["command"] == "_generate"
    reply, _ = Browser(editor).invoke("_generate", {"strength": "strong"})
    assert "strength must be a finite number from -50 to 50" in reply["error"]["message"]
    editor.rules = "cat -> pet"
    assert editor.facts == {"cat", "pet"}


def test_a_failing_detection_shows_in_the_banner_and_the_next_text_works(model, concepts, monkeypatch):
    from interplab.widgets import editor as module

    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT)
    real = module.reason

    def broken(*args, **kwargs):
        raise RuntimeError("planted detection failure")

    monkeypatch.setattr(module, "reason", broken)
    editor.text = TEXT_DOG
    assert editor.error["command"] == "detect" and "planted" in editor.error["message"]
    assert editor._detection["tokens"] == [] and editor.facts == frozenset()
    monkeypatch.setattr(module, "reason", real)
    editor.refresh()  # the same text again (a retry), or after changing the dictionary
    assert editor.error is None and "dog" in editor.facts
    editor.text = TEXT_CAT
    assert editor.facts == {"cat", "pet", "calm"}


def test_bad_arguments_are_explained(model, concepts):
    with pytest.raises(TypeError, match="Concepts dictionary"):
        il.RuleEditor(model, {"cat": [1.0]}, RULES)
    with pytest.raises(ValueError, match="evidence must be"):
        il.RuleEditor(model, concepts, RULES, evidence="everywhere")
    with pytest.warns(DeprecationWarning, match="level= is now evidence="):
        assert il.RuleEditor(model, concepts, RULES, level="global").evidence == "global"
    editor = il.RuleEditor(model, concepts, RULES)
    with pytest.raises(ValueError, match="text is empty"):
        editor.generate()


def test_a_derivation_a_thousand_steps_deep_is_published_flat(model, concepts):
    """Every concept of a 1,000-step chain gets one flat entry: no nesting to recurse through."""
    import json

    n = 1000
    chain = "cat -> c0\n" + "\n".join(f"c{i} -> c{i + 1}" for i in range(n))
    editor = il.RuleEditor(model, concepts, chain, text=TEXT_CAT)
    assert editor.diagnostics == [] and f"c{n}" in editor.facts
    proofs = editor._inference["proofs"]
    assert set(proofs) == {"cat", *(f"c{i}" for i in range(n + 1))}
    assert proofs[f"c{n}"] == {"kind": "derived", "rule": f"c{n - 1} -> c{n}", "line": n + 1,
                                "premises": [{"concept": f"c{n - 1}", "holds": True}]}
    assert json.loads(json.dumps(editor._inference)) == editor._inference
    editor.rules = chain + "\nc1000 -> last"  # an edit re-infers over the same detection
    assert "last" in editor.facts and "last" in editor._inference["proofs"]


def test_a_failure_while_publishing_shows_in_the_banner(model, concepts, monkeypatch):
    from interplab.reasoning.rules.chainer import Inference

    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT)
    original = Inference.to_dict
    monkeypatch.setattr(Inference, "to_dict", lambda self: (_ for _ in ()).throw(RuntimeError("cannot serialise")))
    editor.rules = RULES + "pet -> happy\n"
    assert editor.error["command"] == "publish" and "cannot serialise" in editor.error["message"]
    assert editor._inference["rules"] == editor.rules  # the browser still gets an answer for its text
    monkeypatch.setattr(Inference, "to_dict", original)
    editor.rules = RULES
    assert editor.error is None and editor._inference["proofs"]["calm"]["line"] == 2


def test_the_browser_edits_rules_text_and_strength_and_nothing_else(model, concepts):
    editor = il.RuleEditor(model, concepts, RULES, text=TEXT_CAT)
    sent = []
    editor.send_state = lambda key=None: sent.append(key)
    editor.set_state({"rules": "cat -> pet\n", "strength": 1.5})
    assert editor.rules == "cat -> pet\n" and editor.strength == 1.5 and editor.error is None
    editor.set_state({"_inference": {"rules": "forged"}, "text": TEXT_DOG})
    assert editor.text == TEXT_DOG and editor._inference["rules"] == "cat -> pet\n"
    assert "cannot change _inference" in editor.error["message"] and ["_inference"] in sent
    editor.set_state({"strength": float("nan")})  # refused with the range, the browser's copy reverted
    assert editor.strength == 1.5 and "from -50 to 50" in editor.error["message"]
