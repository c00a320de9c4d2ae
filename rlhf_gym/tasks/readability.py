"""The ``readability`` task (``rlhf_gym/Readability-v0``): continue review openings in plain, easy English.

Same world, model and prompts as ``sentiment``; the gold judge is the Flesch reading ease of the
continuation as computed by `textstat <https://github.com/textstat/textstat>`_ — a formula over words per
sentence and syllables per word that nobody here wrote. The score is mapped to ``[-1, 1]``:
``clip((FRE - 50) / 50, -1, 1)``, so 50 ("fairly difficult") is 0 and 100 ("very easy") is 1. A policy can
raise it with short sentences of one-syllable words, and the KL penalty keeps it from collapsing into them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf_gym.tasks.base import DEFAULT_METRICS, Task
from rlhf_gym.tasks.sentiment import demonstrations_scoring_at_least, review_texts

__all__ = ["READABILITY", "ReadabilityGold"]


class ReadabilityGold:
    """Flesch reading ease of each completion, mapped to ``[-1, 1]`` (an empty completion scores -1).

    >>> gold = ReadabilityGold()
    >>> [round(x, 2) for x in gold.score(["", "", ""], [
    ...     " It was fun. I liked it a lot.",
    ...     " The cinematography's extraordinary sophistication notwithstanding, characterisation disappointed.",
    ...     ""]).tolist()]
    [1.0, -1.0, -1.0]
    """

    name = "readability_gold"

    def __init__(self) -> None:
        import textstat  # imported here: it loads the CMU pronouncing dictionary (about a second)

        self._ease = textstat.flesch_reading_ease

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        values = [(self._ease(c) - 50.0) / 50.0 if c.strip() else -1.0 for c in completions]
        return torch.tensor(values, dtype=torch.float32).clamp(-1.0, 1.0)

    def __repr__(self) -> str:
        return "ReadabilityGold()"


READABILITY = Task(
    name="readability",
    version=0,
    description="continue review openings in easy English; gold = Flesch reading ease (textstat)",
    model="embedded",
    tokenizer=None,
    train_prompts="embedded:train",
    eval_prompts="embedded:eval",
    gold=ReadabilityGold,
    annotators="3",
    demonstrations=demonstrations_scoring_at_least(ReadabilityGold, 0.8),
    pretraining_text=review_texts,
    metrics=DEFAULT_METRICS,
)

from rlhf_gym.tasks import register_task  # noqa: E402  (the package imports this module last)

register_task(READABILITY)
