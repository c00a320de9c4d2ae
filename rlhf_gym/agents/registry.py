"""The one registry of algorithms, and the ``Trainer`` protocol the runner depends on (and nothing more).

``ALGORITHMS`` maps the names a config's ``agent.algo`` (and ``scripts/agents_learn.py --algos``) takes to
where the algorithm lives; :func:`algorithm_class` imports it on first use, so a missing optional
dependency (stable-baselines3 for ``sb3-*``) only matters to those who name it.

Adding an algorithm: write the agent (an :class:`~rlhf_gym.agents.core.OnPolicyAgent` subclass with a
``config_class``), call :func:`register_algorithm` (or add a line below), and add an ``agents/NAME.yaml``.

>>> from rlhf_gym.agents.registry import ALGORITHMS, algorithm_class
>>> algorithm_class("grpo").__name__, ALGORITHMS["sb3-ppo"].kind
('GRPO', 'sb3')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from rlhf_gym.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@runtime_checkable
class Trainer(Protocol):
    """What ``rlhf-gym train`` (:mod:`rlhf_gym.runner.train`) uses of an agent, and all it uses.

    ``learn`` trains until ``total_timesteps`` more generated tokens, calling ``callback(metrics)`` after
    every update with a metrics dict whose ``step`` counts generated tokens (False from the callback stops);
    ``num_timesteps`` and ``num_rollouts`` are the tokens and updates so far; ``lm`` the policy's causal LM,
    which the runner evaluates; ``last_rollout_texts`` the ``(prompt, completion, score)`` triples of the last
    update, logged as samples; ``save(path)`` and ``cls.load(path, env=...)`` a checkpoint directory.
    """

    num_timesteps: int
    num_rollouts: int
    last_rollout_texts: list[tuple[str, str, float]]

    @property
    def lm(self) -> PreTrainedModel: ...

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = False) -> Trainer: ...

    def save(self, path: str | Path) -> Path: ...

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **overrides: Any) -> Trainer: ...


@dataclass(frozen=True)
class AlgoSpec:
    """Where an algorithm lives: ``module:attr`` is the agent class (native) or the SB3 algorithm name."""

    name: str
    module: str
    attr: str
    kind: Literal["native", "sb3"] = "native"

    def agent_class(self) -> Any:
        """The agent class (native) or SB3 algorithm name (sb3); a ConfigError if its module is missing."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"algorithm {self.name!r} is not available in this install ({e.name} is missing)") from e
        return self.attr if self.kind == "sb3" else getattr(module, self.attr)

    def config_class(self) -> type:
        """The dataclass that validates this algorithm's ``agent:`` section."""
        if self.kind == "sb3":
            from rlhf_gym.agents.sb3_config import SB3Config

            return SB3Config
        return self.agent_class().config_class


ALGORITHMS: dict[str, AlgoSpec] = {}


def register_algorithm(name: str, module: str, attr: str, kind: Literal["native", "sb3"] = "native") -> AlgoSpec:
    """Registers ``module:attr`` under ``name`` (a ConfigError if the name is taken by another algorithm)."""
    spec = AlgoSpec(name, module, attr, kind)
    if ALGORITHMS.get(name, spec) != spec:
        raise ConfigError(f"algorithm {name!r} is already registered ({ALGORITHMS[name].module}:{ALGORITHMS[name].attr})")
    ALGORITHMS[name] = spec
    return spec


for _name, _module, _attr in [
    ("ppo", "ppo", "PPO"), ("a2c", "a2c", "A2C"), ("nlpo", "nlpo", "NLPO"), ("grpo", "grpo", "GRPO"),
    ("rloo", "rloo", "RLOO"), ("reinforce_pp", "reinforce_pp", "ReinforcePP"), ("bon", "bon", "BestOfN"),
    ("raft", "raft", "RAFT"), ("dpo", "dpo", "DPO"), ("ipo", "dpo", "IPO"), ("online_dpo", "online_dpo", "OnlineDPO"),
]:
    register_algorithm(_name, f"rlhf_gym.agents.{_module}", _attr)
for _name, _attr in [("sb3-ppo", "ppo"), ("sb3-a2c", "a2c"), ("sb3-maskable-ppo", "maskable_ppo")]:
    register_algorithm(_name, "rlhf_gym.agents.sb3", _attr, kind="sb3")


def algo_spec(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` named ``name``; a ConfigError for unknown names."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def algorithm_class(name: str) -> Any:
    """The agent class registered as ``name`` (``algorithm_class("ppo")(env, **hyperparams)``)."""
    return algo_spec(name).agent_class()
