"""Data-parallel PPO throughput: N ranks (torch.distributed, gloo on CPU / NCCL on GPU) against one process.

Every configuration runs in fresh processes spawned by this script (``torch.multiprocessing``), trains
data-parallel PPO (:mod:`rlhf_gym.agents.distributed`) on the embedded sentiment env with the same per-rank
batch, and reports **global** training throughput: generated tokens of all ranks per second of wall clock,
rollouts and updates included, after one warm-up rollout. Configurations:

* ``1 rank × T threads`` — the single-process baseline (T = ``--threads``);
* ``N ranks × T threads`` — data-parallel, each rank with its own batch of episodes;
* with ``--same-cores``, ``1 rank × N·T threads`` — one process given the same cores. On a CPU shared with
  other jobs this one suffers most: a parallel region waits for its slowest thread, and a thread whose core
  another process holds stalls all of them.

Configurations alternate for ``--repeats`` rounds so that changes in machine load hit them alike; the ratios
are medians of per-round ratios. On a GPU machine pass ``--device cuda`` (one GPU per rank).

Wall-clock ratios on a machine shared with other jobs are noisy: a rank whose core is taken stalls every
rank at the next all-reduce. ``cpu_overhead`` is steadier: CPU seconds per token summed over all ranks,
N ranks ÷ 1 rank (process CPU time does not count time spent descheduled). 1.0 means data parallelism costs
no extra work, so on idle dedicated cores the speedup would approach ``N / cpu_overhead``.

Where the multi-rank time goes: ``sync_share`` is the fraction of rank 0's wall clock spent in the gradient
all-reduce, waiting for the slower rank included; ``allreduce_ms`` is one step's all-reduce alone, timed right
after a barrier (the pure communication cost).

    python scripts/bench_ddp.py                     # 2 ranks vs 1 process, CPU, embedded tiny GPT-2

Ends with ``RESULT speedup=<N ranks / 1 rank, same threads per process> efficiency=<speedup / N>
...`` (plus ``speedup_same_cores`` with ``--same-cores``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, threads: int, args: dict, out: str) -> None:
    from rlhf_gym.agents import PPO
    from rlhf_gym.agents.distributed import with_data_parallel
    from rlhf_gym.envs import TextGenVecEnv

    class TimedPPO(with_data_parallel(PPO)):
        """Data-parallel PPO that clocks its gradient all-reduce (waiting for the other ranks included)."""

        sync_seconds = sync_cpu_seconds = 0.0

        def reduce_gradients(self) -> None:
            start, cpu_start = time.perf_counter(), time.process_time()
            super().reduce_gradients()
            self.sync_seconds += time.perf_counter() - start
            self.sync_cpu_seconds += time.process_time() - cpu_start

    torch.set_num_threads(threads)
    backend = "nccl" if args["device"] == "cuda" else "gloo"
    device = f"cuda:{rank}" if args["device"] == "cuda" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{out}.rdzv", rank=rank, world_size=world)
    try:
        env = TextGenVecEnv(num_envs=args["batch"], prompts="embedded:train", reward="gold",
                            max_new_tokens=args["length"], device=device)
        agent = TimedPPO(env, seed=0, n_epochs=args["epochs"], minibatch_size=args["minibatch"])
        per_rollout = world * args["batch"] * args["length"]
        agent.learn(per_rollout)  # warm-up: one rollout and update
        dist.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
        before, agent.sync_seconds, agent.sync_cpu_seconds = agent.num_timesteps, 0.0, 0.0
        agent.learn(args["rollouts"] * per_rollout)
        cpu = torch.tensor([time.process_time() - cpu_start, agent.sync_cpu_seconds], dtype=torch.float64)
        dist.all_reduce(cpu)  # CPU seconds of all ranks: in total, and inside the all-reduce
        elapsed = time.perf_counter() - start
        comm = []
        for _ in range(5):  # one step's gradient all-reduce on its own, after a barrier
            for p in agent.params:
                p.grad = torch.zeros_like(p)
            dist.barrier()
            comm.append(-time.perf_counter())
            agent.reduce_gradients()
            comm[-1] += time.perf_counter()
        if rank == 0:
            Path(out).write_text(json.dumps({"tokens": agent.num_timesteps - before, "seconds": elapsed,
                                             "cpu_seconds": float(cpu[0]), "sync_cpu_share": float(cpu[1] / cpu[0]),
                                             "sync_share": agent.sync_seconds / elapsed,
                                             "allreduce_ms": 1e3 * statistics.median(comm)}))
    finally:
        dist.destroy_process_group()


def run_config(world: int, threads: int, args: dict) -> dict[str, float]:
    """Global tokens per second of one configuration, in fresh processes, and its all-reduce profile."""
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/result.json"
        mp.spawn(_worker, args=(world, threads, args, out), nprocs=world)
        result = json.loads(Path(out).read_text())
    return {"tps": result["tokens"] / result["seconds"], "cpu_per_token": result["cpu_seconds"] / result["tokens"],
            "sync_share": result["sync_share"], "sync_cpu_share": result["sync_cpu_share"],
            "allreduce_ms": result["allreduce_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--batch", type=int, default=16, help="episodes per rank per rollout")
    ap.add_argument("--length", type=int, default=24, help="max new tokens per episode")
    ap.add_argument("--minibatch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rollouts", type=int, default=4, help="timed rollouts per measurement (about)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--same-cores", action="store_true", help="also time 1 process with ranks × threads threads")
    args = ap.parse_args()
    cfg = {k: getattr(args, k) for k in ("batch", "length", "minibatch", "epochs", "rollouts", "device")}
    n, t = args.ranks, args.threads
    configs = {"1 rank": (1, t), f"{n} ranks": (n, t)}
    if args.same_cores:
        configs[f"1 rank × {n * t} threads"] = (1, n * t)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, (world, threads) in configs.items():
            runs[name].append(run_config(world, threads, cfg))
    times = {name: [r["tps"] for r in rs] for name, rs in runs.items()}
    print(f"PPO on the embedded env, {args.device}: {args.batch} episodes × ≤{args.length} tokens per rank per rollout, "
          f"{args.epochs} epochs, minibatch {args.minibatch}; {args.repeats} alternating rounds; global tokens/s:")
    for name, tps in times.items():
        threads = configs[name][1]
        print(f"  {name:<22} ({threads} thread{'s' if threads > 1 else ''} per rank): median {statistics.median(tps):7.0f}"
              f"   rounds {', '.join(f'{x:.0f}' for x in tps)}")
    speedup = statistics.median(b / a for a, b in zip(times["1 rank"], times[f"{n} ranks"]))
    cpu_overhead = statistics.median(b["cpu_per_token"] / a["cpu_per_token"]
                                     for a, b in zip(runs["1 rank"], runs[f"{n} ranks"]))
    print(f"  CPU seconds per token, all ranks together: {n} ranks / 1 rank = {cpu_overhead:.3f} "
          f"(dedicated idle cores would give a speedup of about {n / cpu_overhead:.2f})")
    sync = statistics.median(r["sync_share"] for r in runs[f"{n} ranks"])
    sync_cpu = statistics.median(r["sync_cpu_share"] for r in runs[f"{n} ranks"])
    comm = statistics.median(r["allreduce_ms"] for r in runs[f"{n} ranks"])
    print(f"  {n} ranks: {100 * sync:.1f}% of wall clock in the gradient all-reduce (waiting included); "
          f"one step's all-reduce alone: {comm:.1f} ms; {100 * sync_cpu:.1f}% of all ranks' CPU time is spent "
          "inside the all-reduce")
    line = (f"RESULT speedup={speedup:.3f} efficiency={speedup / n:.3f} cpu_overhead={cpu_overhead:.3f} "
            f"projected_speedup={n / cpu_overhead:.3f} sync_share={sync:.3f} sync_cpu_share={sync_cpu:.3f} allreduce_ms={comm:.2f}")
    if args.same_cores:
        same = statistics.median(b / a for a, b in zip(times[f"1 rank × {n * t} threads"], times[f"{n} ranks"]))
        line += f" speedup_same_cores={same:.3f}"
    print(line + f" ranks={n} tokens_per_s_1rank={statistics.median(times['1 rank']):.0f} "
          f"tokens_per_s_{n}ranks={statistics.median(times[f'{n} ranks']):.0f}")


if __name__ == "__main__":
    main()
