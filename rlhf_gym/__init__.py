"""rlhf_gym: RLHF for language models as Gymnasium environments.

Importing the package registers the environments (``rlhf_gym/Sentiment-v0`` and friends) with Gymnasium,
by name only: their entry points are import paths, so torch models and transformers load when an env is
made, not when the package is imported (``rlhf-gym --help`` stays quick). Subpackages (``rlhf_gym.envs``,
``rlhf_gym.agents``, ...) import on first use.
"""

import importlib as _importlib
import os as _os

from rlhf_gym.errors import ConfigError, DataError, ModelError, RewardError, RLHFGymError

__version__ = "0.1.0"

#: The process that imported rlhf_gym: :func:`rlhf_gym.envs.fork_safe_torch` makes any other (forked) one safe.
IMPORT_PID = _os.getpid()

_SUBPACKAGES = ("agents", "cli", "core", "envs", "feedback", "rewards", "runner", "tasks", "io")


def _register_envs() -> None:
    from rlhf_gym.tasks import list_tasks, register_env_id

    for task in list_tasks():
        register_env_id(task)


_register_envs()


def __getattr__(name: str):  # PEP 562: ``rlhf_gym.envs`` works after a bare ``import rlhf_gym``
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"rlhf_gym.{name}")
    raise AttributeError(f"module 'rlhf_gym' has no attribute {name!r}")


__all__ = ["RLHFGymError", "ConfigError", "DataError", "ModelError", "RewardError", "__version__"]
