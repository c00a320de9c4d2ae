"""The suite's leaderboard: per task and agent, mean ± sd over seeds, and an aggregate over tasks.

Per task (GRUE's layout): gold ↑, proxy ↑ (the reward model trained on), KL ↓, perplexity ↓, distinct-2 ↑ of
the final held-out evaluation; the normalised gold (0 = the starting policy, 1 = its best-of-64, see
:mod:`rlhf_gym.runner.suite`); and the generated tokens and wall time until the held-out gold first reached
the task's threshold, half-way from start to best-of-64 (over the seeds that reached it; ``k/n`` says how
many did). The aggregate ranks agents by their normalised gold averaged over tasks (sd over seeds).

Written as ``leaderboard.md``, ``leaderboard.html`` (static; every string escaped), ``leaderboard.json`` and
``suite_curves.png`` (gold and proxy against generated tokens and against sqrt(KL), mean over seeds).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_gym.io import write_text_atomic
from rlhf_gym.runner.bench import BenchRun, mean_std, seed_curves
from rlhf_gym.runner.report import save_figure
from rlhf_gym.runner.rundir import read_result
from rlhf_gym.runner.tracking import METRICS_FILE, jsonable, read_jsonl

__all__ = ["THRESHOLD", "TASK_COLUMNS", "leaderboard", "to_markdown", "to_html", "plot_suite", "write_leaderboard"]

#: The gold threshold, as a fraction of the way from the starting policy to its best-of-64.
THRESHOLD = 0.5
#: Per-task columns: (key, header, format).
TASK_COLUMNS = (("gold_reward", "gold ↑", "{:.3f}"), ("norm_gold", "norm. gold ↑", "{:.2f}"),
                ("rm_reward", "proxy ↑", "{:.2f}"), ("kl", "KL ↓", "{:.2f}"), ("perplexity", "perplexity ↓", "{:.1f}"),
                ("distinct_2", "distinct-2 ↑", "{:.3f}"), ("tokens_to_threshold", "tokens to threshold", "{:.0f}"),
                ("wall_to_threshold", "time to threshold (s)", "{:.0f}"), ("wall_time", "wall time (s)", "{:.0f}"))


def _normalise(gold: float, start: float, ceiling: float) -> float:
    return (gold - start) / (ceiling - start) if ceiling > start else math.nan


def _seed_figures(run: BenchRun, ceiling: float, start: float) -> dict[str, Any]:
    saved = read_result(run.out)
    figures = {**saved["eval"], "wall_time": saved["wall_time"], "start_gold": start,
               "norm_gold": _normalise(saved["eval"].get("gold_reward", math.nan), start, ceiling),
               "tokens_to_threshold": math.nan, "wall_to_threshold": math.nan}
    threshold = start + THRESHOLD * (ceiling - start)
    for row in read_jsonl(run.out / METRICS_FILE):
        gold = row.get("eval/gold_reward")
        if isinstance(gold, int | float) and row["step"] > 0 and gold >= threshold:
            figures["tokens_to_threshold"], figures["wall_to_threshold"] = row["step"], row.get("time/wall", math.nan)
            break
    return figures


def leaderboard(runs: Sequence[BenchRun], norms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"tasks": [row per (task, agent)], "aggregate": [row per agent, best first], "norms": norms}``."""
    done = [r for r in runs if r.status == "done"]
    # The starting policy's held-out gold per task and seed: every on-policy run of that seed evaluates the same
    # policy with the same sampler at step 0, so they agree; the median ignores an agent whose step-0
    # evaluation is not the plain policy (best-of-n's is already its best of n).
    initial: dict[tuple[str, int], list[float]] = {}
    for r in done:
        initial.setdefault((r.env, r.seed), []).append(read_result(r.out)["initial_eval"].get("gold_reward", math.nan))
    cells: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in done:
        start = float(np.median(initial[(r.env, r.seed)]))
        cells.setdefault((r.env, r.agent), {})[r.seed] = _seed_figures(r, norms[r.env]["best_of_64_gold"], start)
    rows = []
    for (task, agent), seeds in cells.items():
        row: dict[str, Any] = {"task": task, "agent": agent, "seeds": len(seeds),
                               "reached": sum(math.isfinite(s["tokens_to_threshold"]) for s in seeds.values())}
        for key, _, _ in TASK_COLUMNS:
            row[key], row[f"{key}_std"] = mean_std([s.get(key) for s in seeds.values()])
        rows.append(row)
    aggregate = []
    tasks = sorted({t for t, _ in cells})
    for agent in sorted({a for _, a in cells}):
        per_seed = {}  # seed -> mean over tasks of normalised gold (only seeds every task finished)
        for seed in sorted({s for (_, a), ss in cells.items() if a == agent for s in ss}):
            values = [cells.get((t, agent), {}).get(seed, {}).get("norm_gold") for t in tasks]
            if all(v is not None and math.isfinite(v) for v in values):
                per_seed[seed] = float(np.mean(values))
        mean, sd = mean_std(list(per_seed.values()))
        reached = sum(r["reached"] for r in rows if r["agent"] == agent)
        aggregate.append({"agent": agent, "norm_gold": mean, "norm_gold_std": sd, "seeds": len(per_seed),
                          "tasks": len(tasks), "reached": reached,
                          "runs": sum(r["seeds"] for r in rows if r["agent"] == agent)})
    aggregate.sort(key=lambda a: -a["norm_gold"] if math.isfinite(a["norm_gold"]) else math.inf)
    rows.sort(key=lambda r: (r["task"], -r["norm_gold"] if math.isfinite(r["norm_gold"]) else math.inf))
    return {"tasks": rows, "aggregate": aggregate, "norms": norms, "threshold": THRESHOLD}


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    mean, sd = row[key], row[f"{key}_std"]
    if not math.isfinite(mean):
        return "—"
    text = fmt.format(mean) + (f" ± {fmt.format(sd)}" if row["seeds"] > 1 and math.isfinite(sd) else "")
    if key.endswith("_to_threshold") and row["reached"] < row["seeds"]:
        text += f" ({row['reached']}/{row['seeds']})"
    return text


def _tables(board: dict[str, Any]) -> tuple[list[str], list[list[str]], dict[str, tuple[list[str], list[list[str]]]]]:
    agg_head = ["rank", "agent", "norm. gold (mean over tasks) ↑", "seeds", "threshold reached (runs)"]
    agg = [[str(i), a["agent"], "—" if not math.isfinite(a["norm_gold"]) else
            f"{a['norm_gold']:.2f}" + (f" ± {a['norm_gold_std']:.2f}" if a["seeds"] > 1 else ""),
            str(a["seeds"]), f"{a['reached']}/{a['runs']}"] for i, a in enumerate(board["aggregate"], 1)]
    per_task = {}
    for task in sorted({r["task"] for r in board["tasks"]}):
        head = ["agent", "seeds", *(h for _, h, _ in TASK_COLUMNS)]
        body = [[r["agent"], str(r["seeds"]), *(_cell(r, k, f) for k, _, f in TASK_COLUMNS)]
                for r in board["tasks"] if r["task"] == task]
        per_task[task] = (head, body)
    return agg_head, agg, per_task


def _norm_line(task: str, n: dict[str, Any]) -> str:
    return (f"start gold {n['start_gold']:.3f} (figures), best-of-64 {n['best_of_64_gold']:.3f}, "
            f"proxy pair accuracy {n['proxy_accuracy']:.2f}")


def to_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as markdown: the aggregate, then one table per task."""
    agg_head, agg, per_task = _tables(board)

    def table(head: list[str], body: list[list[str]]) -> list[str]:
        cells = [[c.replace("|", "\\|") for c in row] for row in [head, *body]]
        return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in cells[1:])]

    lines = ["## Aggregate", "", f"Normalised gold: 0 = the starting policy, 1 = its best-of-64; threshold = "
             f"{board['threshold']:g} of the way.", "", *table(agg_head, agg)]
    for task, (head, body) in per_task.items():
        lines += ["", f"## {task}", "", _norm_line(task, board["norms"][task]), "", *table(head, body)]
    return "\n".join(lines) + "\n"


def to_html(board: dict[str, Any], title: str, image: str | None = "suite_curves.png") -> str:
    """A static page (no script); every string it shows is escaped."""
    agg_head, agg, per_task = _tables(board)
    esc = html.escape

    def table(head: list[str], body: list[list[str]]) -> str:
        rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>\n" for row in body)
        return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead>\n<tbody>\n"
                + rows + "</tbody></table>\n")

    parts = [f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>\n"
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;"
             "margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}</style>"
             f"</head><body>\n<h1>{esc(title)}</h1>\n<h2>Aggregate</h2>\n<p>Normalised gold: 0 = the starting policy, "
             f"1 = its best-of-64; threshold = {board['threshold']:g} of the way.</p>\n", table(agg_head, agg)]
    for task, (head, body) in per_task.items():
        parts += [f"<h2 id=\"task-{esc(task)}\">{esc(task)}</h2>\n<p>{esc(_norm_line(task, board['norms'][task]))}</p>\n",
                  table(head, body)]
    if image:
        parts.append(f"<h2>Curves</h2>\n<img src=\"{esc(image)}\" alt=\"gold and proxy against tokens and sqrt(KL)\">\n")
    return "".join(parts) + "</body></html>\n"


def plot_suite(runs: Sequence[BenchRun], path: Path) -> Path:
    """One row per task: gold and proxy against generated tokens, and against sqrt(KL)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r.env for r in runs})
    fig, axes = plt.subplots(len(tasks), 4, figsize=(16, 3.2 * len(tasks)), squeeze=False, constrained_layout=True)
    for row, task in zip(axes, tasks):
        for agent in sorted({r.agent for r in runs if r.env == task}):
            got = seed_curves(runs, task, agent, ("eval/gold_reward", "eval/rm_reward", "eval/kl"))
            if got is None:
                continue
            tokens, curves = got
            d = np.sqrt(np.maximum(curves["eval/kl"], 0)).mean(0)  # k1 can dip below 0 early on
            for col, key in enumerate(("eval/gold_reward", "eval/rm_reward")):
                row[col].plot(tokens, curves[key].mean(0), marker="o", ms=3, label=agent)
                row[col + 2].plot(d, curves[key].mean(0), marker="o", ms=3, label=agent)
        for ax, (what, x) in zip(row, [("gold", "generated tokens"), ("proxy", "generated tokens"),
                                        ("gold", "sqrt(KL) (nats^0.5)"), ("proxy", "sqrt(KL) (nats^0.5)")]):
            ax.set_title(f"{task}: {what} (held-out)", fontsize=9)
            ax.set_xlabel(x, fontsize=8)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_leaderboard(runs: Sequence[BenchRun], norms: dict[str, dict[str, Any]], out: Path,
                      title: str = "rlhf_gym leaderboard") -> tuple[dict[str, Any], dict[str, Path]]:
    """Writes the four files into ``out`` (each atomically); returns the board and their paths."""
    board = leaderboard(runs, norms)
    paths = {"md": write_text_atomic(out / "leaderboard.md", f"# {title}\n\n" + to_markdown(board)),
             "html": write_text_atomic(out / "leaderboard.html", to_html(board, title)),
             "json": write_text_atomic(out / "leaderboard.json", json.dumps(jsonable(board), indent=1) + "\n"),
             "png": plot_suite(runs, out / "suite_curves.png")}
    return board, paths
