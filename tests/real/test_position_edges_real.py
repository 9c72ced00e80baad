"""Position-resolved edges on the real models: a source's edges sum to its node score (patterns fixed)."""

import torch

import interplab as il


def test_edges_of_each_source_sum_to_its_node_score(real_model):
    """Gemma 3 writes through post-norms, so there only the embeddings (the residual entering block 0)
    are both an edge source and a node; SmolLM2 checks every source."""
    task = il.tasks.ioi(real_model, n=2, seed=0)
    edges = il.circuits.attribute(real_model, task, method="atp", level="edge", keep=None)
    nodes = il.circuits.attribute(real_model, task, method="relp", rules=("attention",))  # AtP, pattern fixed
    sums = torch.zeros(2 * real_model.anatomy.n_layers + 1, len(edges.labels))
    for edge, score in edges.edges():
        source = edge.source
        sums[0 if source.component == "embed" else 2 * source.layer + (1 if source.component == "attn" else 2),
             source.position] += score
    checked = [("embed", sums[:1], nodes.scores["resid"][:1])]
    if not real_model.blocks[0].has("ln_attn_post"):
        checked += [("attn", sums[1::2], nodes.scores["attn"]), ("mlp", sums[2::2], nodes.scores["mlp"])]
    for name, got, expected in checked:
        assert expected.abs().max() > 0.01, name
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))
