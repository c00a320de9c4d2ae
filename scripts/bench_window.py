"""Stepping the vector env with the current sliding window against the window of an earlier revision, in one process.

``core/window.py`` at ``--against`` (a git revision, default 04b0943: the ``DynamicCache`` window that
concatenates the cache every token) is loaded beside the current one, calling that revision's ``generation``
helpers (its ``cached_forward``), and the env's reference window and the agent's policy window alternate between
the two, repeat by repeat, on the same model and prompts. Each repeat
steps the ``make_vec`` env with our PPO agent (``agent.predict`` with its KV-cached stepper) until batch x
length tokens were generated, EOS on, as ``scripts/bench_rollout.py``'s ``tokens`` row does.

    python scripts/bench_window.py --batch 32 --repeats 7
    python scripts/bench_window.py --batch 128 --against main~3
    python scripts/bench_window.py --gpt2-124m --repeats 3            # GPT-2's shape, random weights

Last line: ``RESULT window_ratio=<current/earlier tokens/s, median of per-repeat ratios> current_tokens_per_s=…
earlier_tokens_per_s=… against=…``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from revision import load_at, use_helpers
from transformers import GPT2Config, GPT2LMHeadModel

import rlhf_gym.agents.stepping as stepping
import rlhf_gym.core.generation as generation
import rlhf_gym.core.window as current
from rlhf_gym.agents import PPO
from rlhf_gym.envs import TextGenVecEnv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpt2-124m", action="store_true", help="a GPT-2 124M built from its config (random weights) "
                   "instead of the embedded tiny GPT-2")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=32, help="new tokens per episode at most")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--against", default="04b0943", help="git revision whose window to compare against")
    args = p.parse_args(argv)
    if min(args.batch, args.length, args.repeats, args.threads) < 1:
        p.error("--batch, --length, --repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    earlier = load_at(args.against, "rlhf_gym/core/window.py", "bench_window.py")
    use_helpers(earlier, generation, load_at(args.against, "rlhf_gym/core/generation.py", "bench_window.py"))
    model = GPT2LMHeadModel(GPT2Config()).eval() if args.gpt2_124m else "embedded"
    env = TextGenVecEnv(num_envs=args.batch, model=model, tokenizer="embedded" if args.gpt2_124m else None,
                        prompts="embedded:eval", reward="gold", max_new_tokens=args.length)
    env.reset(seed=0)
    agent = PPO(env, policy=env.engine.ref, seed=0)  # the same weights act, through their own window

    def steps() -> int:
        obs, _ = env.reset(seed=1)
        state, starts, made = agent.stepper(), np.ones(args.batch, dtype=bool), 0
        while made < args.batch * args.length:
            actions, state = agent.predict(obs, state=state, episode_start=starts)
            obs, _, terminated, _, info = env.step(actions, logprobs=state.last_logprobs)
            made += int(info.get("_ref_logprob", np.zeros(1, dtype=bool)).sum())
            starts = state.starts_after(terminated)
        return made

    rates: dict[str, list[float]] = {"current": [], "earlier": []}
    for repeat in range(args.repeats + 1):  # the first round warms up both
        for name, module in (("current", current), ("earlier", earlier)):
            stepping.SlidingWindowLM = module.SlidingWindowLM  # the agent's stepper builds its window from this
            w = env.engine.window
            env.engine.window = module.SlidingWindowLM(w.model, w.n, w.width, w.pad)
            start = time.perf_counter()
            made = steps()
            if repeat:
                rates[name].append(made / (time.perf_counter() - start))
    stepping.SlidingWindowLM = current.SlidingWindowLM
    ratio = statistics.median(c / e for c, e in zip(rates["current"], rates["earlier"]))
    cur, old = statistics.median(rates["current"]), statistics.median(rates["earlier"])
    print(f"batch {args.batch}, {args.length} new tokens, {args.repeats} repeats: current window {cur:.0f} tokens/s, "
          f"window at {args.against} {old:.0f} tokens/s")
    print(f"RESULT window_ratio={ratio:.3f} current_tokens_per_s={cur:.0f} earlier_tokens_per_s={old:.0f} "
          f"against={args.against}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
