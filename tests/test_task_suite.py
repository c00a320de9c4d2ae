"""The embedded task suite: every registered id is a valid Gymnasium env, each gold judge does what its task
says on hand-written texts, the figures behind ``rlhf-gym tasks`` are computed and cached, and the parts a
task is made of (prompt schemes, shipped models, annotator bias, two-judge golds) work on their own."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml

import rlhf_gym  # noqa: F401
from rlhf_gym.cli import main
from rlhf_gym.core.data import load_prompts, register_prompt_source
from rlhf_gym.core.models import load_causal_lm, resolve_model_path
from rlhf_gym.errors import DataError, ModelError
from rlhf_gym.rewards.base import CallableReward, WeightedSum
from rlhf_gym.runner.task_figures import FigureConfig, cached_figures, offline, pair_accuracy
from rlhf_gym.tasks import get_task, list_tasks
from rlhf_gym.tasks.concise import CONCISE_WORDS, ConciseGold, LengthBias
from rlhf_gym.tasks.readability import ReadabilityGold
from rlhf_gym.tasks.tradeoff import tradeoff_gold

ROOT = Path(__file__).resolve().parents[1]

EMBEDDED = [t.name for t in list_tasks() if offline(t)]


def test_the_suite_has_six_offline_tasks_each_with_a_preset():
    assert len(EMBEDDED) >= 6, EMBEDDED
    for name in EMBEDDED + ["imdb"]:
        task = get_task(name)
        preset = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
        assert preset["task"] == name and preset["max_new_tokens"] == task.max_new_tokens, name
        assert (preset["prompts"], preset["eval_prompts"]) == (task.train_prompts, task.eval_prompts), name


@pytest.mark.parametrize("name", EMBEDDED)
def test_every_task_id_passes_gymnasium_and_sb3_check_env(name):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(get_task(name).env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SB3's "not an image"/dtype advice on Box(int64)
        check_env(env.unwrapped)  # includes seed determinism: same seed, same observations
        sb3_check_env(env.unwrapped, warn=True)
    assert env.unwrapped.engine.max_new_tokens == get_task(name).max_new_tokens
    env.close()


PROCEDURAL = [n for n in EMBEDDED if get_task(n).train_prompts != "embedded:train"]


@pytest.mark.parametrize("name", PROCEDURAL)
def test_procedural_tasks_hold_out_their_eval_prompts(name):
    # The review world's openings are short templates drawn from another seed, so about a third of its
    # eval openings also occur in training (a known property of that world); the procedural tasks share none.
    task = get_task(name)
    train, held_out = load_prompts(task.train_prompts, n=2000), load_prompts(task.eval_prompts, n=500)
    assert len(set(held_out)) > 400
    assert not set(train) & set(held_out)


def test_readability_gold_prefers_plain_words_and_short_sentences():
    gold = ReadabilityGold()
    plain, dense = " It was fun. I liked the songs.", (
        " Notwithstanding considerable directorial ambition, the cinematographic execution disappointed.")
    medium = " The story follows two brothers on a road trip, and the acting is believable."
    s = gold.score(["x"] * 4, [plain, medium, dense, ""]).tolist()
    assert s[0] > s[1] > s[2] and s[0] == 1.0 and s[2] == s[3] == -1.0
    assert all(-1 <= v <= 1 for v in s)


def test_concise_gold_charges_for_words_and_annotators_pay_for_them():
    gold, bias = ConciseGold(), LengthBias()
    point = " I loved it, a wonderful film."
    padded = point + " The story follows two brothers on a road trip." * 2
    g, b = gold.score(["x", "x"], [point, padded]), bias.score(["x", "x"], [point, padded])
    assert g[0] > g[1]  # the same praise, longer: worse by the gold
    n_extra = len(padded.split()) - CONCISE_WORDS
    assert float(g[0] - g[1]) == pytest.approx(0.04 * n_extra, abs=0.2)  # the charge dominates VADER's drift
    assert float(b[1] - b[0]) == pytest.approx(0.15 * (len(padded.split()) - len(point.split())), rel=1e-5)
    judge = get_task("concise").make_annotator_judge()
    perceived = judge.score(["x", "x"], [point, padded])
    assert perceived[1] > perceived[0]  # what the annotators see: longer wins
    assert get_task("sentiment").make_annotator_judge().score(["x"], [point]).item() == pytest.approx(
        get_task("sentiment").make_gold().score(["x"], [point]).item())


def test_tradeoff_gold_is_the_weighted_sum_of_its_judges():
    gold = tradeoff_gold()
    texts = [" I loved it, an absolutely extraordinary and wonderful experience.", " It was ok. It was a film."]
    parts = gold.components(["x", "x"], texts)
    assert set(parts) == {"sentiment", "readability"}
    torch.testing.assert_close(gold.score(["x", "x"], texts), 0.5 * parts["sentiment"] + 0.5 * parts["readability"])
    # The trade-off on these two: the first wins on sentiment, the second on readability.
    assert parts["sentiment"][0] > parts["sentiment"][1] and parts["readability"][1] > parts["readability"][0]
    assert tradeoff_gold(1.0).score(["x"], texts[:1]).item() == pytest.approx(parts["sentiment"][0].item())


def test_evaluation_reports_each_judge_of_a_two_judge_gold():
    from rlhf_gym.agents.evaluation import evaluate

    env = gym.make("rlhf_gym/SentimentReadability-v0", max_new_tokens=6)
    m = evaluate(env.unwrapped.engine.ref, env, prompts="embedded:eval", n=8)
    assert m["gold_reward"] == pytest.approx(0.5 * m["gold_sentiment"] + 0.5 * m["gold_readability"], abs=1e-5)
    env.close()


def test_weighted_sum_refuses_mismatched_or_non_finite_weights():
    one = CallableReward(lambda p, c: [1.0] * len(c))
    with pytest.raises(Exception, match="must name the same judges"):
        WeightedSum({"a": one}, {"b": 1.0})
    with pytest.raises(Exception, match=r"weight a=nan is invalid"):
        WeightedSum({"a": one}, {"a": float("nan")})


def test_prompt_schemes_and_shipped_models_resolve_with_clear_errors():
    register_prompt_source("toyscheme", lambda split, n: [f"{split} {i}" for i in range(n)])
    assert load_prompts("toyscheme:eval", n=3) == ["eval 0", "eval 1", "eval 2"]
    with pytest.raises(DataError, match=r"unknown toyscheme prompt split 'test'; use toyscheme:train or toyscheme:eval"):
        load_prompts("toyscheme:test")
    with pytest.raises(DataError, match="already registered"):
        register_prompt_source("toyscheme", lambda split, n: [])
    with pytest.raises(DataError, match=r"scheme 'Bad Scheme' is invalid"):
        register_prompt_source("Bad Scheme", lambda split, n: [])
    with pytest.raises(DataError, match=r"generate='nope' is not a callable"):
        register_prompt_source("other", "nope")
    assert resolve_model_path("embedded:tiny-review-gpt2") == resolve_model_path("embedded")
    assert load_causal_lm("embedded:tiny-review-gpt2").config.n_layer == 4
    with pytest.raises(ModelError, match=r"model 'embedded:nope': the package ships no such model \(shipped: .*"
                       r"embedded:tiny-review-gpt2"):
        resolve_model_path("embedded:nope")


def test_pair_accuracy_counts_same_prompt_pairs_with_different_gold():
    gold = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
    assert pair_accuracy(gold * 3, gold) == 1.0 and pair_accuracy(-gold, gold) == 0.0
    proxy = torch.tensor([[0.0, 1.0, 0.5], [5.0, 0.0, 0.0]])
    # row 0: (0,1) right, (0,2) right, (1,2) wrong; row 1: (0,2) right, (1,2) a proxy tie = 1/2; (0,1) gold tie
    assert pair_accuracy(proxy, gold) == pytest.approx((1 + 1 + 0 + 1 + 0.5) / 5)


SMALL = ["--n-prompts", "16", "--bon-prompts", "4", "--best-of", "4", "--comparisons", "24"]


def test_tasks_cli_computes_caches_and_ends_with_result(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLHF_GYM_CACHE", str(tmp_path / "cache"))
    assert main(["tasks", "--task", "concise", "--no-progress", "--json", str(tmp_path / "t.json"), *SMALL]) == 0
    out = capsys.readouterr().out
    assert re.search(r"RESULT tasks=1 min_headroom=-?\d+\.\d+ min_proxy_accuracy=\d\.\d+$", out.strip())
    assert "rlhf_gym/Concise-v0" in out and "ConciseGold()" in out
    fig = json.loads((tmp_path / "t.json").read_text())["concise"]
    assert fig["headroom"] == pytest.approx((fig["best_of_n_gold"] - fig["start_gold_mean"]) / fig["start_gold_sd"])
    assert fig["best_of_n_gold"] >= fig["start_gold_mean"] - 3 * fig["start_gold_sd"] / 4  # a max of 4 samples
    cached = list((tmp_path / "cache" / "tasks").glob("concise-v0-*.json"))
    assert len(cached) == 1
    # Cached: --no-compute shows the same figures (nothing sampled); other tasks are listed as not cached.
    assert main(["tasks", "--no-compute", *SMALL]) == 0
    out = capsys.readouterr().out
    assert f"{fig['start_gold_mean']:.3f} ± {fig['start_gold_sd']:.3f}" in out
    assert "not cached" in out and "needs a download: --task imdb" in out
    assert "RESULT tasks=1 " in out
    assert cached_figures(get_task("concise"), FigureConfig(n_prompts=16, bon_prompts=4, n_best_of=4,
                                                            comparisons=24), compute=False) == fig


def test_tasks_cli_front_for_a_two_judge_gold(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLHF_GYM_CACHE", str(tmp_path))
    assert main(["tasks", "--task", "sentiment-readability", "--no-progress", *SMALL]) == 0
    out = capsys.readouterr().out
    assert re.search(r"front — w=0: sentiment=-?\d\.\d\d readability=-?\d\.\d\d, w=0.25", out)


@pytest.mark.parametrize("argv, message", [
    (["tasks", "--task", "sentimnet"], "unknown task 'sentimnet'; did you mean 'sentiment'?"),
    (["tasks", "--best-of", "1"], "n_best_of=1 is invalid: must be >= 2"),
    (["tasks", "--comparisons", "0"], "comparisons=0 is invalid"),
])
def test_tasks_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
