"""How good is a reward model learned from simulated comparisons? simulate → train → evaluate, embedded world.

    python scripts/reward_quality.py            # about 5k comparisons at low noise; see --help

1. Simulate ``--n-comparisons`` comparisons of continuations of ``embedded:train`` prompts (sampled by the
   shipped tiny GPT-2 at several temperatures), labelled by low-noise Bradley–Terry annotators.
2. Simulate a held-out test set the same way from ``embedded:eval`` prompts (never seen in training).
3. Train a Bradley–Terry reward model (the tiny GPT-2 plus a score head) on the first 250, 1k, ... and all
   comparisons, and measure each on the test pairs — accuracy against the annotators' (noisy) labels and
   against the gold preference (the side with the higher gold score; pairs with equal gold scores are left
   out) — and on fresh texts: Spearman rank correlation of reward and gold score.

The last line is ``RESULT accuracy=<held-out pairwise accuracy vs the gold preference on fresh test pairs>
spearman=<rank correlation with the gold judge on fresh texts>`` for the model trained on all comparisons.
Targets: accuracy >= 0.85, spearman >= 0.8.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from rlhf_gym.rewards.agreement import fresh_texts, gold_agreement
from rlhf_gym.rewards.annotators import (
    CandidateGenerator,
    Simulation,
    SimulationConfig,
    parse_annotators,
    simulate_preferences,
)
from rlhf_gym.rewards.learned import LearnedReward
from rlhf_gym.rewards.rm_train import RewardModelConfig, evaluate_reward_model, train_reward_model
from rlhf_gym.runner import quiet_hf_progress


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example: python scripts/reward_quality.py --curve 250,1000 --n-comparisons 5000")
    p.add_argument("--n-comparisons", type=int, default=5000, help="training comparisons (default 5000)")
    p.add_argument("--curve", default="250,1000", help="smaller training-set sizes for the learning curve")
    p.add_argument("--n-test", type=int, default=1000, help="held-out test comparisons (default 1000)")
    p.add_argument("--n-fresh", type=int, default=1024, help="fresh texts for the Spearman correlation")
    p.add_argument("--annotators", default="3", help="annotator spec, see `rlhf-gym reward simulate --help`")
    p.add_argument("--temperature", type=float, default=0.05, help="annotator Bradley–Terry temperature")
    p.add_argument("--flip-rate", type=float, default=0.0, help="annotator flip rate")
    p.add_argument("--epochs", type=int, default=2, help="maximum reward-model epochs")
    p.add_argument("--lr", type=float, default=3e-4, help="reward-model learning rate")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per optimiser step")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: the tiny models gain little from more, and a shared machine stalls)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def accuracy_vs_gold(reward: LearnedReward, sim: Simulation) -> float:
    """Share of test pairs with different gold scores where the reward prefers the gold-better side."""
    rows = [r for r in sim.records if r["gold_chosen"] != r["gold_rejected"]]
    prompts = [r["prompt"] for r in rows]
    chosen = reward.score(prompts, [r["chosen"] for r in rows])
    rejected = reward.score(prompts, [r["rejected"] for r in rows])
    gold_sign = torch.tensor([1.0 if r["gold_chosen"] > r["gold_rejected"] else -1.0 for r in rows])
    d = (chosen - rejected) * gold_sign
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    quiet_hf_progress()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    started = time.perf_counter()
    progress = sys.stderr.isatty()  # progress bars on a terminal, not in logs
    annotators = parse_annotators(args.annotators, temperature=args.temperature, flip_rate=args.flip_rate,
                                  seed=args.seed)

    def simulate(n: int, prompts: str, seed: int) -> Simulation:
        cfg = SimulationConfig(n_comparisons=n, annotators=annotators, prompts=prompts, seed=seed)
        return simulate_preferences(cfg, progress=progress)

    train_sim = simulate(args.n_comparisons, "embedded:train", args.seed)
    test_sim = simulate(args.n_test, "embedded:eval", args.seed + 1)
    fresh = fresh_texts(args.n_fresh, generator=CandidateGenerator(seed=args.seed + 2), progress=progress)
    console.print(f"simulated {len(train_sim.pairs)} training and {len(test_sim.pairs)} test comparisons, "
                  f"{sum(len(c) for _, c in fresh)} fresh texts in {time.perf_counter() - started:.0f}s; "
                  f"annotator labels agree with gold on {train_sim.stats['sim/gold_agreement']:.3f} of training "
                  f"and {test_sim.stats['sim/gold_agreement']:.3f} of test pairs")

    sizes = sorted({int(n) for n in args.curve.split(",") if n} | {args.n_comparisons})
    table = Table(title="reward-model quality against the number of training comparisons")
    for column in ("pairs", "best epoch", "val/labels", "test/labels", "test/gold", "Spearman", "ECE", "seconds"):
        table.add_column(column, justify="right")
    for n in sizes:
        t0 = time.perf_counter()
        cfg = RewardModelConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        model, tokenizer, metrics = train_reward_model(train_sim.pairs[:n], cfg, progress=progress)
        reward = LearnedReward(model, tokenizer, normalize=False)
        labels = evaluate_reward_model(reward, test_sim.pairs)
        gold_acc = accuracy_vs_gold(reward, test_sim)
        agreement, _ = gold_agreement(reward, fresh)
        table.add_row(str(n), f"{metrics['rm/best_epoch']}/{metrics['rm/epochs']}", f"{metrics['rm/val_accuracy']:.3f}",
                      f"{labels['accuracy']:.3f}", f"{gold_acc:.3f}", f"{agreement['gold/spearman']:.3f}",
                      f"{labels['ece']:.3f}", f"{time.perf_counter() - t0:.0f}")
        console.print(f"n={n}: test accuracy vs gold {gold_acc:.3f}, Spearman {agreement['gold/spearman']:.3f}")
    console.print(table)
    console.print(f"accuracy on held-out pairs against the annotators' noisy labels (val: 10% of the training prompts; "
                  f"test: {len(test_sim.pairs)} pairs from embedded:eval prompts) and against the gold preference "
                  f"(test/gold); Spearman with gold on {agreement['gold/n_texts']} fresh texts; total "
                  f"{time.perf_counter() - started:.0f}s, torch threads: {torch.get_num_threads()}")
    spearman = agreement["gold/spearman"]
    console.print(f"RESULT accuracy={gold_acc:.4f} spearman={spearman:.4f}", soft_wrap=True)


if __name__ == "__main__":
    main()
