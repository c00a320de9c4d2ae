"""Our PPO against TRL's RLOOTrainer on the embedded sentiment task: wall-clock to reach a gold-score threshold.

Both sides start from the shipped tiny review GPT-2, continue ``embedded:train`` prompts for at most
``--max-new-tokens`` tokens at temperature 1, are rewarded by the VADER gold judge of the completion minus
``β·KL`` (k1, summed over the completion) to the frozen initial model, and take 16 Adam steps of 16 sequences
(lr 1e-4, gradient norm clipped to 1, ratio clipped to 1 ± 0.2) on every batch of 64 sampled completions.
Each run is a fresh Python process launched by this script, so its time counts interpreter start, imports and
model load; the two sides alternate (ours, TRL, then TRL, ours, ...) so load changes on a shared machine hit
both. A run stops once the mean gold score of its last ``--smooth`` training batches (scored before their
update, stop checked after it) reaches ``--threshold``, or at ``--time-cap`` seconds of training.

Why RLOOTrainer: TRL moved ``PPOTrainer`` to ``trl.experimental.ppo`` in v1.10 and deleted it later
(huggingface/trl#7020); ``RLOOTrainer`` stays in the stable API (huggingface/trl#4644) and, unlike
``GRPOTrainer``, puts the KL penalty into the reward as PPO does. The settings that cannot match are listed in
``docs/trl.md``.

    pip install -e ".[bench]"
    python scripts/bench_vs_trl.py                       # 4 runs per side, ~4 minutes on 2 shared CPU cores
    python scripts/bench_vs_trl.py --repeats 1 --threshold 0.4

The last line is ``RESULT time_ratio=… ours_s=… trl_s=… threshold=… train_time_ratio=… ours_train_s=…
trl_train_s=… ours_batches=… trl_batches=… repeats=…``: medians over the repeats of the seconds from process
launch to the threshold (``*_train_s``: from the start of training), ``time_ratio = ours_s / trl_s``
(target <= 0.5), and the batches of 64 completions each side needed. A side that never reached the threshold
gives ``nan``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD_TAG = "CHILD "
SIDES = ("ours", "trl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=4, help="runs per side, alternating which goes first")
    p.add_argument("--threshold", type=float, default=0.5, help="gold score to reach (VADER compound, -1..1)")
    p.add_argument("--smooth", type=int, default=3, help="mean over this many latest training batches")
    p.add_argument("--time-cap", type=float, default=240.0, help="seconds of training before a run gives up")
    p.add_argument("--batch-size", type=int, default=64, help="completions per training batch")
    p.add_argument("--minibatch-size", type=int, default=16, help="sequences per optimizer step")
    p.add_argument("--epochs", type=int, default=4, help="passes over each batch (TRL: num_iterations)")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--beta", type=float, default=0.05, help="fixed KL coefficient")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--k", type=int, default=2, help="TRL RLOO completions per prompt (>= 2)")
    p.add_argument("--trl-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an RLOOConfig field (VALUE parsed as JSON if it can be), e.g. num_iterations=1")
    p.add_argument("--seed", type=int, default=0, help="seed of the first repeat (repeat i uses seed + i)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads in each run")
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--launch", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size % args.minibatch_size or args.batch_size % args.k or args.k < 2:
        p.error("--minibatch-size and --k must divide --batch-size, and --k must be >= 2")
    return args


class Tracker:
    """Gold score of each training batch; decides when the smoothed score reached the threshold."""

    def __init__(self, args: argparse.Namespace, side: str):
        self.args, self.side = args, side
        self.scores: list[float] = []
        self.tokens = 0
        self.start = self.reached = None

    def add(self, score: float, tokens: int) -> None:
        self.scores.append(score)
        self.tokens += tokens

    def smoothed(self) -> float:
        tail = self.scores[-self.args.smooth:]
        return sum(tail) / len(tail) if len(self.scores) >= self.args.smooth else -math.inf

    def should_stop(self) -> bool:
        """Called after a batch's update: records the time and returns True once reached or out of time."""
        now = time.time()
        smoothed = f"{self.smoothed():+.3f}" if len(self.scores) >= self.args.smooth else "   n/a"
        print(f"  {self.side:4} batch {len(self.scores):3d}  {now - self.start:6.1f}s  gold {self.scores[-1]:+.3f}  "
              f"smoothed {smoothed}", flush=True)
        if self.smoothed() >= self.args.threshold:
            self.reached = now
            return True
        return now - self.start > self.args.time_cap

    def report(self, ready: float) -> dict:
        return {"side": self.side, "launch": self.args.launch, "ready": ready, "reached": self.reached,
                "batches": len(self.scores), "tokens": self.tokens, "final_smoothed": self.smoothed(),
                "threads": _threads()}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_ours(args: argparse.Namespace) -> dict:
    import gymnasium as gym
    import torch

    import rlhf_gym  # noqa: F401  (registers the envs)
    from rlhf_gym.agents import PPO

    torch.set_num_threads(args.threads)
    env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=args.batch_size, beta=args.beta,
                       max_new_tokens=args.max_new_tokens)
    agent = PPO(env, learning_rate=args.lr, minibatch_size=args.minibatch_size, n_epochs=args.epochs,
                clip_range=0.2, max_grad_norm=1.0, temperature=1.0, seed=args.seed)
    tracker = Tracker(args, "ours")

    def callback(metrics: dict) -> bool:
        tracker.add(metrics["objective/scores"], int(round(metrics["objective/length"] * args.batch_size)))
        return not tracker.should_stop()

    ready = tracker.start = time.time()
    agent.learn(10**12, callback=callback)
    return tracker.report(ready)


def run_trl(args: argparse.Namespace) -> dict:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # TRL calls transformers' deprecated aliases
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    from rlhf_gym.core.data import load_prompts
    from rlhf_gym.core.world import EMBEDDED_MODEL_DIR
    from rlhf_gym.rewards.gold import VaderGold

    torch.set_num_threads(args.threads)
    gold = VaderGold()
    tracker = Tracker(args, "trl")

    def vader(prompts: list[str], completions: list[str], completion_ids: list[list[int]], **_) -> list[float]:
        scores = gold.score(prompts, completions)
        tracker.add(float(scores.mean()), sum(len(c) for c in completion_ids))
        return scores.tolist()

    class StopAtThreshold(TrainerCallback):
        def on_step_end(self, cfg, state, control, **_):
            if state.global_step % (cfg.steps_per_generation * cfg.num_iterations) == 0 and tracker.should_stop():
                control.should_training_stop = True

    workdir = tempfile.TemporaryDirectory(prefix="bench_vs_trl.")  # TRL's output_dir; nothing is saved there
    settings = dict(
        output_dir=workdir.name,
        # the task
        max_completion_length=args.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, beta=args.beta,
        # batch of `batch_size` completions = batch_size / k prompts x k; `epochs` passes of minibatches
        num_generations=args.k, per_device_train_batch_size=args.minibatch_size,
        steps_per_generation=args.batch_size // args.minibatch_size, num_iterations=args.epochs,
        gradient_accumulation_steps=1, epsilon=0.2, normalize_advantages=True,
        # the optimizer: Adam as ours (AdamW without decay, eps 1e-5), constant lr, clipped gradient norm
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_epsilon=1e-5,
        max_grad_norm=1.0,
        # fp32 on CPU without activation checkpointing, as ours; no saving, no reporting
        bf16=False, activation_checkpointing=False, use_cpu=True, max_steps=10**9, save_strategy="no",
        report_to="none", logging_steps=10**9, disable_tqdm=True, seed=args.seed,
    )
    config = RLOOConfig(**{**settings, **trl_overrides(args.trl_set)})
    prompts = Dataset.from_dict({"prompt": load_prompts("embedded:train")})
    trainer = RLOOTrainer(model=str(EMBEDDED_MODEL_DIR), reward_funcs=vader, args=config, train_dataset=prompts,
                          callbacks=[StopAtThreshold()])
    trainer.remove_callback(PrinterCallback)
    torch.set_num_threads(args.threads)
    ready = tracker.start = time.time()
    trainer.train()
    workdir.cleanup()
    return {**tracker.report(ready), "versions": f"trl {trl.__version__}, transformers {transformers.__version__}, "
                                                 f"torch {torch.__version__}"}


def trl_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def child_main(args: argparse.Namespace) -> int:
    try:
        out = (run_ours if args.child == "ours" else run_trl)(args)
    except Exception as e:  # report the reason to the parent instead of a bare traceback
        reason = f"{type(e).__name__}: {e}"
        if isinstance(e, ImportError):
            reason += ' (the TRL side needs the bench extra: pip install -e ".[bench]")'
        print(CHILD_TAG + json.dumps({"side": args.child, "error": reason}), flush=True)
        raise
    print(CHILD_TAG + json.dumps(out), flush=True)
    return 0


def launch(side: str, args: argparse.Namespace, seed: int, argv: list[str]) -> dict:
    """Runs one side in a fresh interpreter; returns its report plus the wall times measured here."""
    start = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", side, "--seed", str(seed),
           "--launch", repr(start)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        report: dict = {}
        for line in proc.stdout:
            if line.startswith(CHILD_TAG):
                report = json.loads(line[len(CHILD_TAG):])
            elif line.startswith("  "):
                print(line, end="", flush=True)
        proc.wait()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0 or "error" in report or not report:
        reason = report.get("error") or (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"side": side, "error": reason, "stderr_tail": stderr[-2000:]}
    reached = report["reached"]
    report["total_s"] = reached - start if reached else math.nan
    report["setup_s"] = report["ready"] - start
    report["train_s"] = reached - report["ready"] if reached else math.nan
    report["batches_to_threshold"] = report["batches"] if reached else math.nan
    return report


def median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if not math.isnan(r.get(key, math.nan))]
    return statistics.median(values) if values else math.nan


def fmt_row(r: dict) -> str:
    if "error" in r:
        return f"{r['side']:5} failed: {r['error']}"
    return (f"{r['side']:5} {r['total_s']:8.1f} {r['setup_s']:8.1f} {r['train_s']:8.1f} {r['batches']:8d} "
            f"{r['tokens']:8d} {r['final_smoothed']:+9.3f} {r['threads']:4d}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    print(f"task: embedded sentiment world, tiny GPT-2, batch {args.batch_size} completions, "
          f"{args.max_new_tokens} new tokens, β={args.beta} (k1), lr {args.lr}, "
          f"{args.batch_size // args.minibatch_size}×{args.epochs} steps of {args.minibatch_size} per batch; "
          f"TRL RLOO k={args.k}" + (f", TRL overrides {trl_overrides(args.trl_set)}" if args.trl_set else ""))
    print(f"stop: mean gold of the last {args.smooth} training batches >= {args.threshold} "
          f"(cap {args.time_cap:.0f}s of training); {args.repeats} run(s) per side, fresh process each, alternating")
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    for i in range(args.repeats):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            r = launch(side, args, args.seed + i, argv)
            runs[side].append(r)
            print(fmt_row(r), flush=True)
            if "error" in r and r.get("stderr_tail"):
                print(r["stderr_tail"], file=sys.stderr)

    print()
    print(f"{'side':5} {'total_s':>8} {'setup_s':>8} {'train_s':>8} {'batches':>8} {'tokens':>8} "
          f"{'smoothed':>9} {'thr':>4}")
    for side in SIDES:
        for r in runs[side]:
            print(fmt_row(r))
    ours_s, trl_s = median(runs["ours"], "total_s"), median(runs["trl"], "total_s")
    ours_train, trl_train = median(runs["ours"], "train_s"), median(runs["trl"], "train_s")
    ours_b, trl_b = median(runs["ours"], "batches_to_threshold"), median(runs["trl"], "batches_to_threshold")
    versions = sorted({r["versions"] for r in runs["trl"] if "versions" in r})
    if versions:
        print(f"\nTRL side ran {', '.join(versions)}")
    errors = [r["error"] for r in runs["trl"] + runs["ours"] if "error" in r]
    if errors:
        print(f"\nnot measured: {errors[0]}")
    ratio = ours_s / trl_s if trl_s else math.nan
    pairs = [o["total_s"] / t["total_s"] for o, t in zip(runs["ours"], runs["trl"])
             if not math.isnan(o.get("total_s", math.nan)) and not math.isnan(t.get("total_s", math.nan))]
    train_ratio = ours_train / trl_train if trl_train else math.nan
    print(f"\nmedians: ours {ours_s:.1f} s ({ours_train:.1f} s training, {ours_b:.1f} batches), "
          f"TRL {trl_s:.1f} s ({trl_train:.1f} s training, {trl_b:.1f} batches): time_ratio {ratio:.3f} "
          f"(target <= 0.5)" + (f"; per-repeat ratios {min(pairs):.3f}..{max(pairs):.3f}" if pairs else ""))
    print(f"RESULT time_ratio={ratio:.4f} ours_s={ours_s:.2f} trl_s={trl_s:.2f} threshold={args.threshold} "
          f"train_time_ratio={train_ratio:.4f} ours_train_s={ours_train:.2f} trl_train_s={trl_train:.2f} "
          f"ours_batches={ours_b:.1f} trl_batches={trl_b:.1f} repeats={args.repeats}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
