"""LoRA against full fine-tuning: memory held for training, peak memory of an update, and speed.

Both agents are PPO on the embedded sentiment env with the same batch, length and seed; the LoRA one uses
``lora={"r": R, "alpha": 2R}`` (peft, GPT-2's default target ``c_attn``), whose reference is the adapter-
disabled base rather than a second copy. For each, in one process:

* **state** — bytes that stay allocated for training, counted from the tensors themselves: model weights
  (unique storages of the policy, the value head and the env's reference model), gradients of the trainable
  parameters, and Adam's state after a step;
* **peak update** — peak bytes allocated during one PPO update (one epoch, one minibatch of the whole
  batch) on top of that state: activations, gradients and temporaries (the profiler method of
  ``bench_memory.py``; ``torch.cuda.max_memory_allocated`` on a GPU);
* **speed** — update tokens/s (PPO updates on one fixed rollout) and rollout tokens/s (sampling, log-prob
  pass, reference log-probs, reward), the two agents alternating for ``--repeats`` rounds; ratios are
  medians of per-round ratios.

    python scripts/bench_lora.py                         # embedded tiny GPT-2 (1M parameters)
    python scripts/bench_lora.py --gpt2-124m --repeats 2 # GPT-2 124M from its config (random weights)

Ends with ``RESULT state_ratio=<LoRA/full state bytes> peak_update_ratio=... update_speed_ratio=<LoRA/full
update tokens/s> rollout_speed_ratio=... trainable_fraction=...``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from bench_memory import collect_rollout, peak_bytes

from rlhf_gym.agents import PPO
from rlhf_gym.envs import TextGenVecEnv


def state_bytes(agent: PPO) -> dict[str, int]:
    """Bytes held for training: unique weight storages (policy, value head, reference), grads, Adam state."""
    modules = [agent.policy, agent.env.unwrapped.engine.ref]
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes()
                for m in modules for p in m.parameters()}
    trainable = sum(p.numel() * p.element_size() for p in agent.params)
    adam = sum(t.numel() * t.element_size() for s in agent.optimizer.state.values() for t in s.values()
               if torch.is_tensor(t) and t.dim() > 0)
    weights = sum(storages.values())
    return {"weights": weights, "trainable": trainable, "grads": trainable, "adam": adam,
            "total": weights + trainable + adam}


def build(model_fn: Any, lora: dict | None, args: argparse.Namespace, device: torch.device) -> PPO:
    env = TextGenVecEnv(num_envs=args.batch, model=model_fn(), tokenizer="embedded", prompts="embedded:eval",
                        reward="gold", max_new_tokens=args.length, device=device)
    env.engine.eos = -1  # no EOS: every episode has exactly `length` tokens, the same work for both agents
    return PPO(env, lora=lora, seed=0, n_epochs=1, minibatch_size=args.batch, learning_rate=1e-5)


def timed(fn: Any, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpt2-124m", action="store_true", help="GPT-2 124M built from GPT2Config() (random weights)")
    ap.add_argument("--rank", type=int, default=8, help="LoRA rank r (alpha = 2r)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def model_fn() -> Any:
        if not args.gpt2_124m:
            return "embedded"
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config()).eval().to(device)

    agents = {"full": build(model_fn, None, args, device),
              "lora": build(model_fn, {"r": args.rank, "alpha": 2 * args.rank}, args, device)}
    buffers, state, peak = {}, {}, {}
    for name, agent in agents.items():
        buffers[name] = collect_rollout(agent)[0]
        agent.update(buffers[name])  # warm-up; Adam's state now exists
        state[name] = state_bytes(agent)
        peak[name] = peak_bytes(lambda a=agent, b=buffers[name]: a.train(b), device)[0]

    n_tokens = args.batch * args.length
    update: dict[str, list[float]] = {name: [] for name in agents}
    rollout: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(args.repeats):
        for name, agent in agents.items():
            update[name].append(n_tokens / timed(lambda a=agent, b=buffers[name]: a.train(b), device))
            rollout[name].append(n_tokens / timed(lambda a=agent: collect_rollout(a), device))

    n_params = sum(p.numel() for p in agents["full"].policy.lm.parameters())
    print(f"PPO, {n_params / 1e6:.1f}M-parameter GPT-2 on {device}, batch {args.batch} × {args.length} tokens, "
          f"LoRA r={args.rank} on c_attn, {args.repeats} alternating rounds, {torch.get_num_threads()} thread(s)")
    mb = 2**20
    print(f"{'':6}{'weights MB':>11}{'trainable MB':>13}{'grads MB':>9}{'Adam MB':>8}{'state MB':>9}"
          f"{'peak update MB':>15}{'update tok/s':>13}{'rollout tok/s':>14}")
    for name in agents:
        s = state[name]
        print(f"{name:6}{s['weights'] / mb:11.2f}{s['trainable'] / mb:13.3f}{s['grads'] / mb:9.3f}{s['adam'] / mb:8.3f}"
              f"{s['total'] / mb:9.2f}{peak[name] / mb:15.2f}{statistics.median(update[name]):13.0f}"
              f"{statistics.median(rollout[name]):14.0f}")
    update_ratio = statistics.median(lo / fu for lo, fu in zip(update["lora"], update["full"]))
    rollout_ratio = statistics.median(lo / fu for lo, fu in zip(rollout["lora"], rollout["full"]))
    print(f"RESULT state_ratio={state['lora']['total'] / state['full']['total']:.3f} "
          f"peak_update_ratio={peak['lora'] / peak['full']:.3f} update_speed_ratio={update_ratio:.3f} "
          f"rollout_speed_ratio={rollout_ratio:.3f} "
          f"trainable_fraction={state['lora']['trainable'] / state['full']['trainable']:.5f} "
          f"full_state_mb={state['full']['total'] / mb:.2f} lora_state_mb={state['lora']['total'] / mb:.2f}")


if __name__ == "__main__":
    main()
