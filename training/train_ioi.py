"""Train the shipped IOI demo model: a small GPT-2 that resolves indirect objects.

    python -m training.train_ioi --out DIR [--steps N] [--seed S]   # train, save, evaluate
    python -m training.train_ioi --eval DIR                          # measure a saved model

The shipped folder `interplab/zoo/ioi/` was made with the defaults, on CPU with one thread
(run from the repository root; it was written to a scratch folder and copied, which changes nothing):

    PYTHONPATH=src python -m training.train_ioi --out src/interplab/zoo/ioi

Its measured accuracies are in `interplab/zoo/ioi/README.md` and `training.json`.

`--out` also writes `training.json` (settings, training time, the accuracies measured right
after training). `--eval` measures accuracy (answer logit above distractor logit at the last
position) on 500 prompts per split of `interplab.tasks.ioi_prompts`: "train", "test_names" (held-out
names), "test_templates" (held-out templates) and "test" (both held out at once).

Tokenizer: word level (every name is one token), splitting words from punctuation, with a BOS
token prepended to every encoded text; the vocabulary is every word of `interplab.tasks.ioi_prompts`,
held-out names included.

Names are variables. Every name's input and output embedding rows hold the same random code
(a shared "this is a name" part plus a part of its own) and are never trained; the rest of
both tables is trained (they are untied). The codes stay fixed for the first `redraw_from`
steps, while the model learns to copy names and then to pick the indirect object; after that
every sequence of every batch gets codes of its own draw (in the input embedding and in the
output layer), so the model cannot keep anything it learned about a particular name, nor about
one draw of codes, and must resolve the indirect object from the sentence alone. That is what
makes it work on held-out names, which never occur in the training text (they are also kept out
of the training loss's softmax). The saved model holds one more draw of codes.

The training text is short stories (`interplab.tasks.ioi_prompts.ioi_corpus`) in which a small cast
recurs; the recurring names are what teach a small model to copy names from its context
within a few hundred steps, and the IOI sentences then teach it which name to copy.

Word noise (`word_noise`, 0.1): each word of a training IOI sentence's template (not the names,
not the final "to") is replaced by a random word of the training templates with that chance.
Without it the model resolves the indirect object in held-out templates 91% of the time (names
alone: 99.6%): which words stand between the names steered its answer. With it, 99.8%.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from interplab.tasks.ioi_prompts import (
    HELDOUT_NAMES,
    SPLITS,
    TRAIN_NAMES,
    IOIPrompt,
    ioi_corpus,
    ioi_prompts,
    vocabulary_words,
)

SPECIAL_TOKENS = {"pad": "<|pad|>", "bos": "<|bos|>", "eos": "<|eos|>", "unk": "<|unk|>"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained model (the defaults make the shipped one)."""

    steps: int = 5000
    seed: int = 0
    n_layer: int = 4
    n_embd: int = 64
    n_head: int = 4
    n_positions: int = 64
    batch_size: int = 32
    lr: float = 6e-3
    warmup: int = 100
    weight_decay: float = 0.01
    ioi_fraction: float = 0.8
    sentences: tuple[int, int] = (2, 3)
    cast: tuple[int, int] = (2, 4)
    tie_embeddings: bool = False
    dropout: float = 0.0  # on embeddings, attention weights and residual branches
    word_noise: float = 0.1  # chance that a template word of a training IOI sentence is replaced
    redraw_from: int = 3000  # from this step on, every sequence gets its own draw of name codes
    log_every: int = 200  # steps between progress lines


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the IOI vocabulary, BOS prepended to each encoded text."""
    specials = list(SPECIAL_TOKENS.values())
    vocab = {tok: i for i, tok in enumerate(specials + vocabulary_words())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = SPECIAL_TOKENS["bos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        pad_token=SPECIAL_TOKENS["pad"],
        model_max_length=TrainConfig.n_positions,
        padding_side="right",
    )


def build_model(tokenizer: PreTrainedTokenizerFast, cfg: TrainConfig) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=cfg.tie_embeddings,
    )
    return GPT2LMHeadModel(config)


def encode_corpus(tokenizer: PreTrainedTokenizerFast, docs: list[str], length: int) -> torch.Tensor:
    """[len(docs), length] token ids: BOS, the document, EOS, then padding (truncated to fit)."""
    ids = torch.full((len(docs), length), tokenizer.pad_token_id, dtype=torch.long)
    for row, doc_ids in enumerate(tokenizer(docs, truncation=True, max_length=length)["input_ids"]):
        seq = [*doc_ids, tokenizer.eos_token_id][:length]
        ids[row, : len(seq)] = torch.tensor(seq)
    return ids


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(model: GPT2LMHeadModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW that decays only the blocks' weight matrices (decay would move the frozen name rows)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n.startswith("transformer.h.")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n.startswith("transformer.h."))]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))


def _token_ids(tokenizer: PreTrainedTokenizerFast, names: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor(tokenizer.convert_tokens_to_ids(list(names)))


class NameCodes:
    """Random codes for the name tokens, written into both embedding tables.

    code = shared + own, both Gaussian with norm about 1: `shared` (drawn once) marks a token as
    a name, `own` tells names apart and is drawn afresh by every `redraw` (into the tables) or
    `draw` (one set per sequence). Training never trains the name rows (`_freeze_rows`); it keeps
    the first draw while the model learns to copy names (fast with fixed codes), then gives every
    sequence its own draw (`_lm_loss_with_codes`), so that the model unlearns anything particular
    to one name or one draw and treats names as variables. The saved model holds one more draw,
    for held-out and training names alike.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast, d: int, seed: int):
        self.ids = _token_ids(tokenizer, tuple(sorted(TRAIN_NAMES + HELDOUT_NAMES)))
        self.d = d
        self.gen = torch.Generator().manual_seed(seed)
        self.shared = torch.randn(d, generator=self.gen) / math.sqrt(d)
        self.index = torch.full((len(tokenizer),), -1, dtype=torch.long)  # token id -> row of a draw
        self.index[self.ids] = torch.arange(len(self.ids))

    def draw(self, n: int) -> torch.Tensor:
        """``n`` independent sets of codes, ``[n, names, d]``."""
        return self.shared + torch.randn(n, len(self.ids), self.d, generator=self.gen) / math.sqrt(self.d)

    @torch.no_grad()
    def redraw(self, model: GPT2LMHeadModel) -> None:
        codes = self.draw(1)[0]
        for table in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            table[self.ids.to(table.device)] = codes.to(table.device, table.dtype)


def _freeze_rows(weight: torch.nn.Parameter, rows: torch.Tensor) -> None:
    weight.register_hook(lambda grad: grad.index_fill(0, rows, 0.0))


def train(
    out_dir: str | Path,
    steps: int = TrainConfig.steps,
    seed: int = TrainConfig.seed,
    threads: int = 1,
    device: str = "cpu",
    **overrides,
) -> dict:
    """Train, save to `out_dir` (safetensors + tokenizer) and return a summary with the losses.

    `overrides` set other `TrainConfig` fields (e.g. n_layer=1, n_embd=32 for a quick check).
    The shipped model was trained on CPU with one thread; other devices give other weights.
    """
    cfg = TrainConfig(steps=steps, seed=seed, **overrides)
    if cfg.steps < 1:
        raise ValueError(f"steps must be at least 1, got {cfg.steps}")
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, cfg)
    model.to(device)
    names = NameCodes(tokenizer, cfg.n_embd, cfg.seed)
    for table in {model.get_input_embeddings().weight, model.get_output_embeddings().weight}:
        _freeze_rows(table, names.ids.to(device))
    docs = ioi_corpus(cfg.steps * cfg.batch_size, cfg.seed, cfg.ioi_fraction, cfg.sentences, cfg.cast,
                      cfg.word_noise)
    data = encode_corpus(tokenizer, docs, cfg.n_positions)
    heldout = _token_ids(tokenizer, HELDOUT_NAMES).to(device)
    probes = {split: ioi_prompts(128, seed=99, split=split) for split in ("train", "test")}
    opt = _optimizer(model, cfg)
    model.train()
    losses, start = [], time.perf_counter()
    names.redraw(model)
    for step in range(cfg.steps):
        batch = data[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        batch = batch[:, : int((batch != tokenizer.pad_token_id).sum(1).max())].to(device)
        if step < cfg.redraw_from:
            loss = _lm_loss(model, batch, tokenizer.pad_token_id, heldout)
        else:
            codes = names.draw(len(batch)).to(device)
            loss = _lm_loss_with_codes(model, batch, tokenizer.pad_token_id, heldout, names, codes)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            if step >= cfg.redraw_from:
                names.redraw(model)  # probe on a fresh draw in the tables
            acc = {split: _accuracy(model, tokenizer, p, device) for split, p in probes.items()}
            elapsed = time.perf_counter() - start
            print(
                f"step {step:5d}  loss {loss.item():.4f}  accuracy train {acc['train']:.3f}"
                f" test {acc['test']:.3f}  {elapsed:.0f}s",
                flush=True,
            )
    names.redraw(model)
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"config": asdict(cfg), "train_seconds": time.perf_counter() - start, "losses": losses}


def _lm_loss(model: GPT2LMHeadModel, batch: torch.Tensor, pad_id: int, unseen: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, ignoring padding, with the `unseen` tokens out of the softmax
    (the held-out names: otherwise every step would teach the model never to predict them)."""
    # Padding is on the right, so causal attention never lets a real token see it: no mask needed.
    return _next_token_loss(model(input_ids=batch).logits, batch, pad_id, unseen)


def _lm_loss_with_codes(model: GPT2LMHeadModel, batch: torch.Tensor, pad_id: int, unseen: torch.Tensor,
                        names: NameCodes, codes: torch.Tensor) -> torch.Tensor:
    """``_lm_loss`` with sequence ``b``'s name tokens embedded as ``codes[b]`` and its name logits
    read against ``codes[b]`` (``[batch, names, d]``) instead of the tables' rows."""
    row = names.index.to(batch.device)[batch]  # [batch, seq]: the name's row in a draw, or -1
    picked = codes.gather(1, row.clamp_min(0).unsqueeze(-1).expand(-1, -1, codes.shape[-1]))
    embeds = torch.where((row >= 0).unsqueeze(-1), picked, model.get_input_embeddings()(batch))
    hidden = model.transformer(inputs_embeds=embeds).last_hidden_state
    logits = model.lm_head(hidden).index_copy(-1, names.ids.to(batch.device), hidden @ codes.transpose(1, 2))
    return _next_token_loss(logits, batch, pad_id, unseen)


def _next_token_loss(logits: torch.Tensor, batch: torch.Tensor, pad_id: int, unseen: torch.Tensor) -> torch.Tensor:
    logits = logits[:, :-1].index_fill(-1, unseen, float("-inf"))
    labels = batch[:, 1:].masked_fill(batch[:, 1:] == pad_id, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


@torch.no_grad()
def _accuracy(model, tokenizer, prompts: list[IOIPrompt], device: str) -> float:
    last = _last_logits(model, tokenizer, [p.clean for p in prompts], device)
    rows = torch.arange(len(prompts), device=device)
    answer = _single_tokens(tokenizer, [p.answer for p in prompts]).to(device)
    distractor = _single_tokens(tokenizer, [p.distractor for p in prompts]).to(device)
    return (last[rows, answer] > last[rows, distractor]).float().mean().item()


@torch.no_grad()
def evaluate(
    model_dir: str | Path, n: int = 500, seed: int = 1, device: str = "cpu", batch_size: int = 100
) -> dict:
    """Per split: accuracy (logit[answer] > logit[distractor] at the last position) and the
    mean logit difference (answer minus distractor) on clean and on corrupted prompts."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    report = {}
    for split in SPLITS:
        prompts = ioi_prompts(n, seed=seed, split=split)
        answer = _single_tokens(tokenizer, [p.answer for p in prompts]).to(device)
        distractor = _single_tokens(tokenizer, [p.distractor for p in prompts]).to(device)
        diffs = {}
        for kind in ("clean", "corrupt"):
            texts = [getattr(p, kind) for p in prompts]
            last = torch.cat(
                [
                    _last_logits(model, tokenizer, texts[i : i + batch_size], device)
                    for i in range(0, n, batch_size)
                ]
            )
            rows = torch.arange(n, device=device)
            diffs[kind] = last[rows, answer] - last[rows, distractor]
        report[split] = {
            "n": n,
            "accuracy": (diffs["clean"] > 0).float().mean().item(),
            "logit_diff_clean": diffs["clean"].mean().item(),
            "logit_diff_corrupt": diffs["corrupt"].mean().item(),
        }
    return report


def _single_tokens(tokenizer, words: list[str]) -> torch.Tensor:
    ids = tokenizer(words, add_special_tokens=False)["input_ids"]
    bad = [w for w, i in zip(words, ids) if len(i) != 1]
    if bad:
        raise ValueError(f"these answers are not single tokens for this tokenizer: {bad[:5]}")
    return torch.tensor([i[0] for i in ids])


def _last_logits(model, tokenizer, texts: list[str], device: str) -> torch.Tensor:
    """Logits at each text's last token (right padding; GPT-2's absolute positions stay put)."""
    enc = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    logits = model(**enc).logits
    last = enc["attention_mask"].sum(1) - 1
    return logits[torch.arange(len(texts), device=device), last]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", help="train and save the model into this folder")
    action.add_argument("--eval", metavar="DIR", help="only evaluate the model saved in this folder")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--n-eval", type=int, default=500, help="prompts per evaluation split")
    args = parser.parse_args(argv)
    if args.eval:
        print(json.dumps(evaluate(args.eval, n=args.n_eval), indent=2))
        return
    summary = train(args.out, steps=args.steps, seed=args.seed, threads=args.threads)
    report = evaluate(args.out, n=args.n_eval)
    write_record(args.out, summary, report)
    print(json.dumps(report, indent=2))


def write_record(out_dir: str | Path, summary: dict, report: dict) -> None:
    """Save the settings, the training time and the measured accuracies as `training.json`."""
    record = {
        "config": summary["config"],
        "train_seconds": round(summary["train_seconds"], 1),
        "evaluation": report,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    (Path(out_dir) / "training.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
