"""Gymnasium registration of the environments, and what makes them safe in worker processes.

Every registered task (:mod:`rlhf_gym.tasks`) has an id, ``rlhf_gym/<Name>-v<version>``, registered by
:func:`rlhf_gym.tasks.register_task`; the built-in ones are in :data:`ENV_IDS` once :mod:`rlhf_gym` is
imported. The entry points are the two
factories below, not the env classes, so that an environment created in a worker process is safe there:

* **fork.** A process forked after torch ran a parallel region (any model forward) inherits OpenMP's
  thread-pool state but not its threads, and the child's first parallel op waits for them forever: this
  is why ``AsyncVectorEnv`` with the default ``fork`` start method hung. :func:`fork_safe_torch` runs first
  in a forked process and sets torch to one thread there, which avoids the hang (torch's own DataLoader
  workers do the same). One thread per worker process is also what N workers on N cores want.
* **spawn / forkserver.** A fresh worker has not imported :mod:`rlhf_gym`, so an id alone is unknown there.
  Gymnasium 1.x reads no ``gymnasium.envs`` entry-point plugins, so the package cannot register itself in
  a process that does not import it; what does work is Gymnasium's ``"module:id"`` form,
  ``gym.make("rlhf_gym:rlhf_gym/Sentiment-v0")``, which imports the module first, and ``gym.make_vec``,
  which sends the spec (whose entry point is an import path) to the workers. :func:`make_async` uses both.

See docs/vectorization.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch

from rlhf_gym import IMPORT_PID
from rlhf_gym.envs.textgen import TextGenEnv
from rlhf_gym.envs.vector import TextGenVecEnv
from rlhf_gym.tasks import env_kwargs, list_tasks, register_env_id

__all__ = ["ENV_IDS", "register_envs", "make_text_env", "make_text_vec_env", "fork_safe_torch",
           "make_async"]

#: The built-in tasks' ids and their registered keyword arguments (the task's name).
ENV_IDS = {task.env_id: env_kwargs(task) for task in list_tasks()}

# The process that imported rlhf_gym (a forked child may import this module first), then each forked
# process once it has been made safe.
_safe_pid = IMPORT_PID


def fork_safe_torch() -> bool:
    """In a process forked from one that imported rlhf_gym, set torch to one thread; returns whether it did.

    Runs once per process; in the importing process itself, and in spawned workers (which import rlhf_gym
    themselves), it does nothing. Call it first in a forked worker that builds an env class directly
    instead of through ``gym.make``.
    """
    global _safe_pid
    if os.getpid() == _safe_pid:
        return False
    torch.set_num_threads(1)
    _safe_pid = os.getpid()
    return True


def make_text_env(**kwargs: Any) -> TextGenEnv:
    """The registered entry point: :class:`TextGenEnv` (``kwargs`` as it takes), after :func:`fork_safe_torch`."""
    fork_safe_torch()
    return TextGenEnv(**kwargs)


def make_text_vec_env(**kwargs: Any) -> TextGenVecEnv:
    """The registered vector entry point: :class:`TextGenVecEnv`, after :func:`fork_safe_torch`."""
    fork_safe_torch()
    return TextGenVecEnv(**kwargs)


# gym.make reads the creator's metadata for render-mode handling, as it would from the class.
make_text_env.metadata = TextGenEnv.metadata  # type: ignore[attr-defined]
make_text_vec_env.metadata = TextGenVecEnv.metadata  # type: ignore[attr-defined]


def register_envs() -> None:
    """Registers every registered task's id that Gymnasium does not hold (one removed from its registry)."""
    for task in list_tasks():
        register_env_id(task)


def make_async(
    env_id: str = "rlhf_gym/Sentiment-v0",
    num_envs: int = 2,
    *,
    context: str | None = "spawn",
    vector_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Wrapper]] | None = None,
    **env_kwargs: Any,
) -> gym.vector.AsyncVectorEnv:
    """``num_envs`` single envs in worker processes: ``gym.make_vec(..., vectorization_mode="async")``.

    The start method is ``spawn`` unless ``context`` says otherwise (``"forkserver"``, ``"fork"``, or
    ``None`` for multiprocessing's default); the workers need not have rlhf_gym imported by the caller's
    ``__main__``. ``env_kwargs`` go to each env, ``vector_kwargs`` to ``AsyncVectorEnv`` (e.g.
    ``shared_memory``). For throughput on one device the native vector env (``gym.make_vec(env_id, N)``)
    is faster; this is for wrappers or libraries that need one env per process.
    """
    module_id = env_id if ":" in env_id else f"rlhf_gym:{env_id}"
    return gym.make_vec(module_id, num_envs=num_envs, vectorization_mode="async",
                        vector_kwargs={"context": context, **(vector_kwargs or {})}, wrappers=wrappers,
                        **env_kwargs)
