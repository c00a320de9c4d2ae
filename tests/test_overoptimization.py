"""The over-optimisation arithmetic: the best-of-n estimator against brute force, and the two fits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_gym.core.overoptimization import best_of_n_curve, bon_kl, fit_bon, fit_rl
from rlhf_gym.errors import ConfigError


def brute_force(proxy: np.ndarray, gold: np.ndarray, n: int) -> float:
    """Mean over prompts of the mean, over every n-subset, of the gold of the subset's proxy argmax."""
    per_prompt = []
    for p, g in zip(proxy, gold):
        picks = [g[max(s, key=lambda j: (p[j], j))] for s in itertools.combinations(range(len(p)), n)]
        per_prompt.append(np.mean(picks))
    return float(np.mean(per_prompt))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(0, 2**31 - 1), st.booleans())
def test_estimator_matches_enumerating_every_subset(prompts: int, pool: int, seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    proxy = rng.integers(0, 3, (prompts, pool)).astype(float) if ties else rng.normal(size=(prompts, pool))
    gold = rng.normal(size=(prompts, pool))
    ns = list(range(1, pool + 1))
    np.testing.assert_allclose(best_of_n_curve(proxy, gold, ns), [brute_force(proxy, gold, n) for n in ns], atol=1e-9)


def test_estimator_endpoints_and_large_pool() -> None:
    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=(4, 256)), rng.normal(size=(4, 256))
    curve = best_of_n_curve(proxy, gold, [1, 256])
    assert curve[0] == pytest.approx(gold.mean())  # n=1: one uniform draw
    assert curve[1] == pytest.approx(gold[np.arange(4), proxy.argmax(1)].mean())  # n=N: the argmax
    # proxy = gold: best-of-n gold rises with n
    rising = best_of_n_curve(gold, gold, [1, 2, 4, 16, 64, 256])
    assert np.all(np.diff(rising) > 0)


def test_bon_kl() -> None:
    assert bon_kl(1) == 0.0
    assert bon_kl(256) == pytest.approx(math.log(256) - 255 / 256)
    assert all(bon_kl(n) < bon_kl(n + 1) for n in range(1, 50))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="n="):
            bon_kl(bad)


@pytest.mark.parametrize("form,fit", [("bon", fit_bon), ("rl", fit_rl)])
def test_fits_recover_known_coefficients(form: str, fit) -> None:
    rng = np.random.default_rng(1)
    d = np.linspace(0.2, 4.0, 30)
    truth = d * (0.8 - 0.3 * d) if form == "bon" else d * (0.8 - 0.3 * np.log(d))
    exact = fit(d, truth)
    assert (exact.alpha, exact.beta, exact.r2) == pytest.approx((0.8, 0.3, 1.0))
    assert float(exact(exact.peak_d)) >= float(exact(d).max()) - 1e-9  # the peak is the curve's maximum
    noisy = fit(d, truth + rng.normal(0, 0.05, d.shape))
    assert abs(noisy.alpha - 0.8) < 0.1 and abs(noisy.beta - 0.3) < 0.1 and 0.5 < noisy.r2 < 1.0


def test_fit_of_a_curve_that_never_turns_down() -> None:
    d = np.linspace(0.1, 3, 10)
    assert fit_bon(d, 0.5 * d + 0.1 * d * d).peak_d == math.inf
    assert math.isnan(fit_rl(d, np.zeros_like(d)).r2)  # nothing to explain


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="same non-empty"):
        best_of_n_curve([[1.0, 2.0]], [[1.0]], [1])
    with pytest.raises(ConfigError, match="finite"):
        best_of_n_curve([[1.0, math.nan]], [[1.0, 2.0]], [1])
    with pytest.raises(ConfigError, match=r"n=3 is invalid: must be an integer in 1\.\.2"):
        best_of_n_curve([[1.0, 2.0]], [[1.0, 2.0]], [1, 3])
    with pytest.raises(ConfigError, match="at least 3 points"):
        fit_bon([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])  # d=0 is dropped
