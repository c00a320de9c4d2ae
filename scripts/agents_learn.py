"""Short seeded runs of PPO, A2C, NLPO and stock SB3 PPO on the embedded sentiment task: does the gold score rise?

Each agent starts from the shipped tiny review GPT-2 and trains on ``rlhf_gym/Sentiment-v0`` (reward: VADER
gold score of the continuation, minus ``β·KL`` to the frozen reference, with an adaptive β aiming at a KL
budget per episode). Before and after, the mean gold score of sampled continuations (one per prompt,
temperature 1) of held-out ``embedded:eval`` prompts is measured with
:func:`rlhf_gym.agents.evaluation.evaluate`, together with the KL to the reference per episode.

    python scripts/agents_learn.py                 # one seed each, ~4-7 minutes on 2 CPU cores
    python scripts/agents_learn.py --seeds 3 --algos ppo,nlpo      # PPO vs NLPO, mean ± std over 3 seeds

The last line is ``RESULT ppo_gain=… a2c_gain=… nlpo_gain=… sb3_ppo_gain=… max_kl=… kl_target=…``
(gains: gold after − before on VADER's −1…1 scale, mean over seeds; ``max_kl``: the largest held-out KL
of any trained policy, nats per episode). NLPO is evaluated by sampling its LM without the mask, like the
others (the deployed model). Runs use one torch thread: the tiny model is faster so on a busy 2-core box.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rlhf_gym  # noqa: E402,F401  (registers the envs)
from rlhf_gym.agents import ALGORITHMS  # noqa: E402
from rlhf_gym.agents.evaluation import evaluate  # noqa: E402

ENV_ID = "rlhf_gym/Sentiment-v0"
#: Per-algorithm hyperparameters for the tiny embedded world (the rest are the config defaults).
HYPERPARAMS = {
    "ppo": dict(learning_rate=1e-4, minibatch_size=16, n_epochs=4),
    "a2c": dict(learning_rate=3e-4, minibatch_size=32),
    "nlpo": dict(learning_rate=1e-4, minibatch_size=16, n_epochs=4, mask_update_every=5),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default="ppo,a2c,nlpo,sb3_ppo", help="comma-separated: ppo, a2c, nlpo, sb3_ppo")
    p.add_argument("--seeds", type=int, default=1, help="seeds per algorithm (0, 1, ...)")
    p.add_argument("--timesteps", type=int, default=20_000, help="generated tokens per run")
    p.add_argument("--sb3-timesteps", type=int, default=6_144,
                   help="tokens for stock SB3 PPO (token-by-token, so slower per token than ours)")
    p.add_argument("--nlpo-min-tokens", type=int, default=None,
                   help="NLPO's min_tokens (default: the config's 100, RL4LMs' default)")
    p.add_argument("--batch-size", type=int, default=64, help="episodes per rollout")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--beta", type=float, default=0.1, help="initial KL coefficient β (stock SB3: fixed β)")
    p.add_argument("--kl-target", type=float, default=6.0, help="adaptive β's target KL per episode (nats)")
    p.add_argument("--kl-horizon", type=int, default=1_000,
                   help="adaptive β's horizon in episodes (TRL uses 10000 for long runs; a short run needs a short one)")
    p.add_argument("--eval-n", type=int, default=256, help="held-out prompts sampled before and after")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for the tiny model)")
    return p.parse_args(argv)


def make_env(args: argparse.Namespace):
    return gym.make_vec(ENV_ID, num_envs=args.batch_size, beta=args.beta, max_new_tokens=args.max_new_tokens)


def held_out(policy, env, args: argparse.Namespace, seed: int) -> dict:
    return evaluate(policy, env, prompts="embedded:eval", n=args.eval_n, seed=10_000 + seed)


def run_ours(algo: str, seed: int, args: argparse.Namespace) -> dict:
    env = make_env(args)
    extra = {"min_tokens": args.nlpo_min_tokens} if algo == "nlpo" and args.nlpo_min_tokens else {}
    agent = ALGORITHMS[algo](env, seed=seed, adaptive_kl_target=args.kl_target,
                                     adaptive_kl_horizon=args.kl_horizon, **HYPERPARAMS[algo], **extra)
    start = time.perf_counter()
    agent.learn(args.timesteps)
    seconds = time.perf_counter() - start
    last = agent.history[-1]
    return {"eval": held_out(agent, env, args, seed), "seconds": seconds, "train_kl": last["objective/kl"],
            "beta": agent.kl_controller.beta, "train_score": last["objective/scores"]}


def run_sb3(seed: int, args: argparse.Namespace) -> dict | None:
    try:
        from rlhf_gym.agents.sb3 import train_sb3
    except ImportError as e:
        print(f"sb3_ppo: rlhf_gym.agents.sb3 is not available ({e}); reporting nan")
        return None
    start = time.perf_counter()
    model = train_sb3(ENV_ID, "ppo", total_timesteps=args.sb3_timesteps, seed=seed,
                      env_kwargs={"max_new_tokens": args.max_new_tokens}, beta=args.beta)
    seconds = time.perf_counter() - start
    env = make_env(args)
    return {"eval": held_out(model.policy, env, args, seed), "seconds": seconds, "train_kl": float("nan"),
            "beta": args.beta, "train_score": float("nan")}


def fmt(values: list[float]) -> str:
    if not values:
        return "nan"
    if len(values) == 1:
        return f"{values[0]:+.3f}"
    return f"{statistics.mean(values):+.3f} ± {statistics.stdev(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = set(algos) - {*ALGORITHMS, "sb3_ppo"}
    if unknown:
        print(f"error: unknown algorithm(s) {sorted(unknown)}", file=sys.stderr)
        return 2
    env = make_env(args)
    before = {s: held_out(env.unwrapped.engine.ref, env, args, s) for s in range(args.seeds)}
    print(f"before training: gold {fmt([b['gold_reward'] for b in before.values()])} on {args.eval_n} held-out "
          f"prompts; β0={args.beta}, KL target {args.kl_target} nats/episode, {args.timesteps} tokens per run "
          f"(stock SB3 PPO: {args.sb3_timesteps}, fixed β)")
    header = f"{'algo':8} {'seed':>4} {'gold before':>11} {'gold after':>10} {'gain':>7} {'KL':>6} " \
             f"{'β end':>6} {'ppl':>6} {'dist-2':>6} {'secs':>6}"
    print(header)
    gains: dict[str, list[float]] = {a: [] for a in algos}
    kls: list[float] = []
    for algo in algos:
        for seed in range(args.seeds):
            out = run_sb3(seed, args) if algo == "sb3_ppo" else run_ours(algo, seed, args)
            if out is None:
                continue
            ev, b = out["eval"], before[seed]["gold_reward"]
            gains[algo].append(ev["gold_reward"] - b)
            kls.append(ev["kl"])
            print(f"{algo:8} {seed:>4} {b:>11.3f} {ev['gold_reward']:>10.3f} {ev['gold_reward'] - b:>+7.3f} "
                  f"{ev['kl']:>6.2f} {out['beta']:>6.3f} {ev['perplexity']:>6.1f} {ev['distinct_2']:>6.3f} "
                  f"{out['seconds']:>6.0f}", flush=True)
    print()
    for algo in algos:
        print(f"{algo:8} gain {fmt(gains[algo])} over {len(gains[algo])} seed(s)")
    mean = {a: statistics.mean(g) if g else math.nan for a, g in gains.items()}
    keys = ("ppo", "a2c", "nlpo", "sb3_ppo")
    result = " ".join(f"{k}_gain={mean.get(k, math.nan):.4f}" for k in keys)
    print(f"RESULT {result} max_kl={max(kls) if kls else math.nan:.4f} kl_target={args.kl_target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
