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

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from transformers import PreTrainedTokenizerBase

from rlhf_gym.core.checks import check_int
from rlhf_gym.core.generation import left_pad
from rlhf_gym.envs.engine import EpisodeScores
from rlhf_gym.envs.textgen import (
    ModelArg,
    build_engine,
    check_options,
    check_prompt_index,
    check_render_mode,
    check_seed,
    observation_space,
    pick_prompt,
)
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
        num_envs = check_int(num_envs, "num_envs", low=1)
        check_render_mode(render_mode, self.metadata["render_modes"], "TextGenVecEnv")
        check_seed(seed)
        self.engine = build_engine(num_envs, model, tokenizer, prompts, reward, beta, kl_estimator,
                                   max_new_tokens, max_prompt_tokens, device)
        self.num_envs = num_envs
        self.single_observation_space = observation_space(self.engine)
        self.single_action_space = spaces.Discrete(self.engine.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self._initial_seed = render_mode, seed
        self._needs_reset = np.ones(num_envs, dtype=bool)
        self._started = False  # step() before the first reset() is Gymnasium's ResetNeeded

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        if isinstance(seed, list | tuple):
            if len(seed) != self.num_envs:
                raise ConfigError(f"seed={seed!r} is invalid: a list of seeds needs one per env ({self.num_envs})")
            seed = seed[0]
        seed = check_seed(seed)
        options = check_options(options)
        mask = self._row_mask(options.pop("reset_mask", None))
        super().reset(seed=seed)
        rows = np.flatnonzero(mask)
        if "prompt_index" in options and np.ndim(options["prompt_index"]) >= 1:  # one prompt per row
            indices = self._row_prompts(options["prompt_index"])[rows]
        else:
            indices = np.array([pick_prompt(self.engine, self.np_random, options) for _ in rows], dtype=np.int64)
        if len(rows):
            self.engine.reset_rows(rows, indices)
        self._needs_reset[rows] = False
        self._started = True
        return self.engine.observation(), {}

    def _row_mask(self, value: object) -> np.ndarray:
        """``options["reset_mask"]``: a bool per env (default: all rows)."""
        if value is None:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value)
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
            raise ConfigError(f"options['reset_mask']={value!r} is invalid: must be {self.num_envs} booleans")
        return mask

    def _row_prompts(self, value: object) -> np.ndarray:
        """``options["prompt_index"]`` given per row: ``num_envs`` integers in range."""
        arr = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value)
        if arr.shape != (self.num_envs,) or not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"options['prompt_index']={value!r} is invalid: one integer per env "
                              f"({self.num_envs}), or a single integer for all")
        for i in arr:
            check_prompt_index(self.engine, i)
        return arr.astype(np.int64)

    def _actions(self, actions: object) -> torch.Tensor:
        """``num_envs`` integer token ids as a tensor on the engine's device; floats or other shapes are errors."""
        e = self.engine
        if isinstance(actions, torch.Tensor):
            ok = not (actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool)
            shape = tuple(actions.shape)
        else:
            try:
                arr = np.asarray(actions)
            except (ValueError, TypeError):  # ragged nested lists
                arr = np.asarray(None)
            ok, shape = np.issubdtype(arr.dtype, np.integer), arr.shape
        if not ok or shape != (self.num_envs,):
            raise ConfigError(f"actions={actions!r} is invalid: expected {self.num_envs} integer token ids "
                              f"(shape ({self.num_envs},)), got {'shape ' + str(shape) if ok else 'non-integers'}")
        t = actions if isinstance(actions, torch.Tensor) else torch.from_numpy(arr.astype(np.int64, copy=False))
        t = t.to(e.device).long()
        e.check_actions(t)
        return t

    def _logprobs(self, logprobs: object) -> torch.Tensor:
        """The agent's ``num_envs`` log-probs of its actions: finite real numbers."""
        e = self.engine
        try:
            t = torch.as_tensor(logprobs.detach() if isinstance(logprobs, torch.Tensor) else np.asarray(logprobs))
        except (TypeError, ValueError, RuntimeError):
            t = None
        if t is None or t.shape != (self.num_envs,) or t.is_complex() or t.dtype == torch.bool:
            raise ConfigError(f"logprobs={logprobs!r} is invalid: expected {self.num_envs} log-probabilities "
                              f"(shape ({self.num_envs},))" + (f", got shape {tuple(t.shape)}" if t is not None else ""))
        t = t.to(e.device, torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ConfigError(f"logprobs={logprobs!r} is invalid: log-probabilities must be finite")
        return t

    def step(self, actions, logprobs: torch.Tensor | np.ndarray | None = None):
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        e = self.engine
        actions_t = self._actions(actions)
        if logprobs is not None:
            logprobs = self._logprobs(logprobs)
        resetting = self._needs_reset.copy()
        active = torch.as_tensor(~resetting, device=e.device)
        ref_logp, terminated = e.advance(actions_t, active)
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
