"""The environments and their Gymnasium registrations.

* ``rlhf_gym/Sentiment-v0`` — the embedded review world: the shipped tiny GPT-2 continues review openings,
  rewarded by the gold judge (VADER sentiment) minus the KL penalty.
"""

from __future__ import annotations

import gymnasium as gym

from rlhf_gym.envs.textgen import TextGenEnv
from rlhf_gym.envs.vector import TextGenVecEnv

__all__ = ["TextGenEnv", "TextGenVecEnv", "register_envs", "ENV_IDS"]

ENV_IDS = {
    "rlhf_gym/Sentiment-v0": dict(model="embedded", prompts="embedded:train", reward="gold"),
}


def register_envs() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="rlhf_gym.envs.textgen:TextGenEnv",
                vector_entry_point="rlhf_gym.envs.vector:TextGenVecEnv",
                kwargs=kwargs,
            )


register_envs()
