"""``TextGenVecEnv``: N text-generation episodes as one native ``gymnasium.vector.VectorEnv``.

``gymnasium.make_vec("rlhf_gym/Sentiment-v0", num_envs=N)`` returns it. All N sequences live as tensors on
the model's device, the reference model keeps one KV cache for all of them, and the rows that finish on a
step are scored in one reward call. Row for row it behaves as ``make_vec(..., vectorization_mode="sync")``
over single :class:`~rlhf_gym.envs.TextGenEnv` s: row i is seeded like sub-env i (``seed + i``), and the
observations, rewards (float64), ``terminated``/``truncated`` (bool) and info keys with their ``_`` masks are
the same. ``autoreset_mode`` is ``NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``, with Gymnasium's
meanings (``docs/env.md`` has the table); Gymnasium 1.4's ``make_vec`` refuses ``vector_kwargs`` for a
native vector env, so pass it as a keyword: ``make_vec(id, num_envs=N, autoreset_mode="same_step")``.

Agents that sample with their own KV cache use the bulk path instead: :meth:`sample_prompts` gives a batch
of prompts and :meth:`score_episodes` rewards whole episodes in one teacher-forced reference forward and one
reward call. Both paths give the same rewards for the same tokens.

``step(actions, logprobs=None)``, or ``set_policy_logprobs(logprobs)`` before ``step(actions)`` (which
works through any wrapper as ``envs.unwrapped.set_policy_logprobs``): with the agent's log-probs of its
actions, the reward is the full ``−β·KL_t`` under the configured estimator; without them it is the
environment's share ``β·log π_ref``.

>>> import gymnasium as gym, numpy as np, rlhf_gym
>>> envs = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> obs, info = envs.reset(seed=0)
>>> obs["input_ids"].shape[0], type(envs).__name__, envs.autoreset_mode.name
(4, 'TextGenVecEnv', 'NEXT_STEP')
>>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
>>> rewards.shape, rewards.dtype, terminated.dtype
((4,), dtype('float64'), dtype('bool'))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from transformers import PreTrainedTokenizerBase

from rlhf_gym.core.checks import check_int, check_number
from rlhf_gym.core.generation import left_pad
from rlhf_gym.envs.engine import EpisodeScores
from rlhf_gym.envs.textgen import (
    ModelArg,
    build_engine,
    check_options,
    check_prompt_index,
    check_render_mode,
    check_seed,
    check_text_info,
    observation_space,
    pick_prompt,
    without_text,
)
from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards.base import RewardFunction
from rlhf_gym.tasks import Task

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP,
                   "disabled": AutoresetMode.DISABLED}


def check_autoreset_mode(value: object) -> AutoresetMode:
    """An :class:`~gymnasium.vector.AutoresetMode`, its value (``"NextStep"``) or its snake-case name."""
    if isinstance(value, AutoresetMode):
        return value
    if isinstance(value, str):
        for mode in AutoresetMode:
            if value in (mode.value, mode.name) or AUTORESET_MODES.get(value) is mode:
                return mode
    raise ConfigError(f"autoreset_mode={value!r} is invalid: one of {', '.join(map(repr, AUTORESET_MODES))} "
                      "or a gymnasium.vector.AutoresetMode")


class TextGenVecEnv(VectorEnv):
    """N episodes stepped together; the arguments are :class:`~rlhf_gym.envs.TextGenEnv`'s plus ``num_envs``
    and ``autoreset_mode`` (``AutoresetMode.NEXT_STEP``, ``SAME_STEP`` or ``DISABLED``, or their names
    ``"next_step"``, ``"same_step"``, ``"disabled"``)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 8,
        model: ModelArg = None,
        tokenizer: str | PreTrainedTokenizerBase | None = None,
        prompts: str | Path | Sequence[str] | None = None,
        reward: str | RewardFunction | Callable = "gold",
        beta: float = 0.05,
        kl_estimator: str = "k1",
        max_new_tokens: int = 24,
        max_prompt_tokens: int | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        seed: int | None = None,
        action_mask_top_p: float | None = None,
        action_mask_min_tokens: int = 100,
        min_new_tokens: int = 0,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        text_info: bool = True,
        task: str | Task | None = None,
    ):
        num_envs = check_int(num_envs, "num_envs", low=1)
        self.text_info = check_text_info(text_info)
        check_render_mode(render_mode, self.metadata["render_modes"], "TextGenVecEnv")
        check_seed(seed)
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        if action_mask_top_p is not None:
            check_number(action_mask_top_p, "action_mask_top_p", low=0, high=1, low_open=True)
        check_int(action_mask_min_tokens, "action_mask_min_tokens", low=1)
        self.engine = build_engine(num_envs, model, tokenizer, prompts, reward, beta, kl_estimator,
                                   max_new_tokens, max_prompt_tokens, device, min_new_tokens, task)
        self.num_envs = num_envs
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}  # this instance's copy
        self.single_observation_space = observation_space(self.engine)
        self.single_action_space = spaces.Discrete(self.engine.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self._initial_seed = render_mode, seed
        self.action_mask_top_p, self.action_mask_min_tokens = action_mask_top_p, action_mask_min_tokens
        # One generator per row, seeded as SyncVectorEnv seeds sub-env i (seed + i): row i draws the prompts
        # sub-env i would. The env's own ``np_random`` (seeded with ``seed``) feeds the bulk path.
        self._row_rngs: list[np.random.Generator | None] = [None] * num_envs
        self._needs_reset = np.zeros(num_envs, dtype=bool)  # NEXT_STEP: rows that restart on the next step
        self._ended = np.zeros(num_envs, dtype=bool)  # DISABLED: rows that terminated and were not reset
        self._pending_logprobs: torch.Tensor | None = None
        self._started = False  # step() before the first reset() is Gymnasium's ResetNeeded

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Resets every row, or those in ``options["reset_mask"]``; ``seed`` seeds row i with ``seed + i``
        (a list: one seed per row), as ``SyncVectorEnv`` seeds its sub-envs. Info: ``prompt``/``_prompt``."""
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        if isinstance(seed, list | tuple):
            if len(seed) != self.num_envs:
                raise ConfigError(f"seed={seed!r} is invalid: a list of seeds needs one per env ({self.num_envs})")
            row_seeds = [check_seed(s) for s in seed]
            seed = row_seeds[0]
        else:
            seed = check_seed(seed)
            row_seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        options = check_options(options)
        mask = self._row_mask(options.pop("reset_mask", None))
        super().reset(seed=seed)
        rows = np.flatnonzero(mask)
        for i in rows:
            if row_seeds[i] is not None or self._row_rngs[i] is None:
                self._row_rngs[i], _ = seeding.np_random(row_seeds[i])
        if "prompt_index" in options and np.ndim(options["prompt_index"]) >= 1:  # one prompt per row
            indices = self._row_prompts(options["prompt_index"])[rows]
        else:
            indices = np.array([pick_prompt(self.engine, self._row_rngs[i], options) for i in rows], dtype=np.int64)
        if len(rows):
            self.engine.reset_rows(rows, indices)
        self._needs_reset[rows] = self._ended[rows] = False
        self._pending_logprobs = None
        self._started = True
        return self.engine.observation(), self._info(self._prompt_info({}, rows))

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

    def _actions(self, actions: object, active: torch.Tensor) -> torch.Tensor:
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
        e.check_actions(t, active)
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

    def set_policy_logprobs(self, logprobs: torch.Tensor | np.ndarray | Sequence[float] | None) -> None:
        """Gives the agent's ``log π(a_i|s_i)`` of the actions the next :meth:`step` takes (``(num_envs,)``
        finite numbers), so that step pays the full ``−β·KL_t`` under ``kl_estimator`` — exactly as
        ``step(actions, logprobs=...)`` does, but reachable through any wrapper stack as
        ``envs.unwrapped.set_policy_logprobs(lp); envs.step(actions)``. Used by the next step only
        (``reset()`` discards it); None clears it."""
        self._pending_logprobs = None if logprobs is None else self._logprobs(logprobs)

    def step(self, actions, logprobs: torch.Tensor | np.ndarray | None = None):
        """One token per row. ``logprobs`` (or a pending :meth:`set_policy_logprobs`): the agent's log-probs of
        ``actions``, for the full KL penalty. What happens to rows that terminated depends on
        ``autoreset_mode`` (see ``docs/env.md``)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._ended.any():
            rows = np.flatnonzero(self._ended).tolist()
            raise gym.error.ResetNeeded(
                f"rows {rows} have terminated and autoreset_mode is DISABLED: reset them with "
                f"reset(options={{'reset_mask': mask}}) before step()")
        e = self.engine
        resetting = self._needs_reset.copy()
        active = torch.as_tensor(~resetting, device=e.device)
        actions_t = self._actions(actions, active)
        if logprobs is not None and self._pending_logprobs is not None:
            raise ConfigError("logprobs= given to step() while set_policy_logprobs() values are pending: give one")
        logprobs = self._logprobs(logprobs) if logprobs is not None else self._pending_logprobs
        self._pending_logprobs = None
        ref_logp, terminated = e.advance(actions_t, active)
        # float64 like SyncVectorEnv's rewards; each row's sum is the single env's float(kl) + float(score)
        rewards = torch.where(active, e.kl_rewards(ref_logp, logprobs), 0.0).double()
        terminated_np = terminated.cpu().numpy()
        ref_np = ref_logp.cpu().numpy().astype(np.float32)
        done_rows = np.flatnonzero(terminated_np)
        finished = e.score_rows(done_rows) if len(done_rows) else None
        if finished is not None:
            rewards[torch.as_tensor(done_rows, device=e.device)] += finished.scores.to(e.device).double()
        truncated = np.zeros(self.num_envs, dtype=bool)
        info: dict = {}
        mode = self.autoreset_mode
        if mode is AutoresetMode.SAME_STEP:
            # As SyncVectorEnv: a finished row's last obs and info go to final_obs/final_info, the row restarts
            # now, and its top-level info is the new episode's reset info.
            self._put(info, "ref_logprob", ref_np, ~terminated_np)
            if finished is not None:
                final_obs = np.full(self.num_envs, None, dtype=object)
                last = e.observation(done_rows)
                for j, r in enumerate(done_rows):
                    final_obs[r] = {k: v[j] for k, v in last.items()}
                present = np.zeros(self.num_envs, dtype=bool)
                present[done_rows] = True
                final_info = self._put({}, "ref_logprob", ref_np, present)
                self._add_final_info(final_info, finished)
                info.update(final_obs=final_obs, _final_obs=present.copy(), final_info=final_info,
                            _final_info=present.copy())
                self._reset_rows(done_rows)
                self._prompt_info(info, done_rows)
        else:
            self._put(info, "ref_logprob", ref_np, ~resetting)
            if finished is not None:
                self._add_final_info(info, finished)
            if resetting.any():  # NEXT_STEP: these rows ended last step and start anew now
                rows = np.flatnonzero(resetting)
                self._reset_rows(rows)
                self._prompt_info(info, rows)
            if mode is AutoresetMode.NEXT_STEP:
                self._needs_reset = terminated_np.copy()
            else:
                self._ended = terminated_np.copy()
        return e.observation(), rewards.cpu().numpy(), terminated_np, truncated, self._info(info)

    def _info(self, info: dict) -> dict:
        return info if self.text_info else without_text(info)

    def _reset_rows(self, rows: np.ndarray) -> None:
        """Automatic reset: each row draws its next prompt from its own generator."""
        for i in rows:
            if self._row_rngs[i] is None:
                self._row_rngs[i], _ = seeding.np_random()
        indices = [pick_prompt(self.engine, self._row_rngs[i], None) for i in rows]
        self.engine.reset_rows(rows, np.array(indices, dtype=np.int64))

    def _put(self, info: dict, key: str, values: np.ndarray, present: np.ndarray) -> dict:
        """``info[key]``/``info["_" + key]`` as SyncVectorEnv builds them: absent when no row has the key,
        zero where a row lacks it."""
        if present.any():
            info[key] = np.where(present, values, np.zeros_like(values))
            info["_" + key] = present.copy()
        return info

    def _prompt_info(self, info: dict, rows: np.ndarray) -> dict:
        """The reset info of ``rows`` (their new prompts) under ``prompt``/``_prompt``, as SyncVectorEnv has it."""
        if len(rows):
            prompts = info.get("prompt", np.full(self.num_envs, None, dtype=object))
            present = info.get("_prompt", np.zeros(self.num_envs, dtype=bool))
            for i in rows:
                prompts[i], present[i] = self.engine.prompts[self.engine.prompt_index[i]], True
            info["prompt"], info["_prompt"] = prompts, present
        return info

    def _add_final_info(self, info: dict, finished) -> None:
        n, rows = self.num_envs, finished.rows
        present = np.zeros(n, dtype=bool)
        present[rows] = True
        scores = np.zeros(n, dtype=np.float32)
        scores[rows] = finished.scores.numpy()
        prompts, completions = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        prompts[rows], completions[rows] = finished.prompts, finished.completions
        info.update(rm_score=scores, _rm_score=present, prompt=prompts, _prompt=present.copy(),
                    completion=completions, _completion=present.copy())

    def action_masks(self) -> np.ndarray:
        """Allowed next tokens ``(num_envs, V)`` bool: all, or the reference's top-p nucleus (at least
        ``action_mask_min_tokens``) when ``action_mask_top_p`` is set; never EOS in a row that has not yet
        generated ``min_new_tokens`` tokens. A row that restarts on the next step (NEXT_STEP) allows every
        token: its action is ignored. ``ResetNeeded`` before :meth:`reset`."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before action_masks()")
        allowed = self.engine.action_masks(self.action_mask_top_p, self.action_mask_min_tokens)
        allowed[torch.as_tensor(self._needs_reset, device=allowed.device)] = True
        return allowed.cpu().numpy()

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
