"""One table per architecture family, in one standard vocabulary: everything interplab knows about it.

Every instrument reaches a module through these names, never through a module path, and reads
every other architecture fact (norm kind, MLP kind, router rule, parallel blocks, scaled writes,
the logits transform, Conv1D projections) from the family's ``Family``. Adding a family is one
``register(Family(...))`` (the built-in ones are in ``tables.py``); the tests pick it up from
``FAMILIES`` through its ``tiny`` factory.

Model-level names: ``layers`` (the ModuleList of decoder blocks), ``embed``, ``final_norm``,
``unembed``. Block-level names (paths relative to one decoder block; a name missing from a
given block, such as ``router`` in a dense layer, simply does not resolve there):

=================  ==============================================================
``attn``           the attention module; its output's first element is the attention output
``attn_out``       the attention output projection; its *input* holds the per-head outputs
``q_norm``         a norm on the queries inside attention (per head: Qwen3, Gemma 3; over all
                   heads: OLMo 2, OLMoE; the low-rank query latent: DeepSeek-V3)
``k_norm``         the same on the keys (DeepSeek-V3: the key/value latent)
``ln_attn``        the norm before attention (absent in post-norm blocks: OLMo 2)
``ln_mlp``         the norm before the MLP (absent in post-norm blocks)
``ln_attn_post``   a norm applied to the attention output (Gemma 2/3, OLMo 2)
``ln_mlp_post``    a norm applied to the MLP output (Gemma 2/3, OLMo 2)
``mlp``            the MLP, or the MoE block
``act``            the MLP's elementwise activation module (dense MLPs)
``mlp_in``         the up projection (plain MLP) / ``up_proj`` (gated MLP)
``mlp_gate``       the gate projection of a gated MLP
``mlp_gate_up``    a fused gate and up projection (Phi-3: the gate is the first half of its outputs)
``mlp_out``        the down projection (its input is the gated product in a gated MLP)
``router``         the MoE router (returns logits, top-k weights, top-k indices)
``experts``        the fused experts module
``shared``         shared expert(s) that every token uses
``shared_gate``    the sigmoid gate of the shared expert (Qwen2-MoE)
=================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .routing import RoutingRule

NormKind = Literal["layernorm", "rmsnorm", "rmsnorm_offset"]
MlpKind = Literal["plain", "gated"]

#: every block-level name of the vocabulary above
BLOCK_NAMES = ("attn", "attn_out", "q_norm", "k_norm", "ln_attn", "ln_mlp", "ln_attn_post", "ln_mlp_post", "mlp",
               "act", "mlp_in", "mlp_gate", "mlp_gate_up", "mlp_out", "router", "experts", "shared", "shared_gate")


@dataclass(frozen=True)
class TinySize:
    """The size of a tiny random model (``interplab.zoo.tiny``), as handed to a family's ``tiny`` factory.

    ``dims`` are the transformers config arguments most families share: d_model 32, 4 query heads,
    2 key/value heads, MLP width 64, 128 positions, and the special token ids of the tiny tokenizer.
    """

    n_layers: int = 2
    vocab: int = 128
    n_experts: int = 8
    top_k: int = 2

    @property
    def dims(self) -> dict[str, Any]:
        return dict(num_hidden_layers=self.n_layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=64, vocab_size=self.vocab, max_position_embeddings=128,
                    bos_token_id=2, eos_token_id=3, pad_token_id=0)


@dataclass(frozen=True)
class Family:
    """An architecture family: where its parts live and the facts the instruments need about it.

    Paths: ``layers``, ``embed``, ``final_norm``, ``unembed`` (from the model root) and ``block``
    (standard name -> path inside one decoder block; see the vocabulary above).

    Facts:

    - ``norm``: how the norms compute (``layernorm``; ``rmsnorm``; ``rmsnorm_offset``: RMSNorm
      scaling by ``1 + weight``, Gemma). ``mlp``: ``plain`` (act(W_in x)) or ``gated``
      (act(gate x) * up x, fused or not). A block without ``ln_attn``/``ln_mlp`` is post-norm:
      its sublayers read the residual stream directly (``reads``).
    - ``routing``: the MoE router's selection rule (``routing.py``); None for dense families.
    - ``conv1d``: the projections are GPT-2 ``Conv1D`` modules (weight ``[in, out]``).
    - ``parallel``: attention and MLP both read the block's input (True, or the name of the config
      flag that says so, e.g. GPT-NeoX's ``use_parallel_residual``).
    - ``residual_scale``: the config attribute multiplying each sublayer's output before the
      residual add (Granite's ``residual_multiplier``): the write into the residual stream is
      ``residual_scale * output``.
    - ``logit_scale`` / ``logit_softcap``: config attributes of what the model does to the
      unembedding's output to make its logits (Granite divides by ``logits_scaling``; Gemma 2/3
      soft-cap with ``final_logit_softcapping``, when set).
    - ``tiny``: a factory ``TinySize -> transformers config`` of a tiny random model of the family
      (``interplab.zoo.tiny``, and every family test).
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    embed: str
    final_norm: str
    unembed: str
    block: Mapping[str, str]
    norm: NormKind
    mlp: MlpKind
    routing: RoutingRule | None = None
    conv1d: bool = False
    parallel: bool | str = False
    residual_scale: str | None = None
    logit_scale: str | None = None
    logit_softcap: str | None = None
    tiny: Callable[[TinySize], Any] | None = field(default=None, compare=False, repr=False)
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.block) - set(BLOCK_NAMES))
        if unknown:
            raise ValueError(f"family {self.name!r}: block names {unknown} are not in the vocabulary "
                             f"({', '.join(BLOCK_NAMES)}); see interplab/anatomy/families.py")
        missing = [n for n in ("attn", "attn_out", "mlp") if n not in self.block]
        if missing:
            raise ValueError(f"family {self.name!r}: the block table needs {missing} (every instrument reads them)")
        if self.routing is not None and "router" not in self.block:
            raise ValueError(f"family {self.name!r} has a routing rule but no 'router' in its block table")

    @property
    def is_moe(self) -> bool:
        return self.routing is not None

    def reads(self, sublayer: str) -> str:
        """The block name whose first input is what ``sublayer`` ("attn" or "mlp") reads from the
        residual stream: its pre-norm, or the sublayer itself in a post-norm block (OLMo 2)."""
        pre = {"attn": "ln_attn", "mlp": "ln_mlp"}[sublayer]
        return pre if pre in self.block else sublayer

    def parallel_blocks(self, config) -> bool:
        """Whether attention and MLP of a block both read the block's input, for this config."""
        return self.parallel if isinstance(self.parallel, bool) else bool(getattr(config, self.parallel, False))


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add (or replace) a family table."""
    FAMILIES[family.name] = family
    return family
