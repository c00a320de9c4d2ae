"""``rlhf-gym bench``: agents × environments × seeds into a GRUE-style table (resumable)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rlhf_gym.cli.train import add_wandb_flag
from rlhf_gym.errors import ConfigError

SUITES = ("embedded",)  # rlhf_gym.runner.suite.SUITES, without importing torch to build --help

EPILOG = """\
examples:
  # 2 agents x 1 env x 2 seeds on the embedded world
  rlhf-gym bench --agents agents/ppo.yaml agents/a2c.yaml --envs envs/sentiment.yaml --seeds 2 --out runs/bench

  # the same budget for every cell, and a shorter run
  rlhf-gym bench --agents agents/ppo.yaml agents/nlpo.yaml --envs envs/sentiment.yaml envs/sentiment-rm.yaml \\
      --seeds 3 --out runs/bench-rm --set run.total_timesteps=10000

  # interrupted? run the same command again: finished runs are skipped, the others resume exactly

  # the leaderboard: every embedded task x PPO, GRPO, RLOO x 1 seed against each task's proxy (~15 min, 2 cores)
  rlhf-gym bench --suite embedded --quick --out runs/leaderboard-quick

  # every task x every algorithm x 3 seeds (measured: 1 h 33 min on 2 cores as two shards, one per core:
  # --tasks concise arithmetic commongen / --tasks readability sentiment sentiment-readability, same --out;
  # then this command without --tasks writes the leaderboard of all of them)
  rlhf-gym bench --suite embedded --out runs/leaderboard

layout: OUT/ENV/AGENT/seed-S/ (ordinary run directories), OUT/results.md, OUT/results.json, OUT/curves.png;
with --suite also OUT/presets/TASK.yaml, OUT/leaderboard.{md,html,json} and OUT/suite_curves.png
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="agents x envs x seeds -> a table of gold reward, RM reward, KL, perplexity, distinct-2, time",
        description="Trains every agent preset on every env preset with seeds 0..N-1 (one run directory each), "
        "then writes a GRUE-style table (mean ± std over seeds of the final held-out evaluation) and curves. "
        "Resumable: rerun the same command to continue. The last line is `RESULT runs=N ENV.AGENT.gold_reward=...`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agents", nargs="+", metavar="FILE", help="agent presets (with --suite: default agents/*.yaml)")
    p.add_argument("--envs", nargs="+", metavar="FILE", help="environment presets (or --suite)")
    p.add_argument("--suite", choices=SUITES, help="every offline task, each against its proxy reward model, "
                   "with a leaderboard (docs/leaderboard.md)")
    p.add_argument("--quick", action="store_true", help="with --suite: PPO, GRPO and RLOO, 1 seed, short runs")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="with --suite: only these tasks")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell, 0..N-1 (default 3; --quick: 1)")
    p.add_argument("--out", metavar="DIR", required=True, help="benchmark directory")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field in every run, e.g. run.total_timesteps=10000 (repeatable)")
    add_wandb_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.runner.bench import COLUMNS, plan, run_matrix, write_summary
    from rlhf_gym.runner.train import progress_bar

    quiet_hf_progress()
    console = Console(highlight=False)
    if args.suite is None:
        for flag, value in (("--quick", args.quick), ("--tasks", args.tasks)):
            if value:
                raise ConfigError(f"{flag} needs --suite embedded")
        if not args.agents or not args.envs:
            raise ConfigError("bench needs --agents FILE... and --envs FILE..., or --suite embedded")
        suite = None
        runs = plan(args.agents, args.envs, 3 if args.seeds is None else args.seeds, args.out, args.overrides,
                    build=True)
        overrides = args.overrides
    else:
        from rlhf_gym.runner.suite import prepare_suite

        if args.envs:
            raise ConfigError("--envs and --suite exclude each other: the suite writes its own env presets")
        seeds = (1 if args.quick else 3) if args.seeds is None else args.seeds
        suite = prepare_suite(args.suite, args.out, args.agents, seeds, args.quick, args.overrides, args.tasks,
                              say=lambda line: console.print(line))
        runs, overrides = suite.runs, suite.overrides
    todo = [r for r in runs if r.status != "done"]
    console.print(f"{len(runs)} runs ({len(runs) - len(todo)} already done) -> {args.out}")
    with progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("bench", total=len(runs), completed=len(runs) - len(todo), status="")
        started: dict[str, float] = {}

        def on_start(r, i: int) -> None:
            started[str(r.out)] = time.perf_counter()
            bar.update(task, status=f"{r.agent} on {r.env}, seed {r.seed} ({r.status})")

        def on_done(r, result) -> None:
            bar.console.print(f"{r.env}/{r.agent}/seed-{r.seed}: gold {result.eval.get('gold_reward', float('nan')):.3f}"
                              f"  KL {result.eval.get('kl', float('nan')):.2f}"
                              f"  ({time.perf_counter() - started[str(r.out)]:.0f}s)")
            bar.advance(task)

        run_matrix(runs, overrides, args.wandb, on_start, on_done)
    rows, md, png = write_summary(runs, Path(args.out))
    table = Table(title=f"{args.out}: mean ± std over seeds (final held-out evaluation)")
    for col in ("env", "agent", "seeds", *(h for _, h, _ in COLUMNS)):
        table.add_column(col, justify="left" if col in ("env", "agent") else "right")
    for r in rows:
        table.add_row(r["env"], r["agent"], str(r["seeds"]),
                      *(f"{fmt.format(r[k])} ± {fmt.format(r[k + '_std'])}" for k, _, fmt in COLUMNS))
    console.print(table)
    console.print(f"table: {md}   curves: {png}")
    figures = " ".join(f"{r['env']}.{r['agent']}.{k}={r[k]:.4f}" for r in rows for k in ("gold_reward", "kl"))
    if suite is not None:
        figures = _print_leaderboard(console, suite, Path(args.out)) + " " + figures
    console.print(f"RESULT runs={len(runs)} {figures}", soft_wrap=True)
    return 0


def _print_leaderboard(console: Console, suite, out: Path) -> str:
    from rlhf_gym.runner.leaderboard import write_leaderboard

    board, paths = write_leaderboard(suite.runs, suite.norms, out)
    table = Table(title="leaderboard: normalised gold (0 = start, 1 = best-of-64), mean over tasks")
    for col in ("rank", "agent", "norm. gold", "seeds", "threshold reached"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for i, a in enumerate(board["aggregate"], 1):
        table.add_row(str(i), a["agent"], f"{a['norm_gold']:.2f} ± {a['norm_gold_std']:.2f}", str(a["seeds"]),
                      f"{a['reached']}/{a['runs']}")
    console.print(table)
    console.print(f"leaderboard: {paths['md']}   {paths['html']}   curves: {paths['png']}")
    return " ".join(f"aggregate.{a['agent']}.norm_gold={a['norm_gold']:.4f}" for a in board["aggregate"])
