"""The whole RLHF pipeline on a task (default ``sentiment``, the embedded world), as ``rlhf-gym demo`` runs it.

1. **comparisons** — the shipped tiny GPT-2 continues review openings; simulated annotators (Bradley–Terry
   on the gold judge, with noise) say which of two continuations they prefer
   (:func:`rlhf_gym.rewards.annotators.simulate_preferences`), or a preference file is read;
2. **reward model** — the tiny GPT-2 plus a scalar head, trained on the comparisons with the Bradley–Terry
   loss (:func:`rlhf_gym.rewards.rm_train.train_reward_model`);
3. **PPO, twice** — from the same initial policy, against the same reward model, with the KL penalty
   ``−β·KL(π‖π_ref)``: once with a fixed small β (the proxy keeps rising while the gold judge stalls and the KL
   runs away: reward over-optimisation) and once with the adaptive β of Ziegler et al. (2019), which raises β
   while the KL is above a stated target (``kl_target``) and lowers it below. Each is a normal run directory
   (:func:`rlhf_gym.runner.train.train`: metrics, samples, checkpoints, report);
4. **evaluation** — during and after each run, on held-out prompts: the gold judge (which the agent never saw),
   the reward model, KL to the reference, perplexity and diversity; ``proxy_vs_gold.png`` draws the proxy and
   the gold reward of both runs against the KL.

Everything lands in one directory: ``prefs.jsonl``, ``reward-model/``, ``ppo-fixed/`` and ``ppo-adaptive/``
(run directories with ``curves.png`` and ``report.md``), ``proxy_vs_gold.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from rlhf_gym.errors import ConfigError
from rlhf_gym.io import check_output, write_text_atomic
from rlhf_gym.runner.tracking import jsonable

#: PPO settings of the demo (the same fields as ``agents/ppo.yaml``).
DEMO_AGENT: dict[str, Any] = {
    "algo": "ppo", "learning_rate": 1e-4, "batch_size": 32, "minibatch_size": 8, "n_epochs": 4, "gamma": 1.0,
    "gae_lambda": 0.95, "clip_range": 0.2, "vf_coef": 0.1, "max_grad_norm": 1.0,
}
#: Defaults of the adaptive-β run: KL target (nats per continuation), controller horizon (episodes), starting β.
KL_TARGET, KL_HORIZON, ADAPTIVE_BETA = 6.0, 128, 0.15
#: The two PPO runs: name -> run directory under ``OUT``.
RUNS = {"fixed": "ppo-fixed", "adaptive": "ppo-adaptive"}


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults fit in under 10 minutes on 2 CPU cores."""

    out: Path
    model: str | None = None  # annotated candidates, reward-model init, reference and policy; None = the task's
    task: str = "sentiment"  # the registered task: its prompts, gold judge and (by default) model
    prefs: str | None = None  # a preference file to use instead of simulated comparisons
    comparisons: int = 600  # simulated comparisons
    annotator_noise: float = 0.1  # flip rate of the simulated annotators
    rm_epochs: int = 2  # reward-model epochs
    ppo_timesteps: int = 8_000  # PPO budget of each run in generated tokens
    beta: float = 0.05  # KL coefficient of the fixed-β run
    adaptive_beta: float = ADAPTIVE_BETA  # starting β of the adaptive run (the controller only scales it: > 0)
    kl_target: float = KL_TARGET  # nats per continuation that the adaptive-β run steers its KL to
    kl_horizon: int = KL_HORIZON  # episodes over which adaptive β moves by at most 20% (>= the batch size)
    max_new_tokens: int = 16  # continuation length cap
    eval_episodes: int = 48  # held-out prompts in each evaluation
    eval_every: int = 3  # PPO updates between held-out evaluations (the points of proxy_vs_gold.png)
    seed: int = 0
    agent: dict[str, Any] = field(default_factory=lambda: dict(DEMO_AGENT))

    def __post_init__(self) -> None:
        from rlhf_gym.tasks import get_task

        if self.model is None:
            self.model = get_task(self.task).model
        checks = {"comparisons": self.comparisons >= 10, "rm_epochs": self.rm_epochs >= 1,
                  "ppo_timesteps": self.ppo_timesteps >= 1, "beta": math.isfinite(self.beta) and self.beta >= 0,
                  "adaptive_beta": math.isfinite(self.adaptive_beta) and self.adaptive_beta > 0,
                  "max_new_tokens": self.max_new_tokens >= 1, "eval_episodes": self.eval_episodes >= 1,
                  "eval_every": self.eval_every >= 1,
                  "annotator_noise": 0 <= self.annotator_noise <= 0.5,
                  "kl_target": math.isfinite(self.kl_target) and self.kl_target > 0, "kl_horizon": self.kl_horizon >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"demo: invalid --{name.replace('_', '-')}={getattr(self, name)!r}")
        batch = self.agent.get("batch_size", 32)
        if self.kl_horizon < batch:  # a shorter horizon could move β by more than 20% per batch, even below 0
            raise ConfigError(f"demo: invalid --kl-horizon={self.kl_horizon!r}: must be at least the batch size "
                              f"({batch} episodes)")


def run_demo(cfg: DemoConfig, console: Console, wandb_mode: str | None = "disabled") -> dict[str, Any]:
    """Runs the four steps; returns the summary (also written to ``OUT/summary.json``)."""
    from rlhf_gym.rewards.preferences import load_preferences
    from rlhf_gym.runner.config import build_agent

    out = Path(cfg.out)
    user_pairs = load_preferences(cfg.prefs) if cfg.prefs else None  # bad files fail before anything is written
    check_output(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds files; choose a new --out")
    for agent in run_agents(cfg).values():  # validated before any work
        build_agent(agent, "demo agent settings")
    created = not out.exists()
    try:
        return _run_demo(cfg, out, user_pairs, console, wandb_mode)
    except Exception:
        if created:  # a failed demo leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run_demo(cfg: DemoConfig, out: Path, user_pairs: Any, console: Console, wandb_mode: str | None) -> dict[str, Any]:
    from rlhf_gym.rewards.preferences import save_preferences
    from rlhf_gym.runner.train import train
    from rlhf_gym.tasks import get_task

    task = get_task(cfg.task)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    console.rule("[bold]1/4 comparisons")
    if user_pairs is not None:
        pairs, sim_stats = user_pairs, {}
        console.print(f"{len(pairs)} preference pairs from {cfg.prefs}")
    else:
        from rlhf_gym.rewards.annotators import SimulationConfig, parse_annotators, simulate_preferences

        annotators = parse_annotators(f"careful:0.05:0,noisy:0.1:{cfg.annotator_noise}", seed=cfg.seed)
        sim = simulate_preferences(SimulationConfig(
            n_comparisons=cfg.comparisons, annotators=annotators, model=None if cfg.model == "embedded" else cfg.model,
            prompts=task.train_prompts, gold=task.make_annotator_judge,
            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed))
        pairs, sim_stats = sim.pairs, {k: v for k, v in sim.stats.items() if isinstance(v, int | float)}
        console.print(f"{len(pairs)} comparisons by 2 simulated annotators (Bradley–Terry on the gold judge; one "
                      f"flips {cfg.annotator_noise:.0%} of its labels): they agree with gold on "
                      f"{sim_stats.get('sim/gold_agreement', float('nan')):.1%} of pairs")
    save_preferences(pairs, out / "prefs.jsonl")
    timings["comparisons"] = time.perf_counter() - start

    console.rule("[bold]2/4 reward model")
    from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model

    t0 = time.perf_counter()
    _, _, rm_metrics = train_reward_model(pairs, RewardModelConfig(
        base_model=None if cfg.model == "embedded" else cfg.model, epochs=cfg.rm_epochs, seed=cfg.seed,
        max_length=64), out_dir=out / "reward-model")
    timings["reward_model"] = time.perf_counter() - t0
    acc = rm_metrics.get("rm/val_accuracy", float("nan"))
    console.print(f"Bradley–Terry reward model: validation accuracy {acc:.1%} on {rm_metrics.get('rm/n_val')} "
                  f"held-out pairs -> {out / 'reward-model'}")

    runs: dict[str, Any] = {}
    for name, agent in run_agents(cfg).items():
        beta = f"adaptive β (target KL {cfg.kl_target:g} nats, starting at β={agent['kl_coef']:g})" \
            if name == "adaptive" else f"fixed β={cfg.beta:g}"
        console.rule(f"[bold]3/4 PPO against the reward model, {beta}; 4/4 evaluation on the gold judge")
        t0 = time.perf_counter()
        result = train(_run_config(cfg, out, task, agent), out / RUNS[name], wandb_mode=wandb_mode, console=console)
        timings[f"ppo_{name}"] = time.perf_counter() - t0
        runs[name] = _run_summary(result, out / RUNS[name])
    timings["total"] = time.perf_counter() - start

    figure = plot_proxy_vs_gold(out, cfg.kl_target)
    final = runs["adaptive"]
    summary = {"kl_target": cfg.kl_target, "kl_under_target": final["kl"] <= cfg.kl_target, "runs": runs,
               "before": final["before"], "after": final["after"], "gold_gain": final["gold_gain"],
               "rm_gain": final["rm_gain"], "kl": final["kl"], "reward_model": _scalars(rm_metrics),
               "comparisons": sim_stats, "timings": timings, "figure": figure.name}
    write_text_atomic(out / "summary.json", json.dumps(jsonable(summary), indent=1))
    return summary


def run_agents(cfg: DemoConfig) -> dict[str, dict[str, Any]]:
    """The agent settings of the two PPO runs: ``fixed`` (β = ``cfg.beta``) and ``adaptive`` (β starts at
    ``cfg.adaptive_beta`` and the controller steers the KL to ``cfg.kl_target``)."""
    fixed = {**cfg.agent, "kl_coef": cfg.beta}
    adaptive = {**cfg.agent, "kl_coef": cfg.adaptive_beta, "adaptive_kl_target": cfg.kl_target,
                "adaptive_kl_horizon": cfg.kl_horizon}
    return {"fixed": fixed, "adaptive": adaptive}


def _run_config(cfg: DemoConfig, out: Path, task: Any, agent: dict[str, Any]) -> Any:
    from rlhf_gym.runner.config import resolve

    env = {"task": cfg.task, "model": cfg.model, "prompts": task.train_prompts, "eval_prompts": task.eval_prompts,
           "reward": str(out / "reward-model"), "gold": "gold", "beta": agent["kl_coef"],
           "max_new_tokens": cfg.max_new_tokens, "num_envs": cfg.agent.get("batch_size", 32)}
    run = {"total_timesteps": cfg.ppo_timesteps, "seed": cfg.seed, "eval_every": cfg.eval_every,
           "eval_episodes": cfg.eval_episodes, "checkpoint_every": 0, "keep_checkpoints": 1, "samples_per_update": 6}
    where = {"env": "demo env settings", "agent": "demo agent settings", "run": "demo run settings"}
    return resolve(env, dict(agent), run, where)


def _run_summary(result: Any, run_dir: Path) -> dict[str, Any]:
    """One run's before/after evaluation, gains, final held-out KL, and the β and training KL (what the
    controller sees: the rollouts' KL, on training prompts) of its last PPO batch (from ``metrics.jsonl``)."""
    from rlhf_gym.runner.report import series
    from rlhf_gym.runner.tracking import METRICS_FILE, read_jsonl

    rows = read_jsonl(run_dir / METRICS_FILE)
    _, betas = series(rows, "objective/beta")
    _, train_kls = series(rows, "objective/kl")
    return {"dir": run_dir.name, "before": result.initial_eval, "after": result.eval, "steps": result.steps,
            "gold_gain": result.eval["gold_reward"] - result.initial_eval["gold_reward"],
            "rm_gain": result.eval["rm_reward"] - result.initial_eval["rm_reward"], "kl": result.eval["kl"],
            "final_beta": betas[-1] if betas else None, "final_train_kl": train_kls[-1] if train_kls else None}


def plot_proxy_vs_gold(out: Path, kl_target: float) -> Path:
    """``OUT/proxy_vs_gold.png``: the proxy (reward model) and the gold reward of both runs' held-out
    evaluations against their KL to the reference, and the KL against generated tokens, with the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlhf_gym.runner.report import save_figure, series
    from rlhf_gym.runner.tracking import METRICS_FILE, read_jsonl

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8), constrained_layout=True)
    styles = {"fixed": ("tab:red", "fixed β"), "adaptive": ("tab:blue", f"adaptive β (target {kl_target:g})")}
    for name, (color, label) in styles.items():
        rows = read_jsonl(out / RUNS[name] / METRICS_FILE)
        steps, kls = series(rows, "eval/kl")
        by_step = dict(zip(steps, kls))
        for ax, key in zip(axes[:2], ("eval/rm_reward", "eval/gold_reward")):
            xs, ys = series(rows, key)
            ax.plot([by_step[x] for x in xs if x in by_step], [y for x, y in zip(xs, ys) if x in by_step],
                    marker="o", ms=4, color=color, label=label)
        axes[2].plot(steps, kls, marker="o", ms=4, color=color, label=label)
    titles = [("proxy: reward-model score", "KL to the reference (nats)"),
              ("gold judge (never seen in training)", "KL to the reference (nats)"),
              ("KL to the reference (nats)", "generated tokens")]
    for ax, (title, xlabel) in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        (ax.axhline if ax is axes[2] else ax.axvline)(kl_target, color="gray", ls="--", lw=1, label="KL target")
        ax.legend(fontsize=8)
    fig.suptitle("held-out evaluations during PPO against the reward model")
    return save_figure(fig, out / "proxy_vs_gold.png")


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in d.items() if isinstance(v, int | float)}
