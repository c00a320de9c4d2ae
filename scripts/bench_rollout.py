"""Rollout throughput: full batched episodes through the env vs raw ``model.generate``, one process.

Measured on the same model, batch and length (every sequence runs to exactly ``--length`` new tokens):

* ``ours``     — KV-cached sampling (``core.sampler.sample``) + teacher-forced reference log-probs and
                 one reward call (``TextGenVecEnv.score_episodes``): a whole RLHF rollout;
* ``generate`` — ``model.generate(do_sample=True)``: sampling alone, no reference, no reward;
* ``tokens``   — token-by-token stepping of the vector env driven by our PPO agent: the policy keeps its
                 own KV cache (``agent.predict(obs, state=agent.stepper())``) and the env keeps the
                 reference's, so every token costs two cached forwards and one ``env.step``;
* ``naive``    — what a plain SB3-style loop does: re-encode the whole observation every token, no cache,
                 then ``env.step`` (same number of repeats);
* ``useful``   — the rollout as training runs it, **EOS on**, with continuous batching: ``--episodes``
                 prompts (default 4 x batch) sampled through ``batch`` rows, a row that ends taking the next
                 prompt, then scored; only real tokens (the episodes' mask) count;
* ``fixed``    — the same with one fixed batch of ``batch`` prompts (rows that end ride along until the
                 longest ends, or leave the batch once no prompt is waiting);
* ``lean``     — the reference for ``useful``: a hand-written KV-cached sampling loop with EOS off (one cached
                 forward and one inverse-CDF draw per token, nothing else).

``useful_ratio`` = useful real tokens/s ÷ lean tokens/s (issue 15's target: >= 0.85); ``fixed_ratio`` the same
for ``fixed``. ``score_share`` is the fraction of the useful rollout's time spent scoring it (its reference
log-probs and reward, timed again on its samples) and ``sampler_ratio`` the useful rollout's sampling alone
against the lean loop: ``useful_ratio ≈ sampler_ratio × (1 − score_share)``, so a rollout that must score
its episodes cannot beat ``1 − score_share`` without a sampler faster than the lean loop.

Prints tokens/s for each and ends with
``RESULT ratio=<ours/generate> token_ratio=<tokens/generate> naive_ratio=<naive/generate> useful_ratio=... ...``.

    python scripts/bench_rollout.py                       # embedded tiny GPT-2, CPU
    python scripts/bench_rollout.py --gpt2-124m --device cuda   # GPT-2-size model (random weights), GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_gym.agents import PPO
from rlhf_gym.core.generation import cached_forward
from rlhf_gym.core.sampler import sample
from rlhf_gym.envs import TextGenVecEnv


def clock(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(fns: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Times each function ``repeats`` times, alternating between them after one warm-up each, so that a
    change in machine load hits all of them alike; ratios are then taken pair by pair."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(clock(fn, device))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="model name or directory (default: embedded tiny GPT-2)")
    ap.add_argument("--gpt2-124m", action="store_true", help="use a GPT-2 124M built from its config (random weights)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32, help="new tokens per episode")
    ap.add_argument("--episodes", type=int, help="episodes per continuous-batching rollout (default 4 x batch)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    if min(args.batch, args.length, args.repeats, args.threads) < 1 or (args.episodes is not None and args.episodes < 1):
        ap.error("--batch, --length, --episodes, --repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = args.model
    if args.gpt2_124m:
        model = GPT2LMHeadModel(GPT2Config()).eval()
    env = TextGenVecEnv(num_envs=args.batch, model=model, tokenizer=None if not args.gpt2_124m else "embedded",
                        prompts="embedded:eval", reward="gold", max_new_tokens=args.length, device=device)
    env.reset(seed=0)
    e = env.engine
    policy = e.ref  # same model: the comparison is about the machinery, not the weights
    ids, mask, idx = env.sample_prompts(args.batch)
    n_tokens = args.batch * args.length
    gen = torch.Generator(device=device).manual_seed(0)

    def ours():
        out = sample(policy, ids, mask, max_new_tokens=args.length, eos_token_id=-1, pad_token_id=e.pad,
                     generator=gen)
        env.score_episodes(ids, mask, out.tokens, out.mask, idx, logprobs=out.logprobs)

    def generate():
        with torch.no_grad():
            policy.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=args.length,
                            min_new_tokens=args.length, pad_token_id=e.pad, top_k=0, top_p=1.0)

    agent = PPO(env, policy=policy, seed=0)  # acts with the same weights, through its own KV cache
    step_tokens = {"n": 0}

    def tokens():  # step until batch x length tokens were generated (episodes end and restart on EOS)
        obs, _ = env.reset(seed=1)
        state, starts, made = agent.stepper(), np.ones(args.batch, dtype=bool), 0
        while made < n_tokens:
            actions, state = agent.predict(obs, state=state, episode_start=starts)
            obs, _, terminated, _, info = env.step(actions, logprobs=state.last_logprobs)
            made += int(info.get("_ref_logprob", np.zeros(1, dtype=bool)).sum())  # rows that stepped (none: all reset)
            starts = state.starts_after(terminated)
        step_tokens["n"] = made

    def naive():  # re-encode the whole window every step, then step the env token by token
        obs, _ = env.reset(seed=1)
        for _ in range(args.length):
            x = torch.as_tensor(obs["input_ids"], device=device)
            m = torch.as_tensor(obs["attention_mask"], device=device)
            with torch.no_grad():
                logits = policy(input_ids=x, attention_mask=m).logits[:, -1]
            actions = torch.multinomial(logits.softmax(-1), 1).squeeze(-1)
            actions[actions == e.eos] = e.pad + 1 if e.pad + 1 != e.eos else 1  # keep every row running
            obs, *_ = env.step(actions)

    n_episodes = args.episodes or 4 * args.batch
    many_ids, many_mask, many_idx = env.sample_prompts(n_episodes)
    real: dict[str, list[int]] = {"useful": [], "fixed": []}
    last = {}

    def rollout(name, prompt_ids, prompt_mask, prompt_idx):  # rows stop at EOS, as in training
        out = sample(policy, prompt_ids, prompt_mask, max_new_tokens=args.length, eos_token_id=e.eos,
                     pad_token_id=e.pad, generator=gen, slots=args.batch)
        env.score_episodes(prompt_ids, prompt_mask, out.tokens, out.mask, prompt_idx, logprobs=out.logprobs)
        real[name].append(int(out.mask.sum()))
        last[name] = out

    def scoring():  # the useful rollout's reference log-probs and reward alone (its last samples again)
        out = last["useful"]
        env.score_episodes(many_ids, many_mask, out.tokens, out.mask, many_idx, logprobs=out.logprobs)

    def useful():  # continuous batching: n_episodes prompts through `batch` rows
        rollout("useful", many_ids, many_mask, many_idx)

    def fixed():  # one fixed batch of `batch` prompts
        rollout("fixed", ids, mask, idx)

    def lean():  # one cached forward + one inverse-CDF draw per token, EOS off: the machine's sampling speed
        with torch.no_grad():
            positions = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: positions count real tokens only
            logits, cache = cached_forward(policy, ids, mask, positions)
            m, position = mask, positions[:, -1:]
            for _ in range(args.length):
                u = torch.rand(logits.shape[0], 1, generator=gen, device=device)
                probs = logits[:, -1].softmax(-1)
                token = torch.searchsorted(probs.cumsum(-1), u).clamp_max(probs.shape[-1] - 1)
                m, position = torch.cat([m, torch.ones_like(token)], dim=1), position + 1
                logits, cache = cached_forward(policy, token, m, position, cache)

    fns = {"ours": ours, "generate": generate, "tokens": tokens, "useful": useful, "scoring": scoring, "fixed": fixed,
           "lean": lean}
    if not args.skip_naive:
        fns["naive"] = naive
    times = interleaved(fns, args.repeats, device)
    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = statistics.median(g / o for g, o in zip(times["generate"], times["ours"]))
    print(f"model: {sum(p.numel() for p in policy.parameters()) / 1e6:.1f}M params on {device}, batch {args.batch}, "
          f"{args.length} new tokens, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats")
    print(f"ours (sample + ref log-probs + reward): {n_tokens / med['ours']:10.0f} tokens/s")
    print(f"model.generate (sampling only):         {n_tokens / med['generate']:10.0f} tokens/s")
    token_ratio = statistics.median(
        (step_tokens["n"] / t) / (n_tokens / g) for g, t in zip(times["generate"], times["tokens"]))
    print(f"agent stepping make_vec env per token:  {step_tokens['n'] / med['tokens']:10.0f} tokens/s")
    ratios = {}
    for name in ("useful", "fixed"):  # the warm-up call's token count is dropped, as its time is
        counts = real[name][1:]
        ratios[name] = statistics.median((k / u) / (n_tokens / lean_t)
                                         for k, u, lean_t in zip(counts, times[name], times["lean"]))
        episodes = n_episodes if name == "useful" else args.batch
        print(f"training rollout, EOS on, {name:6}:  {statistics.median(counts) / med[name]:10.0f} real tokens/s "
              f"({episodes} episodes, {statistics.median(counts) / (episodes * args.length):.0%} of their token "
              f"budget used)")
    print(f"lean KV-cached sampling loop, EOS off:  {n_tokens / med['lean']:10.0f} tokens/s")
    # What bounds useful_ratio: the scoring (reference forward + reward) that the lean loop does not do, and
    # the sampler's own speed against the lean loop once scoring is taken out.
    score_share = statistics.median(s / u for s, u in zip(times["scoring"], times["useful"]))
    sampler_ratio = statistics.median((k / (u - s)) / (n_tokens / lean_t) for k, u, s, lean_t in
                                      zip(real["useful"][1:], times["useful"], times["scoring"], times["lean"]))
    print(f"of the useful rollout: scoring (reference log-probs + reward) {score_share:.0%}, sampling at "
          f"{sampler_ratio:.2f}x the lean loop's real tokens/s")
    useful_ratio, fixed_ratio = ratios["useful"], ratios["fixed"]
    result = (f"RESULT ratio={ratio:.3f} token_ratio={token_ratio:.3f} useful_ratio={useful_ratio:.3f} "
              f"fixed_ratio={fixed_ratio:.3f} score_share={score_share:.3f} sampler_ratio={sampler_ratio:.3f}")
    if "naive" in times:
        print(f"naive per-token re-encode + env.step:   {n_tokens / med['naive']:10.0f} tokens/s")
        naive_ratio = statistics.median(g / n for g, n in zip(times["generate"], times["naive"]))
        result += f" naive_ratio={naive_ratio:.3f}"
    print(result + f" ours_tokens_per_s={n_tokens / med['ours']:.0f} generate_tokens_per_s={n_tokens / med['generate']:.0f}")

if __name__ == "__main__":
    main()
