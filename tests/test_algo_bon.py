"""Best-of-n and RAFT: selection and KL by hand, evaluation through the sampling hook, checkpoints, learning."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_agents import comparable, make_env, vowel_reward

import rlhf_gym  # noqa: F401  (registers the envs)
from rlhf_gym.agents import RAFT, BestOfN
from rlhf_gym.agents.bon import analytic_kl, measured_kl
from rlhf_gym.agents.evaluation import evaluate
from rlhf_gym.agents.raft import raft_loss
from rlhf_gym.core.generation import token_logprobs
from rlhf_gym.errors import ConfigError


# ----- (a) by hand ------------------------------------------------------------------------------------------
def test_analytic_kl_values():
    assert analytic_kl(1) == 0.0
    assert analytic_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert analytic_kl(16) == pytest.approx(math.log(16) - 15 / 16)


def test_measured_kl_by_hand():
    pool = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    best = torch.tensor([2.5, 2.0, 0.5, 1.0])
    # Over the pool plus the chosen reward (4 values), F̂ = #≤/4, F̂⁻ = #</4, KL̂ = log[(F̂² − F̂⁻²)/(F̂ − F̂⁻)]:
    #   best 2.5: F̂ = 1,   F̂⁻ = 3/4 -> (1 − 9/16)/(1/4) = 7/4   (no tie: = 2·F̂, the n·F^{n−1} of the docstring)
    #   best 2:   F̂ = 1,   F̂⁻ = 2/4 -> (1 − 4/16)/(2/4) = 3/2   (tied with the pool's 2)
    #   best 0.5: F̂ = 2/4, F̂⁻ = 1/4 -> (4/16 − 1/16)/(1/4) = 3/4
    #   all tied: F̂ = 1,   F̂⁻ = 0   -> 1: best-of-n of a constant reward is π itself (the analytic 0.19 is a bound)
    expected = torch.tensor([math.log(7 / 4), math.log(3 / 2), math.log(3 / 4), 0.0])
    torch.testing.assert_close(measured_kl(best, pool, 2), expected)
    assert (measured_kl(best, pool, 1) == 0).all()  # best of one is π
    # Continuous rewards: the estimate approaches log n − (n−1)/n as the pool grows (biased low at small m).
    gen = torch.Generator().manual_seed(0)
    best, pool = torch.rand(4000, 4, generator=gen).max(1).values, torch.rand(4000, 256, generator=gen)
    assert float(measured_kl(best, pool, 4).mean()) == pytest.approx(analytic_kl(4), abs=0.03)


def test_best_of_n_returns_the_argmax_of_each_group(tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts, n=4)
    agent = BestOfN(env, n=5, kl_pool=3, seed=0)
    ids, mask, _ = env.sample_prompts(4)
    out = agent.best_of_n(ids, mask)
    c = out["candidates"]
    assert c.tokens.shape[0] == 20 and out["scores"].shape == (4, 5)
    expected = torch.tensor(vowel_reward(None, out["completions"]), dtype=torch.float).reshape(4, 5)
    torch.testing.assert_close(out["scores"], expected)
    assert (out["best"] == expected.argmax(1)).all()
    gen = torch.Generator().manual_seed(1)
    chosen, info = agent.sample_for_evaluation(ids, mask, 6, gen)
    again = agent.best_of_n(ids, mask, 6, torch.Generator().manual_seed(1))  # same draws: the chosen rows
    rows = torch.arange(4) * 5 + again["best"]
    assert torch.equal(chosen.tokens, again["candidates"].tokens[rows]) and set(info) >= {"kl", "kl_analytic"}
    buf, metrics = agent.collect()  # a rollout holds all n candidates; its metrics describe the chosen ones
    assert len(buf) == 4 * 5 and buf.n_groups == 4
    assert metrics["objective/scores"] == pytest.approx(float(buf.group_view(buf.scores).max(1).values.mean()))
    assert metrics["bon/kl_analytic"] == pytest.approx(analytic_kl(5))
    with pytest.raises(ConfigError, match="n"):
        BestOfN(env, n=0)


def test_raft_keeps_the_best_row_of_each_group_and_trains_on_it_only(tiny_lm_dir, prompts):
    agent = RAFT(make_env(tiny_lm_dir, prompts, n=6), samples_per_prompt=3, seed=0)
    buf, _ = agent.collect()
    buf.scores = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.3, 0.9])  # group 2 ties: the first of the tied rows
    metrics = agent.compute_advantages(buf)
    kept = buf.advantages.sum(1) > 0
    assert kept.tolist() == [False, True, False, True, False, False] and metrics["raft/kept_fraction"] == pytest.approx(2 / 6)
    assert torch.equal(buf.advantages, (kept[:, None] & buf.token_mask).float())
    mb = buf.select(torch.arange(6))
    logp, _, _ = agent.evaluate_actions(mb, with_entropy=False)
    logp.retain_grad()
    loss = raft_loss(logp, mb.advantages)
    loss.backward()
    assert (logp.grad[~kept] == 0).all() and (logp.grad[kept][mb.token_mask[kept]] != 0).all()
    agent.optimizer.zero_grad()
    with torch.no_grad():  # an independent teacher-forced NLL of the two kept rows
        ref = token_logprobs(agent.lm, buf.prompt_ids[kept], buf.prompt_mask[kept], buf.tokens[kept], buf.token_mask[kept])
    assert loss.item() == pytest.approx(-float(ref.sum()) / int(buf.token_mask[kept].sum()), rel=1e-5)
    quantile = RAFT(make_env(tiny_lm_dir, prompts, n=6), samples_per_prompt=3, keep_quantile=0.5, seed=0)
    buf.scores = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.3, 0.1])  # bests 0.5 and 0.9: the median is 0.7
    quantile.compute_advantages(buf)
    assert (buf.advantages.sum(1) > 0).tolist() == [False, False, False, True, False, False]


# ----- (b) evaluated like any agent -------------------------------------------------------------------------
def test_evaluate_samples_best_of_n_through_the_hook(tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts)
    base = [evaluate(env.engine.ref, env, n=64, seed=s)["rm_reward"] for s in range(3)]
    bon = [evaluate(BestOfN(env, n=8, kl_pool=8, seed=s), env, n=64, seed=s) for s in range(3)]
    # Measured (seeds 0-2, 64 prompts): base rm 0.121, 0.092, 0.079 (range 0.042, sd 0.021); best-of-8 0.288, 0.275,
    # 0.271 (sd 0.009): the worst best-of-8 beats the best base by 0.149. We assert > 0.1 (2.4x the range, 5 sd).
    assert min(b["rm_reward"] for b in bon) > max(base) + 0.1, (base, [b["rm_reward"] for b in bon])
    assert all(b["kl_analytic"] == pytest.approx(analytic_kl(8)) for b in bon)
    assert all(0 < b["kl"] <= math.log(8) for b in bon)  # the per-prompt estimate never exceeds log n
    assert bon[0]["kl"] == pytest.approx(np.mean([s["kl"] for s in bon[0]["samples"]]))
    assert bon[0]["rm_reward_candidates"] == pytest.approx(np.mean(base), abs=0.03)


def test_best_of_n_raises_the_gold_on_the_embedded_sentiment_task():
    env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=12)
    base = evaluate(env.unwrapped.engine.ref, env, prompts="embedded:eval", n=32, seed=0)["gold_reward"]
    bon = evaluate(BestOfN(env, n=4, kl_pool=4, seed=0), env, prompts="embedded:eval", n=32, seed=0)["gold_reward"]
    # Measured at 256 prompts, 20 tokens: base 0.02, best-of-4 0.62, best-of-16 0.88 (gold = VADER, -1..1).
    assert bon > base + 0.3, (base, bon)


# ----- (c) checkpoints --------------------------------------------------------------------------------------
def test_raft_resumes_exactly(tmp_path, tiny_lm_dir, prompts):
    kw = dict(samples_per_prompt=4, learning_rate=1e-2, minibatch_size=8, seed=3)
    agent = RAFT(make_env(tiny_lm_dir, prompts, n=8), **kw).learn(3 * 40)
    path = agent.save(tmp_path / "raft")
    loaded = RAFT.load(path, env=make_env(tiny_lm_dir, prompts, n=8))
    assert loaded.config == agent.config and loaded.num_timesteps == agent.num_timesteps
    agent.learn(3 * 40)
    loaded.learn(3 * 40)
    assert comparable(loaded.history) == comparable(agent.history[-len(loaded.history):])
    straight = RAFT(make_env(tiny_lm_dir, prompts, n=8), **kw).learn(3 * 40)
    straight.learn(3 * 40)
    assert comparable(straight.history) == comparable(agent.history)


def test_best_of_n_save_load_round_trip(tmp_path, tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts, n=4)
    agent = BestOfN(env, n=3, kl_pool=5, seed=2).learn(20)
    loaded = BestOfN.load(agent.save(tmp_path / "bon"), env=make_env(tiny_lm_dir, prompts, n=4))
    assert loaded.config == agent.config and loaded.num_timesteps == agent.num_timesteps
    a, b = (evaluate(x, env, n=8, seed=0) for x in (agent, loaded))
    assert a["samples"] == b["samples"]
    agent.learn(20)
    loaded.learn(20)
    assert comparable(loaded.history) == comparable(agent.history[-len(loaded.history):])


# ----- (d) RAFT learns ----------------------------------------------------------------------------------------
# 3-token episodes, 16 envs, K=4, lr 1e-2, 768 tokens (16-17 rollouts, ~1.5 s). Gain = mean score of the last 2
# rollouts - mean of the first 2. Measured on this machine: seeds 0-7 gave 0.49, 0.59, 0.54, 0.28, 0.66, 0.86, 0.80,
# 0.44 (mean 0.58, sd 0.19); no learning (lr 1e-9), seeds 0-5: 0.06, -0.03, -0.04, 0.05, -0.02, 0.03 (sd 0.04).
# We assert a gain > 0.2: under every seed's, 5 sd above the no-learning noise.
def test_short_seeded_raft_run_raises_the_reward(tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts, max_new_tokens=3)
    agent = RAFT(env, seed=0, learning_rate=1e-2, samples_per_prompt=4, minibatch_size=16).learn(768)
    scores = [m["objective/scores"] for m in agent.history]
    assert np.mean(scores[-2:]) > np.mean(scores[:2]) + 0.2, scores
    assert all(m["objective/beta"] == 0.0 for m in agent.history)  # the KL is reported, not paid
    assert agent.history[-1]["objective/kl"] > 0.1  # imitating its best samples moved the policy off the reference
