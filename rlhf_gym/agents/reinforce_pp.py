r"""REINFORCE++ (Hu, 2025): critic-free PPO whose baseline is the whole batch, not a value model or a group.

The env pays the KL per token, ``r_t = −β·KL_t`` plus the score on the last token, and each token's
advantage is its discounted return-to-go whitened over **all** generated tokens of the rollout:

    G_t = Σ_{s≥t} γ^{s−t}·r_s                 A_t = (G_t − mean_batch G) / std_batch G

(``scale_rewards=False`` only subtracts the mean). No groups are needed (``samples_per_prompt`` = 1 by
default; a larger K only repeats prompts). The update is :mod:`rlhf_gym.agents.grpo`'s PPO-style clipped
surrogate, by default averaged over every token of a minibatch (``loss_type="dapo"``, as PPO does).

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import ReinforcePP
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = ReinforcePP(env, seed=0).learn(32)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 32
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from rlhf_gym.agents.buffer import RolloutBuffer, gae, masked_mean, whiten
from rlhf_gym.agents.grpo import GRPO, GRPOConfig, LossType


@dataclass
class ReinforcePPConfig(GRPOConfig):
    """REINFORCE++'s hyperparameters: GRPO's update (see :class:`GRPOConfig`) with a global baseline."""

    min_samples_per_prompt: ClassVar[int] = 1  # the baseline is the batch: no groups needed

    samples_per_prompt: int = 1
    """K: completions per prompt (1: every episode its own prompt)."""
    loss_type: LossType = "dapo"
    """Token-loss aggregation (see GRPOConfig); "dapo" is PPO's mean over a minibatch's tokens."""
    scale_rewards: bool | None = True
    """Divide by the batch std of the returns-to-go (False: only subtract their mean)."""
    kl_in: Literal["loss", "reward"] = "reward"
    """Where β·KL goes: "reward" (REINFORCE++'s per-token penalty, propagated through G_t) or "loss"."""


class ReinforcePP(GRPO):
    """REINFORCE++. ``ReinforcePP(env, policy=None, **ReinforcePPConfig fields)``."""

    config_class = ReinforcePPConfig
    algorithm = "ReinforcePP"
    config: ReinforcePPConfig

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        """Fills ``batch.returns`` with ``G_t`` and ``batch.advantages`` with its batch-whitened values."""
        mask = batch.token_mask
        _, batch.returns = gae(batch.rewards, torch.zeros_like(batch.rewards), mask, self.config.gamma, 1.0)
        if self.config.scales_rewards:
            batch.advantages = whiten(batch.returns, mask)
        else:
            batch.advantages = (batch.returns - masked_mean(batch.returns, mask)) * mask
        return {"objective/return_mean": float(masked_mean(batch.returns, mask))}
