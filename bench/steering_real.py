"""Steering strength on a real model: how far a concept direction can push before the text breaks.

DiffMean concepts (animal, food, vehicle; ``interplab.tasks.everyday`` "train" sentences, sinks
left out) are fitted at each given layer. For each concept and each added norm, as a fraction
``f`` of the dictionary's typical residual norm (``Concepts.residual_norm``: the median norm of
the non-sink tokens it was fitted on), neutral prompts are steered by ``h + f * residual_norm *
d / ||d||`` at the last position of every decoding step (AR's place) and measured:

- ``p_concept``: the next-token probability of the concept's words (the first token of each of
  its words in ``everyday``, after a space) at the first generated position, mean over prompts;
- ``concept_words``: the share of continuations (``--tokens`` greedy tokens) that name one of the
  concept's words;
- ``ppl_base``: the perplexity of the steered continuation under the unsteered model (how
  surprising the text is to the model itself);
- ``word_share``: the share of continuation tokens that hold a letter (punctuation runs and
  empty tokens lower it); ``distinct``: distinct tokens / tokens (repetition lowers it).

Also reports ``||h||`` at the steered positions relative to ``residual_norm`` (AR's rule scales by
the former). Prints one JSON object (and writes it to --out). Usage (one thread, ~5 min per model):

    PYTHONPATH=src python bench/steering_real.py --model smollm2 --layers 9,15,21 \
        --out bench/results/steering_smollm2.json
"""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import torch
from real_report import finish

import interplab as il
from interplab.reasoning import Concepts
from interplab.reasoning.residual import read, write
from interplab.tasks import everyday

PROMPTS = (
    "Yesterday afternoon I went outside and saw",
    "The best thing about living here is",
    "Let me tell you a short story about",
    "When I opened the door, there was",
    "My favourite part of the weekend is",
    "The picture on the wall showed",
    "She looked out of the window and noticed",
    "Here is what happened next:",
)
FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def concept_words(concept: str) -> list[str]:
    """The concept's words in both splits of ``everyday`` (lower case)."""
    words = {text[a:b].lower() for split in everyday.SPLITS for text, spans in everyday.sentences(split)
             for c, where in spans.items() if c == concept for a, b in where}
    return sorted(words)


def first_tokens(model, words: list[str]) -> list[int]:
    tok = model.tokenizer
    return sorted({tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in words})


def steered_run(model, concepts: Concepts, name: str, added: float, n_tokens: int, ids: list[int]):
    """Greedy continuations of the prompts with ``added`` (a norm) along the concept at the last
    position of every step; the first step's probability of the concept's first tokens."""
    unit = concepts.unit_directions(model.device)[concepts.names.index(name)]
    enc = model.encode(list(PROMPTS))
    tok = model.tokenizer
    with torch.no_grad(), model.generate(**enc, max_new_tokens=n_tokens, do_sample=False,
                                        pad_token_id=tok.pad_token_id) as tracer:
        tokens = list().save()
        probs = list().save()
        norms = list().save()
        for _ in tracer.iter[:]:
            h = read(model, concepts.layer, concepts.site)
            norms.append(h[:, -1].float().norm(dim=-1).cpu())
            out = h.clone()
            out[:, -1] = h[:, -1] + added * unit.to(h.dtype)
            write(model, concepts.layer, concepts.site, out)
            logits = model.unembed.output[:, -1].float()
            probs.append(logits.softmax(-1)[:, ids].sum(-1).cpu())
            tokens.append(logits.argmax(-1).cpu())
    return torch.stack(list(tokens)[:n_tokens], 1), float(probs[0].mean()), torch.cat(list(norms))


def base_perplexity(model, continuations: torch.Tensor) -> list[float]:
    """Per prompt: the perplexity of its continuation under the unsteered model."""
    tok = model.tokenizer
    rows, lengths = [], []
    for prompt, cont in zip(PROMPTS, continuations.tolist()):
        p = tok(prompt)["input_ids"]
        rows.append(p + cont)
        lengths.append(len(p))
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    with torch.no_grad():
        logits = model.hf(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
    logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    out = []
    for i, (r, n) in enumerate(zip(rows, lengths)):
        nll = -logp[i, n - 1 : len(r) - 1]
        out.append(float(nll.mean().exp()))
    return out


def text_stats(model, continuations: torch.Tensor, words: list[str]) -> dict:
    tok = model.tokenizer
    texts = [tok.decode(row) for row in continuations.tolist()]
    pieces = [tok.decode([t]) for row in continuations.tolist() for t in row]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
    distinct = [len(set(row)) / len(row) for row in continuations.tolist()]
    return {"concept_words": sum(bool(pattern.search(t)) for t in texts) / len(texts),
            "word_share": sum(bool(re.search(r"[A-Za-z]", p)) for p in pieces) / len(pieces),
            "distinct": sum(distinct) / len(distinct), "examples": texts[:2]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--layers", default="15")
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    model = il.zoo.load(args.model)
    fractions = [float(x) for x in args.fractions.split(",")]
    report: dict = {"model": args.model, "prompts": list(PROMPTS), "tokens": args.tokens, "layers": {}}
    for layer in (int(x) for x in args.layers.split(",")):
        concepts = Concepts.from_examples(model, layer, everyday.examples("train"),
                                          negatives=everyday.negatives("train"))
        entry: dict = {"residual_norm": round(concepts.residual_norm, 2), "concepts": {}}
        for name in everyday.CONCEPTS:
            words = concept_words(name)
            ids = first_tokens(model, words)
            rows = []
            for f in fractions:
                conts, p, norms = steered_run(model, concepts, name, f * concepts.residual_norm, args.tokens, ids)
                ppl = base_perplexity(model, conts)
                rows.append({"fraction": f, "p_concept": round(p, 5),
                             "ppl_base": round(math.exp(sum(map(math.log, ppl)) / len(ppl)), 2),
                             "h_over_residual_norm": round(float(norms.median()) / concepts.residual_norm, 3),
                             **text_stats(model, conts, words)})
                print(layer, name, {k: v for k, v in rows[-1].items() if k != "examples"}, flush=True)
            entry["concepts"][name] = rows
        report["layers"][str(layer)] = entry
    finish(report, start, args.out)


if __name__ == "__main__":
    main()
