"""The training loop of ``rlhf-gym train``: build, learn, evaluate, checkpoint, resume.

A run directory ``DIR`` holds ``config.yaml`` (the resolved config), ``config.json`` (the same as canonical
JSON) and ``config.sha256`` (its digest), ``metrics.jsonl``, ``samples.jsonl``, ``checkpoints/step-N/`` (see
:mod:`rlhf_gym.runner.checkpoint`) and, when training has finished, ``result.json`` (the final evaluation and
the wall time).

Order of work, chosen so that a run killed at any instant resumes exactly:

1. everything is built and checked (config, training and evaluation prompts against the model's context,
   environment, reward, agent; on ``--resume`` the checkpoint, the metrics and the config's digest) before
   ``DIR`` is created or changed, so bad input leaves nothing behind; a run directory this call created is
   removed again if training then fails with an error (not when it is interrupted: that run can resume);
2. the starting policy is evaluated and logged at step 0;
3. after every policy update the agent calls back: rollout samples are logged, the policy is evaluated when
   due, the metrics row is appended, and then — last — a checkpoint is saved when due;
4. ``--resume`` restores the newest complete checkpoint (weights, optimizer, KL controller, every RNG,
   counters), drops metrics and samples logged after it, and continues with the same remaining budget, so
   the final rows equal those of a run that was never interrupted (on the same machine and thread count).

Launched on several ranks (``torchrun --nproc_per_node=N -m rlhf_gym.cli train ...``) every rank builds the
same objects and trains a data-parallel agent (:mod:`rlhf_gym.agents.distributed`); only rank 0 evaluates
and writes the run directory (config, metrics, samples, checkpoints, W&B). On ``--resume`` every rank loads
rank 0's checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rlhf_gym.agents.registry import algo_spec
from rlhf_gym.core.dist import barrier, is_main_process, world_size
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import check_output, expect, write_text_atomic
from rlhf_gym.runner import checkpoint as ckpt
from rlhf_gym.runner import quiet_hf_progress
from rlhf_gym.runner.build import (
    check_prompts_fit,
    env_prompts,
    initial_agent,
    load_agent,
    make_env,
    make_gold,
    seed_everything,
)
from rlhf_gym.runner.config import ResolvedConfig
from rlhf_gym.runner.rundir import (
    DIGEST_FILE,
    RESULT_FILE,
    check_resume,
    config_digest,
    read_result,
    write_config,
)
from rlhf_gym.runner.tracking import METRICS_FILE, SAMPLES_FILE, Tracker, jsonable, read_jsonl

RESULT_KEYS = ("gold_reward", "rm_reward", "kl", "perplexity", "distinct_1", "distinct_2", "mean_length")


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """The rich progress bar every long command uses: bar, count, elapsed, ETA and a status text."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                    console=console, disable=not enabled, transient=False)


def evaluate_policy(agent: Any, env: Any, prompts: list[str], gold: Any, cfg: ResolvedConfig) -> dict[str, Any]:
    """Held-out evaluation of the agent's policy (see :func:`rlhf_gym.agents.evaluation.evaluate`)."""
    from rlhf_gym.agents.evaluation import evaluate

    out = evaluate(agent, env, prompts=prompts, n=cfg.run.eval_episodes, seed=cfg.run.seed,
                   temperature=getattr(getattr(agent, "config", None), "temperature", 1.0), gold_fn=gold)
    if gold is None:
        out.pop("gold_reward", None)
    return out


def _eval_row(result: dict[str, Any]) -> dict[str, float]:
    return {f"eval/{k}": result[k] for k in RESULT_KEYS if k in result}


def _eval_samples(result: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [{k: s[k] for k in ("prompt", "completion", "gold", "rm", "kl")} for s in result["samples"][:n]]


class _NullTracker:
    """What ranks other than 0 log to in a data-parallel run: nothing (rank 0 writes the run directory)."""

    def log(self, metrics: dict[str, Any]) -> None: ...

    def log_samples(self, step: int, rows: list[dict[str, Any]], kind: str = "rollout") -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrainResult:
    """What :func:`train` returns (also written to ``DIR/result.json``)."""

    run_dir: Path
    eval: dict[str, float]
    steps: int
    updates: int
    wall_time: float
    initial_eval: dict[str, float] = field(default_factory=dict)


def _open_run(out: Path, cfg: ResolvedConfig, wandb_mode: str | None, resume_step: int | None,
              console: Console) -> Tracker:
    """Creates the run directory (removed again if this fails), writes the config, starts tracking.

    A resumed run's config files are rewritten only if a resumable key changed (``--set run.total_timesteps``).
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        digest = out / DIGEST_FILE
        if resume_step is None or not digest.is_file() or digest.read_text().strip() != config_digest(cfg):
            write_config(out, cfg)
        tracker = Tracker(out, cfg.to_dict(), wandb_mode=wandb_mode, resume_step=resume_step)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if tracker.note:
        console.print(f"[yellow]W&B:[/] {tracker.note}")
    return tracker


def _finish(out: Path, tracker: Tracker, initial: dict, final: dict, steps: int, updates: int,
            wall: float) -> TrainResult:
    """Writes ``result.json`` and the W&B summary."""
    result = TrainResult(out, {k: final[k] for k in RESULT_KEYS if k in final}, steps, updates, wall,
                         {k: initial[k] for k in RESULT_KEYS if k in (initial or {})})
    write_text_atomic(out / RESULT_FILE, json.dumps(jsonable({"eval": result.eval, "initial_eval": result.initial_eval,
                                                          "steps": steps, "updates": updates, "wall_time": wall}),
                                                 indent=1))
    tracker.summary({**{f"eval/{k}": v for k, v in result.eval.items()}, "wall_time": wall})
    return result


def train(cfg: ResolvedConfig, out: str | Path, *, resume: bool = False, wandb_mode: str | None = "disabled",
          console: Console | None = None, progress: bool = True) -> TrainResult:
    """Trains the agent of ``cfg`` into run directory ``out`` (see the module docstring)."""
    out = Path(out)
    console = console or Console(stderr=True)
    quiet_hf_progress()
    start_time = time.perf_counter()
    main = is_main_process()
    if algo_spec(cfg.agent.algo).kind == "sb3":
        if world_size() > 1:
            raise ConfigError(f"agent.algo={cfg.agent.algo!r} (stock SB3) trains in one process; launch it without "
                              "torchrun, or use a native agent (ppo, a2c, nlpo) for data-parallel training")
        return _train_sb3(cfg, out, resume, wandb_mode, console, progress, start_time)
    created = main and not out.exists()
    if main:
        check_output(out)
    if resume and main:
        check_resume(out, cfg)
    seed_everything(cfg.run)
    env = make_env(cfg)
    eval_prompts = env_prompts(cfg.env, "eval")
    check_prompts_fit(env, eval_prompts, f"env.eval_prompts {cfg.env.eval_prompts}")
    gold = make_gold(cfg, env)
    last = ckpt.latest_checkpoint(out) if resume else None
    if last is not None:
        agent = load_agent(cfg, env, last / "agent")
        state = ckpt.load_checkpoint(last)  # restores the global RNG states too
        expect(state, {"updates": "int", "wall_time": "number", "initial_eval": "dict?"},
               f"checkpoint state {last / ckpt.RUNNER_FILE}")
        if main:
            for name in (METRICS_FILE, SAMPLES_FILE):
                read_jsonl(out / name)  # unreadable logs fail now, before anything in the run is rewritten
            console.print(f"resuming {out} from {last.name}: {state['step']} tokens, {state['updates']} updates")
    else:
        agent = initial_agent(cfg, env)
        state = {"step": agent.num_timesteps, "updates": 0, "wall_time": 0.0, "initial_eval": None}
    prior_wall = float(state["wall_time"])
    barrier()  # every rank has read the run directory before rank 0 writes to it
    tracker = _open_run(out, cfg, wandb_mode, state["step"] if last else None, console) if main else _NullTracker()
    try:
        return _train_loop(cfg, out, agent, env, eval_prompts, gold, state, last, tracker, console, progress,
                           start_time, prior_wall)
    except Exception:
        tracker.close()
        if created:  # a failed new run leaves nothing behind (an interrupted one stays, to be resumed)
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        tracker.close()


def _train_loop(cfg: ResolvedConfig, out: Path, agent: Any, env: Any, eval_prompts: list[str], gold: Any,
                state: dict[str, Any], last: Path | None, tracker: Any, console: Console, progress: bool,
                start_time: float, prior_wall: float) -> TrainResult:
    main = is_main_process()
    run = cfg.run
    result: dict[str, Any] = {}
    if last is None and main:
        initial = evaluate_policy(agent, env, eval_prompts, gold, cfg)
        state["initial_eval"] = {k: initial[k] for k in RESULT_KEYS if k in initial}
        tracker.log({"step": agent.num_timesteps, **_eval_row(initial)})  # 0 unless run.init_agent continues one
        tracker.log_samples(agent.num_timesteps, _eval_samples(initial, run.samples_per_update), kind="eval")
        result = initial
    bar = progress_bar(console, progress and main)
    task = bar.add_task(f"{cfg.agent.algo} on {cfg.env.task}", total=run.total_timesteps,
                        completed=min(agent.num_timesteps, run.total_timesteps), status="")

    def on_update(metrics: dict) -> bool:
        nonlocal result
        if not main:
            return True
        updates, step = agent.num_rollouts, agent.num_timesteps
        final = step >= run.total_timesteps
        row = {**metrics, "time/wall": prior_wall + time.perf_counter() - start_time}  # seconds since the run began
        rows = [{"prompt": p, "completion": c, "score": s} for p, c, s in agent.last_rollout_texts]
        tracker.log_samples(step, rows[: run.samples_per_update])
        if final or (run.eval_every and updates % run.eval_every == 0):
            result = evaluate_policy(agent, env, eval_prompts, gold, cfg)
            row.update(_eval_row(result))
            tracker.log_samples(step, _eval_samples(result, run.samples_per_update), kind="eval")
            bar.console.print(f"step {step}: " + "  ".join(f"{k}={result[k]:.3f}" for k in RESULT_KEYS[:4]
                                                            if k in result))
        tracker.log(row)
        if final or (run.checkpoint_every and updates % run.checkpoint_every == 0):
            wall = prior_wall + time.perf_counter() - start_time
            ckpt.save_checkpoint(out, step, agent.save, {"updates": updates, "wall_time": wall,
                                                         "initial_eval": state["initial_eval"]},
                                 keep=run.keep_checkpoints)
        bar.update(task, completed=min(step, run.total_timesteps),
                   status=f"score {metrics.get('objective/scores', float('nan')):+.3f} "
                          f"kl {metrics.get('objective/kl', float('nan')):.2f}")
        return True

    remaining = run.total_timesteps - agent.num_timesteps
    with bar:
        if remaining > 0:
            agent.learn(remaining, callback=on_update)
    wall = prior_wall + time.perf_counter() - start_time
    if not main:
        barrier()  # wait for rank 0's final evaluation and result.json
        return TrainResult(out, {}, agent.num_timesteps, agent.num_rollouts, wall)
    if not result:  # resumed a run whose training had already finished
        result = evaluate_policy(agent, env, eval_prompts, gold, cfg)
    wall = prior_wall + time.perf_counter() - start_time
    finished = _finish(out, tracker, state.get("initial_eval") or {}, result, agent.num_timesteps,
                       agent.num_rollouts, wall)
    barrier()
    return finished


def _train_sb3(cfg: ResolvedConfig, out: Path, resume: bool, wandb_mode: str | None, console: Console,
               progress: bool, start_time: float) -> TrainResult:
    """A stock SB3 run (see :mod:`rlhf_gym.runner.sb3_run`); not exactly resumable: --resume restarts it."""
    from rlhf_gym.runner.sb3_run import build_sb3, learn_sb3

    if resume and (out / RESULT_FILE).is_file():
        saved = read_result(out)
        return TrainResult(out, saved["eval"], saved["steps"], saved["updates"], saved["wall_time"],
                           saved["initial_eval"])
    check_output(out)
    if resume:
        check_resume(out, cfg)
    created = not out.exists()
    built = build_sb3(cfg)
    if resume:
        console.print(f"[yellow]{cfg.agent.algo} runs cannot resume exactly (SB3 state is pickled): restarting {out}")
        shutil.rmtree(out / ckpt.CHECKPOINTS, ignore_errors=True)
    tracker = _open_run(out, cfg, wandb_mode, None, console)
    try:
        with progress_bar(console, progress) as bar:
            initial, final, steps, updates = learn_sb3(built, cfg, out, tracker, bar, evaluate_policy)
        return _finish(out, tracker, initial, final, steps, updates, time.perf_counter() - start_time)
    except Exception:
        tracker.close()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        tracker.close()


def result_line(result: dict[str, float], **extra: float) -> str:
    """``RESULT key=value ...`` (plain numbers) for the last line of a command's output."""
    items = {**{k: result[k] for k in ("gold_reward", "rm_reward", "kl", "perplexity", "distinct_2") if k in result},
             **extra}
    return "RESULT " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())
