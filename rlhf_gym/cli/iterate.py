"""``rlhf-gym iterate``: rounds of sample -> label -> reward model -> PPO on an embedded task (resumable)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from rlhf_gym.cli.train import add_wandb_flag

EPILOG = """\
examples:
  # 3 rounds of 500 new comparisons and 6,000 PPO tokens each, on the sentiment task
  rlhf-gym iterate --task sentiment --rounds 3 --labels-per-round 500 --timesteps-per-round 6000 --out runs/iter

  # one-shot RLHF with the same total budget (the baseline of scripts/iterated_rlhf.py)
  rlhf-gym iterate --task sentiment --rounds 1 --labels-per-round 1500 --timesteps-per-round 18000 --out runs/once

  # people label each round in the app (run `rlhf-gym label serve --db labels.sqlite` beside it)
  rlhf-gym label annotators add alice --db labels.sqlite
  rlhf-gym iterate --task sentiment --rounds 3 --labels-per-round 100 --humans labels.sqlite --out runs/iter-people

  # interrupted? run the same command again: finished steps are skipped, the PPO run resumes exactly;
  # more --rounds later continue the same experiment

layout: OUT/iterate.json (the settings), OUT/round-R/{labels.jsonl, rm/, env.yaml, ppo/, round.json}
(with --humans also OUT/round-R/pairs.jsonl, the pairs queued for people)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "iterate", help="iterated online RLHF: each round labels the current policy's samples, retrains the RM, "
        "continues PPO", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Each round samples comparisons of the current policy's continuations, has the task's "
        "simulated annotators label them, retrains the reward model on every label so far and continues PPO "
        "from the last checkpoint against it (docs/feedback.md). The last line is "
        "`RESULT rounds=R gold_reward=... rm_reward=... kl=...` (the last round's held-out evaluation).")
    p.add_argument("--task", required=True, help="a registered task whose model ships with the package")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--labels-per-round", type=int, default=500, help="new comparisons per round (default 500)")
    p.add_argument("--timesteps-per-round", type=int, default=6000, help="PPO tokens per round (default 6000)")
    p.add_argument("--agent", default="agents/ppo.yaml", metavar="FILE", help="agent preset (default agents/ppo.yaml)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole experiment (default 0)")
    p.add_argument("--rm-epochs", type=int, default=2, help="reward-model epochs per round (default 2)")
    p.add_argument("--humans", metavar="DB", help="people label each round: its pairs are queued in this label "
                   "store (serve it with `rlhf-gym label serve --db DB`) and the round waits for their labels")
    p.add_argument("--overlap", type=int, default=1, help="with --humans: labels per pair (default 1)")
    p.add_argument("--out", metavar="DIR", required=True, help="experiment directory")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a field of every round's PPO run, e.g. env.beta=0.1 (repeatable)")
    add_wandb_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.runner.iterate import IterateConfig, iterate

    quiet_hf_progress()
    console = Console(highlight=False)
    cfg = IterateConfig(task=args.task, rounds=args.rounds, labels_per_round=args.labels_per_round,
                        timesteps_per_round=args.timesteps_per_round, agent=args.agent, seed=args.seed,
                        rm_epochs=args.rm_epochs, humans=args.humans, overlap=args.overlap,
                        overrides=tuple(args.overrides))
    rounds = iterate(cfg, args.out, say=console.print, wandb_mode=args.wandb)
    table = Table("round", "labels", "tokens", "gold ↑", "proxy ↑", "KL ↓", "distinct-2 ↑", "RM val acc")
    for s in rounds:
        table.add_row(str(s["round"]), str(s["labels"]), str(s["tokens"]), f"{s['gold_reward']:.3f}",
                      f"{s['rm_reward']:.3f}", f"{s['kl']:.2f}", f"{s.get('distinct_2', float('nan')):.3f}",
                      f"{s['rm_val_accuracy']:.3f}")
    console.print(table)
    last = rounds[-1]
    console.print(f"RESULT rounds={len(rounds)} gold_reward={last['gold_reward']:.4f} rm_reward={last['rm_reward']:.4f} "
                  f"kl={last['kl']:.4f}")
    return 0
