"""Hand-written references for the circuits tests: plain transformers forwards with torch hooks.

Nothing here uses nnsight or interplab.circuits. Every prompt runs on its own, unpadded; a node at
position ``p`` of a window of ``S`` positions is token ``p - (S - length)`` of a prompt (skipped
when negative: that position is padding for this prompt).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

import interplab as il


def ids_of(model, text: str) -> torch.Tensor:
    return torch.tensor([model.tokenizer(text)["input_ids"]], device=model.device)


def token_id(model, text: str) -> int:
    (i,) = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    return i


def last_metric(logits: torch.Tensor, answer: int, distractor: int, metric: str = "logit_diff") -> torch.Tensor:
    """A task metric of one prompt's last-position logits, written out by hand."""
    logits = logits.float()
    if metric == "logit_diff":
        return logits[answer] - logits[distractor]
    probs = torch.exp(logits - logits.max())
    probs = probs / probs.sum()
    if metric == "prob_diff":
        return probs[answer] - probs[distractor]
    assert metric == "logprob"
    return torch.log(probs[answer])


def logit_diff(model, ids, answer: int, distractor: int, metric: str = "logit_diff") -> torch.Tensor:
    return last_metric(model.hf(input_ids=ids).logits[0, -1], answer, distractor, metric)


def site_module(model, component: str, layer: int):
    """(module, reads_input) of a node's activation."""
    block = model.blocks[layer]
    if component == "resid":
        return model.hf.get_submodule(f"{model.family.layers}.{layer}"), True
    if component == "head":
        return block.module("attn_out"), True
    if component == "attn":
        return block.module("attn_out"), False
    return block.module("mlp"), False


@contextmanager
def hooked(module, reads_input: bool, fn):
    """Apply ``fn(activation) -> activation or None`` to a module's first input or its output."""
    if reads_input:
        def pre(mod, args, kwargs):
            if args:
                new = fn(args[0])
                return ((new if new is not None else args[0]), *args[1:]), kwargs
            key = next(iter(kwargs))
            new = fn(kwargs[key])
            if new is not None:
                kwargs[key] = new
            return args, kwargs
        handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    else:
        def post(mod, args, output):
            tensor = output[0] if isinstance(output, tuple) else output
            new = fn(tensor)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        handle = module.register_forward_hook(post)
    try:
        yield
    finally:
        handle.remove()


def capture(model, ids, sites):
    """Activations at ``sites`` [(component, layer)] in one forward (kept in the graph)."""
    found = {}
    contexts = []
    for component, layer in sites:
        module, reads_input = site_module(model, component, layer)

        def keep(t, key=(component, layer)):
            found[key] = t
        contexts.append(hooked(module, reads_input, keep))
    for c in contexts:
        c.__enter__()
    try:
        out = model.hf(input_ids=ids).logits
    finally:
        for c in reversed(contexts):
            c.__exit__(None, None, None)
    return found, out


def feature_slice(model, head):
    d = model.anatomy.d_head
    return slice(None) if head is None else slice(head * d, (head + 1) * d)


def patch_reference(model, prompts, nodes, metric: str = "logit_diff") -> list[float]:
    """Per node: mean over prompts of LD(corrupt run with the node's clean activation) - LD(corrupt run)
    (or another ``metric`` in place of LD).

    ``prompts``: list of (clean_text, corrupt_text, answer_id, distractor_id); a node is (component,
    layer, head, position), position in the right-aligned window of the longest prompt (or None).
    One plain forward per node and prompt.
    """
    lengths = [ids_of(model, c).shape[1] for c, _, _, _ in prompts]
    window = max(lengths)
    sites = sorted({(c, layer) for c, layer, _, _ in nodes})
    totals = [0.0] * len(nodes)
    with torch.no_grad():
        for (clean, corrupt, answer, distractor), length in zip(prompts, lengths):
            clean_acts, _ = capture(model, ids_of(model, clean), sites)
            corrupt_ids = ids_of(model, corrupt)
            base = logit_diff(model, corrupt_ids, answer, distractor, metric)
            for k, (component, layer, head, position) in enumerate(nodes):
                tokens = slice(None) if position is None else position - (window - length)
                if isinstance(tokens, int) and tokens < 0:
                    continue
                features = feature_slice(model, head)
                clean_act = clean_acts[(component, layer)]

                def put(t, tokens=tokens, features=features, clean_act=clean_act):
                    t = t.clone()
                    t[:, tokens, features] = clean_act[:, tokens, features]
                    return t
                with hooked(*site_module(model, component, layer), put):
                    patched = logit_diff(model, corrupt_ids, answer, distractor, metric)
                totals[k] += float(patched - base)
    return [t / len(prompts) for t in totals]


def atp_reference(model, prompts, sites, heads: bool = False, metric: str = "logit_diff") -> dict:
    """Per (component, layer): AtP scores per right-aligned position ``[S]`` (``[H, S]`` for heads)."""
    lengths = [ids_of(model, c).shape[1] for c, _, _, _ in prompts]
    window = max(lengths)
    n = len(prompts)
    out = {}
    for (clean, corrupt, answer, distractor), length in zip(prompts, lengths):
        with torch.no_grad():
            clean_acts, _ = capture(model, ids_of(model, clean), sites)
        corrupt_acts, logits = capture(model, ids_of(model, corrupt), sites)
        for t in corrupt_acts.values():
            t.retain_grad()
        value = last_metric(logits[0, -1], answer, distractor, metric) / n
        model.hf.zero_grad(set_to_none=True)
        value.backward()
        for key, act in corrupt_acts.items():
            product = ((clean_acts[key] - act) * act.grad)[0].detach()  # [length, features]
            per_head = key[0] == "head"  # [H, length] per head, else [length]
            product = product.view(length, model.anatomy.n_heads, -1).sum(-1).T if per_head else product.sum(-1)
            padded = torch.zeros(*product.shape[:-1], window, device=product.device)
            padded[..., window - length:] = product
            out[key] = out.get(key, 0) + padded
    model.hf.zero_grad(set_to_none=True)
    return out


def il_task(model, prompts, metric="logit_diff"):
    """The same prompts as an interplab ContrastTask."""
    clean, corrupt, answer, distractor = zip(*prompts)
    return il.circuits.ContrastTask.build(model, list(clean), list(corrupt), list(answer), list(distractor),
                                          metric=metric)


def ig_reference(model, prompts, sites, alphas, weights, metric: str = "logit_diff", held: bool = False) -> dict:
    """Integrated gradients from the corrupted to the clean run, per (component, layer): scores per
    right-aligned position ``[S]`` (``[H, S]`` for heads), like ``atp_reference``.

    Each prompt runs alone, once per point ``alphas[k]``: the embedding module's output is
    ``corrupt + alpha (clean - corrupt)``; with ``held`` every site is held at its own
    interpolation too, its gradient still flowing through the module that computed it. Score:
    ``(clean - corrupt) . sum_k weights[k] * gradient at point k``, averaged over prompts.
    """
    lengths = [ids_of(model, c).shape[1] for c, _, _, _ in prompts]
    window = max(lengths)
    embed = model.module("embed")
    out = {}
    for (clean, corrupt, answer, distractor), length in zip(prompts, lengths):
        runs, embeds = [], []
        for text in (clean, corrupt):
            with torch.no_grad(), hooked(embed, False, embeds.append):
                runs.append(capture(model, ids_of(model, text), sites)[0])
        integral = {key: 0 for key in sites}
        for alpha, weight in zip(alphas, weights):
            point = embeds[1] + alpha * (embeds[0] - embeds[1])
            found = {}
            contexts = [hooked(embed, False, lambda t, point=point: point + 0 * t)]
            for component, layer in sites:
                module, reads_input = site_module(model, component, layer)
                key = (component, layer)

                def at_point(t, key=key, alpha=alpha, runs=runs, found=found):
                    if held:
                        value = runs[1][key] + alpha * (runs[0][key] - runs[1][key])
                        t = value + (t - t.detach())
                    found[key] = t
                    return t
                contexts.append(hooked(module, reads_input, at_point))
            for c in contexts:
                c.__enter__()
            try:
                logits = model.hf(input_ids=ids_of(model, corrupt)).logits
            finally:
                for c in reversed(contexts):
                    c.__exit__(None, None, None)
            value = last_metric(logits[0, -1], answer, distractor, metric)
            grads = torch.autograd.grad(value, [found[key] for key in sites])
            for key, grad in zip(sites, grads):
                integral[key] = integral[key] + weight * grad
        for key in sites:
            product = ((runs[0][key] - runs[1][key]) * integral[key])[0].detach() / len(prompts)
            product = product.view(length, model.anatomy.n_heads, -1).sum(-1).T if key[0] == "head" else product.sum(-1)
            padded = torch.zeros(*product.shape[:-1], window, device=product.device)
            padded[..., window - length:] = product
            out[key] = out.get(key, 0) + padded
    return out
