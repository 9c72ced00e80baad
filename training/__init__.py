"""The scripts that train interplab's shipped demo models (``interplab.zoo``'s ``ioi``, ``experts``
and ``ontology`` folders). They live outside the installed package: the wheel ships the loader and
the weights, not the training code. Run them from the repository root:

    python -m training.train_ioi --out DIR
    python -m training.train_experts --out DIR
    python -m training.train_ontology --out DIR

They use interplab's own instruments (``il.experts``, ``il.reasoning.SAE``) for their evaluations.
"""
