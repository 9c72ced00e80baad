"""The ontology task, the training script of the "ontology" demo model, and the shipped files."""

from __future__ import annotations

import json
import re
from collections import deque

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from interplab.tasks import ontology
from interplab.zoo import ROOT as ZOO
from training import train_ontology

SHIPPED = ZOO / "ontology"
RULE = re.compile(r"All (\w+)es are (\w+)es\.")
FACT = re.compile(r"([A-Z]\w+) is an? (\w+)\.")
QUESTION = re.compile(r"True or false: is (\w+) an? (\w+)\?")


def parse(prompt: str):
    """Read a prompt back sentence by sentence: its rules, entity, stated and queried category
    (independently of the generator's own records)."""
    sentences = re.findall(r"[^.?]+[.?]", prompt)
    assert "".join(sentences) == prompt
    *context, question = (s.strip() for s in sentences)
    asked = QUESTION.fullmatch(question)
    rules = [RULE.fullmatch(s).groups() for s in context if s.startswith("All ")]
    facts = [FACT.fullmatch(s).groups() for s in context if not s.startswith("All ")]
    assert asked and len(facts) == 1 and len(rules) + 1 == len(context), prompt
    (entity, stated), = facts
    assert asked[1] == entity
    return rules, entity, stated, asked[2]


def distances(edges, start: str) -> dict[str, int]:
    """Breadth-first hop counts from ``start`` along child -> parent edges."""
    seen, todo = {start: 0}, deque([start])
    while todo:
        node = todo.popleft()
        for child, parent in edges:
            if child == node and parent not in seen:
                seen[parent] = seen[node] + 1
                todo.append(parent)
    return seen


@pytest.mark.parametrize("split", ontology.SPLITS)
@pytest.mark.parametrize("hops", [1, 2, 3, 4, 5])
def test_answers_follow_the_stated_rules_and_the_world(hops, split):
    qs = ontology.questions(60, hops, seed=3, split=split)
    assert sum(q.answer == "True" for q in qs) == 30
    world = set(ontology.EDGES)
    for q in qs:
        rules, entity, stated, queried = parse(q.prompt)
        assert (entity, stated, queried) == (q.entity, q.stated, q.queried)
        assert set(rules) <= world, "the context states only true rules of the world"
        in_context = distances(rules, stated)
        assert (queried in in_context) == (q.answer == "True")
        assert (queried in distances(world, stated)) == (q.answer == "True")
        if q.answer == "True":
            assert in_context[queried] == hops
        else:
            assert distances(rules, q.distractor)[queried] == hops
        assert sum(c == queried for _, c in rules) >= 1, "the queried category is mentioned in a rule"


def test_world_is_five_levels_deep_and_a_forest():
    children = [c for c, _ in ontology.EDGES]
    assert len(children) == len(set(children)), "one parent per category"
    assert set(ontology.CATEGORIES) == {c for e in ontology.EDGES for c in e}
    depth = {c: max(distances(ontology.EDGES, c).values()) for c in ontology.CATEGORIES}
    assert max(depth.values()) == 5
    assert {c for c in ontology.CATEGORIES if depth[c] == 0} == set(ontology.ROOTS)


def test_splits_are_disjoint():
    assert not set(ontology.TRAIN_NAMES) & set(ontology.TEST_NAMES)
    for hops in (1, 3, 5):
        train = ontology.questions(200, hops, seed=0, split="train")
        test = ontology.questions(200, hops, seed=0, split="test")
        assert {q.entity for q in train} <= set(ontology.TRAIN_NAMES)
        assert {q.entity for q in test} <= set(ontology.TEST_NAMES)
        assert not {q.prompt for q in train} & {q.prompt for q in test}
        if hops == 1:
            assert not {q.stated for q in train} & ontology.HELD_OUT_STATED
            held_out = sum(q.stated in ontology.HELD_OUT_STATED for q in test) / len(test)
            assert 0.2 < held_out < 0.5
    docs = ontology.corpus(2000, seed=0)
    assert {d.entity for d in docs} <= set(ontology.TRAIN_NAMES)
    assert not {d.stated for d in docs if d.hops == 1} & ontology.HELD_OUT_STATED
    assert 0.7 < sum(d.hops == 1 for d in docs) / len(docs) < 0.9
    assert {d.hops for d in docs} == {1, 2, 3, 4, 5}


def test_generation_is_seeded():
    assert ontology.questions(20, 3, seed=1) == ontology.questions(20, 3, seed=1)
    assert ontology.questions(20, 3, seed=1) != ontology.questions(20, 3, seed=2)
    assert ontology.corpus(50, seed=4) == ontology.corpus(50, seed=4)


def test_concept_spans_mark_the_membership_and_the_question():
    q = ontology.questions(1, 3, seed=0)[0]
    spans = q.concept_spans()
    (stated_start, stated_end), (asked_start, asked_end) = spans[q.stated], spans[f"asks_{q.queried}"]
    assert q.prompt[stated_start:stated_end] == q.stated
    assert q.prompt[:stated_end].endswith(f"{q.entity} is {ontology.article(q.stated)} {q.stated}")
    assert q.prompt[asked_start:asked_end] == q.queried
    assert q.prompt[asked_end:] == "?"


@pytest.mark.parametrize("bad", [dict(hops=0), dict(hops=6), dict(split="dev"), dict(n=0)])
def test_bad_arguments_are_refused(bad):
    args = dict(n=4, hops=1, seed=0, split="test") | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        ontology.questions(**args)


def test_rules_text_encodes_the_world():
    lines = [ln for ln in ontology.rules_text().splitlines() if ln and not ln.startswith("#")]
    edges = {tuple(ln.split(" -> ")) for ln in lines if " and " not in ln}
    assert edges == set(ontology.EDGES)
    for c in ontology.CATEGORIES:
        assert f"asks_{c} and {c} -> answer_true" in lines
        assert f"asks_{c} and not {c} -> answer_false" in lines


def test_tokenizer_keeps_every_word_whole():
    tok = train_ontology.build_tokenizer()
    plurals = [ontology.plural(c) for c in ontology.CATEGORIES]
    for word in (*ontology.CATEGORIES, *plurals, *ontology.NAMES, *ontology.ANSWERS):
        assert len(tok.tokenize(word)) == 1 and tok.convert_tokens_to_ids(word) != tok.unk_token_id
    q = ontology.questions(1, 5, seed=0)[0]
    ids = tok(q.text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert len(ids) == 1 + len(q.text.replace(".", " .").replace(":", " :").replace("?", " ?").split())
    assert tok.decode(ids, skip_special_tokens=True).replace(" :", ":") == q.text


def test_short_training_run_writes_a_loadable_folder(tmp_path):
    report = train_ontology.train(
        tmp_path, steps=3, layer=1, sae_steps=3, log=lambda _: None,
        model_args=dict(n_layers=2, d_model=32, n_heads=2, batch_size=8, eval_n=10),
        sae_args=dict(d_sae=64, k=4, docs=20))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(model, LlamaForCausalLM) and model.config.num_hidden_layers == 2
    assert len(tok) == model.config.vocab_size
    sae = load_file(str(tmp_path / "sae.safetensors"))
    assert sae["W_enc"].shape == (32, 64) and sae["W_dec"].shape == (64, 32)
    assert json.loads((tmp_path / "training.json").read_text()) == report
    assert report["model"]["steps"] == 3 and report["sae"]["layer"] == 1
    assert (tmp_path / "rules.txt").read_text() == ontology.rules_text()


def test_training_refuses_a_layer_the_model_lacks(tmp_path):
    with pytest.raises(ValueError, match="layer"):
        train_ontology.train(tmp_path, steps=1, layer=2, model_args=dict(n_layers=2))


# --- the shipped model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "model.safetensors").exists():
        pytest.fail(f"the shipped model is missing from {SHIPPED}; "
                    "run python -m training.train_ontology --out it")
    return AutoModelForCausalLM.from_pretrained(SHIPPED).eval(), AutoTokenizer.from_pretrained(SHIPPED)


def test_shipped_model_is_a_small_llama(shipped):
    model, tok = shipped
    assert isinstance(model, LlamaForCausalLM)
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (4, 64)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    assert tok.convert_tokens_to_ids("wumpus") != tok.unk_token_id


def test_shipped_sae_reconstructs_the_concept_layer(shipped):
    model, tok = shipped
    with safe_open(str(SHIPPED / "sae.safetensors"), "pt") as f:
        meta = f.metadata()
    sae = load_file(str(SHIPPED / "sae.safetensors"))
    layer, k, d = int(meta["layer"]), int(meta["k"]), model.config.hidden_size
    assert meta["activation"] == "topk" and f"model.layers.{layer}" in meta["hook_point"]
    d_sae = sae["b_enc"].shape[0]
    assert sae["W_enc"].shape == (d, d_sae) and sae["W_dec"].shape == (d_sae, d)
    assert sae["b_dec"].shape == (d,)

    captured = []
    hook = model.model.layers[layer].register_forward_hook(lambda _m, _i, out: captured.append(
        out[0] if isinstance(out, tuple) else out))
    texts = [q.text for h in (1, 3, 5) for q in ontology.questions(40, h, seed=11)]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        model(**enc)
    hook.remove()
    keep = enc["attention_mask"].bool() & (enc["input_ids"] != tok.bos_token_id)
    x = captured[0][keep]  # every real token but <bos>
    # reference TopK SAE: keep the k largest pre-activations (after ReLU)
    pre = torch.relu((x - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"])
    kth = pre.sort(dim=1, descending=True).values[:, k - 1 : k]
    codes = torch.where(pre >= kth, pre, torch.zeros_like(pre))
    x_hat = codes @ sae["W_dec"] + sae["b_dec"]
    fvu = ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert (codes > 0).sum(1).max() <= k
    assert abs(fvu.item() - float(meta["fvu"])) < 0.03
    assert fvu < 0.2


def test_shipped_model_answers_one_hop_but_not_multi_hop(shipped):
    """The design the reasoning instrument needs: decent at 1 hop, near chance at 3 and 5."""
    model, tok = shipped
    acc = {h: train_ontology.accuracy(model, tok, ontology.questions(200, h, seed=5, split="test"))
           for h in (1, 3, 5)}
    assert acc[1] > 0.6
    assert 0.35 < acc[3] < 0.65 and 0.35 < acc[5] < 0.65


# --- the shipped concept dictionary and rules ----------------------------------------------------

@pytest.fixture(scope="module")
def shipped_reasoning():
    import interplab as il
    from interplab.reasoning import Concepts

    torch.set_num_threads(1)
    return il.zoo.load("ontology"), Concepts.load(SHIPPED / "concepts")


def planted_question() -> ontology.Question:
    """A hand-written 3-hop question with a test-split name: Vera is a wumpus, so she is a dumpus."""
    rules = (("wumpus", "yumpus"), ("yumpus", "zumpus"), ("zumpus", "dumpus"), ("tumpus", "vumpus"))
    prompt = " ".join([ontology.rule_sentence(*rules[3]), ontology.rule_sentence(*rules[0]),
                       ontology.membership_sentence("Vera", "wumpus"), ontology.rule_sentence(*rules[1]),
                       ontology.rule_sentence(*rules[2]), ontology.question_sentence("Vera", "dumpus")])
    return ontology.Question(prompt=prompt, answer="True", hops=3, entity="Vera", stated="wumpus",
                             queried="dumpus", distractor="tumpus", rules=rules)


def token_at(detection, text: str, span: tuple[int, int]) -> int:
    """The token position whose characters are ``span`` (word-level tokens), found from the
    decoded tokens independently of the detector."""
    start, position = 0, None
    for p, token in enumerate(detection.tokens[0]):
        if token.startswith("<"):
            continue
        found = text.index(token, start)
        if (found, found + len(token)) == span:
            position = p
        start = found + len(token)
    assert position is not None, f"no token covers {span} in {text!r}"
    return position


def test_shipped_concepts_detect_the_planted_concepts_at_their_spans(shipped_reasoning):
    from interplab.reasoning import detect

    model, concepts = shipped_reasoning
    assert concepts.layer == 2 and set(concepts.slots) == {"stated", "asked"}
    q = planted_question()
    found = detect(model, q.prompt, concepts)
    for name, span in q.concept_spans().items():
        position = token_at(found, q.prompt, span)
        assert q.prompt[span[0]:span[1]] == name.removeprefix("asks_")
        assert found.positions(0)[name] == [position], (name, found.positions(0))
    # Exactly the planted facts, no other category: the gates fill each slot at one token.
    assert set(found.positions(0)) - set(concepts.slots) == {"wumpus", "asks_dumpus"}
    assert not found.active[0, :, concepts.names.index("answer_true")].any(), "answer concepts only steer"


def test_shipped_rules_derive_the_answer_of_the_planted_question(shipped_reasoning):
    from interplab.reasoning import parse_rules, reason

    model, concepts = shipped_reasoning
    text = (SHIPPED / "rules.txt").read_text()
    parse_rules(text, known=concepts.names)  # every rule names known or derived concepts
    result = reason(model, planted_question().prompt, concepts, text)
    assert {"wumpus", "asks_dumpus"} <= set(result.inference.given)
    assert {"yumpus", "zumpus", "dumpus", "answer_true"} <= set(result.facts)
    assert "answer_true" in result.derived and "answer_false" not in result.facts


def test_shipped_ar_beats_the_base_model_at_every_depth(shipped_reasoning):
    """On held-out questions (a seed the build script did not use), AR with the shipped dictionary,
    rules, strength and steered concepts answers more questions right than the model alone."""
    from interplab.reasoning import evaluate

    model, concepts = shipped_reasoning
    questions = [q for hops in (1, 3, 5) for q in ontology.questions(40, hops, seed=11, split="test")]
    result = evaluate(model, questions, concepts, (SHIPPED / "rules.txt").read_text(),
                      strength=concepts.metadata["strength"], steer=concepts.metadata["steer"])
    table = result.accuracy()
    for hops in (1, 3, 5):
        assert table.loc[hops, "ar"] >= table.loc[hops, "base"] + 0.1, table


def test_shipped_evaluation_report_covers_every_hop_depth():
    report = json.loads((SHIPPED / "reasoning.json").read_text())
    assert set(report["dictionaries"]) >= {"diffmean", "sae"}
    for entry in report["dictionaries"].values():
        assert {"1", "3", "5"} <= set(entry["test"])
        for hops in ("1", "3", "5"):
            assert entry["test"][hops]["n"] >= 100 and 0 <= entry["test"][hops]["ar"] <= 1
    assert report["shipped"] in report["dictionaries"]
