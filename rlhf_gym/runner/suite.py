"""``rlhf-gym bench --suite embedded``: every offline task × algorithms × seeds, each against its task's proxy.

For each registered task whose model ships with the package (:func:`~rlhf_gym.runner.task_figures.offline`)
the suite trains the task's proxy reward model once (:func:`~rlhf_gym.runner.proxy.cached_proxy`: simulated
annotators' comparisons, Bradley–Terry), writes an env preset ``OUT/presets/<task>.yaml`` that trains on that
proxy and reports the task's gold, and hands the preset × agent × seed matrix to :mod:`rlhf_gym.runner.bench`
(resumable, every cell validated before the first run trains). The gold is never the training signal, so the
leaderboard (:mod:`rlhf_gym.runner.leaderboard`) can show proxy gains that are not gold gains.

Each task's gold is normalised between its starting policy (the median of the same seed's runs' step-0
evaluations, which every on-policy run makes of the same policy; best-of-n's is already a best of n) and the
best-of-64 gold of that policy (``best_of_n_gold`` of the task figures, selection by the gold itself): 0 is
where training starts, 1 is what choosing the best of 64 samples reaches without leaving the policy's support.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlhf_gym.errors import ConfigError
from rlhf_gym.io import check_output, write_text_atomic
from rlhf_gym.runner.bench import BenchRun, plan
from rlhf_gym.runner.config import preset_config, read_yaml_mapping
from rlhf_gym.runner.proxy import cached_proxy
from rlhf_gym.runner.task_figures import FigureConfig, cached_figures, offline
from rlhf_gym.tasks import Task, get_task, list_tasks

__all__ = ["SUITES", "SuitePlan", "task_env_preset", "QUICK_AGENTS", "QUICK_OVERRIDES", "FULL_OVERRIDES", "default_agents",
           "suite_tasks", "prepare_suite"]

SUITES = ("embedded",)

#: ``--quick``: PPO, GRPO and RLOO (a critic, a group baseline, a leave-one-out baseline), one seed.
QUICK_AGENTS = ("ppo", "grpo", "rloo")
#: Settings every suite run gets (before the user's ``--set``): a cheaper held-out evaluation, few checkpoints.
#: One torch thread: these models are tiny, and on a 2-core machine 2 threads ran several times slower under load.
QUICK_OVERRIDES = ("run.eval_every=2", "env.n_eval_prompts=64", "run.eval_episodes=64", "run.checkpoint_every=0",
                   "run.torch_threads=1")
FULL_OVERRIDES = ("run.eval_every=3", "env.n_eval_prompts=128", "run.eval_episodes=128", "run.checkpoint_every=0",
                  "run.torch_threads=1")
#: The budget, in rollouts of 32 full-length episodes: ``run.total_timesteps = ROLLOUTS * 32 * max_new_tokens``,
#: so a task of long answers gets as many updates as one of short ones (a task whose answers end early gets more).
QUICK_ROLLOUTS, FULL_ROLLOUTS = 8, 12
#: Agent presets of the full suite: every algorithm of docs/agents.md (sb3-ppo is PPO through SB3, not another one).
FULL_AGENTS = ("ppo", "a2c", "nlpo", "grpo", "rloo", "reinforce_pp", "bon", "raft", "dpo", "ipo", "online_dpo")
#: The figures that normalise each task's gold (the best-of-64 ceiling).
NORM_FIGURES = FigureConfig(n_prompts=32, bon_prompts=32, n_best_of=64)


@dataclass(frozen=True)
class SuitePlan:
    """What a suite run trains, and the numbers that normalise its gold."""

    runs: list[BenchRun]
    tasks: list[Task]
    norms: dict[str, dict[str, Any]]  # task -> {"start_gold", "best_of_64_gold", "proxy_accuracy", "proxy"}
    overrides: list[str]  # the suite's settings followed by the user's --set (each run adds its budget first)


def suite_tasks(names: Sequence[str] | None = None) -> list[Task]:
    """The offline registered tasks (or the named ones, which must be offline)."""
    if not names:
        return [t for t in list_tasks() if offline(t)]
    tasks = [get_task(n) for n in names]
    for t in tasks:
        if not offline(t):
            raise ConfigError(f"--tasks {t.name}: its model {t.model!r} is not shipped (the embedded suite runs offline)")
    if len({t.name for t in tasks}) != len(tasks):
        raise ConfigError(f"--tasks names a task twice: {' '.join(names)}")
    return tasks


def default_agents(quick: bool, folder: str | Path = "agents") -> list[Path]:
    """The agent presets of the suite, from the repository's ``agents/`` folder."""
    files = [Path(folder) / f"{name}.yaml" for name in (QUICK_AGENTS if quick else FULL_AGENTS)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"agent preset {missing[0]} not found: run from the repository root (its agents/ "
                          "folder holds the presets) or pass --agents FILE...")
    return files


def task_env_preset(task: Task, reward: str | Path) -> dict[str, Any]:
    """The env preset of ``task`` trained on ``reward`` (a reward-model directory) and reporting its gold."""
    return {"task": task.name, "model": task.model, "prompts": task.train_prompts, "eval_prompts": task.eval_prompts,
            "reward": str(reward), "gold": "gold", "beta": 0.05, "kl_estimator": "k1",
            "max_new_tokens": task.max_new_tokens, "num_envs": 16}


def prepare_suite(suite: str, out: str | Path, agents: Sequence[str | Path] | None, seeds: int, quick: bool,
                  overrides: Sequence[str] = (), tasks: Sequence[str] | None = None, say: Callable[[str], None] = lambda _: None) -> SuitePlan:
    """Validates the whole suite, trains (or reads the cached) proxies and figures, writes the env presets and
    returns the plan of :func:`~rlhf_gym.runner.bench.plan` (built, so a bad cell fails before any run)."""
    if suite not in SUITES:
        raise ConfigError(f"--suite {suite!r} is unknown; choose one of: {', '.join(SUITES)}")
    task_list = suite_tasks(tasks)
    agent_files = [Path(a) for a in agents] if agents else default_agents(quick)
    budget = [*(QUICK_OVERRIDES if quick else FULL_OVERRIDES), *overrides]  # the user's --set wins
    for agent_file in agent_files:  # every task x agent, before any proxy is trained
        for t in task_list:
            preset_config({**task_env_preset(t, Path("gold")), "reward": "gold"}, read_yaml_mapping(agent_file),
                          [*budget, "run.seed=0"], f"suite preset {t.name}", str(agent_file))
    root = check_output(out)
    norms: dict[str, dict[str, Any]] = {}
    presets = []
    for i, t in enumerate(task_list, 1):
        say(f"[{i}/{len(task_list)}] {t.name}: proxy reward model and best-of-64 figures (cached after the first time)")
        proxy_dir = cached_proxy(t)
        figures = cached_figures(t, NORM_FIGURES)
        norms[t.name] = {"start_gold": figures["start_gold_mean"], "best_of_64_gold": figures["best_of_n_gold"],
                         "proxy_accuracy": figures["proxy_accuracy"], "proxy": str(proxy_dir)}
        preset = root / "presets" / f"{t.name}.yaml"
        preset.parent.mkdir(parents=True, exist_ok=True)
        header = f"# {t.name} against its proxy reward model (written by rlhf-gym bench --suite {suite})\n"
        write_text_atomic(preset, header + yaml.safe_dump(task_env_preset(t, proxy_dir), sort_keys=False))
        presets.append(str(preset))
    runs = []
    for t, preset in zip(task_list, presets):
        own = [f"run.total_timesteps={(QUICK_ROLLOUTS if quick else FULL_ROLLOUTS) * 32 * t.max_new_tokens}"]
        runs += [dataclasses.replace(r, overrides=tuple(own)) for r in
                 plan([str(a) for a in agent_files], [preset], seeds, root, [*own, *budget], build=True)]
    return SuitePlan(runs, task_list, norms, budget)
