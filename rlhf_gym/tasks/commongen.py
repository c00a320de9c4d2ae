"""The ``commongen`` task (``rlhf_gym/Commongen-v0``): one fluent sentence that uses three given words.

CommonGen-like constrained generation on a world of its own (:mod:`rlhf_gym.tasks.commongen_world`): the
prompt lists three concept words, ``"Words: ball, dog, park. Sentence:"``, and the continuation should be
one sentence of the grammar that uses all of them (" The old dog chases a red ball in the park."). The gold
judge (:class:`CommonGenGold`) is coverage × fluency. The shipped tiny GPT-2
(``embedded:tiny-commongen-gpt2``, built by ``scripts/build_commongen.py``) was pretrained on sentences
that keep each listed word only half the time, so it starts fluent but covers about half the words.
Prompt sources ``commongen:train`` / ``commongen:eval`` have disjoint concept triples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from rlhf_gym.core.data import register_prompt_source
from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.tasks.base import DEFAULT_METRICS, Task
from rlhf_gym.tasks.commongen_world import (
    END,
    SEEDS,
    START,
    CommonGenWorld,
    forms,
    grammatical_bigrams,
    words_of,
)

__all__ = ["COMMONGEN", "MAX_NEW_TOKENS", "CommonGenGold", "commongen_prompts", "demonstrations",
           "pretraining_text", "parse_concepts"]

#: Continuation cap: the longest sentence of the grammar is 12 words, about 14 tokens of the shipped model.
MAX_NEW_TOKENS = 20
#: Stride between the streams that the ``seed`` of the factories below selects (0 = the default stream).
STREAM_STRIDE = 1009

_PROMPT = re.compile(r"\s*Words:\s*([a-z]+(?:\s*,\s*[a-z]+){0,5})\s*\.\s*Sentence:\s*\Z")


def parse_concepts(prompt: str) -> tuple[str, ...] | None:
    """The concept words of a ``"Words: a, b, c. Sentence:"`` prompt; None for any other text.

    >>> parse_concepts("Words: ball, dog, park. Sentence:"), parse_concepts("Hello")
    (('ball', 'dog', 'park'), None)
    """
    match = _PROMPT.match(prompt) if isinstance(prompt, str) else None
    return tuple(w.strip() for w in match.group(1).split(",")) if match else None


class CommonGenGold:
    """Gold judge in [0, 1]: coverage × fluency of the continuation.

    *Coverage* is the fraction of the prompt's concepts that occur in the continuation in any inflected form
    ("dogs", "chased"). *Fluency* is the squared fraction of its adjacent word pairs (lower-cased,
    punctuation stripped, with a sentence start before the first word and a sentence end after the last)
    that the grammar can produce; a repeated pair counts as ungrammatical, and the end pair only counts when
    the text is one sentence closed by a ".". Squared, so that text which is half word salad or repetition
    scores a quarter, not a half. A prompt that lists no concepts, or a continuation with no words,
    scores 0.

    >>> gold = CommonGenGold()
    >>> p = "Words: ball, dog, park. Sentence:"
    >>> [round(x, 2) for x in gold.score([p] * 4, [" The old dog chases a red ball in the park.",
    ...     " The dogs chased the balls.", " dog ball park", ""]).tolist()]
    [1.0, 0.67, 0.0, 0.0]
    """

    name = "commongen_gold"

    def __init__(self) -> None:
        self._bigrams = grammatical_bigrams()

    def coverage(self, concepts: Sequence[str], words: Sequence[str]) -> float:
        present = set(words)
        return sum(any(f in present for f in forms(c)) for c in concepts) / len(concepts)

    def fluency(self, text: str, words: Sequence[str]) -> float:
        pairs = list(zip([START, *words], [*words, END]))
        one_sentence = text.rstrip().endswith(".") and len(re.findall(r"[.!?]", text)) == 1
        seen, good = set(), 0
        for i, pair in enumerate(pairs):
            ok = pair in self._bigrams and pair not in seen and (i < len(pairs) - 1 or one_sentence)
            good += ok
            seen.add(pair)
        return (good / len(pairs)) ** 2

    def score_one(self, prompt: str, completion: str) -> float:
        concepts = parse_concepts(prompt)
        if not concepts or not isinstance(completion, str):
            return 0.0
        words = words_of(completion)
        if not words:
            return 0.0
        return self.coverage(concepts, words) * self.fluency(completion, words)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.score_one(p, c) for p, c in zip(prompts, completions)], dtype=torch.float32)

    def __repr__(self) -> str:
        return "CommonGenGold()"


def commongen_prompts(split: str, n: int) -> list[str]:
    """``n`` prompts of ``split`` (``"train"`` or ``"eval"``): the prompt source ``commongen:SPLIT``."""
    if split not in ("train", "eval"):
        raise DataError(f"unknown commongen prompt split {split!r}; use commongen:train or commongen:eval")
    return [item.prompt for item in CommonGenWorld(SEEDS[split], split).items(n)]


def _check_n(n: int, what: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{what}: need a positive number of texts, got {n!r}")


def demonstrations(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` ``(prompt, sentence using every concept)`` pairs of train-split triples (the demo stream)."""
    _check_n(n, "demonstrations")
    world = CommonGenWorld(SEEDS["demo"] + STREAM_STRIDE * seed, "demo")
    return [(item.prompt, item.sentence) for item in world.items(n)]


def pretraining_text(n: int = 2000, seed: int = 0) -> list[str]:
    """``n`` texts in the shipped model's pretraining format: a train prompt, then a sentence that keeps
    each of its concepts with probability 0.5 (PPO-ptx's text; ``seed`` 0 is the build's own stream)."""
    _check_n(n, "pretraining text")
    world = CommonGenWorld(SEEDS["train"] + STREAM_STRIDE * seed, "train")
    return [world.partial_text(i) for i in range(n)]


register_prompt_source("commongen", commongen_prompts)

COMMONGEN = Task(
    name="commongen",
    version=0,
    description="write one fluent sentence using three given words; gold = coverage x grammatical bigrams",
    model="embedded:tiny-commongen-gpt2",
    tokenizer=None,
    train_prompts="commongen:train",
    eval_prompts="commongen:eval",
    gold=CommonGenGold,
    annotators="3",
    max_new_tokens=MAX_NEW_TOKENS,
    demonstrations=demonstrations,
    pretraining_text=pretraining_text,
    metrics=DEFAULT_METRICS,
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(COMMONGEN)
