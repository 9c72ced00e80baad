"""The experts instrument: routing capture, fTRI scans, switching experts off / forcing them on, SCMoE.

    routing = il.experts.route(model, prompts, off=[(layer, expert)], on=[...])
    scan = il.experts.scan(model, behaviour=prompts_or_template, control=prompts_or_template)
    scan.scores, scan.top(10)
    il.experts.generate(model, prompts, off=scan.top(10), max_new_tokens=32)
    il.experts.compare(model, {"behaviour": b, "control": c}, off=scan.top(10), classify=...)
    with il.experts.intervene(model, off=[(3, 5)]):
        ...  # any model.trace / model.nn.generate here is rerouted

``layer`` is always the decoder-layer index, not the index among MoE layers.
"""

from ..run import observe_progress
from .compare import Comparison, compare
from .generate import REFUSAL_PATTERNS, behaviour_rate, generate, refusal_classifier
from .interventions import active_masks, apply_routing, intervene
from .masks import ExpertMasks, expert_masks
from .mote import MoteResult, mote
from .result import ExpertScan, Routing, SetStats
from .route import route
from .scan import scan
from .scmoe import scmoe_generate
from .template import Template

__all__ = [
    "REFUSAL_PATTERNS", "Comparison", "ExpertMasks", "ExpertScan", "MoteResult", "Routing", "SetStats", "Template",
    "active_masks", "apply_routing", "behaviour_rate", "compare", "expert_masks", "generate", "intervene", "mote",
    "observe_progress", "refusal_classifier", "route", "scan", "scmoe_generate",
]
