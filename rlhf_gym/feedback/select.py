"""Which item an annotator sees next: pure functions over counts and reward-model scores.

``uncertainty`` asks where an ensemble of reward models disagrees most. For every pair of candidates
(i, j) each model k gives P_k(i > j) = σ(s_k(i) - s_k(j)); an item's disagreement is the mean, over its
candidate pairs, of the standard deviation of P_k across models (query by committee). ``random`` draws
uniformly. Both only consider items the annotator has not labelled and that fewer than ``overlap``
annotators have labelled.

>>> scores = {1: [[0.0, 1.0], [0.0, 1.1]], 2: [[0.0, 1.0], [1.0, 0.0]]}
>>> round(disagreement(scores[1]), 3), round(disagreement(scores[2]), 3)
(0.01, 0.231)
>>> select_next([1, 2], {}, set(), overlap=1, scores=scores, mode="uncertainty")
2
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Collection, Mapping, Sequence

__all__ = ["disagreement", "eligible", "select_next", "MODES"]

MODES = ("uncertainty", "random")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def disagreement(model_scores: Sequence[Sequence[float]]) -> float:
    """Mean over candidate pairs of the std across models of P(i > j); 0 with fewer than two models."""
    if len(model_scores) < 2:
        return 0.0
    k = len(model_scores[0])
    spreads = [statistics.pstdev(_sigmoid(s[i] - s[j]) for s in model_scores)
               for i in range(k) for j in range(i + 1, k)]
    return sum(spreads) / len(spreads) if spreads else 0.0


def eligible(item_ids: Sequence[int], counts: Mapping[int, int], done: Collection[int], overlap: int) -> list[int]:
    """Items the annotator has not labelled (``done``) and that have fewer than ``overlap`` labels."""
    return [i for i in item_ids if i not in done and counts.get(i, 0) < overlap]


def select_next(item_ids: Sequence[int], counts: Mapping[int, int], done: Collection[int], *, overlap: int,
                scores: Mapping[int, Sequence[Sequence[float]]] | None = None, mode: str = "random",
                rng: random.Random | None = None) -> int | None:
    """The next item for one annotator, or None when nothing is left for them.

    ``scores[item]`` holds one list of per-candidate scores per reward model. Under ``uncertainty`` the most
    disputed eligible item wins; items without scores count as 0. Among equals, items that others have
    already labelled come first (so overlap fills up), then the lower id.
    """
    if mode not in MODES:
        raise ValueError(f"unknown selection mode {mode!r} (expected one of {', '.join(MODES)})")
    left = eligible(item_ids, counts, done, overlap)
    if not left:
        return None
    if mode == "random":
        return (rng or random.Random()).choice(left)
    scores = scores or {}
    return min(left, key=lambda i: (-disagreement(scores.get(i, ())), -counts.get(i, 0), i))
