"""The examples in the docstrings run (Gymnasium-style: the contract is shown by code that works)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "rlhf_gym.core.kl",
    "rlhf_gym.rewards.base",
    "rlhf_gym.rewards.gold",
    "rlhf_gym.envs.textgen",
    "rlhf_gym.envs.vector",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
