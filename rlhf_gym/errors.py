"""Errors users see.

Every error caused by bad input (a config typo, a malformed file, an impossible hyperparameter) is a
:class:`RLHFGymError` whose message is one line naming the file, field or value at fault. The CLI prints
``error: <message>`` and exits with code 2 instead of showing a traceback.
"""

from __future__ import annotations


class RLHFGymError(ValueError):
    """Bad input from the user: the message is one line that names what is wrong and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


class ConfigError(RLHFGymError):
    """A config file, preset or keyword argument is invalid."""


class DataError(RLHFGymError):
    """A data file (prompts, preferences, demonstrations) is missing or malformed."""


class ModelError(RLHFGymError):
    """A model, tokenizer or checkpoint cannot be used as asked (wrong vocabulary, missing files, ...)."""


class RewardError(RLHFGymError):
    """A reward function returned something unusable (NaN, wrong shape, wrong type)."""
