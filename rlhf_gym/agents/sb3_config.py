"""The ``agent:`` section of a stock Stable-Baselines3 run (``algo: sb3-ppo`` and friends), validated without
importing stable-baselines3 (see :mod:`rlhf_gym.agents.sb3` for the adapter itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rlhf_gym.errors import ConfigError


@dataclass
class SB3Config:
    """Hyperparameters of stock SB3 on the LM adapter; null means the value in ``agents.sb3.SB3_DEFAULTS``."""

    learning_rate: float | None = None  # Adam (or RMSprop) step size
    n_steps: int | None = None  # env steps (tokens) per env per rollout
    batch_size: int | None = None  # SGD minibatch in tokens (PPO only)
    n_epochs: int | None = None  # passes over each rollout (PPO only)
    gamma: float | None = None  # discount per token
    gae_lambda: float | None = None  # GAE λ
    clip_range: float | None = None  # PPO ratio clip (PPO only)
    ent_coef: float | None = None  # entropy bonus; must be 0 with kl_penalty=reward
    vf_coef: float | None = None  # weight of the value loss
    max_grad_norm: float | None = None  # gradient-norm clip
    kl_penalty: Literal["reward", "entropy"] = "reward"  # reward: exact per-token −β·log π; entropy: ent_coef=β
    seed: int | None = None  # seeds SB3, torch and the envs (null: run.seed)
    device: str | None = None  # torch device (null: run.device)

    def __post_init__(self) -> None:
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_range", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name}={value!r} is invalid: must be > 0")
        for name in ("n_steps", "batch_size", "n_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value!r} is invalid: must be an integer >= 1")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise ConfigError(f"{name}={value!r} is invalid: must be in [0, 1]")

    def sb3_kwargs(self) -> dict[str, Any]:
        """The set hyperparameters as keyword arguments of ``make_sb3_agent``."""
        skip = {"kl_penalty", "seed", "device"}
        return {k: v for k, v in vars(self).items() if v is not None and k not in skip}
