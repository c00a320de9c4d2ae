"""The commongen world: a seeded generator of concept triples and short sentences that use them.

A hand-written lexicon (agents, objects, places, verbs with their inflections, adjectives) and a template
grammar produce one-clause sentences such as "The old dog chases a red ball in the park." A *concept set*
is three lemmas of different roles (agent, verb, object, place) that one sentence of the grammar can hold;
the prompt lists them alphabetically: ``"Words: ball, dog, park. Sentence:"``.

Splits. A triple belongs to the eval split iff a stable hash of it is 0 mod 5, so no eval triple ever
appears in training; train and eval prompts also come from different seeds.

The grammar is a set of slot sequences (:func:`slot_sequences`); the generator fills one, and
:func:`grammatical_bigrams` expands every adjacent slot pair into word pairs, so the gold judge's notion
of fluency is exactly what the generator can produce.

>>> world = CommonGenWorld(seed=0, split="train")
>>> item = world.item(0)
>>> item.prompt == prompt_for(item.concepts)
True
>>> all(any(f in words_of(item.sentence) for f in forms(c)) for c in item.concepts)
True
>>> CommonGenWorld(seed=0, split="train").items(3) == world.items(3)
True
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from rlhf_gym.errors import ConfigError

__all__ = ["SPLITS", "SEEDS", "CommonGenWorld", "Item", "forms", "grammatical_bigrams", "prompt_for",
           "sentence_for", "split_of", "words_of", "START", "END"]

# ---- lexicon -------------------------------------------------------------------------------------

_AGENTS = {w.split()[0]: tuple(w.split()) for w in (
    "dog dogs", "cat cats", "boy boys", "girl girls", "man men", "woman women", "child children",
    "baby babies", "farmer farmers", "teacher teachers", "student students", "doctor doctors",
    "cook cooks", "player players", "bird birds", "horse horses", "cow cows", "fox foxes",
    "rabbit rabbits", "duck ducks")}
_OBJECTS = {w.split()[0]: tuple(w.split()) for w in (
    "ball balls", "book books", "apple apples", "kite kites", "bike bikes", "box boxes", "hat hats",
    "cup cups", "bottle bottles", "bag bags", "chair chairs", "table tables", "letter letters",
    "cake cakes", "sandwich sandwiches", "guitar guitars", "drum drums", "flower flowers", "stick sticks",
    "bone bones", "car cars", "boat boats", "phone phones", "key keys", "shoe shoes")}
_PLACES = ("park", "kitchen", "garden", "river", "beach", "street", "school", "field", "forest", "lake",
           "yard", "house", "room", "city", "farm")
# base, third person singular, past, -ing
_TRANSITIVE = {w.split()[0]: tuple(w.split()) for w in (
    "chase chases chased chasing", "throw throws threw throwing", "catch catches caught catching",
    "kick kicks kicked kicking", "carry carries carried carrying", "hold holds held holding",
    "find finds found finding", "drop drops dropped dropping", "push pushes pushed pushing",
    "pull pulls pulled pulling", "wash washes washed washing", "paint paints painted painting",
    "read reads read reading", "eat eats ate eating", "watch watches watched watching",
    "buy buys bought buying", "sell sells sold selling", "bring brings brought bringing",
    "fix fixes fixed fixing", "open opens opened opening", "hide hides hid hiding",
    "build builds built building", "cut cuts cut cutting", "draw draws drew drawing",
    "lift lifts lifted lifting", "clean cleans cleaned cleaning", "take takes took taking")}
_INTRANSITIVE = {w.split()[0]: tuple(w.split()) for w in (
    "run runs ran running", "jump jumps jumped jumping", "sleep sleeps slept sleeping",
    "sit sits sat sitting", "swim swims swam swimming", "walk walks walked walking",
    "sing sings sang singing", "dance dances danced dancing", "play plays played playing",
    "rest rests rested resting", "wait waits waited waiting", "laugh laughs laughed laughing",
    "cry cries cried crying")}
_ADJECTIVES = ("old", "young", "small", "big", "red", "blue", "green", "brown", "happy", "little", "tall",
               "quiet", "busy", "tired", "hungry", "white", "black", "new", "shiny", "funny")
_PREPOSITIONS = ("in", "near", "by", "behind", "at")
_DETERMINERS = {"SG": ("the", "a"), "PL": ("the", "some", "two")}
_AUX = {("present", "SG"): "is", ("present", "PL"): "are", ("past", "SG"): "was", ("past", "PL"): "were"}

#: Sentence boundaries in bigrams: START precedes the first word, END follows the final "." (its last word).
START, END = "<s>", "</s>"
SPLITS = ("train", "eval", "demo")
#: Seed of each split's stream (the shipped model pretrains on the train seed's triples).
SEEDS = {"train": 0, "eval": 1, "demo": 2}
# Which concept roles a triple combines; each pattern fits one template of the grammar.
_PATTERNS = (("agent", "vt", "obj"), ("agent", "vt", "place"), ("agent", "obj", "place"),
             ("vt", "obj", "place"), ("agent", "vi", "place"))
_POOLS = {"agent": _AGENTS, "vt": _TRANSITIVE, "vi": _INTRANSITIVE, "obj": _OBJECTS,
          "place": {p: (p,) for p in _PLACES}}
_FORMS = {lemma: fs for pool in _POOLS.values() for lemma, fs in pool.items()}


def forms(lemma: str) -> tuple[str, ...]:
    """Every inflected form of a concept lemma ("dog" -> dog, dogs); an unknown word is just itself.

    >>> forms("catch"), forms("child"), forms("zebra")
    (('catch', 'catches', 'caught', 'catching'), ('child', 'children'), ('zebra',))
    """
    return _FORMS.get(lemma, (lemma,))


def words_of(text: str) -> list[str]:
    """Lower-cased words of ``text``, punctuation stripped."""
    return re.findall(r"[a-z0-9]+", text.lower())


def prompt_for(concepts: tuple[str, ...]) -> str:
    """The prompt listing ``concepts`` alphabetically."""
    return f"Words: {', '.join(sorted(concepts))}. Sentence:"


def split_of(concepts: tuple[str, ...]) -> str:
    """``"eval"`` for one triple in five (a stable hash of the sorted lemmas), else ``"train"``."""
    digest = hashlib.sha256(",".join(sorted(concepts)).encode()).digest()
    return "eval" if digest[0] % 5 == 0 else "train"


# ---- grammar -------------------------------------------------------------------------------------
# A slot is "ROLE:FORM" (AGENT:SG, OBJ:PL, VT:PAST, VI:ING, PLACE), "DET:SG"/"DET:PL", "ADJ", "PREP", or a
# literal word ("the", "is", END).
_VERB_FORM = {"BASE": 0, "3SG": 1, "PAST": 2, "ING": 3}
_NOUN_FORM = {"SG": 0, "PL": 1}


def _sequence(kind: str, tense: str, subj: str, obj: str, adj_subj: bool, adj_obj: bool,
              place: bool) -> list[str]:
    verb = "VT" if kind == "t" else "VI"
    out = ["DET:" + subj] + (["ADJ"] if adj_subj else []) + ["AGENT:" + subj]
    if tense in ("present", "past"):
        out.append(f"{verb}:{'PAST' if tense == 'past' else '3SG' if subj == 'SG' else 'BASE'}")
    else:  # progressive: "is chasing", "were chasing"
        out += [_AUX[(tense.removesuffix("_prog"), subj)], verb + ":ING"]
    if kind == "t":
        out += ["DET:" + obj] + (["ADJ"] if adj_obj else []) + ["OBJ:" + obj]
    return out + (["PREP", "the", "PLACE"] if place else []) + [END]


def slot_sequences() -> list[list[str]]:
    """Every slot sequence of the grammar (each optional adjective and place phrase in or out)."""
    out = []
    for kind in ("t", "i"):
        for tense in ("present", "past", "present_prog", "past_prog"):
            for subj in ("SG", "PL"):
                for obj in ("SG", "PL") if kind == "t" else ("SG",):
                    for flags in range(8):
                        adj_subj, adj_obj, place = bool(flags & 1), bool(flags & 2), bool(flags & 4)
                        if kind == "i" and adj_obj:
                            continue
                        out.append(_sequence(kind, tense, subj, obj, adj_subj, adj_obj, place))
    return out


def _slot_words(slot: str) -> tuple[str, ...]:
    role, _, form = slot.partition(":")
    if role == "DET":
        return _DETERMINERS[form]
    if role in ("AGENT", "OBJ"):
        pool = {**_AGENTS, **_OBJECTS} if role == "OBJ" else _AGENTS
        return tuple(fs[_NOUN_FORM[form]] for fs in pool.values())
    if role in ("VT", "VI"):
        return tuple(fs[_VERB_FORM[form]] for fs in (_TRANSITIVE if role == "VT" else _INTRANSITIVE).values())
    return {"ADJ": _ADJECTIVES, "PREP": _PREPOSITIONS, "PLACE": _PLACES}.get(slot, (slot,))


def _article(word: str, following: str) -> str:
    return ("an" if following[0] in "aeiou" else "a") if word == "a" else word


@lru_cache(maxsize=1)
def grammatical_bigrams() -> frozenset[tuple[str, str]]:
    """Every adjacent word pair the grammar can produce, with START before the first word and END after the
    last (the "." is not a word)."""
    slot_pairs = {pair for seq in slot_sequences() for pair in zip([START] + seq, seq)}
    out = set()
    for a, b in slot_pairs:
        for x in _slot_words(a):
            for y in _slot_words(b):
                out.add((_article(x, y), y))
                if y == "a":
                    out.add((x, "an"))
    return frozenset(out)


def sentence_for(rng: random.Random, fixed: dict[str, str]) -> str:
    """A random sentence of the grammar holding the lemmas of ``fixed`` (role -> lemma, roles as in the
    patterns); every other slot is filled at random. No word pair repeats ("the dog ... the dog"): the gold
    judge counts a repeated pair as ungrammatical."""
    while True:
        text = _sentence(rng, fixed)
        words = [START, *re.findall(r"[a-z]+", text.lower()), END]
        if len(set(zip(words, words[1:]))) == len(words) - 1:
            return text


def _sentence(rng: random.Random, fixed: dict[str, str]) -> str:
    kind = "i" if "vi" in fixed else "t" if fixed.keys() & {"vt", "obj"} else rng.choice("tti")
    tense = rng.choice(("present", "past", "present_prog", "past_prog"))
    subj, obj = rng.choice(("SG", "SG", "PL")), rng.choice(("SG", "SG", "PL"))
    place = "place" in fixed or rng.random() < 0.5
    seq = _sequence(kind, tense, subj, obj, rng.random() < 0.3, rng.random() < 0.3, place)
    words = []
    for slot in seq[:-1]:
        role, _, form = slot.partition(":")
        key = {"AGENT": "agent", "VT": "vt", "VI": "vi", "OBJ": "obj", "PLACE": "place"}.get(role)
        if key in fixed:
            fs = forms(fixed[key])
            words.append(fs[_VERB_FORM[form]] if role in ("VT", "VI") else fs[_NOUN_FORM.get(form, 0)])
        else:
            words.append(rng.choice(_slot_words(slot)))
    words = [_article(w, nxt) for w, nxt in zip(words, words[1:] + [""])]
    text = " ".join(words) + "."
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Item:
    """One concept set: its prompt and a sentence of the grammar using all of its concepts."""

    concepts: tuple[str, ...]  # alphabetical
    prompt: str
    sentence: str  # starts with a space: prompt + sentence is the text


class CommonGenWorld:
    """A seeded stream of concept sets of one split (``"train"`` and ``"demo"`` draw train triples).

    Item ``i`` depends only on the seed, the split and ``i``.
    """

    def __init__(self, seed: int, split: str = "train"):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"CommonGenWorld seed must be an int, got {seed!r}")
        if split not in SPLITS:
            raise ConfigError(f"unknown commongen split {split!r}; use one of {', '.join(SPLITS)}")
        self.seed, self.split = seed, split

    def _rng(self, index: int, what: str) -> random.Random:
        return random.Random(f"rlhf_gym.commongen:{self.split}:{self.seed}:{index}:{what}")

    def fixed(self, index: int) -> dict[str, str]:
        """Item ``index``'s concepts by role."""
        rng, want = self._rng(index, "concepts"), "eval" if self.split == "eval" else "train"
        while True:
            roles = rng.choice(_PATTERNS)
            fixed = {role: rng.choice(list(_POOLS[role])) for role in roles}
            if split_of(tuple(fixed.values())) == want:
                return fixed

    def item(self, index: int) -> Item:
        fixed = self.fixed(index)
        concepts = tuple(sorted(fixed.values()))
        return Item(concepts, prompt_for(concepts), " " + sentence_for(self._rng(index, "sentence"), fixed))

    def items(self, n: int) -> list[Item]:
        """The first ``n`` items of the stream."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"number of commongen items must be a non-negative int, got {n!r}")
        return [self.item(i) for i in range(n)]

    def partial_text(self, index: int, keep: float = 0.5) -> str:
        """Item ``index``'s prompt followed by a sentence that holds each concept with probability ``keep``
        (the rest of the sentence random): the pretraining format of the shipped model."""
        rng = self._rng(index, "partial")
        fixed = self.fixed(index)
        kept = {role: lemma for role, lemma in fixed.items() if rng.random() < keep}
        return prompt_for(tuple(fixed.values())) + " " + sentence_for(rng, kept)
