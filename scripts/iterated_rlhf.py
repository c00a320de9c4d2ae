"""Iterated online RLHF against one-shot RLHF with the same label and token budget, on an embedded task.

    python scripts/iterated_rlhf.py --task sentiment --rounds 3 --labels-per-round 500 \\
        --timesteps-per-round 6000 --seeds 0 1 2 --out runs/iterated

For each seed, ``rlhf-gym iterate`` runs twice (:mod:`rlhf_gym.runner.iterate`):

* **iterated** — ``--rounds`` rounds; each labels ``--labels-per-round`` comparisons of the *current* policy's
  samples, retrains the reward model on every label so far and continues PPO for ``--timesteps-per-round``;
* **one-shot** — one round with all ``rounds × labels-per-round`` comparisons of the *starting* policy's
  samples and ``rounds × timesteps-per-round`` PPO tokens.

Both read the task's gold only to report it. Prints the final held-out gold, proxy, KL and distinct-2 of each
arm (mean ± sd over seeds) and writes ``OUT/iterated.png`` (every held-out evaluation of both arms) and ``OUT/results.json``.
Resumable: rerun the same command (or several at once on disjoint ``--seeds``). The last line is
``RESULT iterated_gold=<mean> oneshot_gold=<mean> gold_gain=<iterated − one-shot> iterated_sd=<sd> oneshot_sd=<sd>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlhf_gym.errors import RLHFGymError  # noqa: E402
from rlhf_gym.io import write_text_atomic  # noqa: E402
from rlhf_gym.runner.iterate import IterateConfig, iterate  # noqa: E402
from rlhf_gym.runner.report import save_figure  # noqa: E402

KEYS = ("gold_reward", "rm_reward", "kl", "distinct_2")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="sentiment", help="an offline task (default sentiment)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--labels-per-round", type=int, default=500)
    p.add_argument("--timesteps-per-round", type=int, default=6000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--agent", default=str(Path(__file__).resolve().parent.parent / "agents" / "ppo.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="for every PPO run of both arms (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/iterated"))
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or any(s < 0 for s in args.seeds):
        p.error(f"--seeds={args.seeds} is invalid: must be distinct integers >= 0")
    if args.rounds < 2:
        p.error(f"--rounds={args.rounds} is invalid: must be >= 2 (1 round is the one-shot arm itself)")
    return args


def arms(args: argparse.Namespace, seed: int) -> dict[str, IterateConfig]:
    common = dict(task=args.task, agent=args.agent, seed=seed, overrides=("run.torch_threads=1", *args.overrides))
    return {"iterated": IterateConfig(rounds=args.rounds, labels_per_round=args.labels_per_round,
                                      timesteps_per_round=args.timesteps_per_round, **common),
            "one-shot": IterateConfig(rounds=1, labels_per_round=args.rounds * args.labels_per_round,
                                      timesteps_per_round=args.rounds * args.timesteps_per_round, **common)}


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot(out: Path, results: dict[str, dict[int, list[dict[str, Any]]]], path: Path) -> Path:
    """Every held-out evaluation of every round's PPO run: gold and proxy against PPO tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlhf_gym.runner.tracking import read_jsonl

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for (arm, seeds), colour in zip(results.items(), ("tab:blue", "tab:orange")):
        for i, (seed, rounds) in enumerate(seeds.items()):
            rows = [row for r in range(len(rounds)) for row in
                    read_jsonl(out / arm.replace("-", "") / f"seed-{seed}" / f"round-{r}" / "ppo" / "metrics.jsonl")
                    if "eval/gold_reward" in row]
            for ax, key in zip(axes, ("eval/gold_reward", "eval/rm_reward")):
                ax.plot([row["step"] for row in rows], [row[key] for row in rows], ".-", color=colour, alpha=0.7,
                        label=arm if i == 0 else None)
    for ax, title in zip(axes, ("gold (the task's judge) ↑", "proxy (the round's reward model) ↑")):
        ax.set(xlabel="PPO tokens", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {"iterated": {}, "one-shot": {}}
    try:
        for seed in args.seeds:
            for arm, cfg in arms(args, seed).items():
                print(f"seed {seed}, {arm}:", flush=True)
                results[arm][seed] = iterate(cfg, args.out / arm.replace("-", "") / f"seed-{seed}",
                                             say=lambda m: print("  " + m, flush=True))
    except RLHFGymError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary: dict[str, dict[str, list[float]]] = {}
    print(f"\n{args.task}: {args.rounds} rounds x {args.labels_per_round} labels x {args.timesteps_per_round} "
          f"tokens vs one round of all of it; {len(args.seeds)} seeds\n")
    print("| arm | " + " | ".join(KEYS) + " |\n|---|" + "---|" * len(KEYS))
    for arm, seeds in results.items():
        summary[arm] = {k: [rounds[-1][k] for rounds in seeds.values()] for k in KEYS}
        print(f"| {arm} | " + " | ".join("{:.3f} ± {:.3f}".format(*mean_sd(summary[arm][k])) for k in KEYS) + " |")
    write_text_atomic(args.out / "results.json", json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                             "rounds": results, "final": summary}, indent=2))
    print(f"\nfigure: {plot(args.out, results, args.out / 'iterated.png')}")
    (it, it_sd), (one, one_sd) = mean_sd(summary["iterated"]["gold_reward"]), mean_sd(summary["one-shot"]["gold_reward"])
    print(f"RESULT iterated_gold={it:.4f} oneshot_gold={one:.4f} gold_gain={it - one:.4f} iterated_sd={it_sd:.4f} "
          f"oneshot_sd={one_sd:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
