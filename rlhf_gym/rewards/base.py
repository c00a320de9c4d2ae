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


class WeightedSum:
    """``sum_k weights[k] * parts[k].score(...)``: a task's gold made of several judges (a two-objective
    trade-off), or a judge plus a bias. :meth:`components` gives each part's unweighted score, so evaluation
    can report every objective and a front can be drawn over the weights.

    >>> length = CallableReward(lambda p, c: [float(len(x)) for x in c], name="length")
    >>> ones = CallableReward(lambda p, c: [1.0] * len(c), name="one")
    >>> both = WeightedSum({"length": length, "one": ones}, {"length": 0.5, "one": 2.0})
    >>> both.score([""], ["abcd"]).tolist(), {k: v.tolist() for k, v in both.components([""], ["abcd"]).items()}
    ([4.0], {'length': [4.0], 'one': [1.0]})
    """

    def __init__(self, parts: dict[str, RewardFunction], weights: dict[str, float], name: str | None = None):
        if not parts or set(parts) != set(weights):
            raise ConfigError(f"WeightedSum: parts {sorted(parts)} and weights {sorted(weights)} must name the same judges")
        for key, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or w != w or abs(w) == float("inf"):
                raise ConfigError(f"WeightedSum: weight {key}={w!r} is invalid: must be a finite number")
        self.parts = {k: as_reward_function(v) for k, v in parts.items()}
        self.weights = {k: float(w) for k, w in weights.items()}
        self.name = name or "+".join(f"{self.weights[k]:g}*{k}" for k in self.parts)

    def components(self, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each part's unweighted scores, by name."""
        return {k: checked_scores(part, prompts, completions) for k, part in self.parts.items()}

    def combine(self, components: dict[str, torch.Tensor], weights: dict[str, float] | None = None) -> torch.Tensor:
        """The weighted sum of precomputed ``components`` (other ``weights`` draw another point of a front)."""
        weights = self.weights if weights is None else weights
        return sum(weights[k] * components[k] for k in self.parts)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        return self.combine(self.components(prompts, completions))

    def __repr__(self) -> str:
        return f"WeightedSum({self.name})"
