"""``rlhf-gym demo``: the whole RLHF pipeline on the embedded world, offline, in minutes on a CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhf_gym.runner.demo import ADAPTIVE_BETA, KL_HORIZON, KL_TARGET, RUNS
from rlhf_gym.runner.report import RESULT_KEYS

EPILOG = """\
what happens (all offline, on the embedded review world):
  1. the shipped tiny GPT-2 continues review openings; simulated annotators compare pairs of continuations
     (Bradley-Terry on the gold judge, VADER sentiment, with label noise)  -> OUT/prefs.jsonl
  2. a reward model (tiny GPT-2 + scalar head) learns the comparisons   -> OUT/reward-model/
  3. PPO trains the policy against the reward model with the KL penalty, twice from the same start:
     with a fixed small beta (over-optimises: the proxy climbs, the gold judge stalls, the KL runs away)
     -> OUT/ppo-fixed/, and with adaptive beta steering the KL to --kl-target -> OUT/ppo-adaptive/
  4. held-out prompts are scored during and after by the gold judge the agent never saw; proxy and gold
     of both runs against the KL -> OUT/proxy_vs_gold.png

examples:
  rlhf-gym demo                              # under 10 minutes on 2 CPU cores
  rlhf-gym demo --ppo-steps 4000 --comparisons 300 --eval-episodes 32   # a quick look
  rlhf-gym demo --prefs my_prefs.jsonl       # your own comparisons instead of simulated ones
  rlhf-gym demo --beta 0.0 --kl-target 2     # no KL penalty at all vs. a tighter KL budget

then: rlhf-gym report --run OUT/ppo-adaptive ; rlhf-gym eval --run OUT/ppo-fixed
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline on the embedded world: comparisons -> reward model -> PPO -> gold eval",
        description="Simulates comparisons, trains a reward model on them, trains PPO against it twice (fixed "
        "and adaptive KL coefficient) and evaluates both on the gold judge. Prints a before/after table, says "
        "whether the adaptive run ended under the KL target, shows the fixed run's late samples next to the "
        "adaptive run's, draws proxy and gold against KL, and ends with `RESULT gold_gain=... kl=...` (of the "
        "adaptive run).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/demo-YYYYmmdd-HHMMSS)")
    p.add_argument("--prefs", metavar="FILE", help="use these preference pairs instead of simulating comparisons")
    p.add_argument("--comparisons", type=int, default=600, help="simulated comparisons (default 600)")
    p.add_argument("--annotator-noise", type=float, default=0.1, help="label flip rate of the noisy annotator (default 0.1)")
    p.add_argument("--rm-epochs", type=int, default=2, help="reward-model epochs (default 2)")
    p.add_argument("--ppo-steps", type=int, default=8_000, help="PPO budget of each run in generated tokens (default 8000)")
    p.add_argument("--beta", type=float, default=0.05, help="KL coefficient β of the fixed-β run (default 0.05)")
    p.add_argument("--adaptive-beta", type=float, default=ADAPTIVE_BETA, metavar="BETA",
                   help=f"starting β of the adaptive-β run (default {ADAPTIVE_BETA:g})")
    p.add_argument("--kl-target", type=float, default=KL_TARGET, metavar="NATS",
                   help=f"KL per continuation the adaptive-β run steers to (default {KL_TARGET:g})")
    p.add_argument("--kl-horizon", type=int, default=KL_HORIZON, metavar="EPISODES",
                   help=f"episodes over which adaptive β moves by at most 20%% (default {KL_HORIZON})")
    p.add_argument("--max-new-tokens", type=int, default=16, help="continuation length cap (default 16)")
    p.add_argument("--eval-episodes", type=int, default=48, help="held-out prompts per evaluation (default 48)")
    p.add_argument("--eval-every", type=int, default=3, help="PPO updates between evaluations (default 3)")
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

    quiet_hf_progress()
    out = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = DemoConfig(out=out, model=args.model, prefs=args.prefs, comparisons=args.comparisons,
                     annotator_noise=args.annotator_noise, rm_epochs=args.rm_epochs, ppo_timesteps=args.ppo_steps,
                     beta=args.beta, adaptive_beta=args.adaptive_beta, kl_target=args.kl_target, kl_horizon=args.kl_horizon,
                     max_new_tokens=args.max_new_tokens, eval_episodes=args.eval_episodes,
                     eval_every=args.eval_every, seed=args.seed, task=args.task)
    console = Console(highlight=False)
    console.print(f"[bold]rlhf-gym demo[/] -> {out}")
    s = run_demo(cfg, console, wandb_mode=args.wandb)
    fixed, adaptive = s["runs"]["fixed"], s["runs"]["adaptive"]

    table = Table(title=f"held-out evaluation, {cfg.eval_episodes} prompts "
                        f"(gold = the {cfg.task} task's judge, never seen by the agent)")
    table.add_column("")
    for k in RESULT_KEYS:
        table.add_column(SHORT[k], justify="right")
    table.add_row("before PPO", *(f"{s['before'][k]:.3f}" for k in RESULT_KEYS))
    table.add_row(f"fixed β={cfg.beta:g}", *(f"{fixed['after'][k]:.3f}" for k in RESULT_KEYS))
    table.add_row(f"adaptive β (target KL {cfg.kl_target:g})", *(f"{adaptive['after'][k]:.3f}" for k in RESULT_KEYS),
                  style="bold")
    console.print(table)
    _print_samples(console, out)

    verdict = "[green]stayed under[/]" if s["kl_under_target"] else "[red]ended above[/]"
    console.print(f"KL target {cfg.kl_target:g} nats: the adaptive-β run {verdict} it (final KL {adaptive['kl']:.2f}, "
                  f"β {cfg.adaptive_beta:g} -> {adaptive['final_beta']:.3g}); the fixed-β run ended at KL "
                  f"{fixed['kl']:.2f}. Proxy (RM) gain: fixed {fixed['rm_gain']:+.3f}, adaptive "
                  f"{adaptive['rm_gain']:+.3f}; gold gain: fixed {fixed['gold_gain']:+.3f}, adaptive "
                  f"{adaptive['gold_gain']:+.3f}.", soft_wrap=True)
    reports = [write_report(out / d)[1] for d in RUNS.values()]
    t = s["timings"]
    console.print(f"proxy vs gold: {out / s['figure']}   reports: {'  '.join(map(str, reports))}   "
                  f"summary: {out / 'summary.json'}")
    console.print(f"time: comparisons {t['comparisons']:.0f}s, reward model {t['reward_model']:.0f}s, "
                  f"PPO + evaluation {t['ppo_fixed']:.0f}s (fixed β) + {t['ppo_adaptive']:.0f}s (adaptive β), "
                  f"total {t['total']:.0f}s")
    rm_acc = s["reward_model"].get("rm/val_accuracy", float("nan"))
    console.print(f"RESULT gold_gain={s['gold_gain']:.4f} rm_gain={s['rm_gain']:.4f} kl={s['kl']:.4f} "
                  f"kl_target={cfg.kl_target:g} kl_under_target={int(s['kl_under_target'])} "
                  f"gold_before={s['before']['gold_reward']:.4f} gold_after={s['after']['gold_reward']:.4f} "
                  f"fixed_gold_gain={fixed['gold_gain']:.4f} fixed_rm_gain={fixed['rm_gain']:.4f} "
                  f"fixed_kl={fixed['kl']:.4f} rm_accuracy={rm_acc:.4f} seconds={t['total']:.1f}", soft_wrap=True)
    return 0


SHORT = {"gold_reward": "gold", "rm_reward": "RM", "kl": "KL", "perplexity": "ppl", "distinct_1": "dist-1",
         "distinct_2": "dist-2", "mean_length": "length"}


def _print_samples(console: Console, out: Path) -> None:
    """The fixed-β run's last held-out samples next to the adaptive run's, on the same prompts."""
    from rlhf_gym.runner.tracking import SAMPLES_FILE, read_jsonl

    last: dict[str, list[dict]] = {}
    for name, d in RUNS.items():
        rows = [r for r in read_jsonl(out / d / SAMPLES_FILE) if r.get("kind") == "eval"]
        last[name] = [r for r in rows if r["step"] == max(x["step"] for x in rows)] if rows else []
    if not last["fixed"] or not last["adaptive"]:
        return
    st = Table(title="the same held-out prompts after PPO: fixed β (over-optimised) vs adaptive β (gold score, KL)")
    for col in ("prompt", "fixed β", "gold/KL", "adaptive β", "gold/KL "):
        st.add_column(col, justify="right" if col.startswith("gold") else "left")
    for f, a in zip(last["fixed"], last["adaptive"]):
        st.add_row(escape(f["prompt"]), escape(f["completion"]), f"{f['gold']:+.2f} / {f['kl']:.1f}",
                   escape(a["completion"]), f"{a['gold']:+.2f} / {a['kl']:.1f}")
    console.print(st)
