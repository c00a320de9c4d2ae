"""The training rollout with the current sampler and reference pass against an earlier revision's, in one process.

The rollout is ``scripts/bench_rollout.py``'s ``useful`` one: ``--episodes`` prompts (default 4 x batch) through
``--batch`` rows with continuous batching, EOS on, then the reference log-probs and the reward
(``score_episodes``). ``core/sampler.py`` and ``core/generation.py`` at ``--against`` (a git revision, default
1834f84: before the packed reference pass and the refill that no longer sits a decode step out) are loaded
beside the current ones; the earlier side samples with the earlier ``sample`` (calling the earlier
``generation`` helpers, such as ``cached_forward``) and scores with the earlier ``token_logprobs``. Both sides
draw with the same uniforms, so they must give the same tokens (checked), and the two sides alternate repeat by
repeat.

    python scripts/bench_sampler.py --batch 32 --repeats 7
    python scripts/bench_sampler.py --batch 128 --against main~3
    python scripts/bench_sampler.py --gpt2-124m --episodes 32 --repeats 3   # GPT-2's shape, random weights

Last line: ``RESULT rollout_ratio=<earlier time / current time of the whole rollout> sample_ratio=… score_ratio=…
same_tokens=… against=…`` (each the median of per-repeat ratios; above 1 means the current code is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from revision import load_at, use_helpers
from transformers import GPT2Config, GPT2LMHeadModel

import rlhf_gym.core.generation as generation
import rlhf_gym.core.sampler as sampler
import rlhf_gym.envs.engine as engine
from rlhf_gym.envs import TextGenVecEnv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpt2-124m", action="store_true", help="a GPT-2 124M built from its config (random weights) "
                   "instead of the embedded tiny GPT-2")
    p.add_argument("--batch", type=int, default=32, help="rows sampled together (slots)")
    p.add_argument("--length", type=int, default=32, help="new tokens per episode at most")
    p.add_argument("--episodes", type=int, help="episodes per rollout (default 4 x batch)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--against", default="1834f84", help="git revision whose sampler and reference pass to compare against")
    args = p.parse_args(argv)
    if min(args.batch, args.length, args.repeats, args.threads) < 1 or (args.episodes is not None and args.episodes < 1):
        p.error("--batch, --length, --episodes, --repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    earlier_generation = load_at(args.against, "rlhf_gym/core/generation.py", "bench_sampler.py")
    earlier_sampler = load_at(args.against, "rlhf_gym/core/sampler.py", "bench_sampler.py")
    use_helpers(earlier_sampler, generation, earlier_generation)  # e.g. its cached_forward, not today's
    sides = {"current": (sampler.sample, generation.token_logprobs),
             "earlier": (earlier_sampler.sample, earlier_generation.token_logprobs)}
    model = GPT2LMHeadModel(GPT2Config()).eval() if args.gpt2_124m else "embedded"
    env = TextGenVecEnv(num_envs=args.batch, model=model, tokenizer="embedded" if args.gpt2_124m else None,
                        prompts="embedded:eval", reward="gold", max_new_tokens=args.length)
    env.reset(seed=0)
    e, n = env.engine, args.episodes or 4 * args.batch
    ids, mask, idx = env.sample_prompts(n)
    uniforms = torch.rand(n, args.length, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def rollout(name: str) -> tuple[float, float, torch.Tensor]:
        sample, token_logprobs = sides[name]
        engine.token_logprobs = token_logprobs  # what score_episodes calls for the reference log-probs
        start = time.perf_counter()
        out = sample(e.ref, ids, mask, max_new_tokens=args.length, eos_token_id=e.eos, pad_token_id=e.pad,
                     uniforms=uniforms, slots=args.batch)
        sampled = time.perf_counter()
        env.score_episodes(ids, mask, out.tokens, out.mask, idx, logprobs=out.logprobs)
        return sampled - start, time.perf_counter() - sampled, out.tokens

    times: dict[str, list[tuple[float, float]]] = {"current": [], "earlier": []}
    same = True
    for repeat in range(args.repeats + 1):  # the first round warms up both
        tokens = {}
        for name in times:
            sample_s, score_s, tokens[name] = rollout(name)
            if repeat:
                times[name].append((sample_s, score_s))
        same = same and torch.equal(tokens["current"], tokens["earlier"])
    engine.token_logprobs = generation.token_logprobs

    def ratio(part) -> float:
        return statistics.median(part(o) / part(c) for c, o in zip(times["current"], times["earlier"]))

    rollout_ratio, sample_ratio, score_ratio = ratio(sum), ratio(lambda t: t[0]), ratio(lambda t: t[1])
    cur, old = (statistics.median(sum(t) for t in times[k]) for k in ("current", "earlier"))
    print(f"{n} episodes through {args.batch} rows, up to {args.length} new tokens, {args.repeats} repeats: "
          f"current {cur:.3f} s, at {args.against} {old:.3f} s per rollout; same tokens: {'yes' if same else 'NO'}")
    print(f"RESULT rollout_ratio={rollout_ratio:.3f} sample_ratio={sample_ratio:.3f} score_ratio={score_ratio:.3f} "
          f"same_tokens={int(same)} against={args.against}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
