"""ActivationReasoning on the ontology demo model, with plain torch forward hooks.

A prototype of what interplab's reasoning instrument does on this task (see
src/interplab/zoo/ONTOLOGY.md), written without the instrument, to show that the task and the
model leave AR room to help and that it does:

1. concepts at the concept layer: for each category X, ``X`` ("the entity is a X", labelled at
   the category word of the membership sentence) and ``asks_X`` (labelled at the category word
   of the question); found by DiffMean (mean residual on labelled tokens minus mean on all other
   tokens) or by SAE features ranked the same way; per-token threshold at the ROC point of best
   balanced accuracy on the search data;
2. detection on held-out prompts (test split): a concept holds in a prompt if any prompt token
   scores above its threshold;
3. the shipped rules (rules.txt: the ontology edges plus answer rules) applied to a fixpoint;
4. steering: ``h + alpha * d * ||h|| / ||d||`` at the last prompt position of the concept layer,
   with ``d`` the DiffMean direction of the inferred answer concept (answer_true / answer_false,
   labelled at the last prompt token of questions whose answer is True / False);
5. accuracy at 1, 3 and 5 hops, base vs AR, on the test split.

    PYTHONPATH=src python bench/ontology_prototype.py [--model src/interplab/zoo/ontology] [--n 200]

Prints one JSON object. Alpha is chosen on the train split (validation), then reported on test.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from interplab.tasks import ontology

HOPS = (1, 3, 5)
ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ANSWER_CONCEPTS = ("answer_true", "answer_false")


# --- activations -----------------------------------------------------------------------------

def layer_module(model, layer: int) -> torch.nn.Module:
    return model.model.layers[layer]


@torch.no_grad()
def prompt_residuals(model, tokenizer, qs, layer: int, batch_size: int = 128):
    """Per prompt: residual output of ``layer`` at each token [T, d], the token offsets, and the
    logits of True/False at the last position."""
    captured = {}

    def grab(_module, _inputs, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output

    handle = layer_module(model, layer).register_forward_hook(grab)
    device = next(model.parameters()).device
    answers = torch.tensor(tokenizer.convert_tokens_to_ids(list(ontology.ANSWERS)))
    rows = []
    try:
        for i in range(0, len(qs), batch_size):
            chunk = qs[i:i + batch_size]
            enc = tokenizer([q.prompt for q in chunk], return_tensors="pt", padding=True,
                            return_offsets_mapping=True)
            offsets = enc.pop("offset_mapping")
            enc = enc.to(device)
            logits = model(**enc).logits
            lengths = enc["attention_mask"].sum(1).tolist()
            for b, n in enumerate(lengths):
                rows.append({"h": captured["h"][b, :n].float().cpu(), "offsets": offsets[b, :n],
                             "answer_logits": logits[b, n - 1, answers.to(device)].float().cpu()})
    finally:
        handle.remove()
    return rows


def token_labels(q, offsets: torch.Tensor) -> dict[str, int]:
    """Concept name -> token index of its labelled span (word-level tokens: one token each)."""
    out = {}
    for name, (start, end) in q.concept_spans().items():
        hits = ((offsets[:, 0] == start) & (offsets[:, 1] == end)).nonzero().flatten()
        if len(hits) != 1:
            raise RuntimeError(f"span of {name} in {q.prompt!r} is not one token")
        out[name] = int(hits[0])
    return out


# --- concepts --------------------------------------------------------------------------------

def concept_names() -> list[str]:
    """The concepts the task labels: ``X`` for every category that can be stated (all but the
    roots) and ``asks_X`` for every category that can be asked (all but the leaves)."""
    parents = {p for _, p in ontology.EDGES}
    return [*(c for c in ontology.CATEGORIES if c not in ontology.ROOTS),
            *(f"asks_{c}" for c in ontology.CATEGORIES if c in parents)]


def label_matrix(qs, rows, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked residuals of all prompt tokens but <bos>, and a bool label matrix [tokens, concepts]."""
    index = {n: i for i, n in enumerate(names)}
    hs, labels = [], []
    for q, row in zip(qs, rows):
        lab = torch.zeros(len(row["h"]), len(names), dtype=torch.bool)
        for name, t in token_labels(q, row["offsets"]).items():
            lab[t, index[name]] = True
        hs.append(row["h"][1:])
        labels.append(lab[1:])
    return torch.cat(hs), torch.cat(labels)


def diffmean(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Directions [concepts, d]: mean on labelled tokens minus mean on the other tokens."""
    pos = labels.float()
    neg = 1.0 - pos
    return (pos.T @ h) / pos.sum(0)[:, None] - (neg.T @ h) / neg.sum(0)[:, None]


def best_thresholds(scores: torch.Tensor, labels: torch.Tensor, criterion: str) -> torch.Tensor:
    """Per concept, the score threshold of the ROC point that maximises ``criterion`` on the
    search data: "balanced_accuracy" (AR's choice) or "f1", [concepts]."""
    out = []
    for c in range(scores.shape[1]):
        s, y = scores[:, c], labels[:, c]
        order = s.argsort(descending=True)
        s, y = s[order], y[order].float()
        tp = y.cumsum(0)
        if criterion == "f1":
            gain = 2 * tp / (torch.arange(1, len(y) + 1) + y.sum())
        else:
            gain = tp / y.sum() - (1 - y).cumsum(0) / (1 - y).sum()
        i = int(gain.argmax())
        out.append(((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else s[i] - 1e-6)
    return torch.stack(out)


class Detector:
    """Scores of every concept at every token, and thresholds."""

    def __init__(self, h: torch.Tensor, labels: torch.Tensor, criterion: str, sae=None, k: int = 0,
                 top: int = 0):
        self.sae, self.k = sae, k
        if sae is None:  # DiffMean
            d = diffmean(h, labels)
            self.weights = (d / d.norm(dim=1, keepdim=True)).T  # [d, concepts]
        else:  # SAE: features ranked by mean code on labelled tokens minus mean on the others
            gap = diffmean(sae_codes(sae, h, k), labels)  # [concepts, d_sae]
            values, features = gap.topk(top, dim=1)
            self.weights = torch.zeros(gap.shape[1], gap.shape[0])
            for c in range(gap.shape[0]):
                self.weights[features[c], c] = values[c] / values[c].sum()
        unseen = labels.sum(0) == 0  # concepts without examples in the search data never fire
        self.weights[:, unseen] = 0.0
        self.thresholds = best_thresholds(self.scores(h), labels, criterion)
        self.thresholds[unseen] = torch.inf

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        x = h if self.sae is None else sae_codes(self.sae, h, self.k)
        return x @ self.weights

    def detect(self, h: torch.Tensor) -> torch.Tensor:
        return self.scores(h) > self.thresholds


def sae_codes(sae: dict[str, torch.Tensor], h: torch.Tensor, k: int) -> torch.Tensor:
    pre = torch.relu((h - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"])
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)


def precision_recall(pred: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
    tp = (pred & gold).sum().item()
    return {"precision": round(tp / max(1, pred.sum().item()), 4),
            "recall": round(tp / max(1, gold.sum().item()), 4)}


# --- rules -----------------------------------------------------------------------------------

RULE = re.compile(r"^(\w+)(?: and (not )?(\w+))? -> (\w+)$")


def parse_rules(text: str) -> list[tuple[str, bool, str | None, str]]:
    """The three line shapes of rules.txt: ``a -> b``, ``a and b -> c``, ``a and not b -> c``."""
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            m = RULE.match(line)
            if m is None:
                raise ValueError(f"rules.txt line {n}: {line!r} is not one of the prototype's rule shapes")
            rules.append((m[1], m[2] is not None, m[3], m[4]))
    return rules


def infer(facts: set[str], rules) -> set[str]:
    """Forward chaining to a fixpoint: positive rules first, then rules with ``not`` (whose
    negated atoms are categories, which only positive rules derive: a stratified program)."""
    facts = set(facts)
    for stratum in (False, True):
        changed = True
        while changed:
            changed = False
            for a, negated, b, head in rules:
                if negated != stratum or head in facts or a not in facts:
                    continue
                if b is None or (b in facts) != negated:
                    facts.add(head)
                    changed = True
    return facts


# --- steering --------------------------------------------------------------------------------

@torch.no_grad()
def steered_answer_logits(model, tokenizer, qs, layer: int, pushes: torch.Tensor, batch_size: int = 128):
    """True/False logits at the last position with ``pushes[i]`` (a vector d_i, or zeros) added
    there at ``layer`` as ``h + d_i * ||h||`` (pushes are alpha * direction / ||direction||)."""
    device = next(model.parameters()).device
    answers = torch.tensor(tokenizer.convert_tokens_to_ids(list(ontology.ANSWERS)), device=device)
    state = {}

    def steer(_module, _inputs, output):
        h = output[0] if isinstance(output, tuple) else output
        rows = torch.arange(len(state["last"]), device=h.device)
        last = h[rows, state["last"]]
        h = h.clone()
        h[rows, state["last"]] = last + state["push"] * last.norm(dim=-1, keepdim=True)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = layer_module(model, layer).register_forward_hook(steer)
    out = []
    try:
        for i in range(0, len(qs), batch_size):
            prompts = [q.prompt for q in qs[i:i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
            state["last"] = enc["attention_mask"].sum(1) - 1
            state["push"] = pushes[i:i + batch_size].to(device, dtype=model.dtype)
            logits = model(**enc).logits
            out.append(logits[torch.arange(len(state["last"])), state["last"]][:, answers].float().cpu())
    finally:
        handle.remove()
    return torch.cat(out)


def answer_directions(qs, rows) -> dict[str, torch.Tensor]:
    """DiffMean of answer_true / answer_false: last prompt token of True (False) questions vs all
    other tokens of the same prompts."""
    hs, labels = [], []
    for q, row in zip(qs, rows):
        lab = torch.zeros(len(row["h"]), 2, dtype=torch.bool)
        lab[-1, 0 if q.answer == "True" else 1] = True
        hs.append(row["h"][1:])
        labels.append(lab[1:])
    d = diffmean(torch.cat(hs), torch.cat(labels))
    return {"answer_true": d[0], "answer_false": d[1]}


def ar_pushes(fact_sets: list[set[str]], rules, directions: dict[str, torch.Tensor], alpha: float):
    pushes, inferred = [], []
    for facts in fact_sets:
        derived = infer(facts, rules)
        inferred.append(derived)
        push = sum((alpha * directions[c] / directions[c].norm() for c in ANSWER_CONCEPTS if c in derived),
                   torch.zeros_like(directions["answer_true"]))
        pushes.append(push)
    return torch.stack(pushes), inferred


def accuracy(logits: torch.Tensor, qs) -> float:
    truth = torch.tensor([q.answer == "True" for q in qs])
    return round(((logits[:, 0] > logits[:, 1]) == truth).float().mean().item(), 4)


# --- the run ---------------------------------------------------------------------------------

def detected_facts(detector: Detector, rows, names: list[str]) -> list[set[str]]:
    fired = [detector.detect(row["h"][1:]).any(0).nonzero().flatten().tolist() for row in rows]
    return [{names[c] for c in concepts} for concepts in fired]


def detection_report(detector: Detector, qs, rows, names: list[str]) -> dict:
    h, labels = label_matrix(qs, rows, names)
    per_token = precision_recall(detector.detect(h), labels)
    pred = torch.stack([detector.detect(row["h"][1:]).any(0) for row in rows])
    gold = torch.zeros_like(pred)
    for i, q in enumerate(qs):
        for name in q.concept_spans():
            gold[i, names.index(name)] = True
    n_cat = sum(not name.startswith("asks_") for name in names)
    return {"per_token": per_token,
            "per_prompt": precision_recall(pred, gold),
            "per_prompt_membership": precision_recall(pred[:, :n_cat], gold[:, :n_cat]),
            "per_prompt_asks": precision_recall(pred[:, n_cat:], gold[:, n_cat:]),
            "prompts_exactly_right": round((pred == gold).all(1).float().mean().item(), 4)}


def run(model_dir: Path, n: int, device: str, layer: int | None = None, seed: int = 0) -> dict:
    """The whole prototype at ``layer`` (default: the SAE's layer; SAE detectors only there)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    with safe_open(str(model_dir / "sae.safetensors"), "pt") as f:
        meta = f.metadata()
    sae, sae_layer, k = load_file(str(model_dir / "sae.safetensors")), int(meta["layer"]), int(meta["k"])
    layer = sae_layer if layer is None else layer
    rules = parse_rules((model_dir / "rules.txt").read_text())
    names = concept_names()

    search = [q for h in range(1, 6) for q in ontology.search_questions(n, h, seed + 100)]
    search_rows = prompt_residuals(model, tokenizer, search, layer)
    h, labels = label_matrix(search, search_rows, names)
    detectors = {}
    for criterion in ("balanced_accuracy", "f1"):
        detectors[f"diffmean/{criterion}"] = Detector(h, labels, criterion)
        if layer == sae_layer:
            detectors[f"sae_top1/{criterion}"] = Detector(h, labels, criterion, sae, k, top=1)
            detectors[f"sae_top5/{criterion}"] = Detector(h, labels, criterion, sae, k, top=5)
    # answer concepts: 1-hop questions of the training split, which the model answers right
    one_hop = ontology.questions(n, 1, seed + 100, "train")
    directions = answer_directions(one_hop, prompt_residuals(model, tokenizer, one_hop, layer))

    val = {hops: ontology.questions(n, hops, seed + 200, "train") for hops in HOPS}
    test = {hops: ontology.questions(n, hops, seed + 300, "test") for hops in HOPS}
    test_rows = {hops: prompt_residuals(model, tokenizer, qs, layer) for hops, qs in test.items()}

    def ar_accuracy(qs, fact_sets, alpha):
        pushes, _ = ar_pushes(fact_sets, rules, directions, alpha)
        return accuracy(steered_answer_logits(model, tokenizer, qs, layer, pushes), qs)

    def gold_facts(qs):
        return [{q.stated, f"asks_{q.queried}"} for q in qs]

    # alpha: the smallest that reaches the best mean validation accuracy with oracle facts
    sweep = {a: sum(ar_accuracy(val[hp], gold_facts(val[hp]), a) for hp in HOPS) / len(HOPS) for a in ALPHAS}
    alpha = min(a for a in ALPHAS if sweep[a] >= max(sweep.values()) - 1e-9)

    report = {"layer": layer, "n_per_hop": n, "alpha": alpha,
              "alpha_sweep_val_oracle": {str(a): round(v, 4) for a, v in sweep.items()},
              "base": {}, "ar_oracle_facts": {}, "ar": {}, "ar_conclusions": {}, "detection_test": {}}
    all_test = [q for hp in HOPS for q in test[hp]]
    all_rows = [r for hp in HOPS for r in test_rows[hp]]
    for kind, det in detectors.items():
        report["detection_test"][kind] = detection_report(det, all_test, all_rows, names)
    for hp in HOPS:
        qs, rows = test[hp], test_rows[hp]
        report["base"][hp] = accuracy(torch.stack([r["answer_logits"] for r in rows]), qs)
        report["ar_oracle_facts"][hp] = ar_accuracy(qs, gold_facts(qs), alpha)
        report["ar"][hp] = {}
        report["ar_conclusions"][hp] = {}
        for kind, det in detectors.items():
            facts = detected_facts(det, rows, names)
            report["ar"][hp][kind] = ar_accuracy(qs, facts, alpha)
            report["ar_conclusions"][hp][kind] = conclusion_counts(facts, rules)
    return report


def conclusion_counts(fact_sets: list[set[str]], rules) -> dict[str, int]:
    """How many prompts infer only answer_true, only answer_false, both or neither."""
    counts = {"true": 0, "false": 0, "both": 0, "neither": 0}
    for facts in fact_sets:
        derived = infer(facts, rules)
        t, f = "answer_true" in derived, "answer_false" in derived
        counts["both" if t and f else "true" if t else "false" if f else "neither"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="AR prototype on the ontology demo model")
    parser.add_argument("--model", type=Path, default=Path("src/interplab/zoo/ontology"))
    parser.add_argument("--n", type=int, default=200, help="questions per hop depth and split")
    parser.add_argument("--layers", type=int, nargs="*", help="concept layers to try (default: the SAE's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    reports = [run(args.model, args.n, args.device, layer) for layer in (args.layers or [None])]
    print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))


if __name__ == "__main__":
    main()
