"""A task's headroom figures: is there something for an algorithm to learn, and can a proxy RM learn it?

For one task, on its held-out prompts and with its starting policy sampling at temperature 1:

* ``start_gold_mean`` / ``start_gold_sd`` — the gold of one sample on each of ``n_prompts`` prompts;
* ``best_of_n_gold`` — the gold of the best of ``n_best_of`` samples (by gold), averaged over ``bon_prompts``
  prompts: what selection alone reaches without leaving the starting policy's support;
* ``headroom`` — ``(best_of_n_gold - start_gold_mean) / start_gold_sd``;
* ``proxy_accuracy`` — a Bradley–Terry reward model trained from ``comparisons`` simulated comparisons (the
  task's annotators over its annotator judge), scored on the best-of-n pool: the share of same-prompt pairs
  with different gold that it orders as the gold does;
* ``gold_length_corr`` / ``proxy_length_corr`` — Pearson correlation of gold and proxy with the number of
  words, over the pool: a proxy that learned a length bias shows it here (the ``concise`` task);
* ``front`` — for a gold made of several judges (a :class:`~rlhf_gym.rewards.base.WeightedSum`): at each
  weight, the mean of every judge over the best-of-n picks under that weight.

:func:`cached_figures` keeps each task's figures in ``<cache>/tasks/<name>-v<version>-<settings hash>.json``
(``$RLHF_GYM_CACHE``, else ``$XDG_CACHE_HOME/rlhf_gym``, else ``~/.cache/rlhf_gym``), so a listing is
computed once per task version and settings on a machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_gym.core.checks import check_fields
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.jsonio import parse_json, read_json
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import read_text, write_text_atomic
from rlhf_gym.tasks import Task

__all__ = ["FigureConfig", "task_figures", "cached_figures", "cache_dir", "offline"]

#: Weights of a two-judge gold's first judge at which the front is drawn.
FRONT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Progress callback: ``(phase description, fraction done in [0, 1])``.
Progress = Callable[[str, float], None]


@dataclasses.dataclass(frozen=True)
class FigureConfig:
    """How much each figure samples (the defaults are the ones docs/tasks.md reports)."""

    n_prompts: int = 256  # held-out prompts for the starting gold, one sample each
    bon_prompts: int = 64  # held-out prompts for best-of-n and the proxy's accuracy
    n_best_of: int = 64  # samples per prompt in the best-of-n pool
    comparisons: int = 2000  # simulated comparisons the proxy reward model is trained from
    rm_epochs: int = 2  # reward-model epochs
    seed: int = 0  # seeds sampling, labelling and reward-model training

    def __post_init__(self) -> None:
        check_fields(self, "task figures: ")
        for field in ("n_prompts", "bon_prompts", "comparisons", "rm_epochs"):
            if getattr(self, field) < 1:
                raise ConfigError(f"task figures: {field}={getattr(self, field)} is invalid: must be >= 1")
        if self.n_best_of < 2:
            raise ConfigError(f"task figures: n_best_of={self.n_best_of} is invalid: must be >= 2")

    def key(self) -> str:
        """A short hash of the settings (part of the cache file's name)."""
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def offline(task: Task) -> bool:
    """Whether the task's model ships with the package or lies on disk (no download needed)."""
    return task.model == "embedded" or task.model.startswith("embedded:") or Path(task.model).expanduser().is_dir()


def cache_dir() -> Path:
    """Where figures are cached: ``$RLHF_GYM_CACHE``, ``$XDG_CACHE_HOME/rlhf_gym`` or ``~/.cache/rlhf_gym``."""
    from rlhf_gym.runner.proxy import cache_root

    return cache_root() / "tasks"


def judge_name(gold: Any) -> str:
    """``repr(gold)`` when its class defines one, else its class name (never ``<... object at 0x...>``)."""
    return repr(gold) if type(gold).__repr__ is not object.__repr__ else type(gold).__name__


def _words(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=float)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else math.nan


def pair_accuracy(proxy: torch.Tensor, gold: torch.Tensor) -> float:
    """Share of same-row pairs with different gold that ``proxy`` orders as ``gold`` does (ties count half);
    both are ``(prompts, samples)``."""
    dp = proxy.unsqueeze(2) - proxy.unsqueeze(1)
    dg = gold.unsqueeze(2) - gold.unsqueeze(1)
    upper = torch.triu(torch.ones_like(dg, dtype=torch.bool), diagonal=1) & (dg != 0)
    agree = torch.where(dp == 0, 0.5, ((dp > 0) == (dg > 0)).float())
    return float(agree[upper].mean()) if upper.any() else math.nan


def _front(gold: Any, prompts: list[str], texts: list[str], shape: tuple[int, int],
           weights: Sequence[float]) -> list[dict[str, float]]:
    parts = gold.components(prompts, texts)
    names = list(parts)
    if len(names) != 2:
        return []
    rows = []
    for w in weights:
        combined = gold.combine(parts, {names[0]: w, names[1]: 1.0 - w}).view(shape)
        best = combined.argmax(dim=1, keepdim=True)
        rows.append({"weight": w, **{k: float(v.view(shape).gather(1, best).mean()) for k, v in parts.items()}})
    return rows


def task_figures(task: Task, config: FigureConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Measures ``task``'s figures (see the module docstring); ``progress`` hears each phase."""
    from rlhf_gym.rewards.annotators import CandidateGenerator
    from rlhf_gym.rewards.learned import LearnedReward
    from rlhf_gym.runner.proxy import ProxyConfig, cached_proxy

    cfg = config or FigureConfig()
    say = progress or (lambda phase, done: None)
    gold = task.make_gold()
    gen = CandidateGenerator(task.model, max_new_tokens=task.max_new_tokens, seed=cfg.seed, gold=task.make_gold)
    prompts = load_prompts(task.eval_prompts, n=max(cfg.n_prompts, cfg.bon_prompts))
    if len(prompts) < max(cfg.n_prompts, cfg.bon_prompts):
        raise ConfigError(f"task {task.name}: its eval prompts hold {len(prompts)} prompts, fewer than the "
                          f"{max(cfg.n_prompts, cfg.bon_prompts)} the figures need")

    say("starting policy", 0.0)
    start_prompts = prompts[: cfg.n_prompts]
    start = gold.score(start_prompts, gen.continuations(start_prompts, 1.0)).double()

    say(f"best-of-{cfg.n_best_of} pool", 0.1)
    pool_prompts = [p for p in prompts[: cfg.bon_prompts] for _ in range(cfg.n_best_of)]
    done = [0]

    def sampled(k: int) -> None:
        done[0] += k
        say(f"best-of-{cfg.n_best_of} pool", 0.1 + 0.3 * done[0] / len(pool_prompts))

    pool = gen.continuations(pool_prompts, 1.0, on_progress=sampled)
    shape = (cfg.bon_prompts, cfg.n_best_of)
    pool_gold = gold.score(pool_prompts, pool).view(shape)

    say(f"proxy reward model from {cfg.comparisons} simulated comparisons", 0.4)
    proxy_dir = cached_proxy(task, ProxyConfig(comparisons=cfg.comparisons, epochs=cfg.rm_epochs, seed=cfg.seed))
    proxy = LearnedReward(proxy_dir)
    trained = read_json(proxy_dir / "reward_stats.json", "proxy reward-model stats", ConfigError)["metrics"]
    pool_proxy = proxy.score(pool_prompts, pool).view(shape)
    say("done", 1.0)

    sd = float(start.std())
    best = float(pool_gold.max(dim=1).values.mean())
    words = _words(pool)
    figures = {
        "task": task.name, "version": task.version, "env_id": task.env_id, "gold": judge_name(gold),
        "start_gold_mean": float(start.mean()), "start_gold_sd": sd, "best_of_n": cfg.n_best_of,
        "best_of_n_gold": best, "headroom": (best - float(start.mean())) / sd if sd > 0 else math.inf,
        "proxy_accuracy": pair_accuracy(pool_proxy, pool_gold), "proxy_comparisons": trained["rm/n_train"] + trained["rm/n_val"],
        "gold_length_corr": _corr(pool_gold.flatten().numpy(), words),
        "proxy_length_corr": _corr(pool_proxy.flatten().numpy(), words),
        "settings": dataclasses.asdict(cfg),
    }
    if hasattr(gold, "components"):
        figures["front"] = _front(gold, pool_prompts, pool, shape, FRONT_WEIGHTS)
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}


def cached_figures(task: Task, config: FigureConfig | None = None, *, refresh: bool = False,
                   compute: bool = True, progress: Progress | None = None) -> dict[str, Any] | None:
    """``task``'s figures from the cache, computed and cached first when missing (or ``refresh``); None when
    missing and ``compute`` is False."""
    cfg = config or FigureConfig()
    path = cache_dir() / f"{task.name}-v{task.version}-{cfg.key()}.json"
    if path.is_file() and not refresh:
        try:
            cached = parse_json(read_text(path, "task figures cache", ConfigError), str(path), ConfigError)
            if isinstance(cached, dict) and cached.get("settings") == dataclasses.asdict(cfg):
                return cached
        except ConfigError:
            pass  # a damaged cache file is recomputed
    if not compute:
        return None
    figures = task_figures(task, cfg, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(figures, indent=1) + "\n")
    return figures

