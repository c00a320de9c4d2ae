r"""RLOO (Ahmadian et al., 2024, "Back to Basics"): REINFORCE with a leave-one-out baseline — GRPO with one line changed.

Each prompt is sampled ``K`` times; completion i's advantage, on every one of its tokens, is its sequence
return minus the mean return of the group's *other* ``K − 1`` completions,

    A_i = R_i − (1/(K−1))·Σ_{j≠i} R_j = (K/(K−1))·(R_i − mean_j R_j),       R_i = Σ_t r_t = score_i − β·Σ_t KL_t

with the KL in the reward, as in the paper and TRL's ``RLOOTrainer``. The baseline does not depend on
sample i, so the estimate stays unbiased. Everything else — the clipped update, the loss aggregation
(``loss_type``), the epochs — is :mod:`rlhf_gym.agents.grpo`'s; only :meth:`RLOO.group_baseline` differs.
The defaults follow the paper: KL in the reward, no std scaling, and a sequence-level REINFORCE loss
(``loss_type="dr_grpo"``: token log-probs summed per sequence, divided by a constant).

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import RLOO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=8, max_new_tokens=4)
>>> agent = RLOO(env, samples_per_prompt=4, seed=0).learn(64)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 64
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlhf_gym.agents.grpo import GRPO, GRPOConfig, LossType


@dataclass
class RLOOConfig(GRPOConfig):
    """RLOO's hyperparameters: GRPO's (see :class:`GRPOConfig`) with the paper's defaults."""

    loss_type: LossType = "dr_grpo"
    """Token-loss aggregation (see GRPOConfig); "dr_grpo" is the paper's sequence-level REINFORCE, scaled."""
    scale_rewards: bool | None = False
    """Divide advantages by the group std (the paper does not)."""
    kl_in: Literal["loss", "reward"] = "reward"
    """Where β·KL goes: "reward" (the paper's KL-shaped return) or "loss"."""


class RLOO(GRPO):
    """REINFORCE Leave-One-Out. ``RLOO(env, policy=None, **RLOOConfig fields)``."""

    config_class = RLOOConfig
    algorithm = "RLOO"
    config: RLOOConfig

    def group_baseline(self, returns: torch.Tensor) -> torch.Tensor:
        """``b_i`` for grouped returns ``(groups, K)``: the mean of the group's other ``K − 1`` returns."""
        return (returns.sum(1, keepdim=True) - returns) / (returns.shape[1] - 1)
