"""``rlhf-gym arena``: battles between policies on a task's held-out prompts -> Bradley–Terry leaderboard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rlhf_gym.errors import ConfigError

EPILOG = """\
examples:
  # the starting policy against two trained runs, judged by the task's simulated annotators
  rlhf-gym arena --task sentiment --policies start runs/ppo runs/grpo --out runs/arena

  # names of your own (NAME=PATH), more prompts
  rlhf-gym arena --task sentiment --policies sft=start ppo=runs/ppo --prompts 128 --out runs/arena

  # battles for people: write the pairs `rlhf-gym label serve --pairs` shows, and stop; rate their labels later
  rlhf-gym arena --task sentiment --policies start runs/ppo --pairs-only --out runs/arena
  rlhf-gym label serve --pairs runs/arena/pairs.jsonl --db labels.sqlite
  rlhf-gym arena --task sentiment --labels labels.sqlite --out runs/arena-people

a policy is `start` (the task's model), a run directory (its newest checkpoint), an agent checkpoint
directory, or a Hugging Face model directory; OUT gets battles.jsonl, arena.{md,html,json}
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("arena", help="battles between policies -> Bradley–Terry ratings with bootstrap intervals",
                       description="Samples one continuation per policy on each of the task's first held-out "
                       "prompts, pairs every two policies on every prompt (sides shuffled), has the task's "
                       "simulated annotators judge each battle from the gold judge, and rates the policies "
                       "with Bradley–Terry and bootstrap intervals. The last line is `RESULT battles=N "
                       "NAME.rating=...`.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="a registered task (prompts, gold judge, annotators)")
    p.add_argument("--policies", nargs="+", metavar="[NAME=]POLICY", help="two or more policies")
    p.add_argument("--labels", metavar="DB", help="instead of --policies: rate from people's labels of battles "
                   "written by --pairs-only (the label store of `rlhf-gym label serve --db`)")
    p.add_argument("--prompts", type=int, default=64, help="held-out prompts, each a battle per pair (default 64)")
    p.add_argument("--annotators", default=None, help="simulated annotators, e.g. 3 or alice:0.05,bob:0.2:0.1 "
                   "(default: the task's)")
    p.add_argument("--pairs-only", action="store_true", help="write OUT/pairs.jsonl for `label serve` and stop")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.set_defaults(func=run)


def resolve_policy(spec: str, task: Any) -> tuple[str, str]:
    """``[NAME=]POLICY`` -> (name, model directory or hub name)."""
    from rlhf_gym.runner.checkpoint import latest_checkpoint

    name, _, where = spec.rpartition("=") if "=" in spec else ("", "", spec)
    if where == "start":
        return name or "start", task.model
    path = Path(where)
    if (path / "agent.json").is_file():
        return name or path.parent.name, str(path / "policy")
    if (path / "config.yaml").is_file() and latest_checkpoint(path) is not None:
        return name or path.name, str(latest_checkpoint(path) / "agent" / "policy")
    if (path / "config.json").is_file():
        return name or path.name, str(path)
    raise ConfigError(f"--policies {spec}: {where} is not 'start', a run directory with a checkpoint, an agent "
                      "checkpoint or a model directory")


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.tasks import get_task

    quiet_hf_progress()
    console = Console(highlight=False)
    task = get_task(args.task)
    for flag, value, low in (("--prompts", args.prompts, 1), ("--bootstrap", args.bootstrap, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise ConfigError(f"{flag}={value} is invalid: must be >= {low}")
    if (args.labels is None) == (args.policies is None):
        raise ConfigError("arena needs --policies (simulated judges, or --pairs-only for people) or --labels DB, not both")
    if args.labels is not None:
        return _rate_labels(args, task, console)
    return _battle(args, task, console)


def _battle(args: argparse.Namespace, task: Any, console: Console) -> int:
    from rlhf_gym.core.data import load_prompts
    from rlhf_gym.feedback.arena import battles_to_pairs, judge_battles, sample_battles
    from rlhf_gym.io import check_output, write_text_atomic
    from rlhf_gym.rewards.annotators import parse_annotators

    policies: dict[str, str] = {}
    for spec in args.policies:
        name, model = resolve_policy(spec, task)
        if name in policies:
            raise ConfigError(f"--policies: two policies are named {name!r}; name them with NAME=POLICY")
        policies[name] = model
    annotators = parse_annotators(args.annotators or task.annotators, temperature=task.annotator_temperature,
                                  seed=args.seed)
    out = check_output(args.out)
    prompts = load_prompts(task.eval_prompts, n=args.prompts)
    console.print(f"sampling {len(policies)} policies on {len(prompts)} held-out prompts of {task.name}")
    battles, _ = sample_battles(policies, prompts, max_new_tokens=task.max_new_tokens, seed=args.seed)
    if args.pairs_only:
        rows = battles_to_pairs(battles, task.name, drop_identical=True)
        path = write_text_atomic(out / "pairs.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        console.print(f"{len(rows)} battles -> {path} ({len(battles) - len(rows)} with identical texts left out)\n"
                      f"label them: rlhf-gym label serve --pairs {path} --db LABELS.sqlite")
        return 0
    write_text_atomic(out / "battles.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                     for r in battles_to_pairs(battles, task.name)))
    matches = judge_battles(battles, annotators, task.make_annotator_judge())
    return _write_board(args, task, console, out, matches, battles, f"Arena on {task.name}")


def _rate_labels(args: argparse.Namespace, task: Any, console: Console) -> int:
    from rlhf_gym.feedback.arena import matches_from_labels
    from rlhf_gym.feedback.store import LabelStore
    from rlhf_gym.io import check_output

    if args.pairs_only or args.annotators:
        raise ConfigError("--pairs-only and --annotators go with --policies, not --labels")
    out = check_output(args.out)
    store = LabelStore(args.labels, create=False)
    others = sorted({s.item.task for s in store.items() if s.item.task not in (None, task.name) and "policy1" in s.item.meta})
    if others:
        raise ConfigError(f"--labels {args.labels} holds battles of task {others[0]!r}, not --task {task.name}: "
                          "the mean gold would be judged by the wrong task")
    matches, battles = matches_from_labels(store)
    return _write_board(args, task, console, out, matches, battles, f"Arena on {task.name} (people's labels)")


def _write_board(args: argparse.Namespace, task: Any, console: Console, out: Path, matches: list, battles: list,
                 title: str) -> int:
    from rlhf_gym.feedback.arena import arena_board, to_html, to_markdown
    from rlhf_gym.io import write_text_atomic

    gold = task.make_gold()
    texts: dict[str, list[tuple[str, str]]] = {}
    for b in battles:
        texts.setdefault(b.policy_a, []).append((b.prompt, b.text_a))
        texts.setdefault(b.policy_b, []).append((b.prompt, b.text_b))
    mean_gold = {n: float(gold.score([p for p, _ in pt], [t for _, t in pt]).mean()) for n, pt in texts.items()}
    board = arena_board(matches, mean_gold, n_boot=args.bootstrap, seed=args.seed)
    write_text_atomic(out / "arena.json", json.dumps(board, indent=2))
    write_text_atomic(out / "arena.md", to_markdown(board, title))
    write_text_atomic(out / "arena.html", to_html(board, title, battles[:8]))
    table = Table("rank", "policy", "rating", "95% CI", "battles", "win rate", "mean gold", title=title)
    for rank, row in enumerate(board["rows"], 1):
        table.add_row(str(rank), row["policy"], f"{row['rating']:.0f}", f"[{row['lower']:.0f}, {row['upper']:.0f}]",
                      str(row["matches"]), f"{row['win_rate']:.1%}", f"{row['gold']:.3f}")
    console.print(table)
    console.print(f"page: {out / 'arena.html'}")
    console.print(f"RESULT battles={len(matches)} " + " ".join(f"{r['policy']}.rating={r['rating']:.1f}" for r in board["rows"]))
    return 0
