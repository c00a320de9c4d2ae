"""The reward-function protocol: text in, one float per completion out, batched.

Every reward the environments use — the gold judge, a learned reward model, a classifier, a rule — is a
:class:`RewardFunction`: ``score(prompts, completions) -> torch.Tensor`` of shape ``(N,)``. Text in, so
reward models with their own tokenizers plug in. :func:`checked_scores` is the one place that validates what
a reward function returns, so a NaN or a wrong shape is caught with a message naming the function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch

from rlhf_gym.errors import ConfigError, RewardError


@runtime_checkable
class RewardFunction(Protocol):
    """Scores finished texts. ``score(prompts, completions)`` returns a float tensor of shape ``(N,)``."""

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor: ...


class CallableReward:
    """Wraps any Python callable as a :class:`RewardFunction`.

    Args:
        fn: with ``batched=True`` (default) ``fn(prompts, completions) -> sequence of floats``; with
            ``batched=False`` ``fn(prompt, completion) -> float``, called once per pair.
        batched: whether ``fn`` takes whole lists.
        name: shown in error messages; defaults to the callable's ``__name__``.

    >>> reward = CallableReward(lambda p, c: [float(len(x)) for x in c])
    >>> reward.score(["Hi"], ["there"]).tolist()
    [5.0]
    """

    def __init__(self, fn: Callable, *, batched: bool = True, name: str | None = None):
        if not callable(fn):
            raise ConfigError(f"reward function {fn!r} is not callable")
        self.fn = fn
        self.batched = batched
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        if self.batched:
            out = self.fn(list(prompts), list(completions))
        else:
            out = [self.fn(p, c) for p, c in zip(prompts, completions)]
        return torch.as_tensor(out if not isinstance(out, torch.Tensor) else out.detach(), dtype=torch.float32)

    def __repr__(self) -> str:
        return f"CallableReward({self.name})"


def as_reward_function(obj: RewardFunction | Callable) -> RewardFunction:
    """Returns ``obj`` if it already has ``.score``, else wraps a batched callable in :class:`CallableReward`."""
    if hasattr(obj, "score") and callable(obj.score):
        return obj
    if callable(obj):
        return CallableReward(obj)
    raise ConfigError(f"reward {obj!r} is neither a RewardFunction (with .score) nor a callable")


def checked_scores(reward: RewardFunction, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
    """Calls ``reward.score`` and checks the result: a finite float tensor of shape ``(len(completions),)``.

    Raises:
        RewardError: naming the reward function and what was wrong (NaN/inf, shape, type).
    """
    name = getattr(reward, "name", None) or type(reward).__name__
    try:
        raw = reward.score(prompts, completions)
        scores = torch.as_tensor(raw, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as e:
        if isinstance(e, RewardError):
            raise
        raise RewardError(f"reward function {name} returned something that is not a float tensor: {e}") from e
    n = len(completions)
    if scores.shape != (n,):
        raise RewardError(f"reward function {name} returned shape {tuple(scores.shape)}, expected ({n},)")
    bad = ~torch.isfinite(scores)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise RewardError(
            f"reward function {name} returned {scores[i].item()} for completion {i} ({completions[i][:40]!r}); "
            "rewards must be finite"
        )
    return scores.detach().cpu()
