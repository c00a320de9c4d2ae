"""Rollout throughput: full batched episodes through the env vs raw ``model.generate``, one process.

Measured on the same model, batch and length (every sequence runs to exactly ``--length`` new tokens):

* ``ours``     — KV-cached sampling (``core.generation.sample``) + teacher-forced reference log-probs and
                 one reward call (``TextGenVecEnv.score_episodes``): a whole RLHF rollout;
* ``generate`` — ``model.generate(do_sample=True)``: sampling alone, no reference, no reward;
* ``naive``    — what a plain SB3-style loop does: re-encode the whole observation every token, no cache,
                 then ``env.step`` (measured on fewer batches: it is slow).

Prints tokens/s for each and ends with ``RESULT ratio=<ours/generate> naive_ratio=<naive/generate> ...``.

    python scripts/bench_rollout.py                       # embedded tiny GPT-2, CPU
    python scripts/bench_rollout.py --gpt2-124m --device cuda   # GPT-2-size model (random weights), GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_gym.core.generation import sample
from rlhf_gym.envs import TextGenVecEnv


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="model name or directory (default: embedded tiny GPT-2)")
    ap.add_argument("--gpt2-124m", action="store_true", help="use a GPT-2 124M built from its config (random weights)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32, help="new tokens per episode")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
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

    t_ours = timed(ours, args.repeats, device)
    t_gen = timed(generate, args.repeats, device)
    print(f"model: {sum(p.numel() for p in policy.parameters()) / 1e6:.1f}M params on {device}, batch {args.batch}, "
          f"{args.length} new tokens, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"ours (sample + ref log-probs + reward): {n_tokens / t_ours:10.0f} tokens/s")
    print(f"model.generate (sampling only):         {n_tokens / t_gen:10.0f} tokens/s")
    result = f"RESULT ratio={t_gen / t_ours:.3f}"
    if not args.skip_naive:
        t_naive = timed(naive, max(1, args.repeats // 3), device)
        print(f"naive per-token re-encode + env.step:   {n_tokens / t_naive:10.0f} tokens/s")
        result += f" naive_ratio={t_gen / t_naive:.3f}"
    print(result + f" ours_tokens_per_s={n_tokens / t_ours:.0f} generate_tokens_per_s={n_tokens / t_gen:.0f}")


if __name__ == "__main__":
    main()
