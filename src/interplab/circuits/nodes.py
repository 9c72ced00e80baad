"""Nodes and edges of a circuit, and where each node lives in the model.

Node components (``Node.component``):

=========  ===================================================================================
resid      the residual stream entering block ``layer`` (block 0: the embeddings)
attn       the attention sublayer's output (the output projection's output, before any post-norm or residual multiplier)
head       one attention head's output: its slice of the output projection's input
mlp        the MLP sublayer's output (before any post-norm or residual multiplier)
embed      (edges) the embeddings as written into the residual stream, ``layer`` 0
logits     (edges) the unembedding, reading the residual stream at the final norm, ``layer`` n_layers
           (position-resolved: at the last position only)
=========  ===================================================================================

``position`` indexes the (left-padded, right-aligned) prompt window, or is ``None`` for a node
taken over all positions. Levels of attribution:

- ``"component"``: resid, attn and mlp per layer (and position);
- ``"head"``: head per layer and head (and position), and mlp per layer (and position);
- ``"edge"``: edges between embed, attn, mlp (sources) and attn or head, mlp, logits (targets)
  nodes at positions (see ``position_edges``), or summed over positions (``edges``).

A circuit keeps or removes components, not residual-stream states, so circuits of node levels hold
attn/mlp (component level) or head/mlp (head level) nodes; resid scores are for reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["CIRCUIT_COMPONENTS", "LEVELS", "SCORED_COMPONENTS", "Edge", "Node", "check_node", "node_from_id",
           "nodes_of"]

LEVELS = ("component", "head", "edge")
SCORED_COMPONENTS = {"component": ("resid", "attn", "mlp"), "head": ("head", "mlp"),
                     "edge": ("embed", "attn", "mlp")}
CIRCUIT_COMPONENTS = {"component": ("attn", "mlp"), "head": ("head", "mlp"), "edge": ()}
COMPONENT_ORDER = {"embed": 0, "resid": 1, "head": 2, "attn": 3, "mlp": 4, "logits": 5}


class Node(NamedTuple):
    component: str
    layer: int
    head: int | None = None
    position: int | None = None

    @property
    def id(self) -> str:
        """``attn.3``, ``head.2.1@7``, ``mlp.0@4``, ``embed.0``, ``logits.4``."""
        text = f"{self.component}.{self.layer}"
        if self.head is not None:
            text += f".{self.head}"
        if self.position is not None:
            text += f"@{self.position}"
        return text

    def __str__(self) -> str:
        return self.id

    def sort_key(self) -> tuple:
        return (self.layer, COMPONENT_ORDER[self.component], -1 if self.head is None else self.head,
                -1 if self.position is None else self.position)


class Edge(NamedTuple):
    source: Node
    target: Node

    @property
    def id(self) -> str:
        return f"{self.source.id}->{self.target.id}"

    def __str__(self) -> str:
        return self.id


def node_from_id(text: str) -> Node:
    """The node written as ``Node.id``."""
    body, _, position = text.partition("@")
    parts = body.split(".")
    if parts[0] not in COMPONENT_ORDER or len(parts) not in (2, 3):
        raise ValueError(f"{text!r} is not a node id (e.g. 'attn.3', 'head.2.1@7', 'mlp.0@4')")
    try:
        numbers = [int(p) for p in parts[1:]]
        pos = int(position) if position else None
    except ValueError:
        raise ValueError(f"{text!r} is not a node id (e.g. 'attn.3', 'head.2.1@7', 'mlp.0@4')") from None
    return Node(parts[0], numbers[0], numbers[1] if len(numbers) == 2 else None, pos)


def nodes_of(components: Iterable[str], n_layers: int, n_heads: int, seq_len: int | None) -> list[Node]:
    """Every node of these components, in forward order (positions innermost)."""
    positions = [None] if seq_len is None else list(range(seq_len))
    nodes = []
    for layer in range(n_layers):
        for component in sorted(components, key=COMPONENT_ORDER.__getitem__):
            heads = range(n_heads) if component == "head" else [None]
            for head in heads:
                for position in positions:
                    nodes.append(Node(component, layer, head, position))
    return nodes


# --- sites: where a node's activation is read or replaced -------------------------------------
# kind "resid": block input; "z": the attention output projection's input (heads);
# "attn": the output projection's output; "mlp": the MLP's output. In forward order.
SITE_KINDS = ("resid", "z", "attn", "mlp")
_SITE_OF = {"resid": "resid", "head": "z", "attn": "attn", "mlp": "mlp"}


def site_envoy(model, layer: int, kind: str):
    """(envoy, reads_input) of a site."""
    block = model.blocks[layer]
    if kind == "resid":
        return block.envoy, True
    if kind == "z":
        return block.attn_out, True
    if kind == "attn":
        return block.attn_out, False
    if kind == "mlp":
        return block.mlp, False
    raise ValueError(f"unknown site kind {kind!r}")


def check_node(node: Node, n_layers: int, n_heads: int, seq_len: int) -> str:
    """The site kind of a patchable node, or a ``ValueError`` saying what is wrong with it."""
    if node.component not in _SITE_OF:
        raise ValueError(f"{node} is not a patchable node (components: {', '.join(_SITE_OF)})")
    if not 0 <= node.layer < n_layers:
        raise ValueError(f"{node}: layer {node.layer} is outside 0..{n_layers - 1}")
    if node.position is not None and not 0 <= node.position < seq_len:
        raise ValueError(f"{node}: position {node.position} is outside 0..{seq_len - 1}")
    kind = _SITE_OF[node.component]
    if kind == "z" and (node.head is None or not 0 <= node.head < n_heads):
        raise ValueError(f"{node}: head must be in 0..{n_heads - 1}")
    return kind


def site_masks(groups: list[Iterable[Node]], n_layers: int, n_heads: int, seq_len: int,
               device) -> dict[tuple[int, str], Tensor]:
    """Per site, a bool mask ``[copies, seq_len, n_heads or 1]`` of what each group (copy) replaces.

    Only sites that some group touches appear. A node without a position covers every position.
    """
    masks: dict[tuple[int, str], Tensor] = {}
    copies = len(groups)
    for c, group in enumerate(groups):
        for node in group:
            kind = check_node(node, n_layers, n_heads, seq_len)
            key = (node.layer, kind)
            if key not in masks:
                masks[key] = torch.zeros(copies, seq_len, n_heads if kind == "z" else 1, dtype=torch.bool)
            pos = slice(None) if node.position is None else node.position
            masks[key][c, pos, node.head if kind == "z" else 0] = True
    return {key: masks[key].to(device) for key in sorted(masks, key=lambda k: (k[0], SITE_KINDS.index(k[1])))}


def rows_mask(mask: Tensor, n: int, d_head: int) -> Tensor:
    """A ``[copies, S, heads]`` site mask as ``[copies * n, S, features]`` rows (copy-major)."""
    rows = mask.repeat_interleave(n, dim=0)
    if rows.shape[-1] > 1:  # per-head site: one entry per head -> d_head features each
        rows = rows.repeat_interleave(d_head, dim=-1)
    return rows
