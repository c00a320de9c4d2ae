"""PPO's update from one rollout: the current forward against the one it replaced, on the same rollouts.

The task is ``bench_vs_trl.py``'s matched setting: the embedded sentiment env, tiny GPT-2, 64 completions of
at most 20 tokens per rollout, 4 epochs of minibatches of 16 (16 Adam steps per rollout). Each repeat collects
one rollout, then runs the update twice from the same weights, optimizer state and minibatch order:

* ``new``    — the update as shipped: at ``ent_coef == 0`` the entropy (only logged) is computed outside the
               autograd graph, and the model's ``gelu_new`` runs as PyTorch's fused kernel
               (``core.models.fuse_gelu``, applied by ``load_causal_lm``);
* ``legacy`` — the update as it was before: an entropy whose ``(n, T, V)`` intermediates are kept for a
               backward pass that multiplies them by 0, and GPT-2's seven-op Python ``gelu_new``.

The two orders alternate between repeats so that load changes hit both. The collect time is printed too, to
show the update's share of a training batch. ``--profile`` adds a torch profiler table of one new update.

    python scripts/bench_update.py --repeats 5
    python scripts/bench_update.py --repeats 1 --profile

Last line: ``RESULT update_ratio=<new/legacy seconds, median of per-repeat ratios> new_s=… legacy_s=…
collect_s=… update_share=<new update / (collect + new update)> max_param_diff=…``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch
from transformers.activations import NewGELUActivation

import rlhf_gym  # noqa: F401  (registers the envs)
from rlhf_gym.agents import PPO


class LegacyPPO(PPO):
    """PPO with the update's forward as it was before (the reference, kept here only)."""

    def _setup(self) -> None:
        super()._setup()
        for module in list(self.policy.modules()):
            for name, child in module.named_children():
                if isinstance(child, torch.nn.GELU):
                    setattr(module, name, NewGELUActivation())

    def evaluate_actions(self, mb, with_entropy=True):
        logits, values = self.policy(mb.input_ids, mb.attention_mask, mb.n_tokens)
        if self.config.temperature != 1.0:
            logits = logits / self.config.temperature
        logp_all = logits.log_softmax(-1)
        logp = logp_all.gather(-1, mb.tokens[..., None]).squeeze(-1)
        if not with_entropy:
            return logp, None, values
        entropy = -(logp_all.exp() * logp_all.clamp(min=torch.finfo(logp_all.dtype).min)).sum(-1)
        return logp, entropy, values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rollouts, each updated by both variants")
    p.add_argument("--batch-size", type=int, default=64, help="completions per rollout")
    p.add_argument("--minibatch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="print a torch profiler table of one new update")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1 or args.minibatch_size < 1 or args.epochs < 1:
        p.error("--repeats, --batch-size, --minibatch-size and --epochs must be >= 1")
    if args.batch_size % args.minibatch_size:
        p.error(f"--minibatch-size {args.minibatch_size} must divide --batch-size {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=args.batch_size, beta=0.05,
                       max_new_tokens=args.max_new_tokens)
    kw = dict(learning_rate=1e-4, minibatch_size=args.minibatch_size, n_epochs=args.epochs, max_grad_norm=1.0,
              seed=args.seed)
    agent = PPO(env, **kw)
    legacy = LegacyPPO(env, **kw)  # every update of either starts from a snapshot of `agent`'s weights
    print(f"PPO update: {args.batch_size} completions x <= {args.max_new_tokens} tokens, {args.epochs} epochs of "
          f"minibatches of {args.minibatch_size}; {args.repeats} repeat(s), {torch.get_num_threads()} thread(s)")

    times: dict[str, list[float]] = {"new": [], "legacy": [], "collect": []}
    max_diff = 0.0
    for i in range(args.repeats):
        start = time.perf_counter()
        buffer, _ = agent.collect()
        agent.compute_advantages(buffer)
        times["collect"].append(time.perf_counter() - start)
        weights = {k: v.clone() for k, v in agent.policy.state_dict().items()}
        optim = agent.optimizer.state_dict()
        shuffle = agent._shuffle_gen.get_state()
        results = {}
        for name in ("new", "legacy") if i % 2 == 0 else ("legacy", "new"):
            runner = agent if name == "new" else legacy
            runner.policy.load_state_dict(weights)
            runner.optimizer.load_state_dict(optim)
            runner._shuffle_gen.set_state(shuffle)
            start = time.perf_counter()
            runner.update(buffer)
            times[name].append(time.perf_counter() - start)
            results[name] = {k: v.clone() for k, v in runner.policy.state_dict().items()}
        max_diff = max(max_diff, max(float((results["new"][k] - results["legacy"][k]).abs().max()) for k in weights))
        agent.policy.load_state_dict(results["new"])
        print(f"  repeat {i}: collect {times['collect'][-1]:.2f}s  update new {times['new'][-1]:.2f}s  "
              f"legacy {times['legacy'][-1]:.2f}s  ratio {times['new'][-1] / times['legacy'][-1]:.3f}", flush=True)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        buffer, _ = agent.collect()
        agent.compute_advantages(buffer)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            agent.update(buffer)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))

    new_s, legacy_s, collect_s = (statistics.median(times[k]) for k in ("new", "legacy", "collect"))
    ratio = statistics.median(n / t for n, t in zip(times["new"], times["legacy"]))
    share = new_s / (collect_s + new_s)
    print(f"\nmedians: collect {collect_s:.2f}s, update new {new_s:.2f}s, legacy {legacy_s:.2f}s; "
          f"update_ratio {ratio:.3f}; the update is {share:.0%} of a batch; largest parameter difference "
          f"after an update {max_diff:.2e}")
    print(f"RESULT update_ratio={ratio:.4f} new_s={new_s:.3f} legacy_s={legacy_s:.3f} collect_s={collect_s:.3f} "
          f"update_share={share:.3f} max_param_diff={max_diff:.2e} repeats={args.repeats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
