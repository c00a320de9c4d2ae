"""Errors users see.

Every error caused by bad input (a config typo, a malformed file, an impossible hyperparameter) is a
:class:`RLHFGymError` whose message is one line naming the file, field or value at fault. The CLI prints
``error: <message>`` and exits with code 2 instead of showing a traceback.
"""

from __future__ import annotations

#: Longest message kept: an error that echoes a 100,000-item value must still fit on a screen.
MAX_MESSAGE = 500


def one_line(message: object, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line, cut to ``limit`` characters (saying how much was cut).

    >>> one_line("a\\n  b")
    'a b'
    >>> one_line("x" * 600)[-30:]
    'xxxxx... (100 more characters)'
    """
    text = " ".join(str(message).split())
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


class RLHFGymError(ValueError):
    """Bad input from the user: the message is one line that names what is wrong and where."""

    def __init__(self, message: object):
        super().__init__(one_line(message))


class ConfigError(RLHFGymError):
    """A config file, preset or keyword argument is invalid."""


class DataError(RLHFGymError):
    """A data file (prompts, preferences, demonstrations) is missing or malformed."""


class ModelError(RLHFGymError):
    """A model, tokenizer or checkpoint cannot be used as asked (wrong vocabulary, missing files, ...)."""


class RewardError(RLHFGymError):
    """A reward function returned something unusable (NaN, wrong shape, wrong type)."""
