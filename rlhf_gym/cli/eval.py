"""``rlhf-gym eval``: evaluate a run's policy on held-out prompts (gold, reward model, KL, perplexity, diversity)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a run's policy: gold reward, RM reward, KL, perplexity, distinct-n",
        description="Loads the newest checkpoint of a run directory (or --checkpoint), samples one continuation "
        "per held-out prompt (env.eval_prompts) and reports gold_reward (the env's gold judge), rm_reward (the "
        "reward it trained on), kl (per sequence, to the reference model), perplexity (of the samples under the "
        "reference), distinct_1/2 and mean_length. The last line is `RESULT gold_reward=... rm_reward=... kl=... "
        "perplexity=... distinct_2=...`.",
        epilog="examples:\n  rlhf-gym eval --run runs/ppo\n  rlhf-gym eval --run runs/ppo --episodes 512 --seed 1\n"
        "  rlhf-gym eval --run runs/ppo --reference    # the starting policy, for a before/after comparison",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", metavar="DIR", required=True, help="a run directory made by rlhf-gym train")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint directory (default: the run's newest)")
    p.add_argument("--reference", action="store_true", help="evaluate the reference (starting) policy instead")
    p.add_argument("--episodes", type=int, default=None, help="prompts to sample (default: run.eval_episodes)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: run.seed)")
    p.add_argument("--samples", type=int, default=5, help="sample continuations to print (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.agents.evaluation import evaluate
    from rlhf_gym.core.models import load_causal_lm
    from rlhf_gym.errors import ConfigError, ModelError
    from rlhf_gym.io import reading
    from rlhf_gym.runner import checkpoint as ckpt
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.runner.build import check_prompts_fit, env_prompts, make_env, make_gold, resolve_device
    from rlhf_gym.runner.rundir import load_run
    from rlhf_gym.runner.train import RESULT_KEYS, result_line

    quiet_hf_progress()
    cfg = load_run(args.run)
    n = args.episodes if args.episodes is not None else cfg.run.eval_episodes
    if n < 1:
        raise ConfigError(f"--episodes must be >= 1, got {n}")
    if args.reference:
        policy_dir, label = None, "reference policy"
    else:
        path = Path(args.checkpoint) if args.checkpoint else ckpt.latest_checkpoint(args.run)
        if path is None:
            raise ModelError(f"{args.run} has no checkpoint yet; train it first (rlhf-gym train --out {args.run})")
        policy_dir = path / "agent" / "policy" if (path / "agent" / "policy").is_dir() else path
        if not (policy_dir / "config.json").is_file():
            raise ModelError(f"{path} holds no policy (expected agent/policy/ inside a run checkpoint)")
        label = str(path)
    env = make_env(cfg)
    eval_prompts = env_prompts(cfg.env, "eval")
    check_prompts_fit(env, eval_prompts, f"env.eval_prompts {cfg.env.eval_prompts}")
    if policy_dir is None:
        policy = env.engine.ref
    else:
        with reading(policy_dir, "policy"):
            policy = load_causal_lm(policy_dir, device=resolve_device(cfg.run.device))
    result = evaluate(policy, env, prompts=eval_prompts, n=n,
                      seed=cfg.run.seed if args.seed is None else args.seed,
                      temperature=getattr(cfg.agent.config, "temperature", 1.0), gold_fn=make_gold(cfg, env))
    console = Console(highlight=False)
    table = Table(title=f"{cfg.agent.algo} on {cfg.env.task}: {label}, {n} held-out prompts")
    for k in RESULT_KEYS:
        table.add_column(k, justify="right", min_width=len(k))
    table.add_row(*(f"{result[k]:.4f}" for k in RESULT_KEYS))
    console.print(table)
    if args.samples:
        samples = Table(title="samples (prompt | continuation | gold | rm)")
        for col in ("prompt", "continuation", "gold", "rm"):
            samples.add_column(col, justify="right" if col in ("gold", "rm") else "left")
        for s in result["samples"][: args.samples]:
            samples.add_row(s["prompt"], s["completion"], f"{s['gold']:+.3f}", f"{s['rm']:+.3f}")
        console.print(samples)
    console.print(result_line(result), soft_wrap=True)
    return 0
