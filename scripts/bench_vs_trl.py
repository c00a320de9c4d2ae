"""Our PPO against TRL's RLOOTrainer on the embedded sentiment task: wall-clock to reach a gold-score threshold.

In the default, matched mode both sides start from the shipped tiny review GPT-2, continue ``embedded:train``
prompts for at most ``--max-new-tokens`` tokens at temperature 1, are rewarded by the VADER gold judge of the
completion minus ``β·KL`` (k1, summed over the completion) to the frozen initial model, and take 16 Adam steps of
16 sequences (lr 1e-4, gradient norm clipped to 1, ratio clipped to 1 ± 0.2) on every batch of 64 sampled
completions. Each run is a fresh Python process launched by this script, so its time counts interpreter start,
imports and model load; the two sides alternate (ours, TRL, then TRL, ours, ...) so load changes on a shared
machine hit both. A run stops once the mean gold score of its last ``--smooth`` training batches (scored before
their update, stop checked after it) reaches ``--threshold``, or at ``--time-cap`` seconds of training.

Why RLOOTrainer: TRL moved ``PPOTrainer`` to ``trl.experimental.ppo`` in v1.10 and deleted it later
(huggingface/trl#7020); ``RLOOTrainer`` stays in the stable API (huggingface/trl#4644) and, unlike
``GRPOTrainer``, puts the KL penalty into the reward as PPO does. The settings that cannot match are listed in
``docs/trl.md``.

``--each-default`` runs each side at its own recommended settings instead: ours is the ``agents/ppo.yaml``
preset on ``envs/sentiment.yaml``, loaded by ``rlhf_gym.runner.config.load_run_config`` as ``rlhf-gym train``
loads it; TRL is ``RLOOConfig()`` with its defaults. Only what must match is matched: the model and prompts,
β (fixed), the completion length, the seed, the CPU, the threshold, and the completions per batch (ours takes
TRL's ``generation_batch_size``; the sampling temperature too, were ppo.yaml's to differ from TRL's default).
A table of the settings that then differ is printed first. ``--lr``, ``--epochs``, ``--minibatch-size``,
``--batch-size`` and ``--k`` are matched-mode settings and are refused; ``--trl-set`` stays allowed as a
deliberate departure from TRL's defaults (ours follows a changed completions per batch), except for the
matched ``beta``, ``max_completion_length``, ``seed`` and ``temperature``.

    pip install -e ".[bench]"
    python scripts/bench_vs_trl.py                       # 4 runs per side, ~4 minutes on 2 shared CPU cores
    python scripts/bench_vs_trl.py --repeats 1 --threshold 0.4
    python scripts/bench_vs_trl.py --each-default        # each side's own settings (docs/trl.md)

The last line is ``RESULT time_ratio=… ours_s=… trl_s=… threshold=… train_time_ratio=… ours_train_s=…
trl_train_s=… ours_batches=… trl_batches=… repeats=… ours_final=… trl_final=… [time_ratio_max=…]
mode=…``: medians over the repeats of the seconds from process launch to the threshold (``*_train_s``: from the
start of training), ``time_ratio = ours_s / trl_s`` (target <= 0.5), the batches each side needed (of 64
completions; with ``--each-default``, of TRL's default generation batch) and each side's final smoothed gold. A
side that never reached the threshold gives ``nan``; then ``time_ratio_max`` is printed as well: ours over the
time TRL spent (a TRL run that missed needed at least that long), an upper bound on ``time_ratio`` (``nan`` if
ours missed too). ``mode`` is ``matched`` or ``each-default``.
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
ROOT = Path(__file__).resolve().parent.parent
ENV_PRESET, AGENT_PRESET = ROOT / "envs" / "sentiment.yaml", ROOT / "agents" / "ppo.yaml"
# The matched mode's settings: flags that --each-default refuses, since each side then runs its own.
SMOOTH_COMPLETIONS = 192  # --each-default's default smoothing window, in completions (matched: 3 x 64)
MATCHED_DEFAULTS = {"batch_size": 64, "minibatch_size": 16, "epochs": 4, "lr": 1e-4, "k": 2}
# RLOOConfig fields --each-default sets from ours (or from this script's flags), so --trl-set may not.
EACH_DEFAULT_MATCHED = {"beta": "--beta", "max_completion_length": "--max-new-tokens", "seed": "--seed",
                        "temperature": "the temperature of agents/ppo.yaml (TRL follows it)"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=4, help="runs per side, alternating which goes first")
    p.add_argument("--threshold", type=float, default=0.5, help="gold score to reach (VADER compound, -1..1)")
    p.add_argument("--smooth", type=int,
                   help="mean over this many latest training batches (default 3 = 192 completions in matched mode; "
                        "with --each-default as many batches as hold 192 completions)")
    p.add_argument("--time-cap", type=float, default=240.0, help="seconds of training before a run gives up")
    p.add_argument("--each-default", action="store_true",
                   help="each side runs its own recommended settings (ours: agents/ppo.yaml; TRL: RLOOConfig "
                        "defaults); only model, prompts, β, completion length, completions per batch and the "
                        "threshold are matched")
    matched = "; matched mode only"
    p.add_argument("--batch-size", type=int, help=f"completions per training batch (default 64{matched})")
    p.add_argument("--minibatch-size", type=int, help=f"sequences per optimizer step (default 16{matched})")
    p.add_argument("--epochs", type=int, help=f"passes over each batch, TRL: num_iterations (default 4{matched})")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--beta", type=float, default=0.05, help="fixed KL coefficient")
    p.add_argument("--lr", type=float, help=f"learning rate (default 1e-4{matched})")
    p.add_argument("--k", type=int, help=f"TRL RLOO completions per prompt, >= 2 (default 2{matched})")
    p.add_argument("--trl-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an RLOOConfig field (VALUE parsed as JSON if it can be), e.g. num_iterations=1; "
                        "with --each-default an explicit departure from TRL's defaults (ours follows a changed "
                        "completions per batch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first repeat (repeat i uses seed + i)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads in each run")
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--launch", type=float, help=argparse.SUPPRESS)
    p.add_argument("--matched", type=json.loads, help=argparse.SUPPRESS)  # --each-default: what the parent matched
    args = p.parse_args(argv)
    if args.repeats < 1 or (args.smooth is not None and args.smooth < 1) or not args.time_cap > 0:
        p.error("--repeats and --smooth must be >= 1 and --time-cap > 0")
    if any(not item.partition("=")[0].strip() or "=" not in item for item in args.trl_set):
        p.error(f"--trl-set expects KEY=VALUE, e.g. num_iterations=1; got {args.trl_set}")
    if args.each_default:
        given = [f"--{name.replace('_', '-')}" for name in MATCHED_DEFAULTS if getattr(args, name) is not None]
        if given:
            p.error(f"{', '.join(given)}: matched mode only; --each-default runs each side's own settings (use "
                    "--trl-set KEY=VALUE to change a TRL setting on purpose)")
        fixed = sorted(set(trl_overrides(args.trl_set)) & set(EACH_DEFAULT_MATCHED))
        if fixed:
            p.error(f"--trl-set {', '.join(fixed)}: matched with ours under --each-default; set "
                    f"{', '.join(EACH_DEFAULT_MATCHED[k] for k in fixed)} instead")
        if args.smooth is None and args.matched is not None:  # a child: the parent resolved it
            args.smooth = args.matched["smooth"]
        return args
    if args.smooth is None:
        args.smooth = 3
    for name, value in MATCHED_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.batch_size % args.minibatch_size or args.batch_size % args.k or args.k < 2:
        p.error("--minibatch-size and --k must divide --batch-size, and --k must be >= 2")
    return args


class Tracker:
    """Gold score of each training batch; decides when the smoothed score reached the threshold."""

    def __init__(self, args: argparse.Namespace, side: str):
        self.args, self.side = args, side
        self.scores: list[float] = []
        self.tokens = 0
        self.start = self.reached = self.end = None

    def add(self, score: float, tokens: int) -> None:
        self.scores.append(score)
        self.tokens += tokens

    def smoothed(self) -> float:
        tail = self.scores[-self.args.smooth:]
        return sum(tail) / len(tail) if len(self.scores) >= self.args.smooth else -math.inf

    def should_stop(self) -> bool:
        """Called after a batch's update: records the time and returns True once reached or out of time."""
        now = self.end = time.time()
        smoothed = f"{self.smoothed():+.3f}" if len(self.scores) >= self.args.smooth else "   n/a"
        print(f"  {self.side:4} batch {len(self.scores):3d}  {now - self.start:6.1f}s  gold {self.scores[-1]:+.3f}  "
              f"smoothed {smoothed}", flush=True)
        if self.smoothed() >= self.args.threshold:
            self.reached = now
            return True
        return now - self.start > self.args.time_cap

    def report(self, ready: float) -> dict:
        return {"side": self.side, "launch": self.args.launch, "ready": ready, "reached": self.reached,
                "end": self.end, "batches": len(self.scores), "tokens": self.tokens,
                "final_smoothed": self.smoothed(), "threads": _threads()}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def ours_preset(args: argparse.Namespace, batch: int | None = None):
    """--each-default: our run config as ``rlhf-gym train --env envs/sentiment.yaml --agent agents/ppo.yaml`` loads
    it, overriding only what must match TRL: β (fixed), completion length, seed, CPU, and (given ``batch``)
    the completions per batch."""
    from rlhf_gym.runner.config import load_run_config

    overrides = [f"env.beta={args.beta}", "agent.adaptive_kl_target=null",
                 f"env.max_new_tokens={args.max_new_tokens}", f"run.seed={args.seed}", "run.device=cpu",
                 f"run.torch_threads={args.threads}"]
    if batch is not None:
        overrides += [f"env.num_envs={batch}", f"agent.batch_size={batch}"]
    return load_run_config(ENV_PRESET, AGENT_PRESET, overrides)


def run_ours(args: argparse.Namespace) -> dict:
    import gymnasium as gym
    import torch

    import rlhf_gym  # noqa: F401  (registers the envs)
    from rlhf_gym.agents import PPO

    torch.set_num_threads(args.threads)
    if args.each_default:
        from rlhf_gym.runner.build import make_agent, make_env, seed_everything

        cfg = ours_preset(args, args.matched["batch"])  # TRL's completions per batch, from the parent
        seed_everything(cfg.run)
        env = make_env(cfg)
        agent = make_agent(cfg, env)
    else:
        env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=args.batch_size, beta=args.beta,
                           max_new_tokens=args.max_new_tokens)
        agent = PPO(env, learning_rate=args.lr, minibatch_size=args.minibatch_size, n_epochs=args.epochs,
                    clip_range=0.2, max_grad_norm=1.0, temperature=1.0, seed=args.seed)
    batch = agent.config.batch_size
    tracker = Tracker(args, "ours")

    def callback(metrics: dict) -> bool:
        tracker.add(metrics["objective/scores"], int(round(metrics["objective/length"] * batch)))
        return not tracker.should_stop()

    ready = tracker.start = time.time()
    agent.learn(10**12, callback=callback)
    return {**tracker.report(ready), "precision": str(next(agent.policy.parameters()).dtype).removeprefix("torch.")}


def trl_config(args: argparse.Namespace, output_dir: str, temperature: float | None = None):
    """The RLOOConfig of a run: the matched settings, or (--each-default) TRL's defaults but for what must match
    ours (``temperature``: ours, where it differs from TRL's default); ``--trl-set`` overrides come last."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # TRL calls transformers' deprecated aliases
    from trl import RLOOConfig

    quiet = dict(output_dir=output_dir, use_cpu=True, max_steps=10**9, save_strategy="no", report_to="none",
                 logging_steps=10**9, disable_tqdm=True, seed=args.seed)
    if args.each_default:
        settings = dict(**quiet, beta=args.beta, max_completion_length=args.max_new_tokens)
        if temperature is not None:
            settings["temperature"] = temperature
        return RLOOConfig(**{**settings, **trl_overrides(args.trl_set)})
    settings = dict(
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
        bf16=False, activation_checkpointing=False, **quiet,
    )
    return RLOOConfig(**{**settings, **trl_overrides(args.trl_set)})


def run_trl(args: argparse.Namespace) -> dict:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # TRL calls transformers' deprecated aliases
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import RLOOTrainer

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
        """Checks the threshold once a batch's updates are done: TRL generates a batch every
        ``steps_per_generation * num_iterations`` micro-steps, and an optimizer step is
        ``gradient_accumulation_steps`` of them (TRL's defaults: every step)."""

        done = 0  # generation batches whose updates have all been applied

        def on_step_end(self, cfg, state, control, **_):
            micro_steps = state.global_step * cfg.gradient_accumulation_steps
            batches = micro_steps // (cfg.steps_per_generation * cfg.num_iterations)
            if batches > self.done:
                self.done = batches
                if tracker.should_stop():
                    control.should_training_stop = True

    workdir = tempfile.TemporaryDirectory(prefix="bench_vs_trl.")  # TRL's output_dir; nothing is saved there
    config = trl_config(args, workdir.name, args.matched["temperature"] if args.each_default else None)
    prompts = Dataset.from_dict({"prompt": load_prompts("embedded:train")})
    trainer = RLOOTrainer(model=str(EMBEDDED_MODEL_DIR), reward_funcs=vader, args=config, train_dataset=prompts,
                          callbacks=[StopAtThreshold()])
    trainer.remove_callback(PrinterCallback)
    torch.set_num_threads(args.threads)
    ready = tracker.start = time.time()
    trainer.train()
    workdir.cleanup()
    weights = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
    mixed = getattr(trainer.accelerator, "mixed_precision", "no")  # what the trainer's accelerator actually does
    return {**tracker.report(ready), "versions": f"trl {trl.__version__}, transformers {transformers.__version__}, "
                                                 f"torch {torch.__version__}",
            "precision": f"{weights} weights" + (f", {mixed} autocast" if mixed not in ("no", None) else "")}


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


def each_default_configs(args: argparse.Namespace):
    """--each-default: (our resolved run config, the RLOOConfig, what the children must be told to match).

    TRL's completions per generation (``generation_batch_size = per_device_train_batch_size × processes ×
    steps_per_generation``, the last defaulting to ``gradient_accumulation_steps``) becomes our batch; our
    preset's sampling temperature is given to TRL only where it differs from TRL's default."""
    from trl import RLOOConfig

    temperature = ours_preset(args).agent.config.temperature
    temperature = None if temperature == RLOOConfig.temperature else temperature  # class attribute = the default
    with tempfile.TemporaryDirectory(prefix="bench_vs_trl.") as tmp:
        trl = trl_config(args, tmp, temperature)
    ours = ours_preset(args, trl.generation_batch_size)
    # The threshold is read off the same number of completions as in matched mode (3 batches of 64), not off
    # 3 batches of TRL's much smaller default batch, where a lucky streak of a few dozen completions would do.
    smooth = args.smooth or math.ceil(SMOOTH_COMPLETIONS / trl.generation_batch_size)
    return ours, trl, {"batch": trl.generation_batch_size, "temperature": temperature, "smooth": smooth}


def settings_rows(ours, trl) -> list[tuple[str, str, str]]:
    """(setting, ours, TRL), read from our resolved config and the RLOOConfig instance."""
    a, e, c = ours.agent.config, ours.env, trl

    def val(x) -> str:
        x = getattr(x, "value", x)  # TRL's enums (scheduler, optimizer)
        return f"{x:g}" if isinstance(x, float) else str(x)

    checkpointing = getattr(c, "activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = c.gradient_checkpointing
    ga = c.gradient_accumulation_steps
    beta = a.kl_coef if a.kl_coef is not None else e.beta
    return [
        ("learning rate", val(a.learning_rate), val(c.learning_rate)),
        ("lr schedule", "constant (no setting)",
         f"{val(c.lr_scheduler_type)}, warm-up {val(c.warmup_steps)}, over max_steps={c.max_steps}"),
        ("optimizer", "Adam, eps 1e-05 (no setting)",
         f"{val(c.optim)}, eps {val(c.adam_epsilon)}, weight decay {val(c.weight_decay)}"),
        ("epochs / num_iterations", val(a.n_epochs), val(c.num_iterations)),
        ("minibatch / per-device batch", val(a.minibatch_size),
         val(c.per_device_train_batch_size) + (f" x {ga} accumulated" if ga != 1 else "")),
        ("optimizer steps per batch", val(a.n_epochs * a.batch_size // a.minibatch_size),
         val(c.num_iterations * c.steps_per_generation / ga)),
        ("completions per batch", val(a.batch_size), val(c.generation_batch_size)),
        ("completions per prompt", val(a.samples_per_prompt), val(c.num_generations)),
        ("KL β", val(beta) + (f" adaptive, target {val(a.adaptive_kl_target)}" if a.adaptive_kl_target else ""),
         val(c.beta)),
        ("max new tokens", val(e.max_new_tokens), val(c.max_completion_length)),
        ("temperature", val(a.temperature), val(c.temperature)),
        ("top-k / top-p", "0 / 1", f"{val(c.top_k)} / {val(c.top_p)}"),
        ("precision", "fp32", "bf16" if c.bf16 else "fp16" if c.fp16 else "fp32"),
        ("grad clip (norm)", val(a.max_grad_norm), val(c.max_grad_norm)),
        ("clip range", val(a.clip_range) + f" (value ±{val(a.clip_range_vf)})",
         val(c.epsilon) + (f" (high {val(c.epsilon_high)})" if c.epsilon_high is not None else "")),
        ("advantage", f"GAE λ={val(a.gae_lambda)}, whitened={a.normalize_advantage}",
         f"leave-one-out, normalized={c.normalize_advantages}"),
        ("activation checkpointing", "False", val(checkpointing)),
    ]


def print_settings(rows: list[tuple[str, str, str]]) -> None:
    width = [max(len(r[i]) for r in [("setting", "ours", "TRL"), *rows]) for i in range(3)]
    for i, (name, ours, trl) in enumerate([("setting", "ours", "TRL"), *rows]):
        same = "" if i == 0 else "same" if ours == trl else ""
        print(f"  {name:{width[0]}}  {ours:{width[1]}}  {trl:{width[2]}}  {same}".rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in width))


def launch(side: str, args: argparse.Namespace, seed: int, argv: list[str]) -> dict:
    """Runs one side in a fresh interpreter; returns its report plus the wall times measured here."""
    start = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", side, "--seed", str(seed),
           "--launch", repr(start)]
    if args.matched is not None:
        cmd += ["--matched", json.dumps(args.matched)]
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
    report["spent_s"] = (report["end"] or time.time()) - start  # launch to the run's last check
    return report


def median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if not math.isnan(r.get(key, math.nan))]
    return statistics.median(values) if values else math.nan


def bound(runs: list[dict], unreached) -> float:
    """Median over the measured runs of the seconds to the threshold, ``unreached(run)`` for a run that missed it."""
    values = [r["total_s"] if r["reached"] else unreached(r) for r in runs if "error" not in r]
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

    if args.each_default:
        try:
            ours_cfg, trl_cfg, args.matched = each_default_configs(args)
            args.smooth = args.matched["smooth"]
        except ImportError as e:
            print(f'bench_vs_trl.py: error: --each-default needs TRL ({e}): pip install -e ".[bench]"',
                  file=sys.stderr)
            return 2
        except Exception as e:  # an RLOOConfig or preset that cannot be built (e.g. a bad --trl-set)
            print(f"bench_vs_trl.py: error: --each-default settings: {type(e).__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
            return 2
        print(f"task: embedded sentiment world, tiny GPT-2, {args.max_new_tokens} new tokens, β={args.beta} fixed, "
              f"{args.matched['batch']} completions per batch; each side its own settings: ours "
              f"{AGENT_PRESET.relative_to(ROOT)} (env {ENV_PRESET.relative_to(ROOT)}), TRL RLOOConfig defaults"
              + (f" with overrides {trl_overrides(args.trl_set)}" if args.trl_set else ""))
        print_settings(settings_rows(ours_cfg, trl_cfg))
    else:
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
    ours_final, trl_final = median(runs["ours"], "final_smoothed"), median(runs["trl"], "final_smoothed")
    print(f"final smoothed gold (median): ours {ours_final:+.3f}, TRL {trl_final:+.3f}")
    precision = {side: sorted({r["precision"] for r in runs[side] if "precision" in r}) for side in SIDES}
    if args.each_default and any(precision.values()):
        print(f"precision as run: ours {', '.join(precision['ours']) or '?'}; "
              f"TRL {', '.join(precision['trl']) or '?'}")
    missed = {side: sum(1 for r in runs[side] if "error" not in r and not r["reached"]) for side in SIDES}
    extra = ""
    if any(missed.values()):
        # TRL's runs that missed needed at least the time they spent; ours that missed, an unknown longer time.
        ours_up, trl_low = bound(runs["ours"], lambda r: math.inf), bound(runs["trl"], lambda r: r["spent_s"])
        ratio_max = ours_up / trl_low if math.isfinite(ours_up) and trl_low else math.nan
        print(f"not reached within {args.time_cap:.0f}s of training: ours {missed['ours']}, TRL {missed['trl']} of "
              f"{args.repeats} run(s); TRL needed at least {trl_low:.1f} s (median), so time_ratio <= "
              f"{ratio_max:.3f}" + ("" if math.isfinite(ours_up) else " (undefined: ours missed too)"))
        extra = f" time_ratio_max={ratio_max:.4f}"
    print(f"RESULT time_ratio={ratio:.4f} ours_s={ours_s:.2f} trl_s={trl_s:.2f} threshold={args.threshold} "
          f"train_time_ratio={train_ratio:.4f} ours_train_s={ours_train:.2f} trl_train_s={trl_train:.2f} "
          f"ours_batches={ours_b:.1f} trl_batches={trl_b:.1f} repeats={args.repeats} "
          f"ours_final={ours_final:.4f} trl_final={trl_final:.4f}{extra} "
          f"mode={'each-default' if args.each_default else 'matched'}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
