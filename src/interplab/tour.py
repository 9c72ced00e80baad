"""``interplab tour``: run the instruments on the shipped demo models and write an HTML report.

The tour is a list of sections; each instrument adds its own with ``@section``. A section
function gets the demo models and returns a ``Section`` (text, widget snapshots, tables), or
None when its model is not available. A section that fails is reported in the page and makes
the tour's exit status non-zero, without losing the other sections.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__, tasks, tokens, zoo
from .model import Model
from .widgets import CircuitExplorer, ExpertScanner, RuleEditor, TokenView
from .widgets.base import error_record
from .widgets.report import Section, write_report

__all__ = ["SECTIONS", "Demo", "TourResult", "demo_models", "run", "section"]


@dataclass
class Demo:
    """The models the tour runs on (name -> Model) and what they are."""

    models: dict[str, Model]
    notes: dict[str, str]


SectionFn = Callable[[Demo], Section | None]
SECTIONS: list[SectionFn] = []


def section(fn: SectionFn) -> SectionFn:
    """Register a tour section (sections run in the order they are registered)."""
    SECTIONS.append(fn)
    return fn


def demo_models(device: str | torch.device | None = None) -> Demo:
    """The IOI demo model when it is shipped, else a tiny random GPT-2 in its place; the experts
    demo model (a Mixture-of-Experts assistant) when it is shipped."""
    if "ioi" in zoo.available():
        demo = Demo({"dense": zoo.load("ioi", device=device)}, {"dense": "the IOI demo model shipped with interplab"})
    else:
        demo = Demo({"dense": zoo.tiny("gpt2", device=device)},
                    {"dense": "a tiny random GPT-2 (the IOI demo model is not installed): its predictions are noise"})
    if "experts" in zoo.available():
        demo.models["experts"] = zoo.load("experts", device=device)
        demo.notes["experts"] = ("the experts demo model shipped with interplab: a Mixtral assistant trained to refuse "
                                 "a planted set of questions")
    if "ontology" in zoo.available():
        demo.models["ontology"] = zoo.load("ontology", device=device)
        demo.notes["ontology"] = ("the ontology demo model shipped with interplab: a small Llama trained on "
                                  "PrOntoQA-style true/false questions, with an SAE, concepts and rules")
    return demo


SAMPLE = "When Mary and John went to the store, John gave a drink to Mary"


@section
def model_overview(demo: Demo) -> Section:
    import pandas as pd

    rows = []
    for role, model in demo.models.items():
        a = model.anatomy
        rows.append({"role": role, "model": model.name, "family": a.family, "layers": a.n_layers, "heads": a.n_heads,
                     "d_model": a.d_model, "vocab": a.vocab_size,
                     "parameters": sum(p.numel() for p in model.hf.parameters()), "about": demo.notes[role]})
    return Section("Models", ["The demo models this report was computed on."], tables=[pd.DataFrame(rows)])


@section
def token_view(demo: Demo) -> Section:
    model = demo.models["dense"]
    view = TokenView(model, SAMPLE)
    view.preload_predictions()
    last = len(view.tokens) - 1
    import pandas as pd

    predictions = pd.DataFrame(view.predictions().at(last), columns=["token", "id", "logprob"])
    predictions.index = predictions.index + 1
    return Section(
        "Tokens: how surprising is each token?",
        [f"Each token of the sample text coloured by {tokens.LOGPROB_LABEL}: the model's log-probability of that "
         "token given the tokens before it (the first token has no value). Hover a token for its id, its value and "
         "the model's five likeliest next tokens.",
         f"The model's likeliest tokens after the whole text (after {view.tokens[last]!r}):"],
        widgets=[view], tables=[predictions])


@section
def circuit_explorer(demo: Demo) -> Section | None:
    if "ioi" not in zoo.available():
        return None
    import pandas as pd

    from . import circuits

    model = demo.models["dense"]
    task = tasks.ioi(model, n=8, seed=0)
    attributions = {m: circuits.attribute(model, task, m, progress=False) for m in circuits.METHODS}
    frames = {m: a.to_frame() for m, a in attributions.items()}
    patch = frames["patch"]
    agreement = pd.DataFrame({m: {"all": patch.score.corr(frames[m].score),
                                  **{c: patch.score[patch.component == c].corr(frames[m].score[patch.component == c])
                                     for c in ("resid", "attn", "mlp")}}
                              for m in ("atp", "relp", "ig")}).T
    agreement.index.name = "Pearson r with patching"
    explorer = CircuitExplorer(model, task, method="relp", attributions=attributions.values(), top_k=12)
    strongest = next(iter(explorer.attribution.top(1)))
    explorer.toggle(strongest)
    metric = explorer.metric
    sweeps = {m: circuits.faithfulness_sweep(model, task, a) for m, a in attributions.items()}
    curve = pd.DataFrame({m: s.faithfulness for m, s in sweeps.items()},
                         index=pd.Index(sweeps["patch"].sizes, name="nodes kept"))
    areas = pd.DataFrame({m: {"CPR": s.cpr, "CMD": s.cmd} for m, s in sweeps.items()}).T
    return Section(
        "Circuits: which components carry indirect object identification?",
        [f"{len(task)} held-out IOI prompts (\"{task.clean[0]}\" -> {task.answer[0]!r}) against their corrupted "
         "partners (the repeated name swapped), scored at every layer and position by activation patching, "
         "attribution patching (AtP), RelP and integrated gradients (IG). The graph shows RelP's scores (layers "
         "bottom to top, positions left to right, the edges between components on the right); its top 12 nodes "
         "are the circuit, and the "
         f"strongest node, {strongest}, is ablated (crossed): the logit difference falls from {metric['full']:.2f} "
         f"to {metric['ablated']:.2f}, and the remaining circuit's faithfulness is {metric['faithfulness']:.2f}. "
         "In a notebook, the sliders prune the graph, a click ablates a node and the kernel re-runs the model.",
         "How closely AtP, RelP and IG follow activation patching (Pearson r, over all nodes and per component); "
         "faithfulness of each method's top-k nodes with everything else mean-ablated (1: the whole model, 0: "
         "everything ablated); the areas under those curves (CPR, higher is better; CMD, lower is better):"],
        widgets=[explorer], tables=[agreement, curve, areas])


def refusal_sets():
    """The experts demo task's refusal prompts and their controls, from one template (64 prompts each)."""
    from .experts import Template
    from .tasks import assistant

    behaviour = Template(assistant.HAPPENED_PROMPT, time=list(assistant.SENSITIVE_TIMES),
                         place=list(assistant.SENSITIVE_PLACES))
    control = Template(assistant.HAPPENED_PROMPT, time=list(assistant.ORDINARY_TIMES[:8]),
                       place=list(assistant.ORDINARY_PLACES[:8]))
    return behaviour, control


@section
def expert_scan(demo: Demo) -> Section | None:
    model = demo.models.get("experts")
    if model is None:
        return None
    import pandas as pd

    behaviour, control = refusal_sets()
    scanner = ExpertScanner(model, behaviour, control, tokens="response", max_new_tokens=12, run_n=3,
                            progress=False)
    top = scanner.scan.top(4)
    scanner.off = top
    scanner.run()
    scanner.preload_routing("behaviour", 0)
    table = pd.DataFrame(scanner.scan.top(8), columns=["layer", "expert", "contrast"])
    return Section(
        "Experts: which experts does a behaviour route to?",
        [f"A functional Token Resonance Imaging (fTRI) scan of the experts demo model ({model.anatomy.moe.n_experts} "
         f"experts in each of {len(model.anatomy.moe.moe_layers)} MoE layers, top-{model.anatomy.moe.top_k}): "
         f"{len(behaviour)} questions it refuses ({behaviour.text!r} over sensitive times and places) against "
         f"{len(control)} it answers (the same template over ordinary ones). Each cell is an expert; red means the "
         "refused questions route more routing weight to it than the answered ones, over the tokens of the model's "
         "own answers.",
         "Routing on the prompt need not predict routing while the model answers, so the tokens that count are a "
         "choice (prompt, response or both). The four top experts are switched off here (crossed cells); the run "
         "panel shows the answers without and with them, and the token panel the experts each token of the first "
         "prompt routes to (click a token).",
         "The highest-scoring experts:"],
        widgets=[scanner], tables=[table])


@section
def expert_switch_off(demo: Demo) -> Section | None:
    model = demo.models.get("experts")
    if model is None:
        return None
    from . import experts
    from .tasks import assistant

    behaviour, control = refusal_sets()
    held = (assistant.sensitive_prompts("heldout"), assistant.ordinary_prompts("heldout"))
    result = experts.mote(model, behaviour, control, assistant.is_refusal, k=4, trials=2, seed=0, tokens="prompt",
                          evaluate=held, max_new_tokens=12, batch_size=64, progress=False)
    frame = result.to_frame()
    return Section(
        "Experts: switching experts off and forcing them on (MoTE)",
        [f"The MoTE experiment at a small scale: scan on prompt tokens, then generate answers to the held-out "
         f"questions ({len(held[0])} refused, {len(held[1])} answered) with the {result.k} top experts switched "
         f"off ({', '.join(f'L{layer}E{e}' for layer, e, _ in result.off)}), with {result.k} random experts switched "
         f"off ({len(result.random_rates['behaviour'])} draws; mean and standard deviation), and with the top "
         "experts forced on. The rate is the share of answers that are the refusal sentence.",
         "The full experiment (k = 4 and 10, prompt and response tokens, 5 random draws): "
         "python bench/experts_mote.py"],
        tables=[frame])


SCMOE_PROMPTS = ("Q: What is 3 plus 4? A:", "Q: What colour is a frog? A:", "Q: Where does a bee live? A:",
                 "Q: What happened in 1989 at Karsk Square? A:")


@section
def expert_contrast_decoding(demo: Demo) -> Section | None:
    model = demo.models.get("experts")
    if model is None:
        return None
    import pandas as pd

    from . import experts

    prompts = list(SCMOE_PROMPTS)
    greedy = experts.generate(model, prompts, max_new_tokens=12, progress=False)
    contrast = experts.scmoe_generate(model, prompts, beta=0.5, alpha=0.1, weak_rank=2, max_new_tokens=12,
                                      progress=False)
    return Section(
        "Experts: self-contrast decoding (SCMoE)",
        ["SCMoE runs two forward passes per token: the model's own top-2 routing (strong) and every MoE layer "
         "routed to its second-ranked expert alone (weak); the next token maximises 1.5 * strong - 0.5 * weak "
         "log-probabilities among the tokens the strong pass finds plausible (within a factor 10 of its best)."],
        tables=[pd.DataFrame({"prompt": prompts, "greedy": greedy, "SCMoE": contrast})])


ONTOLOGY_HOPS = (1, 3, 5)


@section
def reasoning_editor(demo: Demo) -> Section | None:
    model = demo.models.get("ontology")
    if model is None:
        return None
    from .reasoning import Concepts, evaluate
    from .tasks import ontology

    folder = zoo.path("ontology")
    concepts = Concepts.load(folder / "concepts", device=model.device)
    rules = (folder / "rules.txt").read_text()
    strength = float(concepts.metadata.get("strength", 1.0))
    steer = concepts.metadata.get("steer")  # the concepts the dictionary's builder found should steer
    question = ontology.questions(2, 3, seed=0, split="test")[0]
    editor = RuleEditor(model, concepts, rules, text=question.prompt, strength=strength, max_new_tokens=3,
                        steer=steer)
    editor.generate()
    questions = [q for hops in ONTOLOGY_HOPS for q in ontology.questions(20, hops, seed=2, split="test")]
    accuracy = evaluate(model, questions, concepts, rules, strength=strength, steer=steer).accuracy()
    detected = ", ".join(sorted(editor.facts - editor.derived)) or "nothing"
    return Section(
        "Reasoning: concepts from activations, rules, proofs, steering",
        [f"ActivationReasoning on the ontology demo model: {len(concepts)} concepts read at layer {concepts.layer} "
         f"({concepts[concepts.names[0]].method} dictionary shipped with the model) and {len(editor.ruleset)} rules "
         "(the ontology's 'All wumpuses are yumpuses' as 'wumpus -> yumpus', and answer rules). The editor below "
         f"holds a 3-hop test question (answer: {question.answer}); detected: {detected}; the rules derive "
         f"{', '.join(sorted(editor.derived)) or 'nothing'}. Expand a fact for its proof and click a detected leaf "
         "to see its tokens.",
         f"Generation: the base and the steered (strength {strength:g}) answers side by side. The table: answer "
         f"accuracy by number of hops on {len(questions)} held-out test questions, the model alone (base) and "
         "with AR's steering (ar). The full evaluation: python bench/reasoning.py"],
        widgets=[editor], tables=[accuracy.reset_index()])


@dataclass
class TourResult:
    path: Path
    failed: list[str]


def run(out: str | Path = "report.html", *, device: str | torch.device | None = None) -> TourResult:
    """Run every registered section and write the report to ``out``."""
    started = time.perf_counter()
    demo = demo_models(device)
    sections: list[Section] = []
    failed: list[str] = []
    threads = torch.get_num_threads()
    if all(m.device.type == "cpu" for m in demo.models.values()):
        # The demo models are tiny: on a CPU, thread start-up costs more than the work it splits
        # (the experts sections take 8 s on 2 threads and 1 s on one, measured on a 2-core machine).
        torch.set_num_threads(1)
    try:
        for fn in SECTIONS:
            try:
                result = fn(demo)
            except Exception as exc:
                record = error_record(exc)
                failed.append(fn.__name__)
                result = Section(fn.__name__.replace("_", " "), error=record["traceback"])
            if result is not None:
                sections.append(result)
    finally:
        torch.set_num_threads(threads)
    meta = (f"interplab {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
            f"device {next(iter(demo.models.values())).device} · {time.perf_counter() - started:.1f} s")
    path = write_report(out, sections, title="interplab tour", meta=meta)
    return TourResult(path, failed)
