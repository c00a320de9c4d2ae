"""The task spec: everything an RLHF experiment needs to know about one problem.

A :class:`Task` names the policy's starting model and tokenizer, where training and held-out prompts come
from, the gold judge (the "true" reward that evaluation reports and simulated annotators label with), the
proxy-RM recipe (which simulated annotators label preferences), optional demonstrations (for SFT) and
pretraining text (for PPO-ptx), and the metrics its leaderboard shows. Registering one
(:func:`rlhf_gym.tasks.register_task`) registers its Gymnasium id ``rlhf_gym/<Name>-v<version>``.

>>> task = Task(name="toy", version=0, description="a toy", model="embedded", tokenizer=None,
...             train_prompts="prompts.txt", eval_prompts="prompts.txt", gold=lambda: None)
>>> task.env_id
'rlhf_gym/Toy-v0'
>>> Task(name="Bad Name", version=0, description="x", model="embedded", tokenizer=None,
...      train_prompts="p", eval_prompts="p", gold=lambda: None)
Traceback (most recent call last):
...
rlhf_gym.errors.ConfigError: task 'Bad Name': name='Bad Name' is invalid: must be lower-case letters, digits and '-', starting with a letter
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlhf_gym.core.checks import check_fields, is_blank
from rlhf_gym.errors import ConfigError

__all__ = ["Task", "DEFAULT_METRICS"]

#: What a leaderboard shows unless a task says otherwise (keys of :func:`rlhf_gym.agents.evaluation.evaluate`).
DEFAULT_METRICS = ("gold_reward", "rm_reward", "kl", "distinct_2")

_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


@dataclass(frozen=True)
class Task:
    """One RLHF problem, versioned; see the module docstring and docs/tasks.md."""

    name: str  # registry key: lower-case letters, digits and '-' ("sentiment")
    version: int  # bumped whenever a change would move scores; part of the Gymnasium id
    description: str  # one line for listings
    model: str  # the starting policy and frozen reference: "embedded", a hub name or a local directory
    tokenizer: str | None  # None = the model's own tokenizer
    train_prompts: str  # training prompt source for load_prompts ("embedded:train", a file, "hf:NAME")
    eval_prompts: str  # held-out prompt source (same forms), used by evaluation and `reward eval --fresh`
    gold: Callable[[], Any]  # factory of the gold judge: () -> RewardFunction
    annotators: str = "annotator"  # proxy-RM recipe: simulated annotators over the gold (parse_annotators spec)
    annotator_temperature: float = 0.05  # Bradley-Terry temperature of annotators whose spec names none
    annotator_bias: Callable[[], Any] | None = None  # factory of a score annotators add to the gold (a length preference)
    max_new_tokens: int = 24  # continuation length cap its Gymnasium id and preset use
    demonstrations: Callable[[int, int], list[tuple[str, str]]] | None = None  # (n, seed) -> (prompt, completion)
    pretraining_text: Callable[[int, int], list[str]] | None = None  # (n, seed) -> texts for PPO-ptx
    metrics: tuple[str, ...] = DEFAULT_METRICS  # evaluation metrics its leaderboard shows, in order

    def __post_init__(self) -> None:
        def bad(field: str, rule: str) -> ConfigError:
            return ConfigError(f"task {self.name!r}: {field}={getattr(self, field)!r} is invalid: {rule}")

        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise bad("name", "must be lower-case letters, digits and '-', starting with a letter")
        check_fields(self, f"task {self.name!r}: ")  # types, as every config: an int is no bool, floats finite
        if self.version < 0:
            raise bad("version", "must be an integer >= 0")
        for field in ("description", "model", "train_prompts", "eval_prompts", "annotators", "tokenizer"):
            value = getattr(self, field)
            if (value is not None or field != "tokenizer") and is_blank(value):
                raise bad(field, "must be a non-empty string")
        if not callable(self.gold):
            raise bad("gold", "must be a callable returning a reward function")
        for field in ("demonstrations", "pretraining_text"):
            if getattr(self, field) is not None and not callable(getattr(self, field)):
                raise bad(field, "must be None or a callable (n, seed) -> list")
        if self.max_new_tokens < 1:
            raise bad("max_new_tokens", "must be an integer >= 1")
        if self.annotator_bias is not None and not callable(self.annotator_bias):
            raise bad("annotator_bias", "must be None or a callable returning a reward function")
        if self.annotator_temperature < 0:
            raise bad("annotator_temperature", "must be a finite number >= 0")
        if not self.metrics or not all(self.metrics):
            raise bad("metrics", "must be a non-empty tuple of metric names")

    @property
    def env_id(self) -> str:
        """The Gymnasium id: ``rlhf_gym/<Name>-v<version>`` (the name's '-' parts capitalised)."""
        return f"rlhf_gym/{''.join(part.capitalize() for part in self.name.split('-'))}-v{self.version}"

    def make_gold(self) -> Any:
        """A fresh gold judge, as a :class:`~rlhf_gym.rewards.base.RewardFunction` (a batched callable is wrapped)."""
        from rlhf_gym.rewards.base import as_reward_function

        return as_reward_function(self.gold())

    def make_annotator_judge(self) -> Any:
        """What simulated annotators label by: the gold, plus :attr:`annotator_bias` when the task has one
        (a :class:`~rlhf_gym.rewards.base.WeightedSum` of both). The proxy RM learns this; evaluation reports
        the gold alone, which is how a learned bias becomes visible."""
        if self.annotator_bias is None:
            return self.make_gold()
        from rlhf_gym.rewards.base import WeightedSum, as_reward_function

        return WeightedSum({"gold": self.make_gold(), "bias": as_reward_function(self.annotator_bias())},
                           {"gold": 1.0, "bias": 1.0}, name=f"{self.name}_annotator_judge")

    def make_demonstrations(self, n: int, seed: int = 0) -> list[tuple[str, str]]:
        """``n`` ``(prompt, completion)`` demonstrations; a ConfigError if the task has none."""
        if self.demonstrations is None:
            raise ConfigError(f"task {self.name!r} has no demonstrations; give a demonstration file instead")
        return self.demonstrations(n, seed)

    def make_pretraining_text(self, n: int, seed: int = 0) -> list[str]:
        """``n`` pretraining texts; a ConfigError if the task has none."""
        if self.pretraining_text is None:
            raise ConfigError(f"task {self.name!r} has no pretraining text; give ptx_data a file instead")
        return self.pretraining_text(n, seed)
