"""``rlhf-gym bench``: agents × environments × seeds, one run directory each, and a GRUE-style table.

Layout: ``OUT/ENV/AGENT/seed-S/`` is an ordinary run directory (``ENV``/``AGENT`` are the preset file
names), so every run can be inspected with ``rlhf-gym report`` or ``eval``. The matrix is resumable: a run
with ``result.json`` is done and skipped, a run with a ``config.yaml`` but no result is continued with
``--resume`` (exactly, from its newest checkpoint), anything else starts fresh.

The table (``OUT/results.md``, ``OUT/results.json``; in the style of RL4LMs' GRUE) reports for each
environment and agent the mean ± standard deviation over seeds of the final held-out evaluation: gold
reward, reward-model reward, KL to the reference, perplexity under the reference, distinct-2, and wall time.
``OUT/curves.png`` draws gold reward and KL against generated tokens (mean over seeds) per environment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_gym.errors import ConfigError
from rlhf_gym.io import check_output, write_text_atomic
from rlhf_gym.runner.config import load_run_config
from rlhf_gym.runner.report import save_figure
from rlhf_gym.runner.rundir import CONFIG_FILE, RESULT_FILE, prepare_run, read_result, read_run_config
from rlhf_gym.runner.tracking import METRICS_FILE, jsonable, read_jsonl

#: Table columns: (result key, header, format).
COLUMNS = (("gold_reward", "gold reward ↑", "{:.3f}"), ("rm_reward", "RM reward ↑", "{:.3f}"),
           ("kl", "KL ↓", "{:.2f}"), ("perplexity", "perplexity ↓", "{:.1f}"), ("distinct_2", "distinct-2 ↑", "{:.3f}"),
           ("wall_time", "wall time (s)", "{:.0f}"))


@dataclass(frozen=True)
class BenchRun:
    """One cell of the matrix."""

    env_file: Path
    agent_file: Path
    seed: int
    out: Path
    overrides: tuple[str, ...] = ()  # this cell's own --set (the suite's budgets), before the matrix's: the user's wins

    @property
    def env(self) -> str:
        return self.env_file.stem

    @property
    def agent(self) -> str:
        return self.agent_file.stem

    @property
    def status(self) -> str:
        """``done``, ``partial`` (resumable) or ``new``."""
        if (self.out / RESULT_FILE).is_file():
            return "done"
        return "partial" if (self.out / CONFIG_FILE).is_file() else "new"


def plan(agents: Sequence[str], envs: Sequence[str], seeds: int, out: str | Path,
         overrides: Sequence[str] = (), build: bool = False) -> list[BenchRun]:
    """The runs of the matrix; every preset pair is validated first, so a typo fails before any training.

    The output folders are checked too (an unfinished run must be resumable, a new one's folder empty) and,
    with ``build=True``, every environment a run still to train needs is built once and dropped (model,
    prompts, evaluation prompts against the context, gold judge, ptx text): a bad second preset fails before
    the first one trains, not after.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if not agents or not envs:
        raise ConfigError("bench needs at least one --agents FILE and one --envs FILE")
    names = [Path(a).stem for a in agents], [Path(e).stem for e in envs]
    for kind, stems in zip(("agent", "env"), names):
        if len(set(stems)) != len(stems):
            raise ConfigError(f"two {kind} presets share a file name ({', '.join(stems)}): run directories would clash")
    configs = {(env, agent): load_run_config(env, agent, [*overrides, "run.seed=0"]) for env in envs for agent in agents}
    root = check_output(out)
    runs = [BenchRun(Path(e), Path(a), s, root / Path(e).stem / Path(a).stem / f"seed-{s}")
            for e in envs for a in agents for s in range(seeds)]
    todo: set[tuple[str, str]] = set()
    for r in runs:
        if r.status == "done":
            read_result(r.out)
            continue
        check_output(r.out, what="bench run")
        if r.status == "partial":
            read_run_config(r.out, resume=True)
        elif r.out.exists() and any(r.out.iterdir()):
            raise ConfigError(f"bench run {r.out} holds files but no {CONFIG_FILE}; move them away to run it")
        todo.add((str(r.env_file), str(r.agent_file)))
    if build:
        from rlhf_gym.runner.build import check_buildable

        built_envs: set[str] = set()
        for env, agent in sorted(todo):
            cfg = configs[(env, agent)]
            if env not in built_envs:
                check_buildable(cfg)
                built_envs.add(env)
            elif getattr(cfg.agent.config, "ptx_coef", 0) > 0:
                from rlhf_gym.agents.ptx import load_ptx_texts

                load_ptx_texts(cfg.agent.config.ptx_data, cfg.env.task_spec())
    return runs


def run_matrix(runs: Sequence[BenchRun], overrides: Sequence[str], wandb_mode: str | None,
               on_start: Callable[[BenchRun, int], None] | None = None,
               on_done: Callable[[BenchRun, Any], None] | None = None) -> None:
    """Trains every run that is not done (resuming partial ones), in order."""
    from rlhf_gym.runner.train import train

    for i, r in enumerate(runs):
        status = r.status
        if status == "done":
            continue
        if on_start is not None:
            on_start(r, i)
        resume = status == "partial"
        cfg = prepare_run(r.out, None if resume else str(r.env_file), None if resume else str(r.agent_file),
                          [] if resume else [*r.overrides, *overrides, f"run.seed={r.seed}"], resume)
        result = train(cfg, r.out, resume=resume, wandb_mode=wandb_mode, progress=False)
        if on_done is not None:
            on_done(r, result)


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(arr):
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarize(runs: Sequence[BenchRun]) -> list[dict[str, Any]]:
    """One row per (env, agent): ``mean``/``std`` of each :data:`COLUMNS` key over the finished seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if r.status != "done":
            continue
        saved = read_result(r.out)
        groups.setdefault((r.env, r.agent), []).append({**saved["eval"], "wall_time": saved["wall_time"]})
    rows = []
    for (env, agent), results in groups.items():
        row: dict[str, Any] = {"env": env, "agent": agent, "seeds": len(results)}
        for key, _, _ in COLUMNS:
            row[key], row[f"{key}_std"] = mean_std([res.get(key) for res in results])
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The GRUE-style table: ``mean ± std`` cells."""
    header = "| env | agent | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [header, "|---" * (len(COLUMNS) + 3) + "|"]
    for r in rows:
        cells = [f"{fmt.format(r[k])} ± {fmt.format(r[k + '_std'])}" for k, _, fmt in COLUMNS]
        lines.append(f"| {r['env']} | {r['agent']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seed_curves(runs: Sequence[BenchRun], env: str, agent: str,
                keys: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """One cell's held-out curves: the mean step of each evaluation and, per key, a ``(seeds, evaluations)``
    array, cut to the shortest seed (only rows that logged every key count); None when no seed has any."""
    per_seed = []
    for r in runs:
        if r.env == env and r.agent == agent and (r.out / METRICS_FILE).is_file():
            rows = [row for row in read_jsonl(r.out / METRICS_FILE)
                    if all(isinstance(row.get(k), int | float) and math.isfinite(row[k]) for k in keys)]
            if rows:
                per_seed.append(rows)
    if not per_seed:
        return None
    n = min(len(rows) for rows in per_seed)
    steps = np.mean([[row["step"] for row in rows[:n]] for rows in per_seed], axis=0)
    return steps, {k: np.array([[float(row[k]) for row in rows[:n]] for rows in per_seed]) for k in keys}


def plot_matrix(runs: Sequence[BenchRun], path: Path) -> Path:
    """Gold reward and KL (held-out evaluations) against generated tokens, mean over seeds, per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r.env for r in runs})
    fig, axes = plt.subplots(len(envs), 2, figsize=(10, 3.4 * len(envs)), squeeze=False, constrained_layout=True)
    for row, env in zip(axes, envs):
        for agent in sorted({r.agent for r in runs if r.env == env}):
            got = seed_curves(runs, env, agent, ("eval/gold_reward", "eval/kl"))
            if got is None:
                continue
            xs, curves = got
            for ax, ys in zip(row, curves.values()):
                ax.plot(xs, ys.mean(0), marker="o", ms=3, label=f"{agent} ({len(ys)} seeds)")
                if len(ys) > 1:
                    ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
        for ax, title in zip(row, ("gold reward (held-out)", "KL to reference (held-out)")):
            ax.set_title(f"{env}: {title}")
            ax.set_xlabel("generated tokens")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_summary(runs: Sequence[BenchRun], out: Path) -> tuple[list[dict[str, Any]], Path, Path]:
    """Writes ``results.md``, ``results.json`` and ``curves.png`` into ``out``; returns the rows and paths."""
    rows = summarize(runs)
    md = write_text_atomic(out / "results.md", markdown_table(rows))
    write_text_atomic(out / "results.json", json.dumps(jsonable(rows), indent=1))
    png = plot_matrix(runs, out / "curves.png")
    return rows, md, png
