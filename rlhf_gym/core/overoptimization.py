"""The arithmetic of reward over-optimisation curves (Gao, Schulman & Hilton 2022, "Scaling Laws for Reward
Model Overoptimization").

With ``d = sqrt(KL(π‖π_init))`` the paper fits the gold reward gained over the initial policy as

* best-of-n: ``R_bon(d) = d·(α − β·d)``, where best-of-n has ``KL = log n − (n − 1)/n`` (:func:`bon_kl`);
* RL:        ``R_RL(d)  = d·(α − β·log d)``.

Both are linear in ``(α, β)``, so :func:`fit_bon` and :func:`fit_rl` are ordinary least squares with R².
:func:`best_of_n_curve` is the unbiased estimator of the expected gold of best-of-n sampling (choosing by the
proxy) from one fixed pool of ``N ≥ n`` samples per prompt: the sample ranked ``i``-th lowest by the proxy is
the best of a uniformly drawn ``n``-subset with probability ``C(i−1, n−1) / C(N, n)``.

>>> round(bon_kl(1), 6), round(bon_kl(2), 4)
(0.0, 0.1931)
>>> best_of_n_curve([[0.1, 0.5, 0.3]], [[1.0, 0.0, 2.0]], [1, 3])  # n=1: the mean; n=3: gold of the proxy's argmax
array([1., 0.])
>>> d = np.linspace(0.1, 3, 20)
>>> fit = fit_bon(d, d * (1.0 - 0.25 * d))
>>> round(fit.alpha, 6), round(fit.beta, 6), round(fit.r2, 6), round(fit.peak_d, 6)
(1.0, 0.25, 1.0, 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlhf_gym.errors import ConfigError

__all__ = ["bon_kl", "best_of_n_curve", "Fit", "fit_bon", "fit_rl"]


def bon_kl(n: int) -> float:
    """The KL of best-of-``n`` sampling from its base policy, ``log n − (n − 1)/n`` (an upper bound, exact
    for continuous rewards without ties; Stiennon et al. 2020, appendix G.3)."""
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"best-of-n: n={n!r} is invalid: must be an integer >= 1")
    return math.log(n) - (n - 1) / n


def best_of_n_curve(proxy: Sequence[Sequence[float]], gold: Sequence[Sequence[float]],
                    ns: Sequence[int]) -> np.ndarray:
    """Expected gold of best-of-n by ``proxy``, averaged over prompts, for each ``n`` in ``ns``.

    ``proxy`` and ``gold`` are ``(prompts, N)``: N samples per prompt scored by both. Each estimate is
    unbiased for sampling n of the N without replacement; proxy ties are broken by position.
    """
    p, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    if p.ndim != 2 or p.shape != g.shape or p.size == 0:
        raise ConfigError(f"best-of-n curve: proxy {p.shape} and gold {g.shape} must be the same non-empty (prompts, N)")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ConfigError("best-of-n curve: proxy and gold scores must be finite")
    pool = p.shape[1]
    bad = [n for n in ns if not isinstance(n, int | np.integer) or isinstance(n, bool) or not 1 <= n <= pool]
    if bad:
        raise ConfigError(f"best-of-n curve: n={bad[0]!r} is invalid: must be an integer in 1..{pool} (the pool size)")
    order = np.argsort(p, axis=1, kind="stable")
    ranked = np.take_along_axis(g, order, axis=1)  # gold, by ascending proxy
    i = np.arange(1, pool + 1)
    out = []
    for n in ns:
        # log C(i-1, n-1) - log C(N, n); zero weight where i < n
        with np.errstate(divide="ignore", invalid="ignore"):
            logw = np.where(i >= n, _log_comb(i - 1, n - 1) - _log_comb(pool, n), -np.inf)
        out.append(float((ranked @ np.exp(logw)).mean()))
    return np.array(out)


def _log_comb(a: np.ndarray | int, b: int) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    lg = np.vectorize(math.lgamma)
    return lg(a + 1) - lg(b + 1) - lg(np.maximum(a - b, 0) + 1)


@dataclass(frozen=True)
class Fit:
    """A least-squares fit of one functional form: its coefficients, R² and where it peaks."""

    form: str  # "bon": d(α − βd); "rl": d(α − β log d)
    alpha: float
    beta: float
    r2: float  # 1 − SS_res / SS_tot (nan when the data have no variance)
    peak_d: float  # argmax of the fitted curve over d > 0 (inf when it never turns down)

    def __call__(self, d: np.ndarray | float) -> np.ndarray:
        d = np.asarray(d, dtype=float)
        if self.form == "bon":
            return d * (self.alpha - self.beta * d)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, d * (self.alpha - self.beta * np.log(d)), 0.0)


def _fit(form: str, d: Sequence[float], gain: Sequence[float]) -> Fit:
    d, y = np.asarray(d, dtype=float), np.asarray(gain, dtype=float)
    keep = np.isfinite(d) & np.isfinite(y) & (d > 0)
    d, y = d[keep], y[keep]
    if len(d) < 3:
        raise ConfigError(f"fit {form}: needs at least 3 points with d > 0, got {len(d)}")
    x = np.stack([d, -d * d if form == "bon" else -d * np.log(d)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(x, y, rcond=None)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - x @ np.array([alpha, beta])) ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
    if beta <= 0:
        peak = math.inf
    elif form == "bon":
        peak = alpha / (2 * beta)
    else:  # d/dd [d(α − β log d)] = α − β(log d + 1) = 0
        peak = math.exp(min(alpha / beta - 1.0, 700.0))
    return Fit(form, float(alpha), float(beta), r2, float(peak))


def fit_bon(d: Sequence[float], gain: Sequence[float]) -> Fit:
    """Fits ``gain = d·(α − β·d)`` (best-of-n) by least squares; points with ``d <= 0`` are dropped."""
    return _fit("bon", d, gain)


def fit_rl(d: Sequence[float], gain: Sequence[float]) -> Fit:
    """Fits ``gain = d·(α − β·log d)`` (RL) by least squares; points with ``d <= 0`` are dropped."""
    return _fit("rl", d, gain)
