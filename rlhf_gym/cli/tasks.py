"""``rlhf-gym tasks``: the registered tasks, their Gymnasium ids, gold judges and headroom figures."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

EPILOG = """examples:
  rlhf-gym tasks                       # every task; figures computed once per task version, then cached
  rlhf-gym tasks --task arithmetic     # one task
  rlhf-gym tasks --no-compute          # only what is cached (no sampling)
  rlhf-gym tasks --json tasks.json     # the figures as JSON too

Figures (docs/tasks.md): on held-out prompts, the starting policy's gold (mean ± sd of one sample per
prompt), the gold of best-of-64 sampling, headroom = (best-of-64 − start mean) / start sd, and the accuracy
against gold of a proxy reward model trained from 2000 simulated comparisons. Tasks whose model is a hub
download (imdb) are listed without figures unless named with --task. The last line is
RESULT tasks=<tasks with figures> min_headroom=<min headroom> min_proxy_accuracy=<min accuracy>."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the registered tasks with their gold judges and headroom figures",
                       description=__doc__.split("\n")[0].split(": ", 1)[1], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", action="append", metavar="NAME", help="only this task (repeatable; MODULE:NAME works)")
    p.add_argument("--refresh", action="store_true", help="recompute figures even when cached")
    p.add_argument("--no-compute", action="store_true", help="show cached figures only; never sample")
    p.add_argument("--n-prompts", type=int, default=256, help="held-out prompts for the starting gold (256)")
    p.add_argument("--bon-prompts", type=int, default=64, help="held-out prompts for best-of-n (64)")
    p.add_argument("--best-of", type=int, default=64, help="n of best-of-n (64)")
    p.add_argument("--comparisons", type=int, default=2000, help="comparisons the proxy RM learns from (2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write every task's figures to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fmt(value: Any, spec: str = "{:.3f}") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else spec.format(value)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.io import check_output, write_text_atomic
    from rlhf_gym.runner.task_figures import FigureConfig, cached_figures, offline
    from rlhf_gym.tasks import get_task, list_tasks

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)  # a log file gets whole rows
    cfg = FigureConfig(n_prompts=args.n_prompts, bon_prompts=args.bon_prompts, n_best_of=args.best_of,
                       comparisons=args.comparisons, seed=args.seed)
    named = args.task is not None
    tasks = [get_task(name) for name in args.task] if named else list_tasks()
    if args.json:
        check_output(args.json, "file", "--json")
    results: dict[str, dict[str, Any] | None] = {}
    for task in tasks:
        if not named and not offline(task):
            results[task.name] = None  # a hub download: only on request
            continue
        with _progress(not args.no_progress and not args.no_compute, task.name) as progress:
            results[task.name] = cached_figures(task, cfg, refresh=args.refresh, compute=not args.no_compute,
                                                progress=progress)

    table = Table(title=f"registered tasks (held-out prompts; best-of-{cfg.n_best_of}; proxy RM from "
                  f"{cfg.comparisons} comparisons)")
    for column in ("task", "Gymnasium id", "gold judge", "start gold", f"best-of-{cfg.n_best_of}", "headroom",
                   "proxy acc."):
        table.add_column(column, justify="right" if column[0] in "shbp" and column != "task" else "left")
    for task in tasks:
        fig = results[task.name]
        why = "needs a download: --task " + task.name if not offline(task) else "not cached: run without --no-compute"
        cells = ([f"{_fmt(fig['start_gold_mean'])} ± {_fmt(fig['start_gold_sd'])}", _fmt(fig["best_of_n_gold"]),
                  _fmt(fig["headroom"], "{:.2f}"), _fmt(fig["proxy_accuracy"], "{:.1%}")]
                 if fig else [why, "", "", ""])
        judge = fig["gold"].split(" object at ")[0].lstrip("<").rsplit(".", 1)[-1] if fig else task.gold.__name__
        table.add_row(task.name, task.env_id, judge, *cells)
    console.print(table)
    for name, fig in results.items():
        if fig and fig.get("front"):
            points = ", ".join(f"w={p['weight']:g}: " + " ".join(f"{k}={v:.2f}" for k, v in p.items() if k != "weight")
                               for p in fig["front"])
            console.print(f"{name}: best-of-{fig['best_of_n']} front — {points}")
        gold_corr, proxy_corr = (fig or {}).get("gold_length_corr"), (fig or {}).get("proxy_length_corr")
        if gold_corr is not None and proxy_corr is not None and proxy_corr - gold_corr > 0.3:
            console.print(f"{name}: the proxy RM leans to length (correlation with words {proxy_corr:+.2f}, "
                          f"the gold's {gold_corr:+.2f}): a policy trained on it can write longer for reward")

    measured = [fig for fig in results.values() if fig]
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    headroom = min((f["headroom"] for f in measured if f["headroom"] is not None), default=math.nan)
    accuracy = min((f["proxy_accuracy"] for f in measured if f["proxy_accuracy"] is not None), default=math.nan)
    print(f"RESULT tasks={len(measured)} min_headroom={headroom:.4f} min_proxy_accuracy={accuracy:.4f}")
    return 0


@contextmanager
def _progress(enabled: bool, name: str) -> Iterator[Callable[[str, float], None] | None]:
    """A transient rich progress bar for one task's figures (None when disabled: cached figures draw none)."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(name, total=1.0)
        yield lambda phase, done: bar.update(task, completed=done, description=f"{name}: {phase}")
