"""Faithfulness: exact endpoints, hand-computed values with torch hooks, sweeps with CPR/CMD, ablate speed."""

import time

import pytest
import torch
from circuit_reference import hooked, ids_of, il_task, logit_diff, site_module, token_id
from conftest import DENSE_FAMILIES

from interplab.circuits import (
    Circuit,
    Edge,
    Node,
    ablate,
    attribute,
    faithfulness,
    faithfulness_sweep,
)
from interplab.zoo.tiny import tiny

TEXTS = [
    ("the cat sat on the mat and the dog", "the dog sat on the mat and the cat", " sat", " is"),
    ("Mary gave a drink to John and John gave", "Mary gave a drink to John and Mary gave", " a", " the"),
    ("a dog was in the store , it was", "a cat was in the store , it was", " on", " in"),
]


@pytest.fixture(scope="module")
def setup():
    model = tiny("gpt2", seed=4)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    return model, prompts, il_task(model, prompts)


def activations(model, text, sites):
    """Outputs of (component, layer) sites for one prompt (hooks, no grad)."""
    found = {}
    handles = []
    for component, layer in sites:
        module, reads_input = site_module(model, component, layer)
        handles.append(hooked(module, reads_input, lambda t, key=(component, layer): found.__setitem__(key, t)))
    with torch.no_grad():
        for h in handles:
            h.__enter__()
        model.hf(input_ids=ids_of(model, text))
        for h in reversed(handles):
            h.__exit__(None, None, None)
    return found


def hand_metric(model, prompts, replaced: dict, heads: dict | None = None) -> float:
    """Mean LD over clean prompts with sites replaced: replaced[(component, layer)] = fn(prompt index)."""
    total = 0.0
    for i, (clean, _, answer, distractor) in enumerate(prompts):
        contexts = []
        for (component, layer), value in replaced.items():
            module, reads_input = site_module(model, component, layer)
            v = value(i)
            if component == "head":
                keep = heads[layer]

                def put(t, v=v, keep=keep):
                    t = t.clone()
                    d = model.anatomy.d_head
                    for h in range(model.anatomy.n_heads):
                        if h not in keep:
                            t[..., h * d:(h + 1) * d] = v[..., h * d:(h + 1) * d]
                    return t
            else:
                def put(t, v=v):
                    return v.expand_as(t).clone()
            contexts.append(hooked(module, reads_input, put))
        for c in contexts:
            c.__enter__()
        with torch.no_grad():
            total += float(logit_diff(model, ids_of(model, clean), answer, distractor))
        for c in reversed(contexts):
            c.__exit__(None, None, None)
    return total / len(prompts)


@pytest.mark.parametrize("ablation", ["mean", "zero", "corrupt"])
def test_component_faithfulness_by_hand(setup, ablation):
    model, prompts, task = setup
    sites = [(c, layer) for layer in range(2) for c in ("attn", "mlp")]
    clean = [activations(model, p[0], sites) for p in prompts]
    corrupt = [activations(model, p[1], sites) for p in prompts]
    reference = {
        "mean": lambda site: (lambda i: torch.stack([c[site] for c in clean]).mean(0)),
        "zero": lambda site: (lambda i: torch.zeros_like(clean[i][site])),
        "corrupt": lambda site: (lambda i: corrupt[i][site]),
    }[ablation]
    circuit = Circuit("component", frozenset({Node("attn", 0), Node("mlp", 1)}))
    outside = [("attn", 1), ("mlp", 0)]
    full = hand_metric(model, prompts, {})
    empty = hand_metric(model, prompts, {s: reference(s) for s in sites})
    kept = hand_metric(model, prompts, {s: reference(s) for s in outside})
    expected = (kept - empty) / (full - empty)
    assert faithfulness(model, task, circuit, ablation=ablation) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert ablate(model, task, [Node("attn", 1), Node("mlp", 0)], ablation) == pytest.approx(kept, abs=1e-5)


def test_head_faithfulness_by_hand(setup):
    model, prompts, task = setup
    keep = {0: {1, 3}, 1: {2}}
    circuit = Circuit("head", frozenset({Node("head", 0, 1), Node("head", 0, 3), Node("head", 1, 2),
                                         Node("mlp", 0)}))
    corrupt = [activations(model, p[1], [("head", 0), ("head", 1), ("mlp", 1), ("mlp", 0)]) for p in prompts]
    heads_out = {("head", 0): lambda i: corrupt[i][("head", 0)], ("head", 1): lambda i: corrupt[i][("head", 1)]}
    full = hand_metric(model, prompts, {})
    everything = {**heads_out, ("mlp", 0): lambda i: corrupt[i][("mlp", 0)],
                  ("mlp", 1): lambda i: corrupt[i][("mlp", 1)]}
    empty = hand_metric(model, prompts, everything, heads={0: set(), 1: set()})
    kept = hand_metric(model, prompts, {**heads_out, ("mlp", 1): lambda i: corrupt[i][("mlp", 1)]}, heads=keep)
    expected = (kept - empty) / (full - empty)
    assert faithfulness(model, task, circuit, ablation="corrupt") == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("family", DENSE_FAMILIES)
def test_edge_faithfulness_by_hand(family):
    """Edges outside the circuit: the reader sees the source's corrupt write instead of its real one.

    Readers are the pre-norms (the sublayers themselves in post-norm blocks, OLMo 2); a write is the
    sublayer's output after any post-norm, times the config's residual multiplier (Granite)."""
    model = tiny(family, seed=4)
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in TEXTS]
    task = il_task(model, prompts)
    blocks = [model.blocks[layer] for layer in range(2)]
    multiplier = getattr(model.hf.config, "residual_multiplier", 1.0)
    parallel = bool(getattr(model.hf.config, "use_parallel_residual", False))

    def reading(block, sublayer):
        norm = "ln_attn" if sublayer == "attn" else "ln_mlp"
        return block.module(norm if block.has(norm) else sublayer)

    def writing(block, sublayer):
        post = f"ln_{sublayer}_post"
        return (block.module(post), False) if block.has(post) else site_module(model, sublayer, block.index)

    readers = {Node(c, b.index): reading(b, c) for b in blocks for c in ("attn", "mlp")}
    readers[Node("logits", 2)] = model.module("final_norm")
    writers = {Node("embed", 0): site_module(model, "resid", 0)}
    writers.update({Node(c, b.index): writing(b, c) for b in blocks for c in ("attn", "mlp")})

    def run(text, removed: set, references=None):
        writes = {}
        contexts = [hooked(m, r, lambda t, u=u: writes.__setitem__(u, t)) for u, (m, r) in writers.items()]

        def reader(node):
            def pre(module, args, kwargs):
                key = None if args else next(iter(kwargs))
                x = args[0] if args else kwargs[key]
                for u in writers:
                    if Edge(u, node) in removed:
                        x = x - (writes[u] - references[u]) * (1.0 if u.component == "embed" else multiplier)
                return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, key: x})
            return pre
        handles = [m.register_forward_pre_hook(reader(node), with_kwargs=True) for node, m in readers.items()]
        for c in contexts:
            c.__enter__()
        try:
            with torch.no_grad():
                logits = model.hf(input_ids=ids_of(model, text)).logits
        finally:
            for c in reversed(contexts):
                c.__exit__(None, None, None)
            for h in handles:
                h.remove()
        return logits, writes

    all_edges = {e for e, _ in attribute(model, task, method="atp", level="edge").edges()}
    # embed->5, attn0->4, mlp0->3, attn1->2, mlp1->1; parallel blocks lack attn.l -> mlp.l
    assert len(all_edges) == 5 + 4 + 3 + 2 + 1 - (2 if parallel else 0)
    circuit = {Edge(Node("embed", 0), Node("attn", 0)), Edge(Node("attn", 0), Node("mlp", 1)),
               Edge(Node("mlp", 1), Node("logits", 2)), Edge(Node("embed", 0), Node("logits", 2))}

    def metric(removed):
        total = 0.0
        for clean, corrupt, answer, distractor in prompts:
            _, references = run(corrupt, set())
            logits, _ = run(clean, removed, references)
            total += float(logits[0, -1, answer] - logits[0, -1, distractor])
        return total / len(prompts)

    full, empty, kept = metric(set()), metric(all_edges), metric(all_edges - circuit)
    expected = (kept - empty) / (full - empty)
    got = faithfulness(model, task, Circuit("edge", frozenset(circuit)), ablation="corrupt")
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("level", ["component", "head", "edge"])
def test_full_circuit_is_one_and_empty_circuit_zero_exactly(setup, level):
    model, _, task = setup
    att = attribute(model, task, method="atp", level=level)
    everything = Circuit(level, frozenset(unit for unit, _ in att.ranking()))
    for ablation in ("mean", "zero", "corrupt"):
        assert faithfulness(model, task, everything, ablation=ablation) == 1.0
        assert faithfulness(model, task, Circuit(level), ablation=ablation) == 0.0


def test_sweep_reports_f_per_size_and_the_areas(setup):
    model, _, task = setup
    att = attribute(model, task, method="relp", positions=False)  # 4 ranked units: attn/mlp x 2 layers
    curve = faithfulness_sweep(model, task, att, sizes=[0, 1, 2, 0.75, 1.0], ablation="mean")
    assert curve.sizes == (0, 1, 2, 3, 4) and curve.total == 4
    assert curve.fractions == (0.0, 0.25, 0.5, 0.75, 1.0)
    ranked = [unit for unit, _ in att.ranking()]
    expected_f = [faithfulness(model, task, Circuit("component", frozenset(ranked[:k])), "mean") for k in range(5)]
    assert curve.faithfulness == pytest.approx(expected_f, abs=1e-5)
    assert curve.faithfulness[0] == 0.0 and curve.faithfulness[-1] == 1.0
    f = expected_f
    cpr = 0.25 * ((f[0] + f[1]) / 2 + (f[1] + f[2]) / 2 + (f[2] + f[3]) / 2 + (f[3] + f[4]) / 2)
    g = [abs(1 - v) for v in f]
    cmd = 0.25 * ((g[0] + g[1]) / 2 + (g[1] + g[2]) / 2 + (g[2] + g[3]) / 2 + (g[3] + g[4]) / 2)
    assert curve.cpr == pytest.approx(cpr, abs=1e-5) and curve.cmd == pytest.approx(cmd, abs=1e-5)
    frame = curve.to_frame()
    assert list(frame.columns) == ["size", "fraction", "faithfulness", "metric"] and len(frame) == 5
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        faithfulness_sweep(model, task, att, sizes=[7])


def test_bad_circuits_are_clear_errors(setup):
    model, _, task = setup
    with pytest.raises(ValueError, match="resid node is a residual-stream state"):
        faithfulness(model, task, [Node("resid", 0)])
    with pytest.raises(ValueError, match="unknown ablation"):
        ablate(model, task, [Node("attn", 0)], ablation="resample")
    with pytest.raises(ValueError, match="not an edge of this model"):
        ablate(model, task, [Edge(Node("mlp", 1), Node("attn", 0))])
    with pytest.raises(ValueError, match="mixes nodes with and without positions"):
        faithfulness(model, task, [Node("attn", 0), Node("mlp", 1, None, 3)])


def test_ablate_is_one_quick_forward(setup):
    model, _, _ = setup
    texts = TEXTS * 6  # 18 prompts
    prompts = [(c, r, token_id(model, a), token_id(model, d)) for c, r, a, d in texts]
    task = il_task(model, prompts)
    nodes = [Node("attn", 1, None, 8), Node("mlp", 0, None, 3)]
    ablate(model, task, nodes, "mean")  # computes and caches the references
    times = []
    for _ in range(3):
        start = time.perf_counter()
        ablate(model, task, nodes, "mean")
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 0.5
