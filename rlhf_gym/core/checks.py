"""Validators for keyword arguments and config fields: each names the field and the rule it broke.

Every config dataclass in the package (agents, PPO-ptx, LoRA, reward-model training, annotators) checks its
fields in ``__post_init__`` with these, so the same bad value reads the same way wherever it is given.
"""

from __future__ import annotations

import math

from rlhf_gym.errors import ConfigError

__all__ = ["check", "is_int", "is_number"]


def check(ok: bool, name: str, value: object, rule: str) -> None:
    """Raises a ConfigError naming the field unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {rule}")


def is_int(x: object) -> bool:
    """An int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
