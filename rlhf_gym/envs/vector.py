"""``TextGenVecEnv``: N text-generation episodes as one native ``gymnasium.vector.VectorEnv``.

``gymnasium.make_vec("rlhf_gym/Sentiment-v0", num_envs=N)`` returns it. All N sequences live as tensors on
the model's device, the reference model keeps one KV cache for all of them, and the rows that finish on a
step are scored in one reward call. Autoreset is ``NEXT_STEP``: the step after a row terminates, that row
starts a new prompt (its action is ignored and its reward is 0), as Gymnasium's own vector envs do.

Agents that sample with their own KV cache use the bulk path instead: :meth:`sample_prompts` gives a batch
of prompts and :meth:`score_episodes` rewards whole episodes in one teacher-forced reference forward and one
reward call. Both paths give the same rewards for the same tokens.

``step(actions, logprobs=None)``: with the agent's log-probs of its actions, the reward is the full
``−β·KL_t`` under the configured estimator; without them it is the environment's share ``β·log π_ref``.

>>> import gymnasium as gym, numpy as np, rlhf_gym
>>> envs = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> obs, info = envs.reset(seed=0)
>>> obs["input_ids"].shape[0], type(envs).__name__
(4, 'TextGenVecEnv')
>>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
>>> rewards.shape, rewards.dtype
((4,), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from transformers import PreTrainedTokenizerBase

from rlhf_gym.core.generation import left_pad
from rlhf_gym.envs.engine import EpisodeScores
from rlhf_gym.envs.textgen import ModelArg, build_engine, observation_space, pick_prompt
from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards.base import RewardFunction


class TextGenVecEnv(VectorEnv):
    """N episodes stepped together; the arguments are :class:`~rlhf_gym.envs.TextGenEnv`'s plus ``num_envs``."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 8,
        model: ModelArg = "embedded",
        tokenizer: str | PreTrainedTokenizerBase | None = None,
        prompts: str | Path | Sequence[str] = "embedded:train",
        reward: str | RewardFunction | Callable = "gold",
        beta: float = 0.05,
        kl_estimator: str = "k1",
        max_new_tokens: int = 24,
        max_prompt_tokens: int | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        seed: int | None = None,
    ):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        self.engine = build_engine(num_envs, model, tokenizer, prompts, reward, beta, kl_estimator,
                                   max_new_tokens, max_prompt_tokens, device)
        self.num_envs = num_envs
        self.single_observation_space = observation_space(self.engine)
        self.single_action_space = spaces.Discrete(self.engine.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self._initial_seed = render_mode, seed
        self._needs_reset = np.ones(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        if isinstance(seed, list):
            seed = seed[0]
        super().reset(seed=seed)
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        rows = np.flatnonzero(mask)
        if "prompt_index" in options and np.ndim(options["prompt_index"]) == 1:  # one prompt per row
            indices = np.asarray(options["prompt_index"], dtype=np.int64)[rows]
        else:
            indices = np.array([pick_prompt(self.engine, self.np_random, options) for _ in rows], dtype=np.int64)
        if len(rows):
            self.engine.reset_rows(rows, indices)
        self._needs_reset[rows] = False
        return self.engine.observation(), {}

    def step(self, actions, logprobs: torch.Tensor | np.ndarray | None = None):
        e = self.engine
        actions_t = torch.as_tensor(np.asarray(actions) if not isinstance(actions, torch.Tensor) else actions,
                                    device=e.device).long().reshape(-1)
        e.check_actions(actions_t)
        resetting = self._needs_reset.copy()
        active = torch.as_tensor(~resetting, device=e.device)
        ref_logp, terminated = e.advance(actions_t, active)
        if logprobs is not None:
            logprobs = torch.as_tensor(logprobs, device=e.device, dtype=torch.float32)
        rewards = torch.where(active, e.kl_rewards(ref_logp, logprobs), 0.0).float()
        terminated_np = terminated.cpu().numpy()
        info: dict = {"ref_logprob": np.where(resetting, 0.0, ref_logp.cpu().numpy()).astype(np.float32),
                      "_ref_logprob": ~resetting}
        done_rows = np.flatnonzero(terminated_np)
        if len(done_rows):
            finished = e.score_rows(done_rows)
            rewards[torch.as_tensor(done_rows, device=e.device)] += finished.scores.to(e.device)
            self._add_final_info(info, finished)
        if resetting.any():  # NEXT_STEP autoreset: these rows ended last step and start anew now
            rows = np.flatnonzero(resetting)
            e.reset_rows(rows, np.array([pick_prompt(e, self.np_random, None) for _ in rows], dtype=np.int64))
        self._needs_reset = terminated_np.copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        return e.observation(), rewards.cpu().numpy(), terminated_np, truncated, info

    def _add_final_info(self, info: dict, finished) -> None:
        n, rows = self.num_envs, finished.rows
        present = np.zeros(n, dtype=bool)
        present[rows] = True
        scores = np.zeros(n, dtype=np.float32)
        scores[rows] = finished.scores.numpy()
        prompts, completions = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        prompts[rows], completions[rows] = finished.prompts, finished.completions
        info.update(rm_score=scores, _rm_score=present, prompt=prompts, _prompt=present,
                    completion=completions, _completion=present)

    # ----- bulk path for agents with their own sampler ------------------------------------------------
    def sample_prompts(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """``n`` prompts drawn from ``np_random``, left-padded to the longest: ``(ids, mask, prompt_indices)``."""
        e, n = self.engine, n or self.num_envs
        indices = self.np_random.integers(len(e.prompts), size=n)
        ids, mask = left_pad([e.prompt_ids[i] for i in indices], e.pad, device=e.device)
        return ids, mask, indices

    def score_episodes(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
        prompt_indices: np.ndarray | None = None,
        logprobs: torch.Tensor | None = None,
    ) -> EpisodeScores:
        """Per-token rewards for whole episodes (see :meth:`EpisodeEngine.score_episodes`)."""
        return self.engine.score_episodes(prompt_ids, prompt_mask, tokens, token_mask, prompt_indices, logprobs)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.engine.tok
