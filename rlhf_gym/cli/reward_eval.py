"""``rlhf-gym reward eval``: a reward model's accuracy and calibration on preference pairs, and its agreement
with the task's gold judge on fresh texts (see :mod:`rlhf_gym.cli.reward` for the other subcommands)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rlhf_gym.cli.reward import _calibration_table, _common, _fmt, _parser, _result, _setup, _task_flag
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import atomic_dir, check_output

EVAL_EPILOG = """\
examples:
  rlhf-gym reward eval --model runs/rm --prefs data/heldout.jsonl
  rlhf-gym reward eval --model runs/rm --prefs data/heldout.jsonl --fresh 1024 --out runs/rm-eval
  rlhf-gym reward eval --model runs/rm-gpt2 --prefs data/test.csv --fresh 0   # no embedded-world check
"""


def register_eval(commands: argparse._SubParsersAction) -> None:
    p = _parser(
        commands, "eval", "evaluate a reward model on preference pairs and against the gold judge",
        "Scores both sides of every pair: accuracy (share of non-tie pairs where the chosen side scores "
        "higher), mean margin r_chosen - r_rejected, a calibration table of predicted σ(r_a - r_b) against "
        "observed preference, and ECE (expected calibration error). With --fresh N it also samples N fresh "
        "continuations of the task's held-out eval prompts and reports the Spearman rank correlation with the gold "
        "judge and the pairwise accuracy against gold on same-prompt pairs.", EVAL_EPILOG)
    p.add_argument("--model", metavar="DIR", required=True, help="reward-model folder written by `reward train`")
    p.add_argument("--prefs", metavar="FILE", required=True, help="held-out preference file or dataset folder")
    p.add_argument("--fresh", type=int, default=None, metavar="N",
                   help="fresh texts (continuations of the task's eval prompts) to compare with its gold judge "
                        "(default 512 for a reward model built on the task's model, else 0 = skip)")
    p.add_argument("--out", metavar="DIR", help="where to write metrics.jsonl, eval.json and samples.jsonl "
                   "(default MODEL/eval; replaced atomically)")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    _task_flag(p)
    _common(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from rlhf_gym.rewards.agreement import fresh_texts, gold_agreement
    from rlhf_gym.rewards.annotators import CandidateGenerator
    from rlhf_gym.rewards.learned import LearnedReward
    from rlhf_gym.rewards.preferences import load_preferences
    from rlhf_gym.rewards.rm_train import evaluate_reward_model
    from rlhf_gym.runner.tracking import Tracker
    from rlhf_gym.tasks import get_task

    console = _setup(args)
    reward = LearnedReward(args.model, normalize=False, batch_size=args.batch_size)
    pairs = load_preferences(args.prefs)
    out = check_output(Path(args.out) if args.out else Path(args.model) / "eval")
    task = get_task(args.task)
    fresh = args.fresh if args.fresh is not None else (512 if _built_on(Path(args.model), task.model) else 0)
    if fresh < 0:
        raise ConfigError(f"--fresh must be >= 0, got {fresh}")
    result = evaluate_reward_model(reward, pairs)
    metrics: dict[str, Any] = {f"eval/{k}": v for k, v in result.items() if k != "calibration"}
    samples: list[dict[str, Any]] = []
    if fresh:
        generator = CandidateGenerator(task.model, seed=args.seed + 1234, gold=task.make_gold)
        groups = fresh_texts(fresh, prompts=task.eval_prompts, generator=generator, progress=not args.no_progress)
        gold, samples = gold_agreement(reward, groups)
        metrics.update(gold)
    with atomic_dir(out) as staging:
        config = {"model": str(args.model), "prefs": str(args.prefs), "fresh": fresh, "seed": args.seed}
        with Tracker(staging, config, wandb_mode=args.wandb, name=f"eval-{Path(args.model).name}") as tracker:
            tracker.log({"step": 0, **metrics})
            tracker.log_samples(0, samples, kind="eval")
            tracker.summary(metrics)
        eval_json = {**config, "metrics": metrics, "calibration": result["calibration"]}
        (staging / "eval.json").write_text(json.dumps(eval_json, indent=2) + "\n", encoding="utf-8")

    console.print(_calibration_table(result["calibration"], f"calibration on {args.prefs}"))
    console.print(f"{result['n_pairs']} non-tie pairs: accuracy {_fmt(result['accuracy'])}, mean margin "
                  f"{_fmt(result['mean_margin'])}, ECE {_fmt(result['ece'])}")
    if fresh:
        console.print(f"{metrics['gold/n_texts']} fresh texts: Spearman with gold {_fmt(metrics['gold/spearman'])}; "
                      f"{metrics['gold/n_pairs']} same-prompt pairs: accuracy vs gold "
                      f"{_fmt(metrics['gold/pair_accuracy'])}")
    console.print(f"metrics in {out}")
    console.print(_result(accuracy=result["accuracy"], ece=result["ece"],
                          spearman=metrics.get("gold/spearman", math.nan), mean_margin=result["mean_margin"],
                          gold_accuracy=metrics.get("gold/pair_accuracy", math.nan), n_pairs=result["n_pairs"]),
                  soft_wrap=True)
    return 0


def _built_on(model_dir: Path, base: str) -> bool:
    """Whether the reward model was trained from ``base`` (its reward_stats.json says so; None = embedded)."""
    try:
        stats = json.loads((model_dir / "reward_stats.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return stats.get("config", {}).get("base_model") in ((None, "embedded") if base == "embedded" else (base,))
