"""Tiny random models of every supported family, for tests, coverage and quick experiments.

``tiny("llama")`` builds a 2-layer random model from the family's transformers config class with a
small word-level tokenizer (words ``w0`` .. ``wN`` plus a few English words). Nothing is downloaded.
"""

from __future__ import annotations

import torch
import transformers as T

from ..model import Model, load

WORDS = ("the", "a", "cat", "dog", "sat", "on", "mat", "and", "is", "was", "to", "of", "in", "it", "Mary",
         "John", "store", "gave", "drink", ".", ",", "?", "!")
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


def word_tokenizer(words: list[str] | tuple[str, ...], extra_tokens: tuple[str, ...] = ()) -> T.PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over ``words`` (ids follow SPECIALS then words)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(dict.fromkeys((*SPECIALS, *words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation apart, as the demo models
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                     bos_token="<s>", eos_token="</s>")
    if extra_tokens:
        fast.add_tokens(list(extra_tokens))
    return fast


def _dims(n_layers: int, vocab: int) -> dict:
    return dict(num_hidden_layers=n_layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, vocab_size=vocab, max_position_embeddings=128,
                bos_token_id=2, eos_token_id=3, pad_token_id=0)


def tiny_config(family: str, n_layers: int = 2, vocab: int = 128, n_experts: int = 8, top_k: int = 2):
    """A tiny transformers config of ``family`` (the names of interplab's anatomy tables)."""
    d = _dims(n_layers, vocab)
    moe = dict(num_experts_per_tok=top_k)
    # Qwen-MoE and DeepSeek-V3 get one extra, dense first layer so both kinds of layer are covered.
    dense_first = {**d, "num_hidden_layers": n_layers + 1, "mlp_only_layers": [0]}
    configs = {
        "gpt2": lambda: T.GPT2Config(n_layer=n_layers, n_embd=32, n_head=4, vocab_size=vocab, n_positions=128,
                                     bos_token_id=2, eos_token_id=3, pad_token_id=0),
        "gpt_neox": lambda: T.GPTNeoXConfig(**{k: v for k, v in d.items() if k != "num_key_value_heads"}),
        "llama": lambda: T.LlamaConfig(**d),
        "qwen2": lambda: T.Qwen2Config(**d),
        "gemma2": lambda: T.Gemma2Config(**d, head_dim=8),
        "mixtral": lambda: T.MixtralConfig(**d, num_local_experts=n_experts, **moe),
        "olmoe": lambda: T.OlmoeConfig(**d, num_experts=n_experts, **moe),
        "qwen2_moe": lambda: T.Qwen2MoeConfig(**dense_first, num_experts=n_experts, moe_intermediate_size=16,
                                              shared_expert_intermediate_size=32, **moe),
        "qwen3_moe": lambda: T.Qwen3MoeConfig(**dense_first, num_experts=n_experts, moe_intermediate_size=16,
                                              head_dim=8, **moe),
        "deepseek_v3": lambda: T.DeepseekV3Config(
            **{**d, "num_hidden_layers": n_layers + 1, "num_key_value_heads": 4}, n_routed_experts=n_experts,
            moe_intermediate_size=16, n_group=2, topk_group=1, first_k_dense_replace=1, kv_lora_rank=16,
            q_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, **moe),
        "gpt_oss": lambda: T.GptOssConfig(**{**d, "intermediate_size": 16, "max_position_embeddings": 131072},
                                          num_local_experts=n_experts, head_dim=8,
                                          **moe),
    }
    if family not in configs:
        raise ValueError(f"no tiny config for {family!r}; choose one of {sorted(configs)}")
    return configs[family]()


def tiny(family: str, *, seed: int = 0, n_layers: int = 2, device: str | None = None,
         dtype: torch.dtype | None = None, **config_kwargs) -> Model:
    """A tiny random ``family`` model with a word-level tokenizer, as an ``interplab.Model``."""
    config = tiny_config(family, n_layers=n_layers, **config_kwargs)
    words = [*WORDS, *(f"w{i}" for i in range(config.vocab_size - len(SPECIALS) - len(WORDS)))]
    torch.manual_seed(seed)
    hf = T.AutoModelForCausalLM.from_config(config)
    return load(hf, tokenizer=word_tokenizer(words), device=device, dtype=dtype)
