"""Reward functions behind one batched protocol: ``score(prompts, completions) -> tensor``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards.base import CallableReward, RewardFunction, as_reward_function, checked_scores

__all__ = ["RewardFunction", "CallableReward", "as_reward_function", "checked_scores", "make_reward"]

GOLD_NAMES = ("gold", "vader")


def make_reward(spec: str | Path | RewardFunction | Callable, *, gold: Callable[[], RewardFunction] | None = None,
                **kwargs) -> RewardFunction:
    """Builds a reward function from a spec.

    * ``"gold"`` — the task's gold judge: ``gold()`` when the caller passes its task's factory (envs and the
      runner do), else the default task's (VADER compound sentiment); ``"vader"`` — VADER by name;
    * a directory holding ``reward_stats.json`` — a reward model trained by ``rlhf-gym reward train``;
    * ``"classifier:NAME_OR_DIR@LABEL"`` or any other model directory — a sequence classifier's label
      logit (``kwargs`` go to :class:`~rlhf_gym.rewards.classifier.ClassifierReward`);
    * a :class:`RewardFunction` or a batched callable, used as is.
    """
    if not isinstance(spec, str | Path):
        return as_reward_function(spec)
    text = str(spec)
    if text == "gold" and gold is not None:
        return as_reward_function(gold())
    if text in GOLD_NAMES:
        from rlhf_gym.rewards.gold import named_judge

        return named_judge(text)
    if text.startswith("classifier:"):
        from rlhf_gym.rewards.classifier import ClassifierReward

        name, _, label = text[len("classifier:"):].partition("@")
        return ClassifierReward(name, label=(int(label) if label.isdigit() else label) if label else 1, **kwargs)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "reward_stats.json").is_file():
        from rlhf_gym.rewards.learned import LearnedReward

        return LearnedReward(path, **kwargs)
    if path.is_dir():
        from rlhf_gym.rewards.classifier import ClassifierReward

        return ClassifierReward(path, **kwargs)
    raise ConfigError(
        f"unknown reward {text!r}: use 'gold', a reward-model directory, or 'classifier:NAME@LABEL'"
    )
