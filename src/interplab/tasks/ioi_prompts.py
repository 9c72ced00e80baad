"""Indirect object identification (IOI) text: training corpus and evaluation prompts.

An IOI sentence names two people, repeats one of them (the subject, S) and ends where the
other one (the indirect object, IO) is the natural next word:

    "When Mary and John went to the store, John gave a drink to" -> " Mary"

The first clause lists the names in either order: IO first is ABBA, S first is BABA.

The split is fixed and documented here, so a model trained on `ioi_corpus` can be tested on
text it never saw:

- names: `TRAIN_NAMES` appear in training text, `HELDOUT_NAMES` never do;
- templates: a template is an intro clause plus an action clause. `TRAIN_TEMPLATES` (every
  training intro with every training action) appear in training text; `HELDOUT_TEMPLATES`
  (held-out intros with held-out actions) never do, nor does a held-out intro on its own.
  Every word of a held-out template occurs in training text, in filler sentences; a held-out
  action's verb occurs only in plain two-name sentences ("Mary passed the book to John."),
  never after an intro, so a held-out template is a new arrangement of known words.

Corruption (`IOIPrompt.corrupt`, chosen by `ioi_prompts(..., corruption=)`):

- `"io"` (the default): the second mention of S is replaced by IO, the "S2 -> IO" swap used in
  activation-patching tutorials. In the corrupted prompt IO is the repeated name, so the right
  answer flips to S and the logit difference (answer minus distractor) changes sign.
- `"third"`: the second mention of S is replaced by a third name C that the prompt does not hold
  (Wang et al.'s "ABC" distribution: no name is repeated, so neither S nor IO is the answer).
  C is drawn from the split's names by a second seeded stream, so the clean prompts are the same
  as with `"io"`.

Clean and corrupted prompts differ in one word only, so with single-token names they have the
same token length.

This module holds text only; it imports no model code.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

_NAMES_TEXT = """
Aaron Adam Alan Albert Alex Alice Amanda Amber Amy Andrea Andrew Angela Anna Anthony Arthur
Ashley Austin Barbara Benjamin Betty Beth Bill Billy Bob Bobby Brad Brandon Brenda Brian Bruce
Bryan Carl Carlos Carol Caroline Catherine Charles Charlie Chris Christina Christine
Christopher Cindy Claire Craig Cynthia Daniel Danielle David Dean Debbie Deborah Dennis Diana
Diane Donald Donna Dorothy Douglas Dylan Edward Elizabeth Ellen Emily Emma Eric Erica Ethan
Eugene Evan Evelyn Frank Fred Gabriel Gary George Gerald Gloria Gordon Grace Greg Gregory
Hannah Harold Harry Heather Helen Henry Holly Howard Ian Isaac Isabel Jack Jacob Jake James
Jamie Jane Janet Jason Jean Jeff Jeffrey Jennifer Jeremy Jerry Jesse Jessica Jill Jim Joan Joe
Joel John Jonathan Jordan Joseph Joshua Joyce Judith Judy Julia Julie Justin Karen Kate
Katherine Kathleen Kathy Keith Kelly Kenneth Kevin Kim Kyle Larry Laura Lauren Lawrence Leo
Linda Lisa Logan Louis Lucy Luke Lynn Madison Margaret Maria Marie Marilyn Mark Martha Martin
Mary Matthew Megan Melissa Michael Michelle Mike Monica Nancy Natalie Nathan Nicholas Nicole
Noah Oliver Olivia Oscar Pamela Patricia Patrick Paul Paula Peter Philip Rachel Ralph Randy
Raymond Rebecca Richard Rita Robert Robin Roger Ronald Rose Roy Russell Ruth Ryan Samuel Sandra
Sara Sarah Scott Sean Sharon Shirley Simon Sophie Stephanie Stephen Steve Steven Susan Teresa
Terry Thomas Tim Timothy Tina Todd Tom Tony Tracy Tyler Valerie Victor Victoria Vincent
Virginia Walter Wayne William Zach
"""
_ALL_NAMES = sorted(_NAMES_TEXT.split())

#: Every 5th name (in alphabetical order) is held out: it never appears in training text.
HELDOUT_NAMES: tuple[str, ...] = tuple(_ALL_NAMES[4::5])
TRAIN_NAMES: tuple[str, ...] = tuple(n for n in _ALL_NAMES if n not in set(HELDOUT_NAMES))

# fmt: off
PLACES: tuple[str, ...] = (
    "store", "garden", "restaurant", "school", "hospital", "office", "house", "station", "park",
    "library", "market", "beach", "museum", "kitchen", "church", "bakery", "harbor", "farm",
)
OBJECTS: tuple[str, ...] = (
    "ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack", "book", "bag",
    "letter", "flower", "hat", "cake", "ticket", "key", "gift", "pencil", "coin", "map",
)
# fmt: on

# A template is an intro naming {A} and {B} (the two names, in random order) followed by an
# action whose subject {S} is the repeated name and which ends just before the indirect object.
# Training text combines every training intro with every training action; the held-out
# templates combine held-out intros with held-out actions, so neither half was ever trained on.
TRAIN_INTROS: tuple[str, ...] = (
    "Then, {A} and {B} went to the {PLACE}.",
    "Then, {A} and {B} had a lot of fun at the {PLACE}.",
    "Then, {A} and {B} were working at the {PLACE}.",
    "Then, {A} and {B} were thinking about going to the {PLACE}.",
    "Then, {A} and {B} had a long argument, and afterwards",
    "Then, {A} and {B} had a long argument. Afterwards",
    "After {A} and {B} went to the {PLACE},",
    "After the lunch, {A} and {B} went to the {PLACE}.",
    "Afterwards, {A} and {B} went to the {PLACE}.",
    "When {A} and {B} got a {OBJECT} at the {PLACE},",
    "When {A} and {B} went to the {PLACE},",
    "While {A} and {B} were working at the {PLACE},",
    "While {A} and {B} were commuting to the {PLACE},",
    "The {PLACE} {A} and {B} went to had a {OBJECT}.",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}.",
    "Later, {A} and {B} met at the {PLACE}.",
    "Before {A} and {B} left the {PLACE},",
    "{A} and {B} spent the day at the {PLACE}. In the evening,",
    "Once {A} and {B} left the {PLACE},",
    "After school, {A} and {B} walked to the {PLACE}.",
    "In the morning, {A} and {B} drove to the {PLACE}.",
    "Last week, {A} and {B} went to the {PLACE}.",
    "Since {A} and {B} were at the {PLACE},",
    "Because {A} and {B} were bored at the {PLACE},",
    "{A} and {B} were talking at the {PLACE}.",
    "When {A} and {B} came back from the {PLACE},",
    "Once {A} and {B} reached the {PLACE},",
    "While {A} and {B} waited at the {PLACE},",
    "{A} and {B} had dinner at the {PLACE}. Afterwards",
    "After {A} and {B} bought a {OBJECT} at the {PLACE},",
    "On the way to the {PLACE}, {A} and {B} stopped, and",
    "Before {A} and {B} went home,",
    "Today, {A} and {B} stayed at the {PLACE}.",
    "{A} and {B} went to the {PLACE}, and later",
    "{A} and {B} were hungry at the {PLACE}, so",
    "{A} and {B} got home. Then",
    "{A} and {B} met at the {PLACE}, and soon",
    "{A} and {B} were at the {PLACE}. After that,",
    "{A} and {B} played at the {PLACE}, but",
    "{A} and {B} went to the {PLACE}, and there",
    "In the {PLACE}, {A} and {B} sat down, and",
    "{A} and {B} left the {PLACE}. Later,",
    "{A} and {B} opened the {PLACE}, and right away",
    "{A} and {B} talked for a long time, and then",
    "Last night {A} and {B} cooked in the {PLACE}, and then",
    "On Friday, {A} and {B} painted the {PLACE}, and then",
    "{A} and {B} rested in the {PLACE}, and after that",
    "{A} and {B} went to the {PLACE}, where",
    "On Sunday, {A} and {B} stopped at the {PLACE}, where",
    "This morning {A} and {B} fixed the {PLACE}. Then",
    "As soon as {A} and {B} entered the {PLACE},",
    "{A} and {B} were standing in the {PLACE}.",
    "At noon {A} and {B} left the {PLACE}, and so",
)
TRAIN_ACTIONS: tuple[str, ...] = (
    "{S} gave a {OBJECT} to",
    "{S} gave the {OBJECT} to",
    "{S} gave it to",
    "{S} decided to give a {OBJECT} to",
    "{S} wanted to give a {OBJECT} to",
    "{S} said to",
    "{S} brought a {OBJECT} to",
    "{S} lent a {OBJECT} to",
    "{S} offered a {OBJECT} to",
    "{S} sent a {OBJECT} to",
    "{S} sent it to",
    "{S} decided to send a {OBJECT} to",
    "{S} mailed a {OBJECT} to",
    "{S} returned the {OBJECT} to",
    "{S} tossed a {OBJECT} to",
    "{S} delivered a {OBJECT} to",
    "{S} carried the {OBJECT} to",
    "{S} promised a {OBJECT} to",
    "{S} mentioned the {OBJECT} to",
    "{S} described the {PLACE} to",
    "{S} brought it to",
    "{S} lent it to",
    "{S} gave a small {OBJECT} to",
    "{S} wrote a letter to",
    "{S} read a story to",
    "{S} explained the problem to",
    "{S} talked to",
    "{S} spoke to",
    "{S} waved to",
    "{S} whispered to",
    "{S} took a {OBJECT} to",
    "{S} sent the {OBJECT} to",
    "{S} pushed the {OBJECT} to",
    "{S} kicked a {OBJECT} to",
    "{S} told a joke to",
    "{S} sang a song to",
    "{S} lent the {OBJECT} to",
    "{S} offered the {OBJECT} to",
)
HELDOUT_INTROS: tuple[str, ...] = (
    "When {A} and {B} arrived at the {PLACE},",
    "{A} and {B} were sitting in the {PLACE}.",
    "Yesterday {A} and {B} cleaned the {PLACE}, and then",
    "As {A} and {B} walked into the {PLACE},",
    "On Monday, {A} and {B} visited the {PLACE}, where",
)
HELDOUT_ACTIONS: tuple[str, ...] = (
    "{S} handed a {OBJECT} to",
    "{S} passed the {OBJECT} to",
    "{S} threw a {OBJECT} to",
    "{S} showed the {OBJECT} to",
    "{S} sold a {OBJECT} to",
)
TRAIN_TEMPLATES: tuple[str, ...] = tuple(f"{i} {a}" for i in TRAIN_INTROS for a in TRAIN_ACTIONS)
HELDOUT_TEMPLATES: tuple[str, ...] = tuple(f"{i} {a}" for i in HELDOUT_INTROS for a in HELDOUT_ACTIONS)

# Sentences without the IOI structure: {N} and {M} are distinct names and only {N} may be
# repeated, so a filler never holds two names with one of them repeated. Fillers also carry
# every word of the held-out templates, and use the held-out actions' verbs in plain
# "N verb a thing to M" sentences, so the model knows that these verbs take a recipient.
FILLERS: tuple[str, ...] = (
    "The {PLACE} was quiet in the morning.",
    "{N} liked the {OBJECT} very much.",
    "It was a cold day at the {PLACE}.",
    "{N} walked to the {PLACE} alone.",
    "{N} handed a {OBJECT} to {M}.",
    "{N} passed the {OBJECT} to {M}.",
    "{N} threw a {OBJECT} to {M}.",
    "{N} showed the {OBJECT} to {M}.",
    "{N} sold a {OBJECT} to {M}.",
    "Everyone at the {PLACE} was happy.",
    "{N} and {M} talked for a long time.",
    "{N} bought a {OBJECT} at the {PLACE}.",
    "The {OBJECT} was on the table.",
    "{N} said that the {PLACE} was busy.",
    "Yesterday it rained, and then the sun came out.",
    "{N} was sitting in the {PLACE} with a {OBJECT}.",
    "{N} passed the {PLACE} on the way home.",
    "The children threw a ball in the {PLACE}.",
    "{N} showed {M} the way to the {PLACE}.",
    "On Monday, the {PLACE} opened early.",
    "{N} visited the {PLACE} where {M} works.",
    "{N} sold the old {OBJECT}.",
    "As the sun set, {N} walked into the {PLACE}.",
    "{N} arrived at the {PLACE} late.",
    "We cleaned the {PLACE} after the party.",
    "{N} found the {OBJECT} under the bed.",
    "The {OBJECT} in the {PLACE} was new.",
    "{N} gave a speech at the {PLACE}.",
    "{N} and {M} were friends for many years.",
    "In the evening, the {PLACE} was full of people.",
    "{N} wanted to go home.",
    "Nobody knew where the {OBJECT} was.",
    "{N} was tired, so {N} went home.",
    "{N} lost the {OBJECT}, and later {N} found it.",
    "{N} said that {N} liked the {PLACE}.",
    "When {N} saw the {OBJECT}, {N} smiled.",
    "{N} walked to the {PLACE} because {N} wanted a {OBJECT}.",
)

SPLITS = ("train", "test", "test_names", "test_templates")


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI contrast: `clean` continues with `answer` (IO); `distractor` is S. With the "io"
    corruption `corrupt` (S2 -> IO) continues with `distractor`; with "third" (S2 -> C) with neither.

    `answer` and `distractor` are continuation strings with their leading space (" Mary"), so
    `clean + answer` is the full sentence.
    """

    clean: str
    corrupt: str
    answer: str
    distractor: str


def _split_pools(split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, templates) for a split: "train", "test" (both held out), "test_names", "test_templates"."""
    pools = {
        "train": (TRAIN_NAMES, TRAIN_TEMPLATES),
        "test": (HELDOUT_NAMES, HELDOUT_TEMPLATES),
        "test_names": (HELDOUT_NAMES, TRAIN_TEMPLATES),
        "test_templates": (TRAIN_NAMES, HELDOUT_TEMPLATES),
    }
    if split not in pools:
        raise ValueError(f"unknown IOI split {split!r}; choose one of {', '.join(SPLITS)}")
    return pools[split]


def _fill(template: str, io: str, s: str, io_first: bool, place: str, obj: str, s2: str) -> str:
    a, b = (io, s) if io_first else (s, io)
    return template.format(A=a, B=b, S=s2, PLACE=place, OBJECT=obj)


CORRUPTIONS = ("io", "third")


def _draw(rng: random.Random, names: tuple[str, ...], templates: tuple[str, ...], word_noise: float = 0.0,
          third: random.Random | None = None) -> IOIPrompt:
    """One prompt; with ``third`` (a second stream) S2 becomes a third name drawn from it, else IO."""
    template = rng.choice(templates)
    if word_noise:
        template = _noisy(template, rng, word_noise)
    io, s = rng.sample(names, 2)
    io_first = rng.random() < 0.5
    place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
    s2 = io if third is None else third.choice([name for name in names if name not in (io, s)])
    return IOIPrompt(
        clean=_fill(template, io, s, io_first, place, obj, s2=s),
        corrupt=_fill(template, io, s, io_first, place, obj, s2=s2),
        answer=" " + io,
        distractor=" " + s,
    )


def ioi_prompts(n: int, seed: int = 0, split: str = "test", corruption: str = "io") -> list[IOIPrompt]:
    """`n` seeded IOI prompts from one split, corrupted by ``corruption`` (``"io"`` or
    ``"third"``; see the module docstring for the splits and corruptions)."""
    if n < 1:
        raise ValueError(f"n must be a positive number of prompts, got {n}")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown IOI corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    names, templates = _split_pools(split)
    rng = random.Random(f"ioi-prompts/{split}/{seed}")
    third = random.Random(f"ioi-third/{split}/{seed}") if corruption == "third" else None
    return [_draw(rng, names, templates, third=third) for _ in range(n)]


@cache
def _template_words() -> tuple[str, ...]:
    return tuple(sorted({w for t in TRAIN_TEMPLATES for w in re.findall(r"(?<![{\w])\w+(?![}\w])", t)}))


def _noisy(template: str, rng: random.Random, p: float) -> str:
    """The template with each word (not a name slot, not the final "to") replaced, with
    probability ``p``, by a random word of the training templates."""
    words = _template_words()
    parts = re.split(r"(\{[A-Z]+\}|\w+)", template)
    last = max(i for i, part in enumerate(parts) if part == "to")
    return "".join(rng.choice(words) if i != last and re.fullmatch(r"\w+", part) and rng.random() < p else part
                   for i, part in enumerate(parts))


def _filler(rng: random.Random, cast: list[str]) -> str:
    n, m = rng.sample(cast, 2)
    return rng.choice(FILLERS).format(N=n, M=m, PLACE=rng.choice(PLACES), OBJECT=rng.choice(OBJECTS))


def ioi_corpus(
    n_docs: int,
    seed: int = 0,
    ioi_fraction: float = 0.8,
    sentences: tuple[int, int] = (2, 3),
    cast: tuple[int, int] = (2, 4),
    word_noise: float = 0.0,
) -> list[str]:
    """`n_docs` seeded training documents built only from training names and templates.

    Each document is a short story: it picks a cast of `cast` (inclusive range) training names
    and then `sentences` (inclusive range) sentences about them; each sentence is a complete IOI
    sentence (prompt, answer and a full stop) with probability `ioi_fraction`, else a filler.
    Characters recur across a story's sentences as in real text, which is what teaches a small
    model to copy names from its context early in training. ``word_noise`` replaces each word of
    an IOI sentence's template (not the names, not the final "to") by a random word of the
    training templates with that probability, so that which words sit between the names does
    not decide the answer; no held-out template word comes in that way.
    """
    if n_docs < 1:
        raise ValueError(f"n_docs must be a positive number of documents, got {n_docs}")
    if not 0.0 <= ioi_fraction <= 1.0:
        raise ValueError(f"ioi_fraction must lie in [0, 1], got {ioi_fraction}")
    if cast[0] < 2:
        raise ValueError(f"a story needs a cast of at least 2 names, got {cast}")
    rng = random.Random(f"ioi-corpus/{seed}")
    docs = []
    for _ in range(n_docs):
        names = rng.sample(TRAIN_NAMES, rng.randint(*cast))
        parts = []
        for _ in range(rng.randint(*sentences)):
            if rng.random() < ioi_fraction:
                p = _draw(rng, tuple(names), TRAIN_TEMPLATES, word_noise)
                parts.append(p.clean + p.answer + ".")
            else:
                parts.append(_filler(rng, names))
        docs.append(" ".join(parts))
    return docs


def vocabulary_words() -> list[str]:
    """Every word and punctuation mark any IOI text can contain, held-out names included."""
    text = " ".join((*TRAIN_TEMPLATES, *HELDOUT_TEMPLATES, *FILLERS, *PLACES, *OBJECTS, *_ALL_NAMES))
    text = re.sub(r"\{[A-Z]+\}", " ", text)
    return sorted(set(re.findall(r"\w+|[^\w\s]+", text)))
