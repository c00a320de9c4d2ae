"""The gold judge of the ``sentiment`` task (:mod:`rlhf_gym.tasks.sentiment`): VADER compound sentiment of
the continuation.

Nobody on this project wrote VADER, so it stands in for the human. Simulated annotators label
comparisons from it, reward models learn to imitate it, and "gold reward" in evaluation means this
score — which is what makes reward over-optimisation measurable (the learned RM can rise while gold falls).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


class VaderGold:
    """Scores each completion by VADER's compound sentiment in [-1, 1] (the prompt is ignored).

    >>> gold = VaderGold()
    >>> [round(x, 2) for x in gold.score(["", ""], ["I love it, wonderful!", "awful and boring"]).tolist()]
    [0.85, -0.65]
    """

    name = "vader_gold"

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        polarity = self._analyzer.polarity_scores
        return torch.tensor([polarity(c)["compound"] for c in completions], dtype=torch.float32)

    def __repr__(self) -> str:
        return "VaderGold()"


#: Gold judges by the names ``make_reward`` accepts without a task (``"gold"`` means the default one).
JUDGES = {"vader": VaderGold}


def named_judge(name: str = "gold"):
    """A fresh gold judge by name: ``"vader"``, or ``"gold"`` for the default task's (VADER)."""
    return JUDGES["vader" if name == "gold" else name]()
