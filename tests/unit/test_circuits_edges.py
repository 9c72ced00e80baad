"""Edges summed over positions (positions=False) against a hand-written computation (torch hooks and
autograd, no nnsight). Position-resolved edges: test_circuits_position_edges."""

import pytest
import torch
from circuit_reference import ids_of, il_task, site_module, token_id
from families import DENSE_FAMILIES
from lrp_reference import rules as reference_rules

from interplab.anatomy import FAMILIES
from interplab.circuits import Edge, Node, attribute
from interplab.zoo.tiny import tiny

# families whose attention and MLP writes are the attn and mlp nodes themselves (no post-norms)
PRE_NORM = [f for f in DENSE_FAMILIES if "ln_attn_post" not in FAMILIES[f].block]

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
]


def writer(model, node):
    """Where a source's write into the residual stream is: (module, reads_input)."""
    if node.component == "embed":
        return site_module(model, "resid", 0)
    block = model.blocks[node.layer]
    post = "ln_attn_post" if node.component == "attn" else "ln_mlp_post"
    if block.has(post):
        return block.module(post), False
    return site_module(model, node.component, node.layer)


def reader(model, node):
    """The module whose input is what a target reads: its pre-norm, or the sublayer itself (post-norm blocks)."""
    if node.component == "logits":
        return model.module("final_norm")
    block = model.blocks[node.layer]
    norm = "ln_attn" if node.component == "attn" else "ln_mlp"
    return block.module(norm if block.has(norm) else node.component)


def hand_eap(model, prompts, sources, targets, points=None):
    """score[u, d] = sum over prompts and positions of (write_u clean - corrupt) . grad of d's own input copy,
    a sublayer's write being its output times the config's residual multiplier (Granite).

    With ``points`` (alphas, weights): EAP-IG, the gradient is ``sum_k weights[k] * gradient`` at
    the corrupted run whose embeddings are ``corrupt + alphas[k] (clean - corrupt)``.
    """
    multiplier = getattr(model.hf.config, "residual_multiplier", 1.0)
    scores = torch.zeros(len(sources), len(targets))
    embed = model.module("embed")

    def run(text, embedding=None):
        writes, inputs, handles = {}, {}, []
        if embedding is None:
            handles.append(embed.register_forward_hook(lambda m, a, o: writes.__setitem__("embedding", o.detach())))
        else:
            handles.append(embed.register_forward_hook(lambda m, a, o: embedding + 0 * o))
        for u in sources:
            module, reads_input = writer(model, u)
            if reads_input:
                handles.append(module.register_forward_pre_hook(
                    lambda m, a, u=u, writes=writes: writes.__setitem__(u, a[0])))
            else:
                handles.append(module.register_forward_hook(
                    lambda m, a, o, u=u, writes=writes: writes.__setitem__(u, o[0] if isinstance(o, tuple) else o)))
        for d in targets:
            def own_copy(m, args, kwargs, d=d, inputs=inputs):
                key = None if args else next(iter(kwargs))  # attention called with hidden_states=...
                x = (args[0] if args else kwargs[key]).clone()
                x.retain_grad()
                inputs[d] = x
                return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, key: x})
            handles.append(reader(model, d).register_forward_pre_hook(own_copy, with_kwargs=True))
        logits = model.hf(input_ids=ids_of(model, text)).logits
        for h in handles:
            h.remove()
        return writes, inputs, logits

    for clean, corrupt, answer, distractor in prompts:
        clean_run, corrupt_run = run(clean), run(corrupt)
        alphas, weights = points if points is not None else ([None], [1.0])
        for alpha, weight in zip(alphas, weights):
            if alpha is None:
                _, inputs, logits = corrupt_run
            else:
                e_clean, e_corrupt = clean_run[0]["embedding"], corrupt_run[0]["embedding"]
                _, inputs, logits = run(corrupt, e_corrupt + alpha * (e_clean - e_corrupt))
            metric = weight * (logits[0, -1, answer] - logits[0, -1, distractor]) / len(prompts)
            metric.backward()
            for i, u in enumerate(sources):
                delta = (clean_run[0][u] - corrupt_run[0][u]).detach() * (1.0 if u.component == "embed" else multiplier)
                for j, d in enumerate(targets):
                    scores[i, j] += float((delta * inputs[d].grad).sum())
            model.hf.zero_grad(set_to_none=True)
    return scores


@pytest.mark.parametrize("family", DENSE_FAMILIES)
@pytest.mark.parametrize("method", ["atp", "relp", "ig"])
def test_edges_match_a_hand_written_eap(family, method, device):
    model = tiny(family, device=device, seed=5)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    options = {"steps": 3} if method == "ig" else {}
    att = attribute(model, il_task(model, prompts), method=method, level="edge", positions=False, **options)
    if method == "relp":
        with reference_rules(model):
            expected = hand_eap(model, prompts, att.sources, att.targets)
    else:
        points = ([0, 0.5, 1], [0.25, 0.5, 0.25])  # the trapezoid rule on 3 points, written out
        expected = hand_eap(model, prompts, att.sources, att.targets, points if method == "ig" else None)
    valid = ~torch.isnan(att.edge_scores)
    torch.testing.assert_close(att.edge_scores[valid], expected[valid], rtol=1e-4, atol=1e-6)


def test_edge_set_follows_the_block_structure():
    gpt2 = tiny("gpt2")
    sequential = attribute(gpt2, il_task(gpt2, [(*TEXTS[0][:2], 9, 10)]), method="atp", level="edge", positions=False)
    edges = {e for e, _ in sequential.edges()}
    assert Edge(Node("attn", 0), Node("mlp", 0)) in edges
    assert Edge(Node("mlp", 0), Node("attn", 0)) not in edges
    assert Edge(Node("embed", 0), Node("logits", 2)) in edges
    assert len(edges) == 5 + 4 + 3 + 2 + 1
    neox = tiny("gpt_neox")  # parallel attention and MLP: the MLP does not read its block's attention
    assert neox.hf.config.use_parallel_residual
    parallel = attribute(neox, il_task(neox, [(*TEXTS[0][:2], 9, 10)]), method="atp", level="edge", positions=False)
    edges = {e for e, _ in parallel.edges()}
    assert Edge(Node("attn", 0), Node("mlp", 0)) not in edges and Edge(Node("attn", 0), Node("mlp", 1)) in edges


@pytest.mark.parametrize("family", PRE_NORM)
def test_outgoing_edges_sum_to_the_node_score(family):
    """The residual stream is a sum of writes, so a source's edges add up to its AtP/RelP/IG node score."""
    model = tiny(family, seed=6)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    task = il_task(model, prompts)
    for method in ("atp", "relp", "ig"):
        edges = attribute(model, task, method=method, level="edge", positions=False)
        nodes = attribute(model, task, method=method, positions=False)
        outgoing = torch.nan_to_num(edges.edge_scores).sum(1)
        torch.testing.assert_close(outgoing[1::2], nodes.scores["attn"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(outgoing[2::2], nodes.scores["mlp"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(outgoing[:1], nodes.scores["resid"][:1], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(edges.scores["attn"], nodes.scores["attn"], rtol=1e-4, atol=1e-6)
