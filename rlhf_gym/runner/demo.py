"""The whole RLHF pipeline on a task (default ``sentiment``, the embedded world), as ``rlhf-gym demo`` runs it.

1. **comparisons** — the shipped tiny GPT-2 continues review openings; simulated annotators (Bradley–Terry
   on the gold judge, with noise) say which of two continuations they prefer
   (:func:`rlhf_gym.rewards.annotators.simulate_preferences`), or a preference file is read;
2. **reward model** — the tiny GPT-2 plus a scalar head, trained on the comparisons with the Bradley–Terry
   loss (:func:`rlhf_gym.rewards.rm_train.train_reward_model`);
3. **PPO** — the policy is trained against the reward model with the KL penalty ``−β·KL(π‖π_ref)``, as a
   normal run directory (:func:`rlhf_gym.runner.train.train`: metrics, samples, checkpoints, report);
4. **evaluation** — before and after, on held-out prompts: the gold judge (which the agent never saw), the
   reward model, KL to the reference, perplexity and diversity.

Everything lands in one directory: ``prefs.jsonl``, ``reward-model/``, ``ppo/`` (a run directory with
``curves.png`` and ``report.md``) and ``summary.json``.
"""

from __future__ import annotations

import json
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
    ppo_timesteps: int = 10_000  # PPO budget in generated tokens
    beta: float = 0.05  # KL coefficient
    max_new_tokens: int = 16  # continuation length cap
    eval_episodes: int = 64  # held-out prompts in the before/after evaluation
    seed: int = 0
    agent: dict[str, Any] = field(default_factory=lambda: dict(DEMO_AGENT))

    def __post_init__(self) -> None:
        from rlhf_gym.tasks import get_task

        if self.model is None:
            self.model = get_task(self.task).model
        checks = {"comparisons": self.comparisons >= 10, "rm_epochs": self.rm_epochs >= 1,
                  "ppo_timesteps": self.ppo_timesteps >= 1, "beta": self.beta >= 0,
                  "max_new_tokens": self.max_new_tokens >= 1, "eval_episodes": self.eval_episodes >= 1,
                  "annotator_noise": 0 <= self.annotator_noise <= 0.5}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"demo: invalid --{name.replace('_', '-')}={getattr(self, name)!r}")


def run_demo(cfg: DemoConfig, console: Console, wandb_mode: str | None = "disabled") -> dict[str, Any]:
    """Runs the four steps; returns the summary (also written to ``OUT/summary.json``)."""
    from rlhf_gym.rewards.preferences import load_preferences
    from rlhf_gym.runner.config import build_agent

    out = Path(cfg.out)
    user_pairs = load_preferences(cfg.prefs) if cfg.prefs else None  # bad files fail before anything is written
    check_output(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds files; choose a new --out")
    build_agent(cfg.agent, "demo agent settings")  # validated before any work
    created = not out.exists()
    try:
        return _run_demo(cfg, out, user_pairs, console, wandb_mode)
    except Exception:
        if created:  # a failed demo leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run_demo(cfg: DemoConfig, out: Path, user_pairs: Any, console: Console, wandb_mode: str | None) -> dict[str, Any]:
    from rlhf_gym.rewards.preferences import save_preferences
    from rlhf_gym.runner.config import resolve
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

    console.rule("[bold]3/4 PPO against the reward model (with the KL penalty), 4/4 evaluation on the gold judge")
    env = {"task": cfg.task, "model": cfg.model, "prompts": task.train_prompts, "eval_prompts": task.eval_prompts,
           "reward": str(out / "reward-model"), "gold": "gold", "beta": cfg.beta, "max_new_tokens": cfg.max_new_tokens,
           "num_envs": cfg.agent.get("batch_size", 32)}
    run = {"total_timesteps": cfg.ppo_timesteps, "seed": cfg.seed, "eval_every": 5,
           "eval_episodes": cfg.eval_episodes, "checkpoint_every": 0, "keep_checkpoints": 1, "samples_per_update": 6}
    where = {"env": "demo env settings", "agent": "demo agent settings", "run": "demo run settings"}
    run_cfg = resolve(env, dict(cfg.agent), run, where)
    t0 = time.perf_counter()
    result = train(run_cfg, out / "ppo", wandb_mode=wandb_mode, console=console)
    timings["ppo"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start

    summary = {"before": result.initial_eval, "after": result.eval, "reward_model": _scalars(rm_metrics),
               "comparisons": sim_stats, "timings": timings, "steps": result.steps,
               "gold_gain": result.eval["gold_reward"] - result.initial_eval["gold_reward"],
               "rm_gain": result.eval["rm_reward"] - result.initial_eval["rm_reward"], "kl": result.eval["kl"]}
    write_text_atomic(out / "summary.json", json.dumps(jsonable(summary), indent=1))
    return summary


def _scalars(d: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in d.items() if isinstance(v, int | float)}
