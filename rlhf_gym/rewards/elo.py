"""Elo and Bradley–Terry ratings from pairwise outcomes, with bootstrap confidence intervals.

A match is ``(a, b, result)``: ``result`` is 1 if ``a`` won, 0 if ``b`` won and 0.5 for a tie (any score in
[0, 1] works). Players are any hashable names (policy names, checkpoint paths, output ids).

Two estimators, both on the Elo scale (a gap of ``scale`` points means 10:1 odds):

* :func:`elo_ratings`: classic online Elo. It depends on the order of the matches; ``n_orders > 1`` averages
  over random orders to reduce that.
* :func:`bt_ratings`: the Bradley–Terry maximum-likelihood fit (what Chatbot Arena moved to). It does not
  depend on the order and uses every match equally, so its uncertainty shrinks like ``1/sqrt(matches)``.

:func:`bootstrap_elo` resamples the matches with replacement, refits each resample and reports the mean and
a percentile confidence interval per player. With ``method="elo"`` every resample is also a fresh random
order, which is how Chatbot Arena averages out Elo's order dependence. The default is ``method="bt"``: with a
fixed ``k``, online Elo keeps a noise floor set by ``k`` however many matches there are.

>>> matches = [("ppo", "sft", 1)] * 30 + [("ppo", "sft", 0)] * 10
>>> table = bootstrap_elo(matches, n_boot=50, seed=0)
>>> [player for player, _ in table.ranking()]
['ppo', 'sft']
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rlhf_gym.errors import ConfigError, DataError

Match = tuple[Hashable, Hashable, float]


def elo_ratings(
    matches: Iterable[Match],
    *,
    k: float = 16.0,
    initial: float = 1000.0,
    scale: float = 400.0,
    n_orders: int = 1,
    seed: int = 0,
) -> dict[Hashable, float]:
    """Online Elo: after each match both ratings move by ``k * (score - expected score)``.

    Args:
        matches: ``(a, b, result)`` triples, played in the given order.
        k: the update step; larger reacts faster and is noisier.
        initial: everyone's starting rating (and the mean rating, since updates are zero-sum).
        scale: rating gap at which the stronger player is expected to win 10 times out of 11.
        n_orders: 1 plays the matches in the given order; more averages over that many random orders.
        seed: seeds the random orders.

    >>> elo_ratings([("a", "b", 1)], k=32)
    {'a': 1016.0, 'b': 984.0}
    """
    players, a, b, result = _as_arrays(matches)
    if n_orders < 1:
        raise ConfigError(f"n_orders must be at least 1, got {n_orders}")
    if n_orders == 1:
        ratings = _online_elo(a, b, result, len(players), k, initial, scale)
    else:
        rng = np.random.default_rng(seed)
        runs = []
        for _ in range(n_orders):
            order = rng.permutation(len(a))
            runs.append(_online_elo(a[order], b[order], result[order], len(players), k, initial, scale))
        ratings = np.mean(runs, axis=0)
    return {player: float(r) for player, r in zip(players, ratings, strict=True)}


def bt_ratings(
    matches: Iterable[Match], *, initial: float = 1000.0, scale: float = 400.0, l2: float = 1e-2
) -> dict[Hashable, float]:
    """Bradley–Terry maximum-likelihood ratings on the Elo scale, with mean rating ``initial``.

    Fits strengths ``θ`` so that ``P(a beats b) = σ(θ_a - θ_b)`` (a tie counts as half a win each), then
    reports ``initial + θ · scale / ln 10``. A small L2 penalty ``l2 · Σθ²`` keeps an unbeaten player finite.

    >>> ratings = bt_ratings([("a", "b", 1)] * 10 + [("a", "b", 0)] * 10)
    >>> round(ratings["a"]), round(ratings["b"])
    (1000, 1000)
    """
    players, a, b, result = _as_arrays(matches)
    strengths = _fit_bt(a, b, result, np.ones(len(a)), len(players), l2)
    return {
        player: float(initial + s * scale / math.log(10))
        for player, s in zip(players, strengths, strict=True)
    }


@dataclass(frozen=True)
class EloTable:
    """Ratings with bootstrap confidence intervals; ``str(table)`` is a ranked text table."""

    rating: dict[Hashable, float]  # mean over bootstrap resamples
    lower: dict[Hashable, float]  # lower end of the percentile confidence interval
    upper: dict[Hashable, float]  # upper end of the percentile confidence interval
    matches: dict[Hashable, int]  # how many matches each player took part in
    ci: float  # confidence level of [lower, upper], e.g. 0.95
    method: str  # "bt" (Bradley–Terry MLE) or "elo" (online Elo)

    def ranking(self) -> list[tuple[Hashable, float]]:
        """``(player, rating)`` pairs, best first."""
        return sorted(self.rating.items(), key=lambda item: (-item[1], str(item[0])))

    def __str__(self) -> str:
        names = [str(player) for player, _ in self.ranking()]
        width = max(len("player"), *(len(n) for n in names))
        label = f"{self.ci:.0%} CI"
        lines = [f"rank  {'player':<{width}}  rating  {label:^18}  matches"]
        for rank, (player, rating) in enumerate(self.ranking(), start=1):
            interval = f"[{self.lower[player]:7.1f}, {self.upper[player]:7.1f}]"
            lines.append(
                f"{rank:>4}  {str(player):<{width}}  {rating:6.1f}  {interval:^18}  {self.matches[player]:>7}"
            )
        return "\n".join(lines)


def bootstrap_elo(
    matches: Iterable[Match],
    *,
    method: str = "bt",
    n_boot: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    k: float = 16.0,
    initial: float = 1000.0,
    scale: float = 400.0,
) -> EloTable:
    """Ratings with bootstrap confidence intervals (resampling matches with replacement).

    Args:
        matches: ``(a, b, result)`` triples.
        method: ``"bt"`` for Bradley–Terry MLE per resample, ``"elo"`` for online Elo over each resample in
            its (random) resampled order.
        n_boot: number of resamples.
        seed: seeds the resampling.
        ci: confidence level of the percentile interval.
        k, initial, scale: as in :func:`elo_ratings` (``k`` is used by ``"elo"`` only).

    A player missing from a resample is left out of that resample's statistics rather than given ``initial``.
    """
    if method not in ("bt", "elo"):
        raise ConfigError(f"method must be 'bt' or 'elo', got {method!r}")
    if n_boot < 1 or not 0 < ci < 1:
        raise ConfigError(f"need n_boot >= 1 and 0 < ci < 1, got n_boot={n_boot}, ci={ci}")
    players, a, b, result = _as_arrays(matches)
    n_players, n_matches = len(players), len(a)
    rng = np.random.default_rng(seed)
    samples = np.full((n_boot, n_players), np.nan)
    for i in range(n_boot):
        idx = rng.integers(0, n_matches, n_matches)
        if method == "elo":
            ratings = _online_elo(a[idx], b[idx], result[idx], n_players, k, initial, scale)
        else:
            counts = np.bincount(idx, minlength=n_matches).astype(float)
            ratings = initial + _fit_bt(a, b, result, counts, n_players) * scale / math.log(10)
        present = np.bincount(np.concatenate([a[idx], b[idx]]), minlength=n_players) > 0
        samples[i, present] = ratings[present]

    tail = (1 - ci) / 2 * 100
    mean = np.nanmean(samples, axis=0)
    lower, upper = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    played = np.bincount(np.concatenate([a, b]), minlength=n_players)
    return EloTable(
        rating={p: float(x) for p, x in zip(players, mean, strict=True)},
        lower={p: float(x) for p, x in zip(players, lower, strict=True)},
        upper={p: float(x) for p, x in zip(players, upper, strict=True)},
        matches={p: int(x) for p, x in zip(players, played, strict=True)},
        ci=ci,
        method=method,
    )


# ---------------------------------------------------------------------------------------------- internals


def _as_arrays(matches: Iterable[Match]) -> tuple[list[Hashable], np.ndarray, np.ndarray, np.ndarray]:
    """Validates matches; returns the players (in order of appearance) and index/result arrays."""
    index: dict[Hashable, int] = {}
    a, b, result = [], [], []
    for i, match in enumerate(matches):
        if not isinstance(match, Sequence) or len(match) != 3:
            raise DataError(f"match {i}: expected (a, b, result), got {match!r}")
        first, second, score = match
        if first == second:
            raise DataError(f"match {i}: a player cannot play itself ({first!r})")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise DataError(f"match {i}: result must be 1 (a wins), 0 (b wins) or 0.5 (tie), got {score!r}")
        a.append(index.setdefault(first, len(index)))
        b.append(index.setdefault(second, len(index)))
        result.append(float(score))
    if not a:
        raise DataError("no matches to rate")
    return list(index), np.array(a), np.array(b), np.array(result)


def _online_elo(a, b, result, n_players: int, k: float, initial: float, scale: float) -> np.ndarray:
    ratings = np.full(n_players, float(initial))
    for i, j, score in zip(a.tolist(), b.tolist(), result.tolist(), strict=True):
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[j] - ratings[i]) / scale))
        ratings[i] += k * (score - expected)
        ratings[j] -= k * (score - expected)
    return ratings


def _fit_bt(a, b, result, counts, n_players: int, l2: float = 1e-2) -> np.ndarray:
    """Bradley–Terry strengths (natural-log odds, mean zero) maximising the count-weighted likelihood.

    Damped Newton's method on the L2-penalised negative log-likelihood, which is strictly convex, so it
    converges to the unique optimum in a handful of steps for the few players a rating table has.
    """
    pair_index = a * n_players + b

    def objective(theta: np.ndarray) -> float:
        d = theta[a] - theta[b]
        return float((counts * (np.logaddexp(0, -d) + (1 - result) * d)).sum() + l2 * (theta**2).sum())

    theta = np.zeros(n_players)
    for _ in range(100):
        d = theta[a] - theta[b]
        p = 1 / (1 + np.exp(-d))
        g_match = counts * (p - result)  # d(nll)/d(d) for each match
        grad = np.bincount(a, g_match, n_players) - np.bincount(b, g_match, n_players) + 2 * l2 * theta
        h_match = np.bincount(pair_index, counts * p * (1 - p), n_players * n_players).reshape(
            n_players, n_players
        )
        hessian = np.diag(h_match.sum(0) + h_match.sum(1) + 2 * l2) - h_match - h_match.T
        step = np.linalg.solve(hessian, grad)
        current, scale = objective(theta), 1.0
        while objective(theta - scale * step) > current and scale > 1e-6:
            scale /= 2
        theta = theta - scale * step
        if np.abs(scale * step).max() < 1e-10:
            break
    return theta - theta.mean()
