"""``rlhf-gym demo``: the whole RLHF pipeline on the embedded world, offline, in minutes on a CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

EPILOG = """\
what happens (all offline, on the embedded review world):
  1. the shipped tiny GPT-2 continues review openings; simulated annotators compare pairs of continuations
     (Bradley-Terry on the gold judge, VADER sentiment, with label noise)  -> OUT/prefs.jsonl
  2. a reward model (tiny GPT-2 + scalar head) learns the comparisons   -> OUT/reward-model/
  3. PPO trains the policy against the reward model, with the KL penalty -> OUT/ppo/ (a run directory)
  4. held-out prompts are scored before and after by the gold judge the agent never saw

examples:
  rlhf-gym demo                              # about 5-10 minutes on 2 CPU cores
  rlhf-gym demo --ppo-steps 4000 --comparisons 300 --eval-episodes 32   # a quick look
  rlhf-gym demo --prefs my_prefs.jsonl       # your own comparisons instead of simulated ones
  rlhf-gym demo --beta 0.0                   # no KL penalty: watch the reward model get over-optimised

then: rlhf-gym report --run OUT/ppo ; rlhf-gym eval --run OUT/ppo
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline on the embedded world: comparisons -> reward model -> PPO -> gold eval",
        description="Simulates comparisons, trains a reward model on them, trains PPO against it with the KL "
        "penalty and evaluates before and after on the gold judge. Prints a before/after table and sample "
        "continuations, draws the training curves, and ends with `RESULT gold_gain=... rm_gain=... kl=...`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/demo-YYYYmmdd-HHMMSS)")
    p.add_argument("--prefs", metavar="FILE", help="use these preference pairs instead of simulating comparisons")
    p.add_argument("--comparisons", type=int, default=600, help="simulated comparisons (default 600)")
    p.add_argument("--annotator-noise", type=float, default=0.1, help="label flip rate of the noisy annotator (default 0.1)")
    p.add_argument("--rm-epochs", type=int, default=2, help="reward-model epochs (default 2)")
    p.add_argument("--ppo-steps", type=int, default=10_000, help="PPO budget in generated tokens (default 10000)")
    p.add_argument("--beta", type=float, default=0.05, help="KL coefficient β (default 0.05)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="continuation length cap (default 16)")
    p.add_argument("--eval-episodes", type=int, default=64, help="held-out prompts evaluated (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--task", default="sentiment", metavar="NAME",
                   help="registered task whose prompts, gold judge and model are used (default sentiment)")
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)  # tests use a tiny local model
    p.add_argument("--wandb", choices=("online", "offline", "disabled"), default="disabled",
                   help="mirror the PPO run to W&B (default disabled)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.runner.demo import DemoConfig, run_demo
    from rlhf_gym.runner.report import write_report
    from rlhf_gym.runner.tracking import read_jsonl
    from rlhf_gym.runner.train import RESULT_KEYS

    quiet_hf_progress()
    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = DemoConfig(out=out, model=args.model, prefs=args.prefs, comparisons=args.comparisons,
                     annotator_noise=args.annotator_noise, rm_epochs=args.rm_epochs, ppo_timesteps=args.ppo_steps,
                     beta=args.beta, max_new_tokens=args.max_new_tokens, eval_episodes=args.eval_episodes,
                     seed=args.seed, task=args.task)
    console = Console(highlight=False)
    console.print(f"[bold]rlhf-gym demo[/] -> {out}")
    s = run_demo(cfg, console, wandb_mode=args.wandb)

    table = Table(title=f"held-out evaluation, {cfg.eval_episodes} prompts "
                        f"(gold = the {cfg.task} task's judge, never seen by the agent)")
    table.add_column("")
    short = {"gold_reward": "gold", "rm_reward": "RM", "kl": "KL", "perplexity": "ppl", "distinct_1": "dist-1",
             "distinct_2": "dist-2", "mean_length": "length"}
    for k in RESULT_KEYS:
        table.add_column(short[k], justify="right")
    for label in ("before", "after"):
        table.add_row(label, *(f"{s[label][k]:.3f}" for k in RESULT_KEYS))
    table.add_row("change", *(f"{s['after'][k] - s['before'][k]:+.3f}" for k in RESULT_KEYS), style="bold")
    console.print(table)

    samples = [r for r in read_jsonl(out / "ppo" / "samples.jsonl") if r.get("kind") == "eval"]
    if samples:
        before = [r for r in samples if r["step"] == 0]
        after = [r for r in samples if r["step"] == max(x["step"] for x in samples)]
        st = Table(title="the same held-out prompts, before -> after PPO (gold score)")
        for col in ("prompt", "before", "gold", "after", "gold "):
            st.add_column(col, justify="right" if col.startswith("gold") else "left")
        for b, a in zip(before, after):
            st.add_row(b["prompt"], b["completion"], f"{b['gold']:+.2f}", a["completion"], f"{a['gold']:+.2f}")
        console.print(st)
    png, md = write_report(out / "ppo")
    t = s["timings"]
    console.print(f"curves: {png}   report: {md}   summary: {out / 'summary.json'}")
    console.print(f"time: comparisons {t['comparisons']:.0f}s, reward model {t['reward_model']:.0f}s, "
                  f"PPO + evaluation {t['ppo']:.0f}s, total {t['total']:.0f}s")
    rm_acc = s["reward_model"].get("rm/val_accuracy", float("nan"))
    console.print(f"RESULT gold_gain={s['gold_gain']:.4f} rm_gain={s['rm_gain']:.4f} kl={s['kl']:.4f} "
                  f"gold_before={s['before']['gold_reward']:.4f} gold_after={s['after']['gold_reward']:.4f} "
                  f"rm_accuracy={rm_acc:.4f} seconds={t['total']:.1f}", soft_wrap=True)
    return 0
