"""Train the "ontology" demo model: a small Llama that reads PrOntoQA-style text, and a TopK SAE
on its concept layer.

    python -m training.train_ontology --out src/interplab/zoo/ontology [--steps N] [--seed S]

The model is a language model of the texts of ``interplab.tasks.ontology`` (every token is
trained) with one exception that shapes it for the reasoning instrument: the answer token
("True"/"False") is trained only on 1-hop questions, and 1-hop questions about the held-out
stated categories never occur. So the model answers seen 1-hop questions, answers held-out
1-hop questions only partly, and has no trained skill at 3 or 5 hops, which is where
ActivationReasoning (concepts read at the concept layer, the ontology as rules, steering of
the answer) has room to help. See docs/reasoning.md, "The ontology demo".

The SAE is trained afterwards on the residual stream output of decoder layer ``CONCEPT_LAYER``
(all tokens but <bos>, whose residual is an outlier the SAE should not spend features on); it is
an ``interplab.reasoning.SAE``, which encodes and decodes it here as everywhere else.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import transformers as T

from interplab.reasoning import SAE
from interplab.tasks import ontology

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
FUNCTION_WORDS = ("All", "are", "is", "a", "an", ".", "True", "or", "false", ":", "?", "False")
CONCEPT_LAYER = 2
SAE_FILE = "sae.safetensors"
RULES_FILE = "rules.txt"
REPORT_FILE = "training.json"


def build_tokenizer() -> T.PreTrainedTokenizerFast:
    """A word-level tokenizer: every word of the task (categories, names) is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    plurals = (ontology.plural(c) for c in ontology.CATEGORIES)
    words = (*SPECIALS, *FUNCTION_WORDS, *ontology.CATEGORIES, *plurals, *ontology.NAMES)
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, no space before "."
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                     bos_token="<bos>", eos_token="<eos>", padding_side="right")


def build_model(tokenizer: T.PreTrainedTokenizerFast, n_layers: int = 4, d_model: int = 128,
                n_heads: int = 4, seed: int = 0) -> T.LlamaForCausalLM:
    torch.manual_seed(seed)
    config = T.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=d_model, intermediate_size=4 * d_model,
        num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    return T.LlamaForCausalLM(config)


def encode(docs: list[ontology.Question], tokenizer, answer_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Token ids of ``<bos> prompt answer <eos>``, right-padded, and the loss weight of each token
    as a prediction target: 0 for <bos> and padding, ``answer_weight`` for the answer of a 1-hop
    question, 0 for the answer of any other question, 1 for everything else."""
    ids = [tokenizer(d.text)["input_ids"] + [tokenizer.eos_token_id] for d in docs]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id)
    weights = torch.zeros(len(ids), width)
    for i, (seq, doc) in enumerate(zip(ids, docs)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        weights[i, 1 : len(seq)] = 1.0
        weights[i, len(seq) - 2] = answer_weight if doc.hops == 1 else 0.0  # the answer token
    return {"input_ids": input_ids, "attention_mask": (input_ids != tokenizer.pad_token_id).long(),
            "weights": weights}


def weighted_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                            batch["input_ids"][:, 1:].flatten(), reduction="none")
    weights = batch["weights"][:, 1:].flatten()
    return (nll * weights).sum() / weights.sum()


def train_lm(model, tokenizer, steps: int, seed: int, batch_size: int = 32, lr: float = 3e-3,
             one_hop_share: float = 0.8, answer_weight: float = 5.0, device: str | torch.device = "cpu",
             log=print, probe=None, probe_every: int = 200) -> list[float]:
    """AdamW with linear warm-up and cosine decay over fresh documents; returns the loss curve."""
    model.to(device).train()
    torch.manual_seed(seed)
    docs = ontology.corpus(steps * batch_size, seed, one_hop_share=one_hop_share)
    batches = length_buckets(docs, batch_size, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    for step in range(steps):
        batch = {k: v.to(device) for k, v in encode(batches[step], tokenizer, answer_weight).items()}
        loss = weighted_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {sum(losses[-100:]) / len(losses[-100:]):.4f}")
        if probe is not None and (step + 1) % probe_every == 0:
            model.eval()
            log(f"step {step + 1:5d}  {probe(model)}")
            model.train()
    model.eval()
    return losses


def length_buckets(docs: list[ontology.Question], batch_size: int, seed: int,
                   block: int = 32) -> list[list[ontology.Question]]:
    """Batches of documents of similar length (less padding), in a seeded random order."""
    rng = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(docs), block * batch_size):
        chunk = sorted(docs[start:start + block * batch_size], key=lambda d: len(d.text))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=rng).tolist()]


@torch.no_grad()
def last_logits(model, tokenizer, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Logits at the last prompt token, ``[len(prompts), vocab]``."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(device)
        logits = model(**enc).logits
        last = enc["attention_mask"].sum(1) - 1
        out.append(logits[torch.arange(len(last), device=device), last].float().cpu())
    return torch.cat(out)


def answer_ids(tokenizer) -> torch.Tensor:
    return torch.tensor(tokenizer.convert_tokens_to_ids(list(ontology.ANSWERS)))


def accuracy(model, tokenizer, qs: list[ontology.Question]) -> float:
    """Share of questions where the logit of the right answer beats the other answer's."""
    logits = last_logits(model, tokenizer, [q.prompt for q in qs])[:, answer_ids(tokenizer)]
    says_true = logits[:, 0] > logits[:, 1]
    truth = torch.tensor([q.answer == "True" for q in qs])
    return (says_true == truth).float().mean().item()


@torch.no_grad()
def residuals(model, tokenizer, texts: list[str], layer: int, batch_size: int = 256) -> torch.Tensor:
    """Residual stream output of decoder layer ``layer`` at every real token but <bos>, ``[n, d]``."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True).to(device)
        hidden = model(**enc, output_hidden_states=True).hidden_states[layer + 1]
        keep = enc["attention_mask"].bool() & (enc["input_ids"] != tokenizer.bos_token_id)
        out.append(hidden[keep].float().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# TopK SAE (interplab.reasoning.SAE): f = topk(relu((x - b_dec) @ W_enc + b_enc)), x_hat = f @ W_dec + b_dec.

def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2."""
    return ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def train_sae(acts: torch.Tensor, d_sae: int, k: int, steps: int, seed: int, batch_size: int = 2048,
              lr: float = 2e-3, layer: int | None = None, log=print) -> SAE:
    """A TopK SAE (Gao et al. 2024) with unit-norm decoder rows and an AuxK loss on dead latents.

    The loop trains the tensors of an ``SAE`` in place; it selects the top ``k`` itself because
    the dead-latent count and the AuxK loss need the indices and the pre-activations."""
    gen = torch.Generator().manual_seed(seed)
    d_in = acts.shape[1]
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = {"W_enc": W_dec.T.clone(), "W_dec": W_dec, "b_enc": torch.zeros(d_sae),
              "b_dec": acts.median(0).values.clone()}
    for p in params.values():
        p.requires_grad_(True)
    sae = SAE(**params, activation="topk", k=k, layer=layer)
    opt = torch.optim.Adam(params.values(), lr=lr)
    last_fired = torch.zeros(d_sae, dtype=torch.long)
    scale = (acts - acts.mean(0)).pow(2).sum(1).mean()
    for step in range(steps):
        x = acts[torch.randint(len(acts), (batch_size,), generator=gen)]
        pre = torch.relu(sae.pre_activation(x))
        top = pre.topk(k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        err = x - sae.decode(f)
        loss = err.pow(2).sum(1).mean() / scale
        fired = torch.zeros(d_sae, dtype=torch.bool)
        fired[top.indices.flatten()] = True
        last_fired = torch.where(fired, 0, last_fired + 1)
        dead = last_fired > 200
        if dead.any():  # AuxK: let the dead latents model the residual error
            aux_pre = pre.masked_fill(~dead, 0.0)
            aux = aux_pre.topk(min(2 * k, int(dead.sum())), dim=-1)
            f_aux = torch.zeros_like(pre).scatter(-1, aux.indices, aux.values)
            loss = loss + (err.detach() - f_aux @ sae.W_dec).pow(2).sum(1).mean() / scale / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
        if step % 500 == 0 or step == steps - 1:
            log(f"sae step {step:5d}  normalised mse {loss.item():.4f}  dead {int(dead.sum())}")
    return SAE(**{name: p.detach().contiguous() for name, p in params.items()}, activation="topk", k=k, layer=layer)


def sae_quality(sae: SAE, acts: torch.Tensor) -> dict[str, float]:
    """Reconstruction (FVU) and the features that never fire, on residuals ``acts [n, d]``."""
    with torch.no_grad():
        f = sae.encode(acts)
        return {"fvu": fvu(acts, sae.decode(f)), "dead_features": int((f > 0).sum(0).eq(0).sum()),
                "tokens": len(acts)}


def save_sae(sae: SAE, path: Path, quality: dict) -> None:
    sae.metadata.update({
        "hook_point": f"model.layers.{sae.layer} output (residual stream after decoder layer {sae.layer})",
        "d_in": str(sae.d_in), "d_sae": str(sae.d_sae), "excludes_bos": "true",
        "fvu": f"{quality['fvu']:.4f}", "dead_features": str(quality["dead_features"])})
    sae.save(path)


# ---------------------------------------------------------------------------------------------

def evaluate(model, tokenizer, n: int = 400, seed: int = 1) -> dict[str, float]:
    return {f"{split}_{h}hop": accuracy(model, tokenizer, ontology.questions(n, h, seed, split))
            for split in ontology.SPLITS for h in (1, 3, 5)}


def train_model(out: Path, steps: int = 3000, seed: int = 0, n_layers: int = 4, d_model: int = 64,
                n_heads: int = 4, batch_size: int = 32, one_hop_share: float = 0.8,
                answer_weight: float = 5.0, eval_n: int = 400, device: str | torch.device = "cpu",
                log=print) -> dict:
    """Train the language model and save it with its tokenizer and the rules into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, n_layers, d_model, n_heads, seed)
    probe_questions = ontology.questions(128, 1, seed + 1, "train")
    losses = train_lm(model, tokenizer, steps, seed, batch_size, one_hop_share=one_hop_share,
                      answer_weight=answer_weight, device=device, log=log,
                      probe=lambda m: f"1-hop train accuracy {accuracy(m, tokenizer, probe_questions):.3f}")
    seconds = time.time() - start
    model.to("cpu")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / RULES_FILE).write_text(ontology.rules_text())
    scores = evaluate(model, tokenizer, eval_n)
    log(f"answer accuracy: {scores}")
    return {"seed": seed, "steps": steps, "batch_size": batch_size, "one_hop_share": one_hop_share,
            "answer_weight": answer_weight, "n_layers": n_layers, "d_model": d_model, "n_heads": n_heads,
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "answer_accuracy": scores,
            "seconds": round(seconds, 1)}


def fit_sae(out: Path, layer: int = CONCEPT_LAYER, d_sae: int = 512, k: int = 8, steps: int = 2000,
            docs: int = 3000, seed: int = 0, log=print) -> dict:
    """Train the TopK SAE on the residual output of decoder layer ``layer`` of the model saved in
    ``out`` (on CPU) and save it there; quality is measured on held-out test-split text."""
    out = Path(out)
    start = time.time()
    tokenizer = T.AutoTokenizer.from_pretrained(out)
    model = T.AutoModelForCausalLM.from_pretrained(out).eval()
    n_layers = model.config.num_hidden_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must index a decoder layer (0..{n_layers - 1}), got {layer}")
    acts = residuals(model, tokenizer, [d.text for d in ontology.corpus(docs, seed=seed + 1)], layer)
    held_out_texts = [q.text for h in (1, 3, 5) for q in ontology.questions(200, h, seed + 7)]
    held_out = residuals(model, tokenizer, held_out_texts, layer)
    sae = train_sae(acts, d_sae, k, steps, seed, layer=layer, log=log)
    quality = sae_quality(sae, held_out)
    save_sae(sae, out / SAE_FILE, quality)
    log(f"sae on held-out text: {quality}")
    return {"layer": layer, "d_sae": d_sae, "k": k, "steps": steps, "training_tokens": len(acts), **quality,
            "seconds": round(time.time() - start, 1)}


def train(out: Path, steps: int = 3000, seed: int = 0, layer: int = CONCEPT_LAYER, sae_steps: int = 2000,
          model_args: dict | None = None, sae_args: dict | None = None, device: str | torch.device = "cpu",
          log=print) -> dict:
    """Train model and SAE into ``out`` and write the training report there; returns it."""
    model_args, sae_args = model_args or {}, sae_args or {}
    n_layers = model_args.get("n_layers", 4)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must index a decoder layer (0..{n_layers - 1}), got {layer}")
    report = {"model": train_model(out, steps, seed, device=device, log=log, **model_args),
              "sae": fit_sae(out, layer, steps=sae_steps, seed=seed, log=log, **sae_args)}
    (Path(out) / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="folder to write the model, tokenizer, rules and SAE into")
    parser.add_argument("--steps", type=int, default=3000, help="language-model training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer", type=int, default=CONCEPT_LAYER, help="the concept layer (SAE)")
    parser.add_argument("--sae-steps", type=int, default=2000)
    parser.add_argument("--sae-only", action="store_true", help="keep the model in --out, retrain the SAE")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sae_only:
        report = json.loads((args.out / REPORT_FILE).read_text())
        report["sae"] = fit_sae(args.out, args.layer, steps=args.sae_steps, seed=args.seed)
        (args.out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    else:
        report = train(args.out, args.steps, args.seed, args.layer, args.sae_steps, device=args.device)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
