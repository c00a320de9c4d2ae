"""``rlhf-gym train``: train an agent on an environment preset into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from rlhf_gym.agents.registry import ALGORITHMS
from rlhf_gym.runner.config import EnvConfig, RunConfig, describe

EPILOG = """\
examples:
  # PPO on the embedded sentiment world, rewarded by the gold judge (minutes on a laptop CPU)
  rlhf-gym train --env envs/sentiment.yaml --agent agents/ppo.yaml --out runs/ppo

  # override any field with --set SECTION.KEY=VALUE (values are YAML: 1e-5, null, true, [a, b])
  rlhf-gym train --env envs/sentiment.yaml --agent agents/a2c.yaml --out runs/a2c-b0.1 \\
      --set env.beta=0.1 --set agent.learning_rate=1e-5 --set run.total_timesteps=40000

  # GRPO (or rloo, reinforce_pp, raft, bon, dpo, ipo, online_dpo: agents/<algo>.yaml), same env, same metrics
  rlhf-gym train --env envs/arithmetic.yaml --agent agents/grpo.yaml --out runs/grpo-arith

  # train against a learned reward model, with PPO-ptx
  rlhf-gym train --env envs/sentiment-rm.yaml --agent agents/ppo.yaml --out runs/ppo-rm \\
      --set env.reward=runs/reward-model --set agent.ptx_coef=0.5

  # continue a run that was stopped or killed, exactly where its last checkpoint left it
  rlhf-gym train --out runs/ppo --resume

  # data-parallel on 8 GPUs of one machine: each rank samples env.num_envs episodes per rollout,
  # gradients are all-reduced, rank 0 writes the run directory (see README, "Multi-GPU")
  torchrun --nproc_per_node=8 -m rlhf_gym.cli train --env envs/sentiment.yaml --agent agents/ppo.yaml \\
      --out runs/ppo-8gpu

  # see the resolved config (every field, with its doc) without training
  rlhf-gym train --env envs/sentiment.yaml --agent agents/ppo.yaml --print-config

afterwards: rlhf-gym eval --run runs/ppo ; rlhf-gym report --run runs/ppo

env fields (env.KEY):
{env}

run fields (run.KEY, or a `run:` block in the agent preset):
{run}

agent.algo is one of: {algos}
agent fields (agent.KEY) depend on agent.algo: see --print-config, docs/agents.md or docs/runner.md.
"""


def add_wandb_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wandb", choices=("online", "offline", "disabled"), default=None,
                   help="mirror metrics to Weights & Biases (default: $WANDB_MODE, else online if an API key is "
                        "configured, else offline); never blocks on the network")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train an agent on an environment preset (resumable)",
        description="Builds the environment and the agent from YAML presets, trains, evaluates on held-out "
        "prompts and writes the run directory: config.yaml, metrics.jsonl, samples.jsonl, checkpoints/, "
        "result.json. The last line is `RESULT gold_reward=... rm_reward=... kl=... perplexity=... distinct_2=...`.",
        epilog=EPILOG.format(env=describe(EnvConfig), run=describe(RunConfig), algos=", ".join(ALGORITHMS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", metavar="FILE", help="environment preset, e.g. envs/sentiment.yaml")
    p.add_argument("--agent", metavar="FILE", help="agent preset, e.g. agents/ppo.yaml")
    p.add_argument("--out", metavar="DIR", help="run directory to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config field, e.g. env.beta=0.1 (repeatable)")
    add_wandb_flag(p)
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlhf_gym.core.dist import init_from_env

    if not init_from_env():  # torchrun / accelerate launch set WORLD_SIZE > 1
        return _run(args)
    import torch.distributed as dist

    try:
        return _run(args)
    finally:
        dist.destroy_process_group()


def _run(args: argparse.Namespace) -> int:
    from rlhf_gym.core.dist import is_main_process
    from rlhf_gym.errors import ConfigError
    from rlhf_gym.runner.config import dump_config, load_run_config
    from rlhf_gym.runner.rundir import prepare_run
    from rlhf_gym.runner.train import result_line, train

    console = Console(highlight=False)
    if args.print_config:
        if not (args.env and args.agent):
            raise ConfigError("--print-config needs --env FILE and --agent FILE")
        console.print(dump_config(load_run_config(args.env, args.agent, args.overrides)), end="", markup=False)
        return 0
    if not args.out:
        raise ConfigError("train needs --out DIR (the run directory)")
    out = Path(args.out)
    cfg = prepare_run(out, args.env, args.agent, args.overrides, args.resume)
    result = train(cfg, out, resume=args.resume, wandb_mode=args.wandb, console=Console(stderr=True),
                   progress=not args.no_progress)
    if not is_main_process():
        return 0
    console.print(f"run directory: {out}  ({result.steps} tokens, {result.updates} updates, "
                  f"{result.wall_time:.0f}s); next: rlhf-gym eval --run {out} / rlhf-gym report --run {out}")
    console.print(result_line(result.eval, wall_time=round(result.wall_time, 1)), soft_wrap=True)
    return 0
