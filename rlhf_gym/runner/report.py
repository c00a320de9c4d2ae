"""``rlhf-gym report --run DIR``: training curves as PNG and a short markdown report with samples.

Reads ``DIR/metrics.jsonl``, ``DIR/samples.jsonl`` and ``DIR/config.yaml``; writes ``DIR/curves.png``
(reward, gold, KL, β, entropy and length against generated tokens) and ``DIR/report.md``. A panel draws every key
of its list that the run logged, so runs of any agent (and SB3's ``rollout/*`` keys) plot the same way.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf_gym.errors import DataError
from rlhf_gym.io import check_output, write_bytes_atomic, write_text_atomic
from rlhf_gym.runner.tracking import METRICS_FILE, SAMPLES_FILE, read_jsonl

#: Panel title -> metric keys drawn in it (the first key present names the y-axis).
PANELS: dict[str, tuple[str, ...]] = {
    "reward": ("objective/scores", "objective/rlhf_reward", "eval/rm_reward"),
    "gold": ("eval/gold_reward", "rollout/gold"),
    "KL": ("objective/kl", "eval/kl"),
    "β": ("objective/beta",),
    "entropy": ("objective/entropy",),
    "length": ("objective/length", "eval/mean_length"),
}
RESULT_KEYS = ("gold_reward", "rm_reward", "kl", "perplexity", "distinct_1", "distinct_2", "mean_length")


def series(rows: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of ``key`` over the rows that logged a finite value for it."""
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r["step"])
            ys.append(float(v))
    return xs, ys


def plot_curves(rows: Sequence[dict], path: Path, title: str = "") -> Path:
    """Draws the :data:`PANELS` of one run into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3
    rows_n = -(-len(PANELS) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(PANELS):]:
        ax.set_visible(False)
    for ax, (name, keys) in zip(axes.flat, PANELS.items()):
        drawn = False
        for key in keys:
            xs, ys = series(rows, key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, ms=3, label=key)
                drawn = True
        ax.set_title(name)
        ax.set_xlabel("generated tokens")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Saves a matplotlib figure as PNG atomically (rendered in memory, then written beside and renamed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=110, format="png")
    finally:
        plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def final_eval(rows: Sequence[dict]) -> dict[str, float]:
    """The last logged ``eval/*`` values, without the prefix."""
    out: dict[str, float] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("eval/") and v is not None:
                out[k.removeprefix("eval/")] = v
    return out


def _cell(text: Any, width: int = 120) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_report(run_dir: Path, rows: Sequence[dict], samples: Sequence[dict], config: dict | None,
                    image: str, n_samples: int = 8) -> str:
    """The report's markdown text."""
    env, agent = (config or {}).get("env", {}), (config or {}).get("agent", {})
    lines = [f"# Run report: {run_dir.name}", ""]
    if config:
        lines += [f"- task **{env.get('task')}**, model `{env.get('model')}`, reward `{env.get('reward')}`, "
                  f"β={env.get('beta')}, {env.get('max_new_tokens')} new tokens",
                  f"- agent **{agent.get('algo')}**, learning rate {agent.get('learning_rate')}, "
                  f"seed {(config.get('run') or {}).get('seed')}"]
    last = rows[-1] if rows else {}
    lines.append(f"- {len(rows)} logged steps, {last.get('step', 0)} generated tokens")
    lines += ["", f"![training curves]({image})", ""]
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    if evals:
        keys = [k for k in RESULT_KEYS if any(f"eval/{k}" in r for r in evals)]
        lines += ["## Evaluation", "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for r in evals:
            cells = [f"{r[f'eval/{k}']:.4g}" if isinstance(r.get(f"eval/{k}"), int | float) else "" for k in keys]
            lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
        lines.append("")
    if samples:
        kind = "eval" if any(s.get("kind") == "eval" for s in samples) else "rollout"
        last_step = max(s["step"] for s in samples if s.get("kind") == kind)
        chosen = [s for s in samples if s.get("kind") == kind and s["step"] == last_step][:n_samples]
        score_keys = [k for k in ("gold", "rm", "score", "kl") if k in chosen[0]]
        lines += [f"## Samples ({kind}, step {last_step})", "",
                  "| prompt | continuation | " + " | ".join(score_keys) + " |", "|---" * (len(score_keys) + 2) + "|"]
        for s in chosen:
            scores = [f"{s[k]:+.3f}" if isinstance(s.get(k), int | float) else "" for k in score_keys]
            lines.append(f"| {_cell(s.get('prompt', ''))} | {_cell(s.get('completion', ''))} | " + " | ".join(scores) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``curves.png`` and ``report.md`` into ``run_dir``; returns their paths.

    Every input is read (strictly) before anything is written: a malformed ``metrics.jsonl``, ``samples.jsonl``
    or ``config.yaml`` is one error naming the file and leaves the run directory as it was.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    rows = read_jsonl(run_dir / METRICS_FILE)
    if not rows:
        raise DataError(f"{run_dir / METRICS_FILE} has no metrics yet; train first (rlhf-gym train --out {run_dir})")
    samples = read_jsonl(run_dir / SAMPLES_FILE)
    config = None
    if (run_dir / "config.yaml").is_file():
        from rlhf_gym.runner.rundir import read_run_config

        config = read_run_config(run_dir).to_dict()
    for name in ("curves.png", "report.md"):
        check_output(run_dir / name, "file", "report output")
    title = f"{run_dir.name}"
    if config:
        title += f" — {config['agent']['algo']} on {config['env']['task']}"
    text = markdown_report(run_dir, rows, samples, config, "curves.png")
    png = plot_curves(rows, run_dir / "curves.png", title)
    md = write_text_atomic(run_dir / "report.md", text)
    return png, md
