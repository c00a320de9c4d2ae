"""A task's proxy reward model: trained from its simulated annotators' comparisons, cached on disk.

Over-optimisation needs a proxy that is *not* the gold: a Bradley–Terry reward model learned from a finite
number of noisy comparisons by the task's simulated annotators (its ``annotators`` spec over its annotator
judge, which may add a bias such as ``concise``'s length preference). :func:`train_proxy` trains one in
memory; :func:`cached_proxy` trains it once per task version and settings and returns the reward-model
directory, which an env preset takes as ``reward: <dir>`` and :class:`~rlhf_gym.rewards.learned.LearnedReward`
loads. The cache lives beside the task figures' (``$RLHF_GYM_CACHE``, see :func:`cache_root`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from rlhf_gym.core.checks import check_fields
from rlhf_gym.errors import ConfigError
from rlhf_gym.tasks import Task, get_task

__all__ = ["ProxyConfig", "train_proxy", "cached_proxy", "cache_root"]


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """How a proxy reward model is made."""

    comparisons: int = 2000  # simulated comparisons it learns from
    epochs: int = 2  # reward-model epochs
    seed: int = 0  # seeds the candidates, the labels and the reward model's training
    max_length: int = 128  # tokens of prompt + completion the reward model reads

    def __post_init__(self) -> None:
        check_fields(self, "proxy reward model: ")
        for field in ("comparisons", "epochs", "max_length"):
            if getattr(self, field) < 1:
                raise ConfigError(f"proxy reward model: {field}={getattr(self, field)} is invalid: must be >= 1")

    def key(self) -> str:
        return f"c{self.comparisons}-e{self.epochs}-s{self.seed}-l{self.max_length}"


def cache_root() -> Path:
    """``$RLHF_GYM_CACHE``, else ``$XDG_CACHE_HOME/rlhf_gym``, else ``~/.cache/rlhf_gym``."""
    root = os.environ.get("RLHF_GYM_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlhf_gym"
    return Path(root)


def train_proxy(task: str | Task, config: ProxyConfig | None = None, out_dir: str | Path | None = None,
                progress: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """Simulates ``config.comparisons`` comparisons by ``task``'s annotators and trains a reward model on them;
    returns ``(model, tokenizer, metrics)`` as :func:`~rlhf_gym.rewards.rm_train.train_reward_model` does
    (saved atomically to ``out_dir`` when given)."""
    from rlhf_gym.rewards.annotators import SimulationConfig, parse_annotators, simulate_preferences
    from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model

    task, cfg = get_task(task), config or ProxyConfig()
    sim = simulate_preferences(SimulationConfig(
        n_comparisons=cfg.comparisons, annotators=parse_annotators(task.annotators,
        temperature=task.annotator_temperature, seed=cfg.seed), prompts=task.train_prompts, model=task.model,
        gold=task.make_annotator_judge, max_new_tokens=task.max_new_tokens, seed=cfg.seed), progress=progress)
    model, tokenizer, metrics = train_reward_model(sim.pairs, RewardModelConfig(
        base_model=task.model, epochs=cfg.epochs, seed=cfg.seed, max_length=cfg.max_length),
        out_dir=out_dir, progress=progress)
    return model, tokenizer, {**metrics, "proxy/comparisons": len(sim.pairs),
                              **{k: v for k, v in sim.stats.items() if isinstance(v, int | float)}}


def cached_proxy(task: str | Task, config: ProxyConfig | None = None, progress: bool = False) -> Path:
    """The directory of ``task``'s proxy reward model under ``config``, trained and cached first if missing.

    The path is ``<cache_root>/proxies/<task>-v<version>-<settings>``; it is written atomically, so an
    interrupted training leaves no half-written model to be picked up later.
    """
    task, cfg = get_task(task), config or ProxyConfig()
    path = cache_root() / "proxies" / f"{task.name}-v{task.version}-{cfg.key()}"
    if not (path / "reward_stats.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        train_proxy(task, cfg, out_dir=path, progress=progress)
    return path
