"""A PrOntoQA-style true/false task over a fixed fictional ontology (the demo world of the
"ontology" zoo model).

The world: 30 categories in three trees, each edge ``(child, parent)`` read "All children are
parents" ("All wumpuses are yumpuses."). Every tree has two leaves at depth 5, so 1-, 3- and
5-hop questions all exist.

A question at ``k`` hops::

    All jompuses are zumpuses. Max is a wumpus. All wumpuses are yumpuses. ...
    True or false: is Max a zumpus?                          -> answer "True" or "False"

The context states two chains of ``k`` rules, one climbing from the stated category ``S`` and one
from a distractor category ``D``, plus 1-3 further true rules of the world, shuffled, with one
membership fact ("Max is a S.") inserted at a random place among them; then the question. A
true question asks for the top of the S chain (the k-th ancestor of S); a false one asks for the
top of the D chain, which is never an ancestor of S. The two chains have the same length and
both tops are mentioned as a rule's conclusion, so the context of a true and of a false
question look alike: only following the chain from S answers it.

Three choices serve the reasoning instrument, which reads concepts from single tokens. Rules
use plurals (as PrOntoQA often does), so the singular category words occur only in the fact
and in the question. The question reads "is Max a X?", not "Max is a X.", so its category word
is followed by "?" where a fact's is followed by ".", and a language model must tell the two
apart at that very token. And the fact sits at a random place, so a model must find it by
content (the entity's name) rather than at a fixed distance from the question.

Split (held out, so that the test split measures generalisation, not memory):

- ``TEST_NAMES`` never appear in the ``"train"`` split nor in the training corpus.
- 1-hop questions whose stated category is in ``HELD_OUT_STATED`` (a third of the categories
  that have a parent) appear only in ``"test"``: ``"train"`` 1-hop questions never state one of
  them, ``"test"`` 1-hop questions state any category (so about a third of them are held-out
  combinations). Multi-hop questions are never answered in training (see
  ``training/train_ontology.py``), so at 3 and 5 hops every combination is unseen.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cache

# (child, parent): "All children are parents". Three trees rooted at numpus, lorpus and kempus.
EDGES: tuple[tuple[str, str], ...] = (
    ("wumpus", "yumpus"), ("yumpus", "zumpus"), ("zumpus", "dumpus"), ("dumpus", "rompus"),
    ("rompus", "numpus"), ("tumpus", "vumpus"), ("vumpus", "impus"), ("impus", "dumpus"),
    ("jompus", "zumpus"),
    ("gorpus", "shumpus"), ("shumpus", "lempus"), ("lempus", "sterpus"), ("sterpus", "grimpus"),
    ("grimpus", "lorpus"), ("brimpus", "felpus"), ("felpus", "hompus"), ("hompus", "sterpus"),
    ("quimpus", "lempus"),
    ("torpus", "blimpus"), ("blimpus", "snorpus"), ("snorpus", "chumpus"), ("chumpus", "plompus"),
    ("plompus", "kempus"), ("frumpus", "gwompus"), ("gwompus", "drimpus"), ("drimpus", "chumpus"),
    ("yempus", "snorpus"),
)
ROOTS: tuple[str, ...] = ("numpus", "lorpus", "kempus")
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys([*ROOTS, *(c for edge in EDGES for c in edge)]))

# 1-hop questions stating one of these are held out of training (three per tree, depths 1-4).
HELD_OUT_STATED: frozenset[str] = frozenset({"yumpus", "impus", "rompus", "shumpus", "felpus", "grimpus",
                                            "blimpus", "drimpus", "plompus"})

TRAIN_NAMES: tuple[str, ...] = (
    "Max", "Sally", "Rex", "Alex", "Fae", "Polly", "Sam", "Stella", "Wren", "Jo", "Tom", "Anna", "Ben",
    "Clara", "Dan", "Eve", "Finn", "Gina", "Hugo", "Ivy", "Jack", "Kate", "Leo", "Mia", "Ned", "Olga",
    "Paul", "Rosa", "Ted", "Uma",
)
TEST_NAMES: tuple[str, ...] = ("Vera", "Walt", "Xena", "Yuri", "Zoe", "Abe", "Bea", "Cal", "Dora", "Eli")
NAMES: tuple[str, ...] = TRAIN_NAMES + TEST_NAMES

ANSWERS: tuple[str, str] = ("True", "False")
SPLITS: tuple[str, str] = ("train", "test")


@dataclass(frozen=True)
class Question:
    """One question. ``prompt`` ends right before the answer; the full text is
    ``prompt + " " + answer``. ``rules`` are the (child, parent) edges stated in the context,
    in order; ``distractor`` is the category whose chain the context states besides ``stated``'s."""

    prompt: str
    answer: str
    hops: int
    entity: str
    stated: str
    queried: str
    distractor: str
    rules: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}"

    def concept_spans(self) -> dict[str, tuple[int, int]]:
        """Where the reasoning concepts are labelled: character spans in ``prompt`` of the
        concept ``<stated>`` ("the entity is a <stated>": the category word of the membership
        sentence) and of ``asks_<queried>`` (the category word of the question)."""
        fact = membership_sentence(self.entity, self.stated)
        fact_start = self.prompt.rindex(fact)
        stated_start = fact_start + len(fact) - len(self.stated) - 1
        queried_start = len(self.prompt) - len(self.queried) - 1
        return {self.stated: (stated_start, stated_start + len(self.stated)),
                f"asks_{self.queried}": (queried_start, queried_start + len(self.queried))}


def article(category: str) -> str:
    return "an" if category[0] in "aeiou" else "a"


def plural(category: str) -> str:
    return f"{category}es"


def rule_sentence(child: str, parent: str) -> str:
    return f"All {plural(child)} are {plural(parent)}."


def membership_sentence(entity: str, category: str) -> str:
    return f"{entity} is {article(category)} {category}."


def question_sentence(entity: str, category: str) -> str:
    return f"True or false: is {entity} {article(category)} {category}?"


@cache
def _parents() -> dict[str, str]:
    return dict(EDGES)


def ancestors(category: str) -> tuple[str, ...]:
    """The strict ancestors of ``category``, nearest first."""
    _check_category(category)
    chain, parents = [], _parents()
    while category in parents:
        category = parents[category]
        chain.append(category)
    return tuple(chain)


def depth(category: str) -> int:
    return len(ancestors(category))


def rules_text() -> str:
    """The ontology as the reasoning instrument's rules: one ``child -> parent`` line per edge,
    followed by the answer rules (see docs/reasoning.md, "The ontology demo")."""
    lines = ["# The ontology: 'All children are parents'."]
    lines += [f"{child} -> {parent}" for child, parent in EDGES]
    lines.append("# The answer: the queried category holds for the entity, or it does not.")
    for c in CATEGORIES:
        lines.append(f"asks_{c} and {c} -> answer_true")
        lines.append(f"asks_{c} and not {c} -> answer_false")
    return "\n".join(lines) + "\n"


def questions(n: int, hops: int, seed: int = 0, split: str = "test") -> list[Question]:
    """``n`` questions at ``hops`` (1 to 5) from ``split`` ("train" or "test"), alternating
    True / False answers (so balanced), reproducible from ``seed``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    _check_hops(hops)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"ontology:{split}:{hops}:{seed}")
    return [_question(rng, hops, split, truth=(i % 2 == 0)) for i in range(n)]


def search_questions(n: int, hops: int, seed: int = 0) -> list[Question]:
    """Questions to label concepts on (their answers are not used): the training names, every
    category stated, the held-out ones included (the depth-1 categories are stated only at one
    hop, so the ``"train"`` split never states three of them)."""
    _check_hops(hops)
    rng = random.Random(f"ontology:search:{hops}:{seed}")
    return [_question(rng, hops, "search", truth=(i % 2 == 0)) for i in range(n)]


def corpus(n: int, seed: int = 0, one_hop_share: float = 0.8) -> list[Question]:
    """``n`` training documents: questions of the ``"train"`` split, a share ``one_hop_share``
    at 1 hop and the rest spread evenly over 2 to 5 hops."""
    if not 0.0 <= one_hop_share <= 1.0:
        raise ValueError(f"one_hop_share must lie in [0, 1], got {one_hop_share!r}")
    rng = random.Random(f"ontology:corpus:{seed}")
    docs = []
    for _ in range(n):
        hops = 1 if rng.random() < one_hop_share else rng.randint(2, 5)
        docs.append(_question(rng, hops, "train", truth=rng.random() < 0.5))
    return docs


def _question(rng: random.Random, hops: int, split: str, truth: bool) -> Question:
    entity = rng.choice(TEST_NAMES if split == "test" else TRAIN_NAMES)
    stated = rng.choice(_stated_choices(hops, split))
    distractor = rng.choice(_distractor_choices(stated, hops))
    chains = _chain(stated, hops) + _chain(distractor, hops)
    others = [e for e in EDGES if e not in chains]
    rules = list(dict.fromkeys(chains + rng.sample(others, rng.randint(1, 3))))
    rng.shuffle(rules)
    queried = ancestors(stated)[hops - 1] if truth else ancestors(distractor)[hops - 1]
    sentences = [rule_sentence(c, p) for c, p in rules]
    sentences.insert(rng.randint(0, len(sentences)), membership_sentence(entity, stated))
    prompt = " ".join([*sentences, question_sentence(entity, queried)])
    return Question(prompt=prompt, answer=ANSWERS[0] if truth else ANSWERS[1], hops=hops, entity=entity,
                    stated=stated, queried=queried, distractor=distractor, rules=tuple(rules))


@cache
def _stated_choices(hops: int, split: str) -> tuple[str, ...]:
    deep = [c for c in CATEGORIES if depth(c) >= hops]
    if hops == 1 and split == "train":
        deep = [c for c in deep if c not in HELD_OUT_STATED]
    return tuple(deep)


@cache
def _distractor_choices(stated: str, hops: int) -> tuple[str, ...]:
    """Categories whose k-th ancestor is neither ``stated`` nor one of its ancestors."""
    excluded = {stated, *ancestors(stated)}
    return tuple(c for c in CATEGORIES if depth(c) >= hops and ancestors(c)[hops - 1] not in excluded)


def _chain(category: str, hops: int) -> list[tuple[str, str]]:
    path = (category, *ancestors(category)[:hops])
    return list(itertools.pairwise(path))


def _check_category(category: str) -> None:
    if category not in _parents() and category not in ROOTS:
        raise ValueError(f"unknown category {category!r}; the ontology's categories are {CATEGORIES}")


def _check_hops(hops: int) -> None:
    if not isinstance(hops, int) or not 1 <= hops <= 5:
        raise ValueError(f"hops must be an integer from 1 to 5 (the ontology is 5 levels deep), got {hops!r}")
