"""Peak memory of a rollout and of a PPO update against batch × length: it grows linearly in tokens.

For every (batch B, new tokens T) of the grid, one process measures

* ``rollout`` — one ``agent.collect()`` + ``compute_advantages``: KV-cached sampling, the teacher-forced log-prob/value pass, the
  reference log-probs and the reward call (``score_episodes``), GAE; the rollout buffer it returns included;
* ``update``  — one PPO update of that rollout (one epoch, one minibatch of all B episodes: forward,
  backward, Adam step), after a warm-up update so Adam's state already exists (it is a constant, not a
  per-token cost).

What is measured. On CPU: the peak of live bytes of torch tensors allocated during the call, from the
profiler's allocation events (``torch.profiler.profile(profile_memory=True)``; each event carries the CPU
allocator's running total of bytes allocated since profiling began). The model weights and anything
allocated before the call are excluded; memory outside torch's allocator (Python objects, tokenizers) is not
counted. On CUDA: ``torch.cuda.max_memory_allocated()`` above the allocation at the start of the call
(same code path, not run here).

Episodes run to exactly T tokens (the benchmark disables EOS), so a rollout generates ``tokens = B·T``
tokens (the agents' unit of timesteps) over ``B·(P + T)`` sequence positions, P being the batch's padded
prompt width. The script fits ``peak ≈ a + b·tokens`` by least squares and reports the slopes ``b`` (bytes
per generated token) and R², plus R² against sequence positions for comparison. The sequence buffer stores
each episode once, so its size per token is constant; a buffer of per-step observations (SB3 style) would
hold ``B·T·(P + T)`` ids and masks, growing with T².

    python scripts/bench_memory.py                          # embedded tiny GPT-2, CPU, 3 × 3 grid
    python scripts/bench_memory.py --device cuda --gpt2-124m

Ends with ``RESULT rollout_bytes_per_token=... update_bytes_per_token=... linear_r2=...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlhf_gym.agents import PPO
from rlhf_gym.envs import TextGenVecEnv


def collect_rollout(agent):
    """One rollout as ``learn()`` makes it: ``collect()`` then ``compute_advantages`` (the update's input)."""
    buffer, metrics = agent.collect()
    agent.compute_advantages(buffer)
    return buffer, metrics


def _cpu_peak_bytes(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Peak live bytes of torch CPU tensors allocated while ``fn`` runs (profiler allocation events)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    peak, stack = 0, list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            peak = max(peak, event.extra_fields.total_allocated)
    return peak, out


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> tuple[int, Any]:
    """``(peak bytes allocated by fn above what was allocated before it, fn's result)``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, out
    return _cpu_peak_bytes(fn)


def fit_line(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y ≈ a + b·x``: ``(a, b, R²)``."""
    b, a = np.polyfit(x, y, 1)
    residual = np.asarray(y) - (a + b * np.asarray(x))
    r2 = 1.0 - float((residual**2).sum()) / float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    return float(a), float(b), r2


def make_agent(model: Any, batch: int, length: int, device: torch.device) -> PPO:
    env = TextGenVecEnv(num_envs=batch, model=model, tokenizer="embedded", prompts="embedded:eval", reward="gold",
                        max_new_tokens=length, device=device)
    env.engine.eos = -1  # no EOS: every episode runs to exactly `length` tokens
    return PPO(env, seed=0, n_epochs=1, minibatch_size=batch)


def measure(model: Any, batch: int, length: int, device: torch.device) -> dict[str, float]:
    """One grid point: peak bytes of a rollout and of an update, and the token count."""
    agent = make_agent(model, batch, length, device)
    collect_rollout(agent)  # warm-up (lazy inits, allocator caches)
    rollout_peak, (buffer, _) = peak_bytes(lambda: collect_rollout(agent), device)
    agent.update(buffer)  # warm-up: creates Adam's state
    update_peak, _ = peak_bytes(lambda: agent.update(buffer), device)
    positions = batch * (buffer.prompt_ids.shape[1] + buffer.tokens.shape[1])
    return {"batch": batch, "length": length, "tokens": buffer.n_tokens, "positions": positions, "rollout": rollout_peak, "update": update_peak,
            "buffer": buffer.nbytes, "step_buffer": 2 * 8 * batch * length * (buffer.prompt_ids.shape[1] + length)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--gpt2-124m", action="store_true", help="a GPT-2 124M from its config (random weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model: Any = "embedded"
    if args.gpt2_124m:
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(vocab_size=1937, bos_token_id=0, eos_token_id=0)).eval().to(device)
    how = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "torch profiler CPU allocation events"
    print(f"peak bytes above the start of each call ({how}); tokens = batch × new tokens")
    print(f"{'batch':>5} {'new':>4} {'tokens':>7} {'positions':>9} {'rollout MB':>11} {'update MB':>10} {'buffer KB':>10} "
          f"{'per-step obs KB':>16}")
    rows = []
    for length in args.lengths:
        for batch in args.batches:
            r = measure(model, batch, length, device)
            rows.append(r)
            print(f"{batch:5d} {length:4d} {r['tokens']:7d} {r['positions']:9d} {r['rollout'] / 2**20:11.2f} {r['update'] / 2**20:10.2f} "
                  f"{r['buffer'] / 2**10:10.1f} {r['step_buffer'] / 2**10:16.1f}")
    tokens, positions = [r["tokens"] for r in rows], [r["positions"] for r in rows]
    fits = {k: fit_line(tokens, [r[k] for r in rows]) for k in ("rollout", "update", "buffer")}
    for k, (a, b, r2) in fits.items():
        per_token = [r[k] / r["tokens"] for r in rows]
        r2_positions = fit_line(positions, [r[k] for r in rows])[2]
        print(f"{k:8s}: peak ≈ {a / 2**20:6.2f} MB + {b:6.0f} B/token  R² = {r2:.4f} (vs positions: {r2_positions:.4f})  "
              f"peak/token from {min(per_token):.0f} to {max(per_token):.0f} B (max/min {max(per_token) / min(per_token):.2f})")
    big = max(rows, key=lambda r: r["tokens"])
    print(f"largest point: the sequence buffer holds {big['buffer'] / 2**10:.0f} KB; per-step observations of the "
          f"same episodes would hold {big['step_buffer'] / 2**10:.0f} KB ({big['step_buffer'] / big['buffer']:.1f}×)")
    print(f"RESULT rollout_bytes_per_token={fits['rollout'][1]:.0f} update_bytes_per_token={fits['update'][1]:.0f} "
          f"buffer_bytes_per_token={fits['buffer'][1]:.1f} rollout_r2={fits['rollout'][2]:.4f} "
          f"update_r2={fits['update'][2]:.4f} linear_r2={min(f[2] for f in fits.values()):.4f}")


if __name__ == "__main__":
    main()
