"""``rlhf-gym demo``: a rollout and evaluation of the default environment on the embedded world."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rlhf_gym.core.generation import sample
from rlhf_gym.envs import TextGenVecEnv
from rlhf_gym.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the default environment on the embedded world and report what happened",
        description="Samples continuations of held-out review openings with the shipped tiny GPT-2, scores "
        "them through the batched environment (gold judge minus the KL penalty) and prints samples and "
        "figures. Runs offline in seconds. The last line is `RESULT key=value ...`.",
    )
    p.add_argument("--episodes", type=int, default=128, help="number of episodes to roll out (default 128)")
    p.add_argument("--batch-size", type=int, default=32, help="episodes per batch (default 32)")
    p.add_argument("--max-new-tokens", type=int, default=24, help="length cap of a continuation (default 24)")
    p.add_argument("--beta", type=float, default=0.05, help="KL coefficient β (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.batch_size < 1:
        raise ConfigError("--episodes and --batch-size must be >= 1")
    console = Console()
    torch.manual_seed(args.seed)
    env = TextGenVecEnv(num_envs=args.batch_size, prompts="embedded:eval", reward="gold", beta=args.beta,
                        max_new_tokens=args.max_new_tokens, seed=args.seed)
    env.reset(seed=args.seed)
    e, policy = env.engine, env.engine.ref  # the starting policy is the reference model itself
    n_params = sum(p.numel() for p in policy.parameters())
    console.print(f"[bold]rlhf-gym demo[/] — env rlhf_gym/Sentiment-v0, policy = reference = embedded tiny GPT-2 "
                  f"({n_params / 1e6:.2f}M parameters), reward = VADER gold judge − {args.beta}·KL")
    gen = torch.Generator().manual_seed(args.seed)
    scores, returns, lengths, samples = [], [], [], []
    tokens_total, start = 0, time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rolling out episodes", total=args.episodes)
        for done in range(0, args.episodes, args.batch_size):
            n = min(args.batch_size, args.episodes - done)
            ids, mask, idx = env.sample_prompts(n)
            out = sample(policy, ids, mask, max_new_tokens=args.max_new_tokens, eos_token_id=e.eos,
                         pad_token_id=e.pad, generator=gen)
            scored = env.score_episodes(ids, mask, out.tokens, out.mask, idx, logprobs=out.logprobs)
            scores += scored.scores.tolist()
            returns += scored.rewards.sum(1).tolist()
            lengths += out.mask.sum(1).tolist()
            tokens_total += int(out.mask.sum())
            samples += list(zip(scored.prompts, scored.completions, scored.scores.tolist()))
            progress.advance(task, n)
    elapsed = time.perf_counter() - start
    table = Table(title="sample continuations (prompt | continuation | gold)")
    table.add_column("prompt", style="cyan")
    table.add_column("continuation")
    table.add_column("gold", justify="right")
    for prompt, completion, score in samples[:8]:
        table.add_row(prompt, completion, f"{score:+.2f}")
    console.print(table)
    gold = float(np.mean(scores))
    console.print(f"{len(scores)} episodes, {tokens_total} tokens in {elapsed:.1f}s ({tokens_total / elapsed:.0f} "
                  f"tokens/s); mean gold score {gold:+.3f} (VADER, −1…1), mean return {np.mean(returns):+.3f}, "
                  f"mean length {np.mean(lengths):.1f} tokens")
    console.print(f"RESULT gold_reward={gold:.4f} mean_return={np.mean(returns):.4f} episodes={len(scores)} "
                  f"mean_length={np.mean(lengths):.2f} tokens_per_second={tokens_total / elapsed:.1f}",
                  soft_wrap=True, highlight=False)
    return 0
