"""``rlhf-gym reward simulate|train|eval``: preference data, Bradley–Terry reward models, their evaluation.

Every subcommand checks its input before it writes anything and writes its outputs atomically (a temporary
name renamed into place), so bad input leaves no half-written file or folder. Metrics go to a
``metrics.jsonl`` (see below) always and to Weights & Biases when enabled; the last line printed is
``RESULT key=value ...``.

* ``simulate --out FILE``: FILE (JSONL, or CSV by suffix) and ``FILE_STEM.metrics.jsonl`` beside it;
* ``train --out DIR``: DIR is an HF model directory plus ``reward_stats.json`` and ``metrics.jsonl`` (one row
  per epoch, then the final row);
* ``eval --out DIR`` (default ``MODEL/eval``): ``metrics.jsonl``, ``eval.json`` (with the calibration table)
  and ``samples.jsonl`` (fresh texts with their reward and gold scores); a previous DIR is replaced. It lives in
  :mod:`rlhf_gym.cli.reward_eval` and builds on the helpers here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import textwrap
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rlhf_gym.cli.train import add_wandb_flag
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import atomic_dir, check_output

SIMULATE_EPILOG = """\
examples:
  # 1000 comparisons by three equally careful annotators, JSONL {prompt, chosen, rejected}
  rlhf-gym reward simulate --out data/prefs.jsonl

  # 5000 comparisons by annotators that disagree, with ties, as {input_text, candidate1, candidate2,
  # human_preference} CSV
  rlhf-gym reward simulate --out data/prefs.csv --n-comparisons 5000 --format candidates \\
      --annotators careful:0.02,typical:0.05:0.05,sloppy:0.2:0.15 --tie-threshold 0.02

  # 500 rankings of 4 continuations each, best first
  rlhf-gym reward simulate --out data/rankings.jsonl --format rankings --n-comparisons 500

annotator model: P(A preferred) = (1 - f)·σ((gold(A) - gold(B)) / T) + f·σ((gold(B) - gold(A)) / T),
gold = VADER compound sentiment of the continuation (-1..1); see docs/reward_models.md.
"""

TRAIN_EPILOG = """\
examples:
  rlhf-gym reward train --prefs data/prefs.jsonl --out runs/rm
  rlhf-gym reward train --prefs data/prefs.csv --out runs/rm --epochs 4 --lr 3e-4 --batch-size 32
  rlhf-gym reward train --prefs my-hf-dataset-dir --out runs/rm-gpt2 --base-model gpt2

afterwards: rlhf-gym reward eval --model runs/rm --prefs data/heldout.jsonl ;
use the folder as a reward anywhere a reward spec is accepted (e.g. --set env.reward=runs/rm).
"""

def register(sub: argparse._SubParsersAction) -> None:
    reward = sub.add_parser(
        "reward", help="simulate preference data, train and evaluate Bradley–Terry reward models",
        description="Reward models from pairwise preferences. Subcommands: simulate (preference data from "
        "simulated annotators in the embedded world), train (a Bradley–Terry reward model), eval (accuracy, "
        "calibration and agreement with the gold judge). Each has its own --help.",
    )
    commands = reward.add_subparsers(dest="reward_command", metavar="SUBCOMMAND", required=True)
    _register_simulate(commands)
    _register_train(commands)
    from rlhf_gym.cli.reward_eval import register_eval  # it builds on this module's helpers

    register_eval(commands)


def _parser(commands: argparse._SubParsersAction, name: str, help: str, description: str,
            epilog: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=help, description=textwrap.fill(description, 100), epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _task_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="sentiment", metavar="NAME",
                   help="registered task (rlhf_gym.tasks) whose prompts, model and gold judge are used "
                        "(default sentiment)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same output (default 0)")
    add_wandb_flag(p)
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


# ------------------------------------------------------------------------------------------------ simulate


def _register_simulate(commands: argparse._SubParsersAction) -> None:
    p = _parser(
        commands, "simulate", "label comparisons of sampled continuations with simulated annotators",
        "Samples continuations of the task's prompts with its model (sentiment: the shipped tiny GPT-2 on "
        "review openings) at several temperatures, scores them with the task's gold judge (sentiment: VADER) "
        "and has simulated annotators compare them through a "
        "Bradley-Terry model with temperature and flip noise. Writes a preference file that `reward train` "
        "reads, plus FILE_STEM.metrics.jsonl (how often the labels agree with gold).", SIMULATE_EPILOG)
    p.add_argument("--out", metavar="FILE", required=True,
                   help="preference file to write: .jsonl (default format) or .csv; replaced atomically")
    p.add_argument("--n-comparisons", type=int, default=1000, metavar="N",
                   help="number of comparisons (rankings, with --format rankings) to write (default 1000)")
    p.add_argument("--format", choices=("pairs", "candidates", "rankings"), default="pairs",
                   help="pairs: {prompt, chosen, rejected}; candidates: {input_text, candidate1, candidate2, "
                        "human_preference}; rankings: {prompt, completions} best first (default pairs)")
    p.add_argument("--annotators", default=None, metavar="SPEC",
                   help="a count ('3') or NAME[:TEMPERATURE[:FLIP_RATE]],... — each comparison is labelled by "
                        "one of them, picked at random (default: the task's recipe; sentiment: 3)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="Bradley-Terry temperature of annotators that name none, in gold units: 0 always "
                        "picks the higher gold score, 0.05 errs mostly on near-ties (default: the task's, 0.05)")
    p.add_argument("--flip-rate", type=float, default=0.0, metavar="F",
                   help="probability that an annotator that names none gives the opposite answer (default 0)")
    p.add_argument("--tie-threshold", type=float, default=0.0, metavar="D",
                   help="label a tie when the gold scores differ by less than D (default 0: no ties)")
    p.add_argument("--prompts", default=None,
                   help="prompt source: a .txt/.jsonl file, hf:NAME, ... (default: the task's training prompts)")
    p.add_argument("--model", default=None,
                   help="causal LM that samples the candidates: HF name or folder (default: the task's model)")
    p.add_argument("--sampling-temperatures", default="0.7,1.0,1.4", metavar="T1,T2,...",
                   help="sampling temperatures, cycled over each prompt's candidates (default 0.7,1.0,1.4)")
    p.add_argument("--candidates-per-prompt", type=int, default=4, metavar="K",
                   help="continuations sampled per prompt; K of a ranking (default 4)")
    p.add_argument("--pairs-per-prompt", type=int, default=2, metavar="P",
                   help="comparisons drawn from each prompt's candidates (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="length cap of a continuation (default: the task's)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generation batch (default 64)")
    _task_flag(p)
    _common(p)
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from rlhf_gym.rewards.annotators import (
        SimulationConfig,
        parse_annotators,
        simulate_preferences,
        write_records,
        write_text_atomic,
    )
    from rlhf_gym.tasks import get_task

    console = _setup(args)
    out = Path(args.out)
    if out.suffix.lower() not in (".jsonl", ".json", ".ndjson", ".csv"):
        raise ConfigError(f"--out {out}: name the preference file .jsonl or .csv")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'prefs.jsonl'}")
    check_output(out, "file")
    check_output(out.with_name(f"{out.stem}.metrics.jsonl"), "file", "metrics file")
    try:
        temperatures = tuple(float(t) for t in args.sampling_temperatures.split(","))
    except ValueError:
        raise ConfigError(f"--sampling-temperatures {args.sampling_temperatures!r}: expected numbers like 0.7,1.0") from None
    task = get_task(args.task)
    cfg = SimulationConfig(
        n_comparisons=args.n_comparisons, format=args.format,
        prompts=args.prompts if args.prompts is not None else task.train_prompts,
        model=args.model if args.model is not None else task.model, gold=task.make_annotator_judge,
        annotators=parse_annotators(
            args.annotators if args.annotators is not None else task.annotators,
            temperature=args.temperature if args.temperature is not None else task.annotator_temperature,
            flip_rate=args.flip_rate, seed=args.seed),
        temperatures=temperatures, candidates_per_prompt=args.candidates_per_prompt,
        pairs_per_prompt=args.pairs_per_prompt,
        max_new_tokens=args.max_new_tokens if args.max_new_tokens is not None else task.max_new_tokens,
        tie_threshold=args.tie_threshold, batch_size=args.batch_size, seed=args.seed)
    sim = simulate_preferences(cfg, progress=not args.no_progress)
    write_records(sim.records, out)
    metrics_path = out.with_name(f"{out.stem}.metrics.jsonl")
    row = {"step": 0, **sim.stats}
    write_text_atomic(metrics_path, json.dumps(_finite(row)) + "\n")
    config = {k: v for k, v in vars(args).items() if k != "func"}
    _mirror_to_wandb(args.wandb, out.parent, f"simulate-{out.stem}", config, row)

    if len(sim.records) < cfg.n_comparisons:
        console.print(f"[yellow]warning:[/] the prompt source ran out: {len(sim.records)} of "
                      f"{cfg.n_comparisons} comparisons")
    table = Table(title="label agreement with the gold judge (pairs with different gold scores)")
    table.add_column("annotator")
    table.add_column("T", justify="right")
    table.add_column("flip", justify="right")
    table.add_column("agreement", justify="right")
    for a in cfg.annotators:
        table.add_row(a.name, f"{a.temperature:g}", f"{a.flip_rate:g}", _fmt(sim.stats[f"sim/gold_agreement/{a.name}"]))
    table.add_row("all", "", "", _fmt(sim.stats["sim/gold_agreement"]))
    console.print(table)
    console.print(f"wrote {len(sim.records)} records in the {args.format} format ({len(sim.pairs)} pairs, "
                  f"{sim.stats['sim/n_ties']} ties) from {sim.stats['sim/n_prompts']} prompts to {out} "
                  f"in {sim.stats['sim/seconds']:.1f}s; metrics in {metrics_path}")
    console.print(_result(records=len(sim.records), pairs=len(sim.pairs), ties=sim.stats["sim/n_ties"],
                          gold_agreement=sim.stats["sim/gold_agreement"]), soft_wrap=True)
    return 0


# ------------------------------------------------------------------------------------------------ train


def _register_train(commands: argparse._SubParsersAction) -> None:
    from rlhf_gym.rewards.rm_train import RewardModelConfig

    d = RewardModelConfig()
    p = _parser(
        commands, "train", "train a Bradley-Terry reward model from a preference file",
        "Fine-tunes a sequence-classification model with one output (the shipped tiny GPT-2 plus a score "
        "head by default) with the loss -log σ(r_chosen - r_rejected - margin) (ties: -½ log σ(d) - ½ log σ(-d)), "
        "holding out a validation split by prompt for early stopping. Reads any supported preference format "
        "(JSONL, CSV, a `datasets` folder). DIR becomes an ordinary HF model folder with reward_stats.json "
        "(normalisation statistics) and metrics.jsonl; it must not exist yet (or be empty).",
        TRAIN_EPILOG)
    p.add_argument("--prefs", metavar="FILE", required=True, help="preference file (.jsonl/.csv) or dataset folder")
    p.add_argument("--out", metavar="DIR", required=True, help="reward-model folder to create")
    p.add_argument("--base-model", default=None,
                   help="HF name or folder to start from (default: the task's model, for sentiment the shipped tiny GPT-2)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum passes over the training pairs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"pairs per optimiser step (default {d.batch_size})")
    p.add_argument("--max-length", type=int, default=d.max_length,
                   help=f"tokens per prompt+completion; longer texts keep their end (default {d.max_length})")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help=f"share of pairs held out (grouped by prompt) for validation (default {d.val_fraction:g})")
    p.add_argument("--patience", type=int, default=d.early_stopping_patience,
                   help=f"stop after this many epochs without a better validation loss (default {d.early_stopping_patience})")
    p.add_argument("--center-rewards", type=float, default=d.center_rewards_coefficient, metavar="COEF",
                   help="weight of the mean((r+ + r-)^2) term that keeps rewards near 0 (default 0; try 0.01)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    _task_flag(p)
    _common(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from rlhf_gym.rewards.preferences import load_preferences
    from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model
    from rlhf_gym.runner.tracking import Tracker
    from rlhf_gym.tasks import get_task

    console = _setup(args)
    out = Path(args.out)
    check_output(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already exists and is not empty; choose a new folder or delete it")
    base_model = args.base_model if args.base_model is not None else get_task(args.task).model
    cfg = RewardModelConfig(base_model=None if base_model == "embedded" else base_model, lr=args.lr,
                            epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length,
                            val_fraction=args.val_fraction, early_stopping_patience=args.patience,
                            center_rewards_coefficient=args.center_rewards, seed=args.seed, device=args.device)
    pairs = load_preferences(args.prefs)  # bad input fails here, before anything is written
    console.print(f"training on {len(pairs)} pairs from {args.prefs} ({sum(p.tie for p in pairs)} ties)")
    started = time.perf_counter()
    with atomic_dir(out) as staging:
        with Tracker(staging, {"prefs": str(args.prefs), **vars(cfg)}, wandb_mode=args.wandb) as tracker:
            _, _, metrics = train_reward_model(pairs, cfg, staging / "model", callback=tracker.log,
                                               progress=not args.no_progress)
            final = {k: v for k, v in metrics.items() if k != "rm/val_calibration"}
            tracker.log({"step": _last_step(staging), **final, "rm/seconds": time.perf_counter() - started})
            tracker.summary(final)
        (staging / "samples.jsonl").unlink(missing_ok=True)  # the tracker's, empty: training has no samples
        for item in (staging / "model").iterdir():  # the model folder becomes DIR itself
            item.rename(staging / item.name)
        (staging / "model").rmdir()
    if metrics.get("rm/val_calibration"):
        console.print(_calibration_table(metrics["rm/val_calibration"], "validation calibration"))
    console.print(f"saved the reward model to {out} (best epoch {metrics['rm/best_epoch']} of "
                  f"{metrics['rm/epochs']}, {time.perf_counter() - started:.0f}s); next: "
                  f"rlhf-gym reward eval --model {out} --prefs HELDOUT_FILE")
    console.print(_result(val_accuracy=metrics.get("rm/val_accuracy", math.nan),
                          val_ece=metrics.get("rm/val_ece", math.nan), val_loss=metrics.get("rm/val_loss", math.nan),
                          best_epoch=metrics["rm/best_epoch"], n_train=metrics["rm/n_train"]), soft_wrap=True)
    return 0


def _last_step(run_dir: Path) -> int:
    from rlhf_gym.runner.tracking import read_jsonl

    return max((int(r.get("step", 0)) for r in read_jsonl(run_dir / "metrics.jsonl")), default=0)


# ------------------------------------------------------------------------------------------------ helpers


def _setup(args: argparse.Namespace) -> Console:
    """Applies --threads, quiets Hugging Face's load reports and returns the console to print to."""
    from rlhf_gym.runner import quiet_hf_progress

    quiet_hf_progress()
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    return Console(highlight=False)


def _result(**values: float | int) -> str:
    """``RESULT key=value ...``: floats with 4 decimals, NaN as ``nan``."""
    return "RESULT " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _fmt(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _calibration_table(bins: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=f"{title}: predicted P(first preferred) vs observed")
    for name in ("bin", "pairs", "predicted", "observed"):
        table.add_column(name, justify="right")
    for b in bins:
        if b["count"]:
            table.add_row(f"{b['low']:.1f}–{b['high']:.1f}", str(b["count"]), _fmt(b["predicted"]), _fmt(b["observed"]))
    return table


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """The row with NaN and inf floats replaced by None (JSON has no such numbers)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _mirror_to_wandb(mode: str | None, folder: Path, name: str, config: dict[str, Any], row: dict[str, Any]) -> None:
    """Logs one metrics row to W&B when enabled; any failure is a warning (W&B never blocks a command)."""
    import warnings

    from rlhf_gym.runner.tracking import resolve_wandb_mode

    mode, note = resolve_wandb_mode(mode)
    if mode == "disabled":
        return
    if note:
        warnings.warn(note, stacklevel=2)
    try:
        import wandb

        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlhf-gym"), name=name, dir=str(folder),
                         config=config, mode=mode, settings=wandb.Settings(silent=True, init_timeout=30))
        run.log({k: v for k, v in _finite(row).items() if k != "step" and v is not None}, step=0)
        run.finish()
    except Exception as e:  # noqa: BLE001 — W&B must never stop a command
        warnings.warn(f"W&B logging failed ({type(e).__name__}); metrics are in the local file", stacklevel=2)
