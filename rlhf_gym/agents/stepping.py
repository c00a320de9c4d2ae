"""Token-by-token acting with a KV cache: the policy's side of stepping ``TextGenVecEnv`` one token at a time.

``agent.predict(obs)`` alone re-encodes the whole observation every step (fine for a few calls). To drive the
vector env efficiently, keep a :class:`PolicyStepper` as the recurrent ``state`` — the KV cache is exactly a
recurrent state — and say which rows start a new episode, as with Stable-Baselines3's recurrent policies:

>>> import gymnasium as gym, numpy as np, rlhf_gym
>>> from rlhf_gym.agents import PPO
>>> envs = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = PPO(envs, seed=0)
>>> obs, _ = envs.reset(seed=0)
>>> state, starts = agent.stepper(), np.ones(4, dtype=bool)
>>> for _ in range(6):
...     actions, state = agent.predict(obs, state=state, episode_start=starts)
...     obs, rewards, terminated, truncated, info = envs.step(actions, logprobs=state.last_logprobs)
...     starts = state.starts_after(terminated)

With Gymnasium's ``NEXT_STEP`` autoreset a row that terminates gets its new prompt one step later, so the
first observation of an episode arrives two calls after ``terminated``; :meth:`PolicyStepper.starts_after`
keeps that bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import PreTrainedModel

from rlhf_gym.core.generation import sample_categorical
from rlhf_gym.core.window import SlidingWindowLM


class PolicyStepper:
    """The policy's KV-cached view of the env's rows; ``act`` returns next tokens and their log-probs.

    Args:
        lm: the policy's causal LM.
        num_rows, width, pad_token_id: the vector env's ``num_envs``, observation width and pad id.
        temperature: sampling temperature (log-probs are those of the tempered distribution).
        mask_fn: optional ``(input_ids, attention_mask) -> bool (N, V) | None``: allowed next tokens (NLPO).
        generator: torch RNG for sampling.
        eos_token_id, min_new_tokens: EOS is not chosen before a row's ``min_new_tokens``-th token of the
            episode (the env's rule; the stepper counts each row's tokens since its episode started).
    """

    def __init__(self, lm: PreTrainedModel, num_rows: int, width: int, pad_token_id: int, *,
                 temperature: float = 1.0, mask_fn: Callable | None = None,
                 generator: torch.Generator | None = None, eos_token_id: int | None = None,
                 min_new_tokens: int = 0):
        self.window = SlidingWindowLM(lm, num_rows, width, pad_token_id)
        self.temperature, self.mask_fn, self.generator = temperature, mask_fn, generator
        self.eos, self.min_new_tokens = eos_token_id, min_new_tokens
        self.n_generated = np.zeros(num_rows, dtype=np.int64)
        self.last_logprobs: torch.Tensor | None = None
        self._pending_reset = np.zeros(num_rows, dtype=bool)
        self._started = False

    @torch.no_grad()
    def act(self, observation: dict, episode_start: np.ndarray | None,
            deterministic: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """Next tokens for a batch of observations; ``episode_start[i]`` marks the first obs of an episode."""
        w = self.window
        ids = torch.as_tensor(np.asarray(observation["input_ids"]), device=w.device).long()
        mask = torch.as_tensor(np.asarray(observation["attention_mask"]), device=w.device).long()
        starts = np.ones(w.n, dtype=bool) if not self._started or episode_start is None else \
            np.asarray(episode_start, dtype=bool)
        if not starts.all():  # continuing rows: the newest observed token is the one we chose last step
            w.append(ids[:, -1])
        rows = np.flatnonzero(starts)
        if len(rows):
            w.reset_rows(rows, [ids[r][mask[r].bool()].tolist() for r in rows])
        self.n_generated[rows] = 0
        self._started = True
        logits = w.next_logits / self.temperature
        allowed = self.mask_fn(w.ids, w.mask) if self.mask_fn is not None else None
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        early = torch.as_tensor(self.n_generated < self.min_new_tokens, device=logits.device)
        if self.eos is not None and bool(early.any()):
            logits[early, self.eos] = float("-inf")
        logp = logits.log_softmax(-1)
        actions = logits.argmax(-1) if deterministic else sample_categorical(logp.exp(), self.generator)
        self.last_logprobs = logp.gather(1, actions[:, None]).squeeze(1)
        self.n_generated += 1
        return actions.cpu().numpy(), self.last_logprobs

    def starts_after(self, terminated: np.ndarray) -> np.ndarray:
        """Which rows' next observation starts an episode, given this step's ``terminated`` (NEXT_STEP)."""
        starts, self._pending_reset = self._pending_reset, np.asarray(terminated, dtype=bool).copy()
        return starts
