"""KV-cached token-by-token acting (PolicyStepper) matches re-encoding the observation, across resets."""

from __future__ import annotations

import numpy as np
import torch

from rlhf_gym.agents import PPO
from rlhf_gym.core.generation import trim_left_padding
from rlhf_gym.envs import TextGenVecEnv


def test_cached_stepping_matches_reencoding(tiny_lm_dir, prompts):
    env = TextGenVecEnv(num_envs=3, model=tiny_lm_dir, prompts=prompts, reward=lambda p, c: [0.0] * len(c),
                        max_new_tokens=4)
    agent = PPO(env, seed=0)
    obs, _ = env.reset(seed=0)
    state, starts = agent.stepper(), np.ones(3, dtype=bool)
    compared, restarted = 0, 0
    for _ in range(14):
        final_obs = state._pending_reset.copy()  # rows whose obs is the last of an episode
        actions, state = agent.predict(obs, state=state, episode_start=starts)
        for r in np.flatnonzero(~final_obs):
            ids, mask = trim_left_padding(torch.as_tensor(obs["input_ids"][r:r + 1]),
                                          torch.as_tensor(obs["attention_mask"][r:r + 1]))
            with torch.no_grad():
                fresh = agent.policy.next_token_logits(ids, mask)[0]
            torch.testing.assert_close(state.window.next_logits[r], fresh, atol=1e-4, rtol=1e-4)
            compared += 1
        restarted += int(starts.sum())
        obs, _, terminated, _, _ = env.step(actions, logprobs=state.last_logprobs)
        starts = state.starts_after(terminated)
    assert compared > 25 and restarted > 3  # episodes of 4 tokens: several rows restarted mid-run


def test_stepping_logprobs_make_the_kl_exact(tiny_lm_dir, prompts):
    """Policy == reference at the start, so with the agent's log-probs the per-token KL reward is 0."""
    env = TextGenVecEnv(num_envs=2, model=tiny_lm_dir, prompts=prompts, reward=lambda p, c: [0.0] * len(c),
                        max_new_tokens=3, beta=1.0)
    agent = PPO(env, seed=1)
    obs, _ = env.reset(seed=1)
    state, starts = agent.stepper(), np.ones(2, dtype=bool)
    for _ in range(5):
        actions, state = agent.predict(obs, state=state, episode_start=starts)
        obs, rewards, terminated, _, _ = env.step(actions, logprobs=state.last_logprobs)
        np.testing.assert_allclose(rewards, 0.0, atol=1e-4)
        starts = state.starts_after(terminated)
