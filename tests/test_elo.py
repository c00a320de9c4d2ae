"""Elo and Bradley–Terry ratings with bootstrap confidence intervals."""

from __future__ import annotations

import math
import random

import pytest

from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.rewards.elo import EloTable, bootstrap_elo, bt_ratings, elo_ratings

STRENGTH = {"strong": 1.5, "medium": 0.5, "weak": -1.0}  # Bradley–Terry log-odds strengths


def simulate(n: int, seed: int = 0) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    matches = []
    for _ in range(n):
        a, b = rng.sample(sorted(STRENGTH), 2)
        p_a = 1 / (1 + math.exp(STRENGTH[b] - STRENGTH[a]))
        matches.append((a, b, 1.0 if rng.random() < p_a else 0.0))
    return matches


def test_single_elo_update_and_zero_sum():
    assert elo_ratings([("a", "b", 1)], k=32) == {"a": 1016.0, "b": 984.0}
    assert elo_ratings([("a", "b", 0.5)], k=32) == {"a": 1000.0, "b": 1000.0}
    ratings = elo_ratings(simulate(300))
    assert sum(ratings.values()) / len(ratings) == pytest.approx(1000.0)


@pytest.mark.parametrize("method", ["bt", "elo"])
def test_stronger_player_ranks_first(method):
    table = bootstrap_elo(simulate(600), method=method, n_boot=50, seed=0)
    assert [player for player, _ in table.ranking()] == ["strong", "medium", "weak"]
    assert sum(table.matches.values()) == 1200  # each match counts for both players


def test_bradley_terry_recovers_the_odds():
    ratings = bt_ratings([("a", "b", 1)] * 300 + [("a", "b", 0)] * 100)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(3), abs=2)  # 3:1 odds
    with_ties = bt_ratings([("a", "b", 1)] * 100 + [("a", "b", 0.5)] * 200 + [("a", "b", 0)] * 100)
    assert with_ties["a"] == pytest.approx(with_ties["b"], abs=1e-3)  # a tie counts half a win each


def test_bradley_terry_ignores_match_order_and_random_orders_tame_elo():
    streak = [("a", "b", 1)] * 50 + [("a", "b", 0)] * 50  # a wins early, b wins late
    assert bt_ratings(streak) == pytest.approx(bt_ratings(streak[::-1]))
    assert elo_ratings(streak)["b"] > elo_ratings(streak[::-1])["b"] + 100  # online Elo remembers the order
    averaged = elo_ratings(streak, n_orders=200, seed=0)
    assert averaged["a"] == pytest.approx(1000, abs=15)


@pytest.mark.parametrize("method", ["bt", "elo"])
def test_confidence_intervals_contain_the_estimate(method):
    table = bootstrap_elo(simulate(400), method=method, n_boot=100, seed=1)
    point = bt_ratings(simulate(400)) if method == "bt" else elo_ratings(simulate(400), n_orders=20)
    for player in STRENGTH:
        assert table.lower[player] <= table.rating[player] <= table.upper[player]
        assert table.lower[player] <= point[player] <= table.upper[player]


def test_confidence_intervals_shrink_with_more_matches():
    def width(n: int) -> float:
        table = bootstrap_elo(simulate(n, seed=n), n_boot=100, seed=0)
        return sum(table.upper[p] - table.lower[p] for p in STRENGTH) / len(STRENGTH)

    assert width(1600) < 0.6 * width(100)


def test_bootstrap_is_seeded_and_prints_a_ranked_table():
    matches = simulate(200)
    table = bootstrap_elo(matches, n_boot=30, seed=3)
    assert table == bootstrap_elo(matches, n_boot=30, seed=3)
    assert isinstance(table, EloTable) and table.ci == 0.95 and table.method == "bt"
    text = str(table)
    assert "95% CI" in text.splitlines()[0]
    assert [line.split()[1] for line in text.splitlines()[1:]] == ["strong", "medium", "weak"]


@pytest.mark.parametrize(
    "matches, message",
    [
        ([], "no matches"),
        ([("a", "a", 1)], "cannot play itself"),
        ([("a", "b", 2)], "result must be"),
        ([("a", "b", True)], "result must be"),
        ([("a", "b")], "expected \\(a, b, result\\)"),
    ],
)
def test_bad_matches_are_one_line_errors(matches, message):
    with pytest.raises(DataError, match=message):
        bootstrap_elo(matches)


def test_bad_settings():
    with pytest.raises(ConfigError, match="method"):
        bootstrap_elo(simulate(10), method="glicko")
    with pytest.raises(ConfigError, match="ci"):
        bootstrap_elo(simulate(10), ci=1.5)
