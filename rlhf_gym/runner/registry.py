"""The algorithms a run config can name (``agent.algo``) and where their code and config dataclass live.

Native agents (``ppo``, ``a2c``, ``nlpo``) are :class:`~rlhf_gym.agents.core.OnPolicyAgent` subclasses whose
``config_class`` validates the ``agent:`` section, extended with PPO-ptx (:mod:`rlhf_gym.runner.ptx`). ``sb3-*`` runs stock Stable-Baselines3 through
:mod:`rlhf_gym.agents.sb3`; its section is validated by :class:`SB3Config` below.

Adding an algorithm: write the agent (``Agent(env, **hyperparams)`` with a ``config_class``), add a line to
:data:`ALGOS`, and an ``agents/NAME.yaml`` preset.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from rlhf_gym.errors import ConfigError


@dataclass(frozen=True)
class AlgoSpec:
    """Where an algorithm lives: ``module:attr`` is the agent class (native) or the SB3 algorithm name."""

    name: str
    module: str
    attr: str
    kind: Literal["native", "sb3"] = "native"

    def agent_class(self) -> Any:
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"algorithm {self.name!r} is not available in this install ({e.name} is missing)") from e
        if self.kind == "sb3":
            return self.attr
        from rlhf_gym.runner.ptx import with_ptx

        return with_ptx(getattr(module, self.attr))

    def config_class(self) -> type:
        if self.kind == "sb3":
            return SB3Config
        return self.agent_class().config_class


ALGOS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec("ppo", "rlhf_gym.agents.ppo", "PPO"),
    "a2c": AlgoSpec("a2c", "rlhf_gym.agents.a2c", "A2C"),
    "nlpo": AlgoSpec("nlpo", "rlhf_gym.agents.nlpo", "NLPO"),
    "sb3-ppo": AlgoSpec("sb3-ppo", "rlhf_gym.agents.sb3", "ppo", kind="sb3"),
    "sb3-a2c": AlgoSpec("sb3-a2c", "rlhf_gym.agents.sb3", "a2c", kind="sb3"),
    "sb3-maskable-ppo": AlgoSpec("sb3-maskable-ppo", "rlhf_gym.agents.sb3", "maskable_ppo", kind="sb3"),
}


def algo_spec(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` named ``name``; a ConfigError for unknown names."""
    if name not in ALGOS:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGOS)}")
    return ALGOS[name]


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
