"""Short seeded runs of every algorithm on an embedded task: does the held-out gold score rise, and at what KL?

Each agent starts from the task's shipped tiny GPT-2 and trains on the task's Gymnasium id (reward: the
task's gold judge of the continuation, minus ``β·KL`` to the frozen reference where the algorithm pays it,
with an adaptive β aiming at a KL budget per episode for the KL-in-reward algorithms). Before and after,
the mean gold score of sampled continuations (one per prompt, temperature 1) of the task's held-out prompts
is measured with :func:`rlhf_gym.agents.evaluation.evaluate`, with the KL to the reference per episode.

    python scripts/agents_learn.py                                  # every algorithm, one seed, sentiment
    python scripts/agents_learn.py --task arithmetic --seeds 3      # the verifiable task, mean ± sd over 3 seeds
    python scripts/agents_learn.py --algos ppo,grpo,dpo             # a subset

``--algos all`` (the default) is every native algorithm of :data:`rlhf_gym.agents.ALGORITHMS` plus stock
SB3 PPO (``sb3_ppo``, sentiment only). Best-of-n trains nothing: it is evaluated as the policy that samples
``n`` and keeps the one the reward prefers, and its KL is the measured estimate (the analytic
``log n − (n−1)/n`` is printed beside it). DPO trains offline on preference pairs its simulated annotators
label (``data: simulated``); its ``timesteps`` count the completion tokens it trains on.

The last line is ``RESULT <name>_gain=… … max_kl=… kl_target=…`` (gains: gold after − before, mean over
seeds; ``max_kl``: the largest held-out KL of any trained policy, nats per episode). Runs use one torch
thread: the tiny models are faster so on a busy 2-core box.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rlhf_gym  # noqa: E402,F401  (registers the envs)
from rlhf_gym.agents import ALGORITHMS, algorithm_class  # noqa: E402
from rlhf_gym.agents.evaluation import evaluate  # noqa: E402
from rlhf_gym.tasks import get_task  # noqa: E402

#: Per-task settings: generated tokens per episode, initial β and the adaptive β's KL target, and a factor on
#: every learning rate (the arithmetic model is fragile: PPO at the sentiment rate drives its answers to
#: prompt-independent digits, see scripts/task_learning.py).
TASKS: dict[str, dict[str, Any]] = {
    "sentiment": dict(max_new_tokens=20, beta=0.1, kl_target=6.0, lr_scale=1.0),
    "arithmetic": dict(max_new_tokens=None, beta=0.05, kl_target=2.0, lr_scale=0.3),
}

#: Per-algorithm hyperparameters for the tiny embedded worlds (the rest are the config defaults), each measured
#: on the sentiment task over 3-5 seeds when the algorithm was added (notes in docs/agents.md).
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": dict(learning_rate=1e-4, minibatch_size=16, n_epochs=4),
    "a2c": dict(learning_rate=3e-4, minibatch_size=32),
    "nlpo": dict(learning_rate=1e-4, minibatch_size=16, n_epochs=4, mask_update_every=5),
    "grpo": dict(learning_rate=3e-4, samples_per_prompt=4, minibatch_size=16, n_epochs=2, kl_coef=0.3),
    "rloo": dict(learning_rate=3e-4, samples_per_prompt=4, minibatch_size=16, n_epochs=2),
    "reinforce_pp": dict(learning_rate=3e-4, minibatch_size=16, n_epochs=2),
    "bon": dict(n=16, kl_pool=64, batch_size=16),
    "raft": dict(learning_rate=1e-4, samples_per_prompt=4, minibatch_size=32, n_epochs=2),  # 2e-4: KL 32 at 20k tokens
    "dpo": dict(data="simulated", simulated_pairs=2000, learning_rate=1e-4, batch_size=64, minibatch_size=64, beta=0.1),
    "ipo": dict(data="simulated", simulated_pairs=2000, learning_rate=1e-4, batch_size=64, minibatch_size=64, beta=0.5),
    "online_dpo": dict(learning_rate=5e-4, batch_size=32, minibatch_size=32, beta=0.1),
}
#: ``--timesteps`` × this for algorithms whose timesteps are not generated tokens (DPO: completion tokens of the
#: pairs it trains on; 4 × 20k is about one pass over the 1800 training pairs).
TIMESTEP_SCALE = {"dpo": 4, "ipo": 4}
#: Algorithms whose KL term is not the env's adaptive one (no ``adaptive_kl_*`` fields are passed).
NO_ADAPTIVE_KL = {"bon", "raft", "dpo", "ipo", "online_dpo"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="sentiment", choices=sorted(TASKS), help="embedded task")
    p.add_argument("--algos", default="all", help="comma-separated registered names (and sb3_ppo), or 'all'")
    p.add_argument("--seeds", type=int, default=1, help="seeds per algorithm (0, 1, ...)")
    p.add_argument("--timesteps", type=int, default=20_000, help="generated tokens per run")
    p.add_argument("--sb3-timesteps", type=int, default=6_144,
                   help="tokens for stock SB3 PPO (token-by-token, so slower per token than ours)")
    p.add_argument("--batch-size", type=int, default=64, help="episodes per rollout")
    p.add_argument("--beta", type=float, default=None, help="initial KL coefficient β (default: the task's)")
    p.add_argument("--kl-target", type=float, default=None, help="adaptive β's KL target per episode (nats)")
    p.add_argument("--kl-horizon", type=int, default=1_000,
                   help="adaptive β's horizon in episodes (TRL uses 10000 for long runs; a short run needs a short one)")
    p.add_argument("--eval-n", type=int, default=256, help="held-out prompts sampled before and after")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for the tiny models)")
    args = p.parse_args(argv)
    task = TASKS[args.task]
    args.beta = task["beta"] if args.beta is None else args.beta
    args.kl_target = task["kl_target"] if args.kl_target is None else args.kl_target
    return args


def make_env(args: argparse.Namespace) -> Any:
    kwargs = {"max_new_tokens": TASKS[args.task]["max_new_tokens"]} if TASKS[args.task]["max_new_tokens"] else {}
    return gym.make_vec(get_task(args.task).env_id, num_envs=args.batch_size, beta=args.beta, **kwargs)


def held_out(policy: Any, env: Any, args: argparse.Namespace, seed: int) -> dict:
    return evaluate(policy, env, prompts=get_task(args.task).eval_prompts, n=args.eval_n, seed=10_000 + seed)


def hyperparams(algo: str, args: argparse.Namespace) -> dict[str, Any]:
    kw = dict(HYPERPARAMS.get(algo, {}))
    if "learning_rate" in kw:
        kw["learning_rate"] *= TASKS[args.task]["lr_scale"]
    if algo not in NO_ADAPTIVE_KL:
        kw.update(adaptive_kl_target=args.kl_target, adaptive_kl_horizon=args.kl_horizon)
    return kw


def run_ours(algo: str, seed: int, args: argparse.Namespace) -> dict:
    env = make_env(args)
    agent = algorithm_class(algo)(env, seed=seed, **hyperparams(algo, args))
    start = time.perf_counter()
    agent.learn(args.timesteps * TIMESTEP_SCALE.get(algo, 1))
    seconds = time.perf_counter() - start
    return {"eval": held_out(agent, env, args, seed), "seconds": seconds, "beta": agent.kl_controller.beta}


def run_sb3(seed: int, args: argparse.Namespace) -> dict | None:
    try:
        from rlhf_gym.agents.sb3 import train_sb3
    except ImportError as e:
        print(f"sb3_ppo: rlhf_gym.agents.sb3 is not available ({e}); reporting nan")
        return None
    start = time.perf_counter()
    model = train_sb3(get_task(args.task).env_id, "ppo", total_timesteps=args.sb3_timesteps, seed=seed,
                      env_kwargs={"max_new_tokens": TASKS[args.task]["max_new_tokens"]}, beta=args.beta)
    seconds = time.perf_counter() - start
    return {"eval": held_out(model.policy, make_env(args), args, seed), "seconds": seconds, "beta": args.beta}


def fmt(values: list[float]) -> str:
    if not values:
        return "nan"
    if len(values) == 1:
        return f"{values[0]:+.3f}"
    return f"{statistics.mean(values):+.3f} ± {statistics.stdev(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    native = [name for name, spec in ALGORITHMS.items() if spec.kind == "native"]
    algos = native + (["sb3_ppo"] if args.task == "sentiment" else []) if args.algos == "all" else \
        [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = sorted(set(algos) - {*native, "sb3_ppo"})
    if unknown:
        print(f"error: unknown algorithm(s) {unknown}; choose from {', '.join(native)}, sb3_ppo", file=sys.stderr)
        return 2
    env = make_env(args)
    before = {s: held_out(env.unwrapped.engine.ref, env, args, s) for s in range(args.seeds)}
    print(f"{args.task}: gold before training {fmt([b['gold_reward'] for b in before.values()])} on {args.eval_n} "
          f"held-out prompts; β0={args.beta}, KL target {args.kl_target} nats/episode, {args.timesteps} tokens "
          f"per run (stock SB3 PPO: {args.sb3_timesteps}, fixed β)")
    print(f"{'algo':12} {'seed':>4} {'gold before':>11} {'gold after':>10} {'gain':>7} {'KL':>6} "
          f"{'β end':>6} {'ppl':>6} {'dist-2':>6} {'secs':>6}")
    gains: dict[str, list[float]] = {a: [] for a in algos}
    kls: dict[str, list[float]] = {a: [] for a in algos}
    for algo in algos:
        for seed in range(args.seeds):
            out = run_sb3(seed, args) if algo == "sb3_ppo" else run_ours(algo, seed, args)
            if out is None:
                continue
            ev, b = out["eval"], before[seed]["gold_reward"]
            gains[algo].append(ev["gold_reward"] - b)
            kls[algo].append(ev["kl"])
            extra = f"  (analytic KL {ev['kl_analytic']:.2f})" if "kl_analytic" in ev else ""
            print(f"{algo:12} {seed:>4} {b:>11.3f} {ev['gold_reward']:>10.3f} {ev['gold_reward'] - b:>+7.3f} "
                  f"{ev['kl']:>6.2f} {out['beta']:>6.3f} {ev['perplexity']:>6.1f} {ev['distinct_2']:>6.3f} "
                  f"{out['seconds']:>6.0f}{extra}", flush=True)
    print()
    print(f"| algorithm | gold gain | KL (nats) |  ({args.task}, {args.seeds} seed(s), mean ± sd)")
    print("| --- | --- | --- |")
    for algo in algos:
        print(f"| {algo} | {fmt(gains[algo])} | {fmt(kls[algo]).lstrip('+')} |")
    mean = {a: statistics.mean(g) if g else math.nan for a, g in gains.items()}
    all_kls = [k for ks in kls.values() for k in ks]
    result = " ".join(f"{k}_gain={v:.4f}" for k, v in mean.items())
    print(f"RESULT {result} max_kl={max(all_kls) if all_kls else math.nan:.4f} kl_target={args.kl_target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
