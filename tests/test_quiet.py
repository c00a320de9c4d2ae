"""Library use is quiet: no progress bars, no warnings from our calls into the pinned libraries."""

from __future__ import annotations

import warnings

import gymnasium as gym

import rlhf_gym  # noqa: F401  (registers the envs)


def test_making_and_stepping_an_env_prints_and_warns_nothing(capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make("rlhf_gym/Sentiment-v0", max_new_tokens=3)
        env.reset(seed=0)
        for _ in range(3):
            env.step(env.action_space.sample())
        envs = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=2, max_new_tokens=3)
        envs.reset(seed=0)
        envs.step(envs.action_space.sample())
    out, err = capfd.readouterr()
    assert "Loading weights" not in err + out
    assert err == "" and out == ""
    assert [str(w.message) for w in caught] == []


def test_the_progress_bar_setting_of_the_user_is_restored():
    from transformers.utils import logging as hf_logging

    from rlhf_gym.core.models import load_causal_lm

    hf_logging.enable_progress_bar()
    load_causal_lm("embedded")
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    load_causal_lm("embedded")
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


def test_training_saving_and_loading_an_agent_prints_nothing(capfd, tmp_path):
    from rlhf_gym.agents import PPO

    envs = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=2, max_new_tokens=2)
    agent = PPO(envs, seed=0).learn(4)
    agent.save(tmp_path / "agent")
    PPO.load(tmp_path / "agent", env=envs)
    out, err = capfd.readouterr()
    assert err == "" and out == "", (out + err)[:300]
