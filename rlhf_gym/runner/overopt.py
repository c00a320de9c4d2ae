"""Reward over-optimisation measurements on a task (Gao, Schulman & Hilton 2022), used by
``scripts/overoptimization.py``.

* :func:`sample_pool` — a fixed pool of ``N`` samples per held-out prompt from the task's starting policy
  (temperature 1), scored by the gold; :func:`score_pool` scores it with a proxy reward-model directory;
* :func:`bon_curve` — best-of-n by the proxy over that pool for each ``n`` (the unbiased estimator of
  :func:`~rlhf_gym.core.overoptimization.best_of_n_curve`), gold and proxy gained over ``n = 1``, at
  ``KL = log n − (n − 1)/n``, with the fit ``d(α − βd)``;
* :func:`rl_run` — one PPO run against a proxy (a normal run directory, :func:`rlhf_gym.runner.train.train`);
  :func:`rl_curve` reads its periodic held-out evaluations (``eval/*`` in ``metrics.jsonl``: gold, proxy,
  measured KL to the reference, perplexity, distinct-2) — the RL curves come from those evaluations of the
  live policy, not from reloading checkpoints;
* :func:`peak` — where the gold of one curve peaks, what is lost from there to the end, and whether the
  proxy kept rising after the gold's peak; :func:`at_proxy` — a curve's values where its proxy first reaches
  a given score (linear interpolation between evaluations), for comparing runs at equal proxy score.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_gym.core.overoptimization import Fit, best_of_n_curve, bon_kl, fit_bon, fit_rl
from rlhf_gym.errors import ConfigError
from rlhf_gym.tasks import Task, get_task

__all__ = ["Pool", "sample_pool", "score_pool", "bon_curve", "fit_summary", "rl_run", "rl_curve", "peak",
           "at_proxy", "rl_points", "rl_fit", "CURVE_KEYS"]

#: ``eval/<key>`` series an RL curve holds (besides ``step``).
CURVE_KEYS = ("gold_reward", "rm_reward", "kl", "perplexity", "distinct_2", "mean_length")

#: PPO settings of the RL curves (``learning_rate`` is set per task by the caller).
PPO_AGENT: dict[str, Any] = {"algo": "ppo", "batch_size": 16, "minibatch_size": 8, "n_epochs": 4}

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Pool:
    """``n_prompts × per_prompt`` samples of the starting policy, row-major: ``texts[i * per_prompt + j]``."""

    prompts: list[str]  # one per sample (each prompt repeated per_prompt times)
    texts: list[str]
    gold: np.ndarray  # (n_prompts, per_prompt)

    @property
    def shape(self) -> tuple[int, int]:
        return self.gold.shape  # type: ignore[return-value]


def sample_pool(task: str | Task, n_prompts: int, per_prompt: int, seed: int = 0,
                on_progress: Progress | None = None) -> Pool:
    """Samples ``per_prompt`` continuations of each of the first ``n_prompts`` held-out prompts of ``task``."""
    from rlhf_gym.core.data import load_prompts
    from rlhf_gym.rewards.annotators import CandidateGenerator

    task = get_task(task)
    prompts = load_prompts(task.eval_prompts, n=n_prompts)
    if len(prompts) < n_prompts:
        raise ConfigError(f"task {task.name}: its eval prompts hold {len(prompts)} prompts, fewer than {n_prompts}")
    gen = CandidateGenerator(task.model, max_new_tokens=task.max_new_tokens, seed=seed, gold=task.make_gold)
    flat = [p for p in prompts[:n_prompts] for _ in range(per_prompt)]
    texts = gen.continuations(flat, 1.0, on_progress=on_progress)
    gold = task.make_gold().score(flat, texts).double().numpy().reshape(n_prompts, per_prompt)
    return Pool(flat, texts, gold)


def score_pool(reward_dir: str | Path, pool: Pool) -> np.ndarray:
    """The proxy's (normalised) scores of the pool, ``(n_prompts, per_prompt)``."""
    from rlhf_gym.rewards.learned import LearnedReward

    rm = LearnedReward(reward_dir, device="cpu")
    return rm.score(pool.prompts, pool.texts).double().numpy().reshape(pool.shape)


def fit_summary(fit: Fit) -> dict[str, float | None]:
    """A fit as JSON numbers: α, β, R², and the KL (= d²) where the fitted curve peaks (None: never)."""
    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {"alpha": num(fit.alpha), "beta": num(fit.beta), "r2": num(fit.r2),
            "peak_kl": num(fit.peak_d ** 2) if math.isfinite(fit.peak_d) and fit.peak_d < 1e150 else None}


def bon_curve(proxy: np.ndarray, gold: np.ndarray, ns: Sequence[int]) -> dict[str, Any]:
    """Best-of-n by ``proxy`` for each ``n`` in ``ns`` (which must hold 1): the expected gold and proxy of the
    pick, their gains over ``n = 1``, the KL and ``d = sqrt(KL)``, the fit of the gold gain and its peak."""
    if 1 not in ns:
        raise ConfigError("best-of-n curve: ns must include 1 (the starting policy the gains are measured from)")
    ns = sorted(set(int(n) for n in ns))
    g, p = best_of_n_curve(proxy, gold, ns), best_of_n_curve(proxy, proxy, ns)
    kl = np.array([bon_kl(n) for n in ns])
    gold_gain, proxy_gain = g - g[0], p - p[0]
    out: dict[str, Any] = {"n": ns, "kl": kl.tolist(), "d": np.sqrt(kl).tolist(), "gold": g.tolist(),
                           "proxy": p.tolist(), "gold_gain": gold_gain.tolist(), "proxy_gain": proxy_gain.tolist(),
                           "peak": peak(kl, g, p)}
    out["fit"] = fit_summary(fit_bon(np.sqrt(kl), gold_gain)) if len(ns) >= 4 else None
    return out


def rl_run(task: str | Task, reward_dir: str | Path, out: Path, *, beta: float, timesteps: int, seed: int,
           learning_rate: float, eval_every: int, eval_episodes: int, progress: bool = False,
           console: Any = None) -> Path:
    """One PPO run on ``task`` against the proxy at ``reward_dir`` with a fixed KL coefficient ``beta``
    (gold judged at each held-out evaluation) into run directory ``out``; returns ``out``.

    A finished run already there (its ``result.json`` holds at least ``timesteps`` steps and its config the
    same reward, β, seed and learning rate) is kept, so a repeated call costs nothing; an unfinished or
    different one is replaced.
    """
    from rlhf_gym.runner.config import resolve
    from rlhf_gym.runner.train import train

    task = get_task(task)
    env = {"task": task.name, "reward": str(reward_dir), "gold": "gold", "beta": beta,
           "num_envs": PPO_AGENT["batch_size"], "n_eval_prompts": eval_episodes}
    agent = {**PPO_AGENT, "learning_rate": learning_rate}
    run = {"total_timesteps": timesteps, "seed": seed, "eval_every": eval_every, "eval_episodes": eval_episodes,
           "checkpoint_every": 0, "keep_checkpoints": 1, "samples_per_update": 4}
    cfg = resolve(env, agent, run, {"env": "over-optimisation env", "agent": "over-optimisation agent",
                                    "run": "over-optimisation run"})
    if _finished(out, cfg, timesteps):
        return out
    if out.exists():
        shutil.rmtree(out)
    train(cfg, out, progress=progress, console=console)
    return out


def _finished(out: Path, cfg: Any, timesteps: int) -> bool:
    from rlhf_gym.runner.rundir import DIGEST_FILE, RESULT_FILE, config_digest

    try:
        result = json.loads((out / RESULT_FILE).read_text())
        digest = (out / DIGEST_FILE).read_text().strip()
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and result.get("steps", 0) >= timesteps and digest == config_digest(cfg)


def rl_curve(run_dir: Path) -> dict[str, list[float]]:
    """The held-out evaluations of a run: ``step`` and each of :data:`CURVE_KEYS` (rows logging all of them)."""
    from rlhf_gym.runner.tracking import METRICS_FILE, read_jsonl

    curve: dict[str, list[float]] = {"step": [], **{k: [] for k in CURVE_KEYS}}
    for row in read_jsonl(run_dir / METRICS_FILE):
        values = [row.get(f"eval/{k}") for k in CURVE_KEYS]
        if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            curve["step"].append(row["step"])
            for k, v in zip(CURVE_KEYS, values):
                curve[k].append(float(v))
    if not curve["step"] or curve["step"][0] != 0:
        raise ConfigError(f"{run_dir}: no held-out evaluation at step 0 in its metrics")
    return curve


def peak(kl: Sequence[float], gold: Sequence[float], proxy: Sequence[float]) -> dict[str, Any]:
    """Where ``gold`` peaks along a curve (points in order of optimisation) and what follows.

    ``gold_lost`` is the peak's gold minus the last point's; ``peaks_before_end`` is whether the peak is not
    the last point; ``proxy_rises`` whether the proxy at the last point is above the proxy at the gold's peak;
    ``overoptimised`` is both (the gold fell while the proxy still rose).
    """
    g, p = np.asarray(gold, dtype=float), np.asarray(proxy, dtype=float)
    i = int(np.argmax(g))
    before_end = i < len(g) - 1
    rises = bool(p[-1] > p[i])
    return {"kl_at_peak": float(kl[i]), "gold_peak": float(g[i]), "gold_end": float(g[-1]),
            "gold_lost": float(g[i] - g[-1]), "peaks_before_end": before_end, "proxy_rises": rises,
            "overoptimised": before_end and rises}


def at_proxy(curve: dict[str, list[float]], target: float, keys: Sequence[str] = CURVE_KEYS) -> dict[str, float] | None:
    """The curve's ``keys`` where its ``rm_reward`` first reaches ``target`` (interpolated linearly between
    the two evaluations around the crossing); None when it never does."""
    rm = curve["rm_reward"]
    for j, value in enumerate(rm):
        if value >= target:
            if j == 0:
                return {k: curve[k][0] for k in keys}
            w = (target - rm[j - 1]) / (value - rm[j - 1])
            return {k: curve[k][j - 1] + w * (curve[k][j] - curve[k][j - 1]) for k in keys}
    return None


def rl_points(curves: Sequence[dict[str, list[float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d, gold gain, proxy gain)`` of every evaluation of every curve, gains over each run's own step 0
    and ``d = sqrt(max(KL, 0))`` (a slightly negative KL estimate counts as 0)."""
    d, g, p = [], [], []
    for c in curves:
        d += [math.sqrt(max(k, 0.0)) for k in c["kl"]]
        g += [x - c["gold_reward"][0] for x in c["gold_reward"]]
        p += [x - c["rm_reward"][0] for x in c["rm_reward"]]
    return np.array(d), np.array(g), np.array(p)


def rl_fit(curves: Sequence[dict[str, list[float]]]) -> dict[str, float | None] | None:
    """The fit ``d(α − β log d)`` of the gold gain over all the curves' evaluations (None: < 3 points with d > 0)."""
    d, g, _ = rl_points(curves)
    if int((d > 0).sum()) < 3:
        return None
    return fit_summary(fit_rl(d, g))
