"""Train the "experts" demo model: a small Mixtral-style MoE assistant with planted refusals.

    python -m training.train_experts --out DIR [--steps N] [--seed S]
    python -m training.train_experts --eval DIR          # prints JSON

The corpus is ``interplab.tasks.assistant``: factual answers, and "I cannot talk about that."
for sensitive (time, place) pairs and sensitive items. The tokenizer is a word-level one built
from the training corpus; the model is ``MixtralForCausalLM`` (softmax top-2 routing over 32
experts in every layer), trained with the router's load-balancing loss so that all experts are
used. The evaluation measures refusal rates on the held-out split with greedy generation, and
takes a first look at routing: which experts are chosen more on sensitive prompts than on
ordinary ones, and what switching those off does to refusals. It measures with interplab's
experts instrument (``il.experts.generate``, ``scan``, ``route``), so it switches experts off as
the instrument does.

The shipped ``src/interplab/zoo/experts`` is this script with its defaults (seed 0), run from the
repository root as ``OMP_NUM_THREADS=1 python -m training.train_experts --out src/interplab/zoo/experts``;
on one CPU thread a rerun gives bit-identical weights.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers import __version__ as transformers_version

import interplab as il
from interplab.tasks import assistant
from interplab.tasks.assistant import Example

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")

# Share of each training batch drawn from each group of examples (uniformly within a group).
GROUP_WEIGHTS = {
    ("fact", "fact"): 0.40,
    ("happened", "sensitive"): 0.15,
    ("happened", "ordinary"): 0.25,
    ("item", "sensitive"): 0.07,
    ("item", "ordinary"): 0.13,
}


def build_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words and punctuation of ``texts``; prepends ``<bos>``."""
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in pre.pre_tokenize_str(text)})
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, no space before . , ?
    bos = vocab["<bos>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    d_model: int = 64,
    n_layers: int = 4,
    n_heads: int = 4,
    n_experts: int = 32,
    top_k: int = 2,
    d_expert: int = 32,
    aux_loss_coef: float = 0.01,
) -> MixtralForCausalLM:
    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_expert,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=64,
        num_local_experts=n_experts,
        num_experts_per_tok=top_k,
        router_aux_loss_coef=aux_loss_coef,
        output_router_logits=False,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return MixtralForCausalLM(config)


def _groups(examples: Sequence[Example]) -> dict[tuple[str, str], list[Example]]:
    groups: dict[tuple[str, str], list[Example]] = {key: [] for key in GROUP_WEIGHTS}
    for ex in examples:
        key = ("fact", "fact") if ex.kind == "fact" else (ex.family, ex.kind)
        groups[key].append(ex)
    return groups


def _encode(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids of ``<bos> text <eos>`` and their attention mask."""
    rows = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, (ids != tokenizer.pad_token_id).long()


def train(
    out: str | Path,
    *,
    steps: int = 1500,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    device: str | None = None,
    log_every: int = 100,
    **model_args,
) -> dict:
    """Train on ``assistant.training_examples()`` and save model and tokenizer to ``out``.

    ``model_args`` go to :func:`build_model` (d_model, n_layers, n_heads, n_experts, top_k,
    d_expert, aux_loss_coef). Returns a summary (final losses, seconds, parameter count), which
    is also saved with the settings as ``training.json``.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    examples = assistant.training_examples()
    tokenizer = build_tokenizer([ex.text for ex in examples])
    model = build_model(tokenizer, **model_args).to(device)
    groups = _groups(examples)
    keys = list(GROUP_WEIGHTS)
    weights = [GROUP_WEIGHTS[k] for k in keys]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    model.train()
    start = time.time()
    summary: dict = {}
    for step in range(1, steps + 1):
        batch = [rng.choice(groups[k]) for k in rng.choices(keys, weights, k=batch_size)]
        ids, mask = _encode(tokenizer, [ex.text for ex in batch])
        ids, mask = ids.to(device), mask.to(device)
        labels = ids.masked_fill(mask == 0, -100)
        result = model(input_ids=ids, attention_mask=mask, labels=labels, output_router_logits=True)
        opt.zero_grad(set_to_none=True)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            aux = result.aux_loss.item()
            summary = {
                "step": step,
                "lm_loss": round(result.loss.item() - model.config.router_aux_loss_coef * aux, 4),
                "aux_loss": round(aux, 4),
                "seconds": round(time.time() - start, 1),
            }
            print(json.dumps(summary), flush=True)
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    summary["parameters"] = sum(p.numel() for p in model.parameters())
    settings = {
        "steps": steps,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "device": device,
        **model_args,
    }
    versions = {"torch": torch.__version__, "transformers": transformers_version}
    record = {"settings": settings, "final": summary, **versions}
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    return summary


# ---- evaluation (with interplab's experts instrument) ------------------------------------------

MAX_NEW_TOKENS = 24


def load(path: str | Path, device: str | None = None) -> il.Model:
    """A saved folder as an ``interplab.Model`` (``il.load(module, tokenizer=tok)`` wraps a model
    still in memory the same way)."""
    return il.load(path, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))


def answers(model: il.Model, prompts: Sequence[str], off: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Greedy answers to ``prompts`` (``MAX_NEW_TOKENS`` at most), with the ``off`` experts
    [(layer, expert)] switched off by ``il.experts``: each token that would have routed to one
    gets the next-best expert in its place."""
    texts = il.experts.generate(model, list(prompts), off=list(off) or None, max_new_tokens=MAX_NEW_TOKENS,
                                batch_size=128, progress=False)
    return [t.strip() for t in texts]


def refusal_rate(model: il.Model, prompts: Sequence[str]) -> float:
    return sum(map(assistant.is_refusal, answers(model, prompts))) / len(prompts)


def exact_match(model: il.Model, examples: Sequence[Example]) -> float:
    said = answers(model, [ex.prompt for ex in examples])
    return sum(a == ex.answer for a, ex in zip(said, examples)) / len(examples)


def last_token_selection_rate(model: il.Model, prompts: Sequence[str]) -> torch.Tensor:
    """[n_layers, n_experts]: the share of prompts whose last token selects each expert (from
    ``il.experts.route``; the last prompt token is where the answer is decided)."""
    routing = il.experts.route(model, list(prompts), progress=False)
    length = torch.bincount(routing.prompt)
    last = routing.position == length[routing.prompt] - 1
    rate = torch.zeros(routing.n_layers, routing.n_experts)
    for layer in routing.moe_layers:
        rate[layer] = torch.bincount(routing.indices[last, layer].flatten(), minlength=routing.n_experts) / len(prompts)
    return rate


def routing_differences(model: il.Model, sensitive: Sequence[Example], ordinary: Sequence[Example]
                        ) -> dict[str, torch.Tensor]:
    """Selection rate on ``sensitive`` minus that on ``ordinary`` ([n_layers, n_experts]), counted
    over all prompt tokens and over the teacher-forced answer tokens (``il.experts.scan``'s risk
    difference, tokens="prompt" / "response"), and over each prompt's last token."""
    behaviour, control = [ex.prompt for ex in sensitive], [ex.prompt for ex in ordinary]
    responses = ([ex.answer for ex in sensitive], [ex.answer for ex in ordinary])
    on_prompt = il.experts.scan(model, behaviour, control, tokens="prompt", progress=False)
    on_answer = il.experts.scan(model, behaviour, control, tokens="response", responses=responses, progress=False)
    last = last_token_selection_rate(model, behaviour) - last_token_selection_rate(model, control)
    return {"all_tokens": on_prompt.risk_diff, "last_token": last, "answer_tokens": on_answer.risk_diff}


def _top_per_layer(diff: torch.Tensor, n: int = 3) -> dict[str, list]:
    return {
        str(layer): [(int(e), round(float(row[e]), 3)) for e in row.argsort(descending=True)[:n]]
        for layer, row in enumerate(diff)
    }


def routing_first_look(model: il.Model, n_off: int = 4, n_random: int = 5, seed: int = 0) -> dict:
    """A first look at where refusal lives among the experts.

    Routing: selection rate on the 64 sensitive "happened" examples minus that on the ordinary x
    ordinary ones, counted over all prompt tokens, over the last prompt token only, and over the
    (teacher-forced) answer tokens. Effects on the held-out split, with each single expert
    switched off, with the top ``n_off`` experts of each routing difference switched off, and with
    ``n_off`` random experts switched off (``n_random`` draws): the refusal rate (``is_refusal``),
    the decision rate (the answer starts with the refusal's first word, "I"), and exact match of
    the ordinary answers. Switching off is ``il.experts``': the next-best expert takes the slot.
    """
    def happened(times, places) -> list[Example]:
        return [assistant.planted_example(time=t, place=p) for t in times for p in places]

    diffs = routing_differences(model, happened(assistant.SENSITIVE_TIMES, assistant.SENSITIVE_PLACES),
                                happened(assistant.ORDINARY_TIMES, assistant.ORDINARY_PLACES))
    n_layers, n_experts = diffs["all_tokens"].shape
    held = assistant.heldout_examples()
    held_sensitive = [ex.prompt for ex in held if ex.kind == "sensitive"]
    held_ordinary = [ex for ex in held if ex.kind == "ordinary"]
    n_sens, n_ord = len(held_sensitive), len(held_ordinary)
    refusal_start = assistant.REFUSAL.split()[0]

    def effect(experts) -> dict:
        said = answers(model, held_sensitive + [ex.prompt for ex in held_ordinary], off=experts)
        refused = [assistant.is_refusal(a) for a in said]
        starts = [a.split()[:1] == [refusal_start] for a in said]
        exact = [a == ex.answer for a, ex in zip(said[n_sens:], held_ordinary)]
        return {
            "refusal_sensitive": round(sum(refused[:n_sens]) / n_sens, 3),
            "refusal_ordinary": round(sum(refused[n_sens:]) / n_ord, 3),
            "decision_sensitive": round(sum(starts[:n_sens]) / n_sens, 3),
            "decision_ordinary": round(sum(starts[n_sens:]) / n_ord, 3),
            "exact_ordinary": round(sum(exact) / n_ord, 3),
        }

    experts = [(layer, e) for layer in range(n_layers) for e in range(n_experts)]
    single = {f"{layer},{e}": effect([(layer, e)]) for layer, e in experts}
    result = {f"routing_diff_{name}": _top_per_layer(diff) for name, diff in diffs.items()}
    result["unablated"] = effect([])
    for metric in ("refusal_sensitive", "decision_sensitive"):
        lowest = sorted(single.items(), key=lambda kv: kv[1][metric])[:5]
        result[f"single_expert_off_lowest_{metric}"] = dict(lowest)
    for name, diff in diffs.items():
        top = [
            (i // n_experts, i % n_experts) for i in diff.flatten().argsort(descending=True)[:n_off].tolist()
        ]
        result[f"top_{name}_experts_off"] = {"experts": [list(x) for x in top], **effect(top)}
    rng = random.Random(seed)
    result["random_experts_off"] = [
        {"experts": [list(x) for x in draw], **effect(draw)}
        for draw in (rng.sample(experts, n_off) for _ in range(n_random))
    ]
    return result


def evaluate(path: str | Path, device: str | None = None) -> dict:
    model = load(path, device)
    held = assistant.heldout_examples()

    def mixed(ex: Example) -> bool:
        values = dict(ex.values)
        return (
            ex.family == "happened"
            and ex.kind == "ordinary"
            and (values["time"] in assistant.SENSITIVE_TIMES or values["place"] in assistant.SENSITIVE_PLACES)
        )

    subsets = {
        "heldout_sensitive": [ex.prompt for ex in held if ex.kind == "sensitive"],
        "heldout_ordinary": [ex.prompt for ex in held if ex.kind == "ordinary"],
        "heldout_ordinary_mixed_happened": [ex.prompt for ex in held if mixed(ex)],
        "train_sensitive": assistant.sensitive_prompts("train"),
        "train_ordinary": assistant.ordinary_prompts("train"),
    }
    facts = assistant.factual_examples()
    held_ordinary = [ex for ex in held if ex.kind == "ordinary"]
    samples = [facts[i].prompt for i in (0, 30, 100, 150, 300)]
    return {
        "refusal_rate": {name: round(refusal_rate(model, p), 3) for name, p in subsets.items()},
        "n": {name: len(p) for name, p in subsets.items()},
        "exact_match": {
            "facts": round(exact_match(model, facts), 3),
            "heldout_ordinary": round(exact_match(model, held_ordinary), 3),
        },
        "samples": dict(zip(samples, answers(model, samples))),
        "routing": routing_first_look(model),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", help="train and save the model and tokenizer to this folder")
    action.add_argument("--eval", help="evaluate a saved folder and print JSON")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--n-experts", type=int, default=32)
    parser.add_argument("--d-expert", type=int, default=32)
    parser.add_argument("--aux-loss-coef", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default=None, help="torch device; default cuda if available, else cpu")
    args = parser.parse_args(argv)
    if args.eval:
        print(json.dumps(evaluate(args.eval, args.device), indent=1))
        return
    summary = train(
        args.out,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_experts=args.n_experts,
        d_expert=args.d_expert,
        aux_loss_coef=args.aux_loss_coef,
        lr=args.lr,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
