"""KV-cached token-by-token acting (PolicyStepper) matches re-encoding the observation, across resets."""

from __future__ import annotations

import numpy as np
import pytest
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


def _tiny(arch: str, tiny_lm_dir):
    from transformers import BloomConfig, BloomForCausalLM, LlamaConfig, LlamaForCausalLM

    from rlhf_gym.core.models import load_causal_lm

    torch.manual_seed(0)
    if arch == "gpt2":  # learned absolute positions
        return load_causal_lm(tiny_lm_dir)
    if arch == "llama":  # rotary positions, grouped-query attention
        return LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2)).eval()
    return BloomForCausalLM(BloomConfig(vocab_size=120, hidden_size=32, n_layer=2, n_head=4)).eval()  # ALiBi


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bloom"])
def test_sliding_window_matches_reencoding_around_the_ring(tiny_lm_dir, arch):
    """The window's cache is a ring of exactly W columns, each token written over the one that left: through
    many turns of the ring and partial resets, every row's next-token logits equal a fresh forward over the
    row's live tokens. ALiBi attends by column order, so BLOOM's ring keeps its columns in window order."""
    from rlhf_gym.core.window import SlidingWindowLM

    lm = _tiny(arch, tiny_lm_dir)
    vocab, rng = lm.config.vocab_size, np.random.default_rng(0)
    window = SlidingWindowLM(lm, num_rows=3, width=7, pad_token_id=0)
    assert window.ordered == (arch == "bloom")

    def prompt() -> list[int]:
        return rng.integers(1, vocab, size=rng.integers(1, 4)).tolist()

    window.reset_rows([0, 1, 2], [prompt() for _ in range(3)])
    turns, checked = 0, 0
    for _ in range(40):
        full = (window.mask.sum(1) == window.width).cpu().numpy()
        rows = np.flatnonzero(full | (rng.random(3) < 0.15))
        if len(rows):
            window.reset_rows(rows, [prompt() for _ in rows])
        window.append(torch.as_tensor(rng.integers(1, vocab, size=3)))
        turns += window.cache.head == 0
        for r in range(3):
            live = window.ids[r][window.mask[r].bool()][None]
            with torch.no_grad():
                fresh = lm(input_ids=live).logits[0, -1]
            torch.testing.assert_close(window.next_logits[r], fresh, atol=1e-4, rtol=1e-4)
            checked += 1
    assert checked == 120
    assert turns == 0 if window.ordered else turns >= 5  # an ordered ring never turns: its head stays last
    assert all(layer.keys.shape[2] == 7 for layer in window.cache.layers)  # never grown
