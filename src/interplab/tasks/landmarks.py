"""A factual-recall contrast task: which city a landmark is in.

    task = il.tasks.landmarks(model, n=16, seed=0)

Clean: "The Eiffel Tower is in the city of" -> " Paris"; corrupt: the landmark is swapped for one
in another city ("The Colosseum is in the city of"), whose city (" Rome") is the distractor in both
runs. The logit difference answer minus distractor is positive on clean prompts and negative on
corrupted ones for a model that knows both landmarks. Unlike IOI, the contrast lives in the
subject's tokens (often several) and the answer is recalled, not copied from the context.

A pair is usable for a model when both landmarks tokenise to the same number of tokens (so the
two prompts line up position by position) and both cities are one token with their leading
space. ``LANDMARKS`` holds landmarks that both real models of the zoo (SmolLM2-135M-Instruct and
Gemma 3 270M) place in the right city among the cities listed here.
"""

from __future__ import annotations

import random

from .contrast import ContrastTask, TaskError

__all__ = ["LANDMARKS", "TEMPLATE", "landmarks"]

TEMPLATE = "The {} is in the city of"

LANDMARKS: tuple[tuple[str, str], ...] = (
    ("Eiffel Tower", "Paris"), ("Louvre", "Paris"), ("Arc de Triomphe", "Paris"), ("Notre-Dame Cathedral", "Paris"),
    ("Colosseum", "Rome"), ("Trevi Fountain", "Rome"), ("Pantheon", "Rome"), ("Vatican", "Rome"),
    ("Big Ben", "London"), ("Buckingham Palace", "London"), ("Westminster Abbey", "London"),
    ("Brandenburg Gate", "Berlin"), ("Reichstag", "Berlin"), ("Kremlin", "Moscow"),
    ("Acropolis", "Athens"), ("Parthenon", "Athens"), ("Sagrada Familia", "Barcelona"), ("Prado Museum", "Madrid"),
    ("Sydney Opera House", "Sydney"), ("Forbidden City", "Beijing"), ("Tiananmen Square", "Beijing"),
    ("Hagia Sophia", "Istanbul"), ("Burj Khalifa", "Dubai"), ("Rijksmuseum", "Amsterdam"),
    ("Uffizi Gallery", "Florence"), ("Schönbrunn Palace", "Vienna"), ("Rialto Bridge", "Venice"),
    ("Doge's Palace", "Venice"), ("Egyptian Museum", "Cairo"),
)


def landmarks(model, n: int = 16, seed: int = 0) -> ContrastTask:
    """``n`` seeded (landmark, other landmark) pairs as a ``ContrastTask`` for ``model``.

    Pairs are drawn without repetition from every ordered pair of landmarks in different cities
    whose prompts have equal token lengths for this tokenizer. Raises ``TaskError`` when fewer
    than ``n`` such pairs exist.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TaskError(f"n must be a positive number of prompts, got {n!r}")
    tokenizer = model.tokenizer
    cities = sorted({city for _, city in LANDMARKS})
    single = {c for c, ids in zip(cities, tokenizer([" " + c for c in cities], add_special_tokens=False)["input_ids"])
              if len(ids) == 1}
    usable = [(s, c) for s, c in LANDMARKS if c in single]
    lengths = [len(ids) for ids in tokenizer([TEMPLATE.format(s) for s, _ in usable])["input_ids"]]
    pairs = [(i, j) for i in range(len(usable)) for j in range(len(usable))
             if lengths[i] == lengths[j] and usable[i][1] != usable[j][1]]
    if len(pairs) < n:
        raise TaskError(f"only {len(pairs)} landmark pairs have equal token lengths and single-token cities for "
                        f"this tokenizer, fewer than the {n} asked for: ask for n <= {len(pairs)}")
    chosen = random.Random(f"landmarks/{seed}").sample(pairs, n)
    clean = [TEMPLATE.format(usable[i][0]) for i, _ in chosen]
    corrupt = [TEMPLATE.format(usable[j][0]) for _, j in chosen]
    return ContrastTask.build(model, clean, corrupt, [" " + usable[i][1] for i, _ in chosen],
                              [" " + usable[j][1] for _, j in chosen], name="landmarks")
