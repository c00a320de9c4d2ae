"""How well a reward function agrees with the gold judge, on fresh continuations of held-out prompts.

:func:`fresh_texts` samples and gold-scores them (with :class:`~rlhf_gym.rewards.annotators.CandidateGenerator`);
:func:`gold_agreement` reports the rank correlation (:func:`spearman`) and same-prompt pair accuracy of a
reward function against those gold scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from rlhf_gym.core.data import DEFAULT_EVAL_PROMPTS
from rlhf_gym.rewards.annotators import Candidate, CandidateGenerator, progress_bar
from rlhf_gym.rewards.base import RewardFunction, checked_scores

__all__ = ["spearman", "fresh_texts", "gold_agreement"]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation with average ranks for ties (NaN when either side is constant).

    >>> round(spearman([1, 2, 3, 4], [10, 20, 20, 40]), 4)
    0.9487
    """
    rx, ry = _average_ranks(np.asarray(x, dtype=float)), _average_ranks(np.asarray(y, dtype=float))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def fresh_texts(
    n_texts: int = 512,
    *,
    prompts: Any = DEFAULT_EVAL_PROMPTS,
    generator: CandidateGenerator | None = None,
    per_prompt: int = 4,
    temperatures: Sequence[float] = (0.7, 1.0, 1.4),
    seed: int = 1234,
    progress: bool = True,
    gold: Any = None,
) -> list[tuple[str, list[Candidate]]]:
    """About ``n_texts`` fresh continuations of held-out prompts, ``per_prompt`` each: ``(prompt, candidates)``.

    ``prompts`` and ``gold`` (see :func:`resolve_gold`) are the task's; a given ``generator`` brings its own gold."""
    from rlhf_gym.core.data import load_prompts

    gen = generator or CandidateGenerator(seed=seed, gold=gold)
    prompt_list = load_prompts(prompts, n=math.ceil(n_texts / per_prompt))
    with progress_bar(progress, "sampling fresh texts", total=len(prompt_list) * per_prompt) as bar:
        candidates = gen.candidates(prompt_list, temperatures, per_prompt, bar)
    return list(zip(prompt_list, candidates, strict=True))


def gold_agreement(
    reward: RewardFunction, groups: Sequence[tuple[str, Sequence[Candidate]]]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """How well ``reward`` agrees with the gold judge on scored texts (from :func:`fresh_texts`).

    Returns ``(metrics, samples)``: ``gold/spearman`` (rank correlation over all texts), ``gold/pair_accuracy``
    (share of same-prompt pairs with different gold scores that ``reward`` orders as gold does; equal rewards
    count half), ``gold/n_texts`` and ``gold/n_pairs``; ``samples`` holds ``{prompt, completion, reward,
    gold}`` per text.
    """
    rows = [(prompt, c) for prompt, cands in groups for c in cands]
    rewards = checked_scores(reward, [p for p, _ in rows], [c.text for _, c in rows]).tolist()
    golds = [c.gold for _, c in rows]
    correct, start = [], 0
    for _, cands in groups:  # pairs within each prompt's texts
        members, start = range(start, start + len(cands)), start + len(cands)
        correct += [0.5 if rewards[a] == rewards[b] else float((rewards[a] > rewards[b]) == (golds[a] > golds[b]))
                    for a, b in combinations(members, 2) if golds[a] != golds[b]]
    metrics = {"gold/spearman": spearman(rewards, golds),
               "gold/pair_accuracy": float(np.mean(correct)) if correct else math.nan,
               "gold/n_texts": len(rows), "gold/n_pairs": len(correct)}
    samples = [{"prompt": p, "completion": c.text, "reward": r, "gold": c.gold}
               for (p, c), r in zip(rows, rewards, strict=True)]
    return metrics, samples
