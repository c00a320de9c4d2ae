"""Agents that train language models on the text-generation envs: eleven algorithms on one shared core.

Every agent has the Stable-Baselines3 shape — ``Agent(env, policy=None, **hyperparams)``, ``.learn(total_
timesteps, callback=None, progress_bar=False)``, ``.predict(obs, deterministic=False)``, ``.save(path)``,
``Agent.load(path, env=None)`` — where timesteps are generated tokens. See ``docs/agents.md``.

* :mod:`~rlhf_gym.agents.policy` — ``ActorCritic``: any HF causal LM plus an optional value head;
* :mod:`~rlhf_gym.agents.buffer` — the sequence-level rollout buffer with group ids, GAE, whitening,
  minibatches;
* :mod:`~rlhf_gym.agents.rollout` — the shared config and the default ``collect`` / ``compute_advantages``
  (KV-cached sampling, K samples per prompt, one bulk scoring call with KL-shaped rewards);
* :mod:`~rlhf_gym.agents.core` — ``OnPolicyAgent``: the learn loop, predict, checkpoints;
* :mod:`~rlhf_gym.agents.registry` — the one registry of algorithm names and the ``Trainer`` protocol;
* :mod:`~rlhf_gym.agents.ptx` — PPO-ptx, part of every agent;
* the algorithms: :mod:`~rlhf_gym.agents.ppo`, :mod:`~rlhf_gym.agents.a2c`, :mod:`~rlhf_gym.agents.nlpo`,
  :mod:`~rlhf_gym.agents.grpo`, :mod:`~rlhf_gym.agents.rloo`, :mod:`~rlhf_gym.agents.reinforce_pp`,
  :mod:`~rlhf_gym.agents.bon`, :mod:`~rlhf_gym.agents.raft`, :mod:`~rlhf_gym.agents.dpo` (DPO and IPO),
  :mod:`~rlhf_gym.agents.online_dpo`.
"""

from rlhf_gym.agents.a2c import A2C, A2CConfig
from rlhf_gym.agents.bon import BestOfN, BestOfNConfig
from rlhf_gym.agents.buffer import RolloutBuffer, gae, whiten
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.dpo import DPO, IPO, DPOConfig, IPOConfig
from rlhf_gym.agents.grpo import GRPO, GRPOConfig
from rlhf_gym.agents.nlpo import NLPO, NLPOConfig
from rlhf_gym.agents.online_dpo import OnlineDPO, OnlineDPOConfig
from rlhf_gym.agents.policy import ActorCritic
from rlhf_gym.agents.ppo import PPO, PPOConfig
from rlhf_gym.agents.raft import RAFT, RAFTConfig
from rlhf_gym.agents.registry import ALGORITHMS, AlgoSpec, Trainer, algorithm_class, register_algorithm
from rlhf_gym.agents.reinforce_pp import ReinforcePP, ReinforcePPConfig
from rlhf_gym.agents.rloo import RLOO, RLOOConfig
from rlhf_gym.agents.rollout import Callback, OnPolicyConfig

__all__ = [
    "A2C", "A2CConfig", "ALGORITHMS", "ActorCritic", "AlgoSpec", "BestOfN", "BestOfNConfig", "Callback", "DPO", "DPOConfig", "GRPO",
    "GRPOConfig", "IPO", "IPOConfig", "NLPO", "NLPOConfig", "OnPolicyAgent", "OnPolicyConfig", "OnlineDPO",
    "OnlineDPOConfig", "PPO", "PPOConfig", "RAFT", "RAFTConfig", "RLOO", "RLOOConfig", "ReinforcePP", "ReinforcePPConfig",
    "RolloutBuffer", "Trainer", "algorithm_class", "gae", "register_algorithm", "whiten",
]
