"""Agents that train language models on the text-generation envs: PPO, A2C and NLPO on one shared core.

Every agent has the Stable-Baselines3 shape — ``Agent(env, policy=None, **hyperparams)``, ``.learn(total_
timesteps, callback=None, progress_bar=False)``, ``.predict(obs, deterministic=False)``, ``.save(path)``,
``Agent.load(path, env=None)`` — where timesteps are generated tokens. See ``docs/agents.md``.

* :mod:`~rlhf_gym.agents.policy` — ``ActorCritic``: any HF causal LM plus a value head;
* :mod:`~rlhf_gym.agents.buffer` — the sequence-level rollout buffer, GAE, whitening, minibatches;
* :mod:`~rlhf_gym.agents.rollout` — the shared config and rollout collection (KV-cached sampling, one
  bulk scoring call with KL-shaped rewards);
* :mod:`~rlhf_gym.agents.core` — ``OnPolicyAgent``: the learn loop, predict, checkpoints;
* :mod:`~rlhf_gym.agents.ppo`, :mod:`~rlhf_gym.agents.a2c`, :mod:`~rlhf_gym.agents.nlpo` — the algorithms.
"""

from rlhf_gym.agents.a2c import A2C, A2CConfig
from rlhf_gym.agents.bon import BestOfN, BestOfNConfig
from rlhf_gym.agents.buffer import RolloutBuffer, gae, whiten
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.nlpo import NLPO, NLPOConfig
from rlhf_gym.agents.policy import ActorCritic
from rlhf_gym.agents.ppo import PPO, PPOConfig
from rlhf_gym.agents.raft import RAFT, RAFTConfig
from rlhf_gym.agents.registry import ALGORITHMS, AlgoSpec, Trainer, algorithm_class, register_algorithm
from rlhf_gym.agents.rollout import Callback, OnPolicyConfig

__all__ = [
    "A2C", "A2CConfig", "ALGORITHMS", "ActorCritic", "AlgoSpec", "Callback", "NLPO", "NLPOConfig", "OnPolicyAgent",
    "OnPolicyConfig", "PPO", "PPOConfig", "RolloutBuffer", "Trainer", "algorithm_class", "gae", "register_algorithm",
    "whiten",
    "BestOfN", "BestOfNConfig",
    "RAFT", "RAFTConfig",
]
