"""Everyday sentences labelled with three simple concepts: ``animal``, ``food`` and ``vehicle``.

The data for fitting and measuring concept detection on real language models. Each sentence
marks its concept words as ``{concept:word}`` (every mention, so that no concept word of a
sentence is left as a negative); unmarked words are negatives for every concept. ``"train"``
sentences fit the concepts and their thresholds; ``"test"`` sentences are held out: new
sentences, about half of their concept words unseen in ``"train"`` (``wolf``, ``lorry``,
``porridge``), and negatives that sit near the concepts (a kitchen, a road, a zoo's ticket office).

    from interplab.tasks import everyday
    examples = everyday.examples("train")    # {"animal": [(text, [(start, end), ...]), ...], ...}
    negatives = everyday.negatives("train")  # sentences without any concept word
"""

from __future__ import annotations

import re

__all__ = ["CONCEPTS", "SPLITS", "examples", "negatives", "sentences"]

CONCEPTS: tuple[str, ...] = ("animal", "food", "vehicle")
SPLITS: tuple[str, ...] = ("train", "test")

_TRAIN = (
    "Yesterday a {animal:dog} chased a {animal:cat} across the garden.",
    "My grandmother keeps a {animal:horse} and two {animal:cows} on her farm.",
    "We saw an {animal:elephant} and a {animal:lion} at the zoo last summer.",
    "The little {animal:rabbit} hid under the bush when it heard the {animal:fox}.",
    "In the evening the {animal:owl} hunts for a {animal:mouse} in the field.",
    "A {animal:parrot} can learn to repeat a few words.",
    "The shepherd counted his {animal:sheep} and his {animal:goats} before dark.",
    "At the pond the children fed the {animal:ducks} and watched a {animal:frog}.",
    "A {animal:tiger} rested in the shade of a tall tree.",
    "Her neighbour has a {animal:monkey} that steals {food:fruit} from the kitchen.",
    "For breakfast he ate {food:bread} with {food:butter} and a boiled {food:egg}.",
    "She made a big bowl of {food:soup} for the whole family.",
    "The children shared a {food:pizza} and a plate of {food:salad} after the game.",
    "I bought {food:rice}, {food:cheese} and a bag of {food:apples} at the market.",
    "Grandpa baked a {food:chocolate} {food:cake} for my birthday.",
    "For lunch we had {food:pasta} with {food:tomato} {food:sauce}.",
    "He always carries a {food:banana} and a {food:sandwich} in his bag.",
    "The recipe needs three {food:potatoes}, two {food:carrots} and some {food:onions}.",
    "They served warm {food:cookies} and {food:yogurt} at the meeting.",
    "Please put the {food:noodles} in the pot when the water boils.",
    "We took the {vehicle:bus} to school because the {vehicle:car} would not start.",
    "A heavy {vehicle:truck} blocked the road for an hour.",
    "She rides her {vehicle:bicycle} to work every morning.",
    "The {vehicle:train} left the station ten minutes late.",
    "He fixed the engine of his old {vehicle:motorcycle} in the garage.",
    "The farmer drove the {vehicle:tractor} across the muddy field.",
    "We waited for a {vehicle:taxi} outside the hotel.",
    "The {vehicle:airplane} landed safely despite the storm.",
    "A small {vehicle:boat} carried the tourists to the island.",
    "An {vehicle:ambulance} and a {vehicle:van} were parked in front of the hospital.",
    "The {animal:dog} jumped into the back of the {vehicle:truck}.",
    "We ate {food:sandwiches} on the {vehicle:train} to the coast.",
    "The {animal:horse} was eating an {food:apple} beside the {vehicle:tractor}.",
    "A {animal:cat} slept on the roof of the {vehicle:car}.",
    "The {animal:goat} tried to eat the {food:bread} we left on the table.",
    "They loaded the {food:cheese} and the {food:cakes} into the {vehicle:van}.",
)

_TRAIN_NEGATIVES = (
    "The meeting was moved to Thursday afternoon.",
    "It rained all night and the streets were wet in the morning.",
    "She finished reading the book before going to sleep.",
    "The teacher explained the lesson twice.",
    "We painted the kitchen walls a pale blue colour.",
    "The road to the village was closed for repairs.",
    "He could not find his keys anywhere in the house.",
    "The museum opens at nine and closes at five.",
    "Our team won the match by two goals.",
    "The price of the tickets went up this year.",
    "I wrote a long letter to my old friend.",
    "The music was too loud for a quiet evening.",
)

_TEST = (
    "A {animal:wolf} howled somewhere in the dark forest.",
    "The {animal:bear} slept in a cave near the cold river.",
    "A {animal:squirrel} ran up the tree and disappeared.",
    "We watched a {animal:dolphin} swim beside the harbour wall.",
    "The {animal:deer} stood still at the edge of the road.",
    "My cousin is afraid of every {animal:snake} she sees.",
    "An old {animal:donkey} carried the bags up the hill.",
    "The {animal:cat} ignored the {animal:dog} and went back to sleep.",
    "At the camp we cooked {food:porridge} with {food:honey} over the fire.",
    "She sliced the {food:strawberries} and put them on the {food:pancakes}.",
    "He ordered a bowl of {food:noodles} and some {food:dumplings}.",
    "The bakery sells fresh {food:bread} and sweet {food:pies} every day.",
    "I had {food:toast} with {food:jam} for breakfast.",
    "They grilled {food:sausages} and {food:corn} in the garden.",
    "The soldiers drove a {vehicle:jeep} along the desert track.",
    "A red {vehicle:lorry} delivered the furniture.",
    "The {vehicle:helicopter} circled above the stadium.",
    "We crossed the city by {vehicle:tram} and then by {vehicle:subway}.",
    "He sold his {vehicle:scooter} and bought a {vehicle:car}.",
    "The {vehicle:ship} sailed out of the port at dawn.",
    "A {animal:cow} walked slowly in front of the {vehicle:bus}.",
    "The {vehicle:van} was full of {food:melons} for the market.",
    "The {animal:rabbit} nibbled a {food:carrot} near the {vehicle:bicycle}.",
)

_TEST_NEGATIVES = (
    "The kitchen was clean and the table was set.",
    "Traffic on the road was slow after the accident.",
    "We bought two tickets at the zoo's office.",
    "The garage door needs a new lock.",
    "He forgot to water the plants on the balcony.",
    "The river flooded the fields last spring.",
    "Her report was finished before the deadline.",
    "They talked about the weather for an hour.",
)

_MARK = re.compile(r"\{(\w+):([^{}]+)\}")


def sentences(split: str = "train") -> list[tuple[str, dict[str, list[tuple[int, int]]]]]:
    """The split's labelled sentences: (plain text, {concept: [character spans]}), negatives
    included (with no spans)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    marked, plain = (_TRAIN, _TRAIN_NEGATIVES) if split == "train" else (_TEST, _TEST_NEGATIVES)
    return [_unmark(s) for s in marked] + [(s, {}) for s in plain]


def examples(split: str = "train") -> dict[str, list[tuple[str, list[tuple[int, int]]]]]:
    """``{concept: [(text, spans)]}`` for ``Concepts.from_examples`` / ``detection_quality``. A
    sentence that marks several concepts is listed under each; its unmarked words are negatives."""
    out: dict[str, list] = {c: [] for c in CONCEPTS}
    for text, spans in sentences(split):
        for concept, where in spans.items():
            out[concept].append((text, where))
    return out


def negatives(split: str = "train") -> list[str]:
    """The split's sentences without any concept word."""
    return [text for text, spans in sentences(split) if not spans]


def _unmark(marked: str) -> tuple[str, dict[str, list[tuple[int, int]]]]:
    text, spans, at = [], {}, 0
    for match in _MARK.finditer(marked):
        text.append(marked[at:match.start()])
        start = sum(map(len, text))
        concept, word = match.groups()
        if concept not in CONCEPTS:
            raise ValueError(f"unknown concept {concept!r} in {marked!r}")
        text.append(word)
        spans.setdefault(concept, []).append((start, start + len(word)))
        at = match.end()
    text.append(marked[at:])
    return "".join(text), spans
