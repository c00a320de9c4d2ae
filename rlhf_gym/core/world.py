"""The embedded default world: a seeded generator of short English reviews.

Machines running the demo and the tests cannot download models or datasets, so the project ships a small
world of its own (DESIGN.md section 4). This module generates its texts: reviews of movies, books, TV
shows, video games, restaurants, cafes, hotels, gadgets and kitchen appliances, each labelled positive,
negative or neutral. A review is a neutral *opening* (the prompt an RL agent continues) followed by a
*continuation* that carries the sentiment::

    "I watched this movie last weekend and" + " the plot was a bit dull, but the acting was wonderful."

The sentiment words come from VADER's lexicon (great, boring, love, hate, ...), so the project's gold judge,
VADER's compound score, sees what the label says; negations ("was not good", "was never boring"),
intensifiers ("really", "absolutely", "a bit") and connectors ("but", "and", "although") make the
language and the sentiment varied. Openings contain no sentiment word at all.

Splits. Every seed is an independent stream of reviews. The shipped tokenizer and language model in
:data:`EMBEDDED_MODEL_DIR` were trained on ``ReviewWorld(TRAIN_SEED)``; held-out evaluation (tests,
perplexity, the starting policy's gold score) uses ``ReviewWorld(EVAL_SEED)``. ``scripts/build_world.py``
rebuilds the assets.

>>> world = ReviewWorld(seed=0)
>>> review = world.reviews(1)[0]
>>> review.text == review.prompt + review.continuation
True
>>> world.reviews(3) == ReviewWorld(seed=0).reviews(3)
True
>>> world.prompts(2) == [r.prompt for r in world.reviews(2)]
True
"""

from __future__ import annotations

import random
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rlhf_gym.core.world_lexicon import (
    _ADJECTIVE_SLOTS,
    _ADJECTIVES,
    _DOMAINS,
    _GENERIC_OPENINGS,
    _GLOBAL_RULES,
    _VERBS,
    _Domain,
    _Noun,
)
from rlhf_gym.errors import ConfigError

# The grammar's data (domains, words, rules) lives in world_lexicon; a template is a string with {slots}:
# a slot names a rule (a tuple of templates, one picked uniformly), a noun pool, a verb or a pronoun.

__all__ = ["EMBEDDED_MODEL_DIR", "EVAL_SEED", "SENTIMENTS", "TRAIN_SEED", "Review", "ReviewWorld"]

#: Where the tokenizer and tiny GPT-2 pretrained on this world ship inside the package.
EMBEDDED_MODEL_DIR: Path = Path(__file__).resolve().parent.parent / "assets" / "tiny-review-gpt2"

#: Seed of the pretraining corpus of the shipped model.
TRAIN_SEED: int = 0
#: Seed of held-out evaluation texts and prompts; never used for training.
EVAL_SEED: int = 1

SENTIMENTS: tuple[str, ...] = ("positive", "negative", "neutral")
_SENTIMENT_WEIGHTS = (0.40, 0.35, 0.25)
_MIN_WORDS, _MAX_WORDS = 15, 40
_MIN_PROMPT_WORDS, _MAX_PROMPT_WORDS = 4, 10


@dataclass(frozen=True)
class Review:
    """One generated review.

    ``text == prompt + continuation``; the continuation starts with a space, so tokenizing the prompt
    and the continuation separately gives the same tokens as tokenizing the text.

    >>> r = Review(text="The food here was great.", prompt="The food here", continuation=" was great.",
    ...            sentiment="positive")
    >>> r.prompt + r.continuation == r.text
    True
    """

    text: str
    prompt: str
    continuation: str
    sentiment: str  # "positive" | "negative" | "neutral"


_CLAUSE_OPENER_ENDS = ("and", ",", ":", "that")
_SLOT = re.compile(r"\{(\w+)\}")
_ARTICLE = re.compile(r"\ba (?=(?:[aeio]|u(?!s|ni)))")  # "a awful" -> "an awful", but "a useless"


class _Expander:
    """Expands templates for one review, keeping grammatical agreement.

    Expanding a noun slot ({topic}, {aspect}, {it}, {I}) records that noun; verb slots ({was}, {made},
    ...) agree in number and tense with the most recently recorded noun, and adjective slots
    ({pos_adj}, {neg_adj}) pick adjectives that fit its kind. English puts the subject before its verb
    and adjective, so a left-to-right expansion agrees. "I" is recorded as plural because its lexical
    verbs conjugate like the plural ("I love"); templates never write "{I} {was}".
    A slot written capitalized ({Aspect}) capitalizes its expansion.
    """

    def __init__(self, rng: random.Random, domain: _Domain, tense: str, rules: Mapping[str, tuple[str, ...]]):
        self.rng = rng
        self.domain = domain
        self.tense = tense
        self.rules = rules
        self.topic = rng.choice(domain.topics)
        self.noun = self.topic
        self.nouns: list[_Noun] = []

    def expand(self, template: str) -> str:
        """Fill every slot of ``template``, recursively, and tidy spacing and articles."""
        text = _SLOT.sub(lambda m: self._fill(m.group(1)), template)
        return _ARTICLE.sub("an ", " ".join(text.split()))

    def expand_subject(self, template: str) -> str:
        """Expand a subject opening ("{Aspect} of {topic}"); what follows agrees with its first noun."""
        start = len(self.nouns)
        text = self.expand(template)
        self.noun = self.nouns[start]
        return text

    def _fill(self, slot: str) -> str:
        if slot[0].isupper() and slot != "I":
            text = self._fill(slot[0].lower() + slot[1:])
            return text[:1].upper() + text[1:]
        if slot in _VERBS:
            past_sg, past_pl, present_sg, present_pl = _VERBS[slot]
            if self.tense == "past":
                return past_pl if self.noun.plural else past_sg
            return present_pl if self.noun.plural else present_sg
        if slot in _ADJECTIVE_SLOTS:
            return self._adjective(slot)
        noun = self._noun(slot)
        if noun is not None:
            self.noun = noun
            self.nouns.append(noun)
            return noun.text
        return self.expand(self.rng.choice(self.rules[slot]))

    def _adjective(self, slot: str) -> str:
        polarity, kind = _ADJECTIVE_SLOTS[slot]
        if kind == "last noun":  # generic adjectives fit every noun; mix them in
            kind = self.noun.kind if polarity == "neutral" else self.rng.choice(("generic", self.noun.kind))
        choices = getattr(_ADJECTIVES[kind], polarity)
        if slot.endswith("_pair"):
            return " and ".join(self.rng.sample(choices, 2))
        return self.rng.choice(choices)

    def _noun(self, slot: str) -> _Noun | None:
        if slot == "topic":
            return self.topic
        if slot == "aspect":
            return self.rng.choice(self.domain.aspects)
        if slot == "it":
            return _Noun("they" if self.topic.plural else "it", self.topic.kind, self.topic.plural)
        if slot == "it_obj":
            return _Noun("them" if self.topic.plural else "it", self.topic.kind, self.topic.plural)
        if slot == "I":
            return _Noun("I", self.noun.kind, plural=True)
        return None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


class ReviewWorld:
    """A seeded, endless stream of reviews; every seed is an independent stream.

    Review ``i`` of a world depends only on the seed and ``i``, so ``reviews(n)`` is deterministic and
    ``reviews(m)`` is a prefix of ``reviews(n)`` for ``m <= n``.

    >>> world = ReviewWorld(seed=1)
    >>> [r.sentiment for r in world.reviews(400)].count("positive") > 100
    True
    >>> all(4 <= len(p.split()) <= 10 for p in world.prompts(100))
    True
    >>> ReviewWorld(seed=0).reviews(5) != ReviewWorld(seed=1).reviews(5)
    True
    """

    def __init__(self, seed: int = 0):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"ReviewWorld seed must be an int, got {seed!r}")
        self.seed = seed

    def reviews(self, n: int) -> list[Review]:
        """The first ``n`` reviews of this world's stream."""
        _check_count(n)
        return [self._review(i) for i in range(n)]

    def prompts(self, n: int) -> list[str]:
        """The openings (``Review.prompt``) of the first ``n`` reviews: 4-10 words, no sentiment words."""
        return [review.prompt for review in self.reviews(n)]

    def _review(self, index: int) -> Review:
        # `random` hashes a string seed with SHA-512: every (seed, index) gets an independent generator.
        rng = random.Random(f"rlhf_gym.world:{self.seed}:{index}")
        while True:  # resample until the lengths fit
            review = _sample_review(rng)
            prompt_fits = _MIN_PROMPT_WORDS <= len(review.prompt.split()) <= _MAX_PROMPT_WORDS
            if prompt_fits and _MIN_WORDS <= len(review.text.split()) <= _MAX_WORDS:
                return review

    def __repr__(self) -> str:
        return f"ReviewWorld(seed={self.seed})"


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"number of reviews must be a non-negative int, got {n!r}")


def _sample_review(rng: random.Random) -> Review:
    domain = rng.choice(_DOMAINS)
    sentiment = rng.choices(SENTIMENTS, weights=_SENTIMENT_WEIGHTS)[0]
    tense, opening = _sample_opening(rng, domain)
    follows = "clause" if opening.endswith(_CLAUSE_OPENER_ENDS) else "pred"
    # {pos_first} etc. open the continuation: a clause, or a predicate after a subject opening
    firsts = {f"{p}_first": (f"{{{p}_{follows}}}",) for p in ("pos", "neg", "neu", "mild_pos", "mild_neg")}
    expander = _Expander(rng, domain, tense, ChainMap(firsts, domain.rules, _GLOBAL_RULES))
    prompt = expander.expand(opening) if follows == "clause" else expander.expand_subject(opening)
    body = expander.expand(f"{{{sentiment}_body}}.")
    end = expander.expand(f"{{{sentiment}_end}}")
    continuation = f" {body} {end}" if end else f" {body}"
    return Review(text=prompt + continuation, prompt=prompt, continuation=continuation, sentiment=sentiment)


def _sample_opening(rng: random.Random, domain: _Domain) -> tuple[str, str]:
    """(tense, opening template): 30% present-tense openings, some generic ones."""
    if rng.random() < 0.3:
        return "present", rng.choice(domain.present_openings)
    if rng.random() < 0.15:
        return "past", rng.choice(_GENERIC_OPENINGS)
    return "past", rng.choice(domain.openings)
