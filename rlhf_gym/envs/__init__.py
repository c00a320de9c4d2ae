"""The environments and their Gymnasium registrations (:mod:`rlhf_gym.envs.registration`).

One id per registered task (:mod:`rlhf_gym.tasks`, docs/tasks.md), ``rlhf_gym/<Name>-v<version>``:

* ``rlhf_gym/Sentiment-v0`` — the embedded review world: the shipped tiny GPT-2 continues review openings,
  rewarded by the gold judge (VADER sentiment) minus the KL penalty;
* ``rlhf_gym/Imdb-v0`` — IMDB review openings continued by gpt2 (downloaded on first use), same gold.

Importing :mod:`rlhf_gym` registers them. In a process that has not imported it (a spawned worker, a fresh
interpreter), name the module in the id: ``gym.make("rlhf_gym:rlhf_gym/Sentiment-v0")``. Worker processes:
:func:`make_async` and docs/vectorization.md.
"""

from __future__ import annotations

from rlhf_gym.envs.registration import ENV_IDS, fork_safe_torch, make_async, register_envs
from rlhf_gym.envs.textgen import TextGenEnv
from rlhf_gym.envs.vector import TextGenVecEnv

__all__ = ["TextGenEnv", "TextGenVecEnv", "register_envs", "ENV_IDS", "make_async", "fork_safe_torch"]

register_envs()
