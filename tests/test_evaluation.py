"""The evaluation function: metrics checked by hand, determinism, and SB3 models evaluated through their LM."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from stable_baselines3 import PPO

from rlhf_gym.agents.evaluation import causal_lm_of, distinct_n, engine_of, evaluate, evaluate_sb3
from rlhf_gym.agents.sb3 import HFActorCriticPolicy
from rlhf_gym.envs import TextGenEnv, TextGenVecEnv
from rlhf_gym.errors import ConfigError


def length_reward(prompts, completions):
    return [len(c) / 10 for c in completions]


@pytest.fixture
def env(tiny_lm_dir, prompts):
    return TextGenEnv(model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=6)


def test_distinct_n_on_known_tokens():
    seqs = [[1, 2, 3], [1, 2, 4], [5]]
    assert distinct_n(seqs, 1) == 5 / 7  # {1,2,3,4,5} of 7 tokens
    assert distinct_n(seqs, 2) == 3 / 4  # (1,2) (2,3) (1,2) (2,4): n-grams never span two samples
    assert distinct_n([[7, 7, 7, 7]], 1) == 1 / 4
    assert distinct_n([[1]], 2) == 0.0


def test_kl_is_zero_when_the_policy_is_the_reference(env):
    ref = env.engine.ref
    assert evaluate(ref, env, n=10, batch_size=4)["kl"] == 0.0
    copied = evaluate(copy.deepcopy(ref), env, n=10, batch_size=4)
    assert copied["kl"] == pytest.approx(0.0, abs=1e-5)


def test_kl_is_positive_for_another_policy(env):
    policy = copy.deepcopy(env.engine.ref)
    with torch.no_grad():
        policy.get_output_embeddings().weight.mul_(10.0)  # sharpen: far from the reference
    metrics = evaluate(policy, env, n=16)
    # The k1 estimate over 16 samples, measured on AMD EPYC over 8 seeds x 2 LM inits
    # (scripts/audit_learning_tests.py eval-kl): x10 gives 12.4-19.1 (mean 15.2, sd 1.9); we assert > 1.
    # (x3, as before, gave -0.008-0.68 against a threshold of 0.1: it passed for seed 0 only by luck.)
    assert metrics["kl"] > 1.0
    assert metrics["kl"] == pytest.approx(sum(s["kl"] for s in metrics["samples"]) / 16)


def test_perplexity_is_exp_mean_nll_under_the_reference(env):
    metrics = evaluate(copy.deepcopy(env.engine.ref), env, n=8, batch_size=3)
    ref, tok = env.engine.ref, env.engine.tok
    nll, count = 0.0, 0
    for s in metrics["samples"]:  # one unpadded forward per sample: independent of the batched code
        prompt = tok(s["prompt"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + s["tokens"]])
        with torch.no_grad():
            logp = ref(ids).logits[0, len(prompt) - 1 : -1].log_softmax(-1)
        nll -= float(logp.gather(-1, torch.tensor(s["tokens"])[:, None]).sum())
        count += len(s["tokens"])
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert metrics["mean_length"] == count / 8


def test_samples_rewards_and_determinism(env, prompts):
    a = evaluate(env.engine.ref, env, n=7, seed=3, batch_size=3)
    b = evaluate(env.engine.ref, env, n=7, seed=3, batch_size=3)
    c = evaluate(env.engine.ref, env, n=7, seed=4, batch_size=3)
    assert a == b
    assert [s["tokens"] for s in a["samples"]] != [s["tokens"] for s in c["samples"]]
    assert [s["prompt"] for s in a["samples"]] == [prompts[i % 5] for i in range(7)]
    assert a["rm_reward"] == pytest.approx(sum(len(s["completion"]) / 10 for s in a["samples"]) / 7)
    assert all(-1 <= s["gold"] <= 1 for s in a["samples"])
    assert 1 <= a["mean_length"] <= 6 and 0 < a["distinct_1"] <= 1


def test_reward_and_gold_functions_can_be_replaced(env):
    metrics = evaluate(env.engine.ref, env, prompts=["the movie was"], n=3,
                       reward_fn=lambda p, c: [1.0] * len(c), gold_fn=lambda p, c: [-0.5] * len(c))
    assert metrics["rm_reward"] == 1.0 and metrics["gold_reward"] == -0.5
    assert {s["prompt"] for s in metrics["samples"]} == {"the movie was"}


def test_evaluate_works_on_vector_envs_and_sb3_models(env, tiny_lm_dir, prompts):
    vec = TextGenVecEnv(num_envs=2, model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=6)
    assert engine_of(vec) is vec.engine
    model = PPO(HFActorCriticPolicy, env, policy_kwargs=dict(model=tiny_lm_dir), n_steps=8, batch_size=8)
    assert causal_lm_of(model) is model.policy.lm
    through_sb3 = evaluate_sb3(model, n=5)
    direct = evaluate(model.policy.lm, env, n=5)
    assert through_sb3 == direct


def test_bad_arguments_are_clear_errors(env):
    with pytest.raises(ConfigError, match="causal LM"):
        evaluate(object(), env)
    with pytest.raises(ConfigError, match="no engine"):
        evaluate(env.engine.ref, object())
    with pytest.raises(ConfigError, match="temperature"):
        evaluate(env.engine.ref, env, temperature=0)
    with pytest.raises(ConfigError, match="n >= 1"):
        evaluate(env.engine.ref, env, n=0)
