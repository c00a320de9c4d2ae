"""The ``sentiment`` task (``rlhf_gym/Sentiment-v0``): the embedded review world.

The shipped tiny GPT-2 continues review openings from the seeded review generator
(:mod:`rlhf_gym.core.world`); the gold judge is VADER compound sentiment of the continuation
(:class:`~rlhf_gym.rewards.gold.VaderGold`); simulated annotators label by that gold. Demonstrations are the
world's positive reviews (opening -> continuation); pretraining text is its training-seed reviews.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlhf_gym.core.world import TRAIN_SEED, ReviewWorld
from rlhf_gym.errors import ConfigError
from rlhf_gym.tasks.base import DEFAULT_METRICS, Task

__all__ = ["SENTIMENT", "DEMO_SEED", "vader_gold", "positive_demonstrations", "review_texts",
           "demonstrations_scoring_at_least"]

#: Seed of the world the demonstrations come from (apart from the training and evaluation prompts').
DEMO_SEED = 2


def vader_gold():
    """The gold judge: :class:`~rlhf_gym.rewards.gold.VaderGold` (VADER is imported on first use)."""
    from rlhf_gym.rewards.gold import VaderGold

    return VaderGold()


#: Stride between the streams that the ``seed`` of the factories below selects (0 = the default stream).
STREAM_STRIDE = 1009


def positive_demonstrations(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` ``(opening, positive continuation)`` pairs from the demonstration stream ``seed`` (0 = the default)."""
    if n < 1:
        raise ConfigError(f"demonstrations: need a positive number of demonstrations, got {n}")
    world, demos, i = ReviewWorld(seed=DEMO_SEED + STREAM_STRIDE * seed), [], 0
    while len(demos) < n:
        batch = world.reviews(i + 4 * n)[i:]
        i += len(batch)
        demos += [(r.prompt, r.continuation) for r in batch if r.sentiment == "positive"]
    return demos[:n]


def demonstrations_scoring_at_least(gold: Callable[[], Any], threshold: float) -> Callable[[int, int], list[tuple[str, str]]]:
    """A demonstrations factory for another task on this world: the world's ``(opening, continuation)``
    pairs whose continuation ``gold()`` scores at least ``threshold`` (the review tasks' SFT data)."""

    def demonstrations(n: int, seed: int = 0) -> list[tuple[str, str]]:
        if n < 1:
            raise ConfigError(f"demonstrations: need a positive number of demonstrations, got {n}")
        judge, world, demos, i = gold(), ReviewWorld(seed=DEMO_SEED + STREAM_STRIDE * seed), [], 0
        while len(demos) < n:
            batch = world.reviews(i + 4 * n)[i:]
            i += len(batch)
            scores = judge.score([r.prompt for r in batch], [r.continuation for r in batch]).tolist()
            demos += [(r.prompt, r.continuation) for r, s in zip(batch, scores, strict=True) if s >= threshold]
            if i > 200 * n:
                raise ConfigError(f"demonstrations: fewer than {n} of {i} reviews score >= {threshold}")
        return demos[:n]

    return demonstrations


def review_texts(n: int = 2000, seed: int = 0) -> list[str]:
    """``n`` whole reviews of the training stream (``seed`` 0) or another: the pretraining text of PPO-ptx."""
    return [r.text for r in ReviewWorld(seed=TRAIN_SEED + STREAM_STRIDE * seed).reviews(n)]


SENTIMENT = Task(
    name="sentiment",
    version=0,
    description="continue review openings positively; gold = VADER sentiment (the embedded review world)",
    model="embedded",
    tokenizer=None,
    train_prompts="embedded:train",
    eval_prompts="embedded:eval",
    gold=vader_gold,
    annotators="3",
    demonstrations=positive_demonstrations,
    pretraining_text=review_texts,
    metrics=DEFAULT_METRICS,
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(SENTIMENT)
