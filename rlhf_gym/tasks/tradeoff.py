"""The ``sentiment-readability`` task (``rlhf_gym/SentimentReadability-v0``): two objectives and a weight.

The gold is ``w * sentiment + (1 - w) * readability`` — VADER compound (:mod:`rlhf_gym.tasks.sentiment`)
and Flesch reading ease (:mod:`rlhf_gym.tasks.readability`), both in ``[-1, 1]``, with ``w = WEIGHT``. They
pull apart: the words that lift VADER most ("absolutely wonderful", "extraordinary") are long, and on the
starting policy's samples the two scores are negatively correlated. The gold is a
:class:`~rlhf_gym.rewards.base.WeightedSum`, so evaluation reports each objective (``gold_sentiment``,
``gold_readability``) and ``rlhf-gym tasks`` draws the best-of-64 front over weights.
"""

from __future__ import annotations

from rlhf_gym.rewards.base import WeightedSum
from rlhf_gym.tasks.base import Task
from rlhf_gym.tasks.readability import ReadabilityGold
from rlhf_gym.tasks.sentiment import demonstrations_scoring_at_least, review_texts, vader_gold

__all__ = ["SENTIMENT_READABILITY", "WEIGHT", "tradeoff_gold"]

WEIGHT = 0.5  # weight of sentiment; readability gets 1 - WEIGHT


def tradeoff_gold(weight: float = WEIGHT) -> WeightedSum:
    """The gold judge at sentiment weight ``weight``.

    >>> gold = tradeoff_gold()
    >>> round(gold.score([""], [" It was good fun. I liked it."]).item(), 2)
    0.92
    """
    return WeightedSum({"sentiment": vader_gold(), "readability": ReadabilityGold()},
                       {"sentiment": weight, "readability": 1.0 - weight}, name="sentiment_readability_gold")


SENTIMENT_READABILITY = Task(
    name="sentiment-readability",
    version=0,
    description="positive and easy to read; gold = 0.5 VADER + 0.5 Flesch reading ease (a trade-off)",
    model="embedded",
    tokenizer=None,
    train_prompts="embedded:train",
    eval_prompts="embedded:eval",
    gold=tradeoff_gold,
    annotators="3",
    demonstrations=demonstrations_scoring_at_least(tradeoff_gold, 0.7),
    pretraining_text=review_texts,
    metrics=("gold_reward", "gold_sentiment", "gold_readability", "rm_reward", "kl", "distinct_2"),
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(SENTIMENT_READABILITY)
