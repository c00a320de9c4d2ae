"""``rlhf-gym sft``: supervised fine-tuning on demonstrations (InstructGPT's step 1, the warm start before RL)."""

from __future__ import annotations

import argparse

from rich.console import Console

EPILOG = """\
examples:
  # the task's demonstrations (sentiment: 2000 positive reviews), then PPO from the fine-tuned model
  rlhf-gym sft --from-task 2000 --out runs/sft
  rlhf-gym train --env envs/sentiment.yaml --agent agents/ppo.yaml --out runs/ppo-sft --set env.model=runs/sft

  # your own demonstrations: one {"prompt": ..., "completion": ...} object per line
  rlhf-gym sft --data demos.jsonl --model gpt2 --out runs/sft-gpt2 --epochs 3 --learning-rate 5e-5
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sft", help="supervised warm start on demonstrations ({prompt, completion} JSONL or --from-task)",
        description="Fine-tunes a causal LM on demonstrations with the next-token loss on the completion "
        "(prompt tokens are context only) and saves it as an HF model directory to use as env.model. "
        "The last line is `RESULT train_loss=... val_loss_before=... val_loss=...`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE", help='JSONL demonstrations: {"prompt": str, "completion": str}')
    src.add_argument("--from-task", "--from-world", dest="from_task", metavar="N", type=int,
                     help="N demonstrations of --task (sentiment: positive reviews); --from-world is an alias")
    p.add_argument("--task", default="sentiment", help="registered task whose demonstrations --from-task takes "
                   "(default sentiment)")
    p.add_argument("--out", metavar="DIR", required=True, help="where to save the fine-tuned model (must not exist)")
    p.add_argument("--model", default=None, help="model to fine-tune (default: the task's, e.g. the embedded tiny GPT-2)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the demonstrations (default 2)")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW step size (default 1e-4)")
    p.add_argument("--batch-size", type=int, default=16, help="demonstrations per step (default 16)")
    p.add_argument("--max-length", type=int, default=64, help="tokens kept per demonstration (default 64)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out for validation (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="torch device (default: CUDA when available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlhf_gym.errors import ConfigError
    from rlhf_gym.io import check_output
    from rlhf_gym.runner import quiet_hf_progress
    from rlhf_gym.runner.sft import SFTConfig, load_demonstrations, task_demonstrations, train_sft
    from rlhf_gym.runner.train import progress_bar
    from rlhf_gym.tasks import get_task

    quiet_hf_progress()
    out = check_output(Path(args.out))
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already exists and is not empty; choose a new --out")
    task = get_task(args.task)
    cfg = SFTConfig(model=args.model if args.model is not None else task.model, epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                    max_length=args.max_length, val_fraction=args.val_fraction, seed=args.seed, device=args.device)
    demos = load_demonstrations(args.data) if args.data else task_demonstrations(args.from_task, task)
    console = Console(highlight=False)
    console.print(f"{len(demos)} demonstrations, e.g. {demos[0].prompt!r} -> {demos[0].completion!r}")
    with progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("sft", total=None, status="")

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, status=f"loss {loss:.3f}")

        metrics = train_sft(demos, cfg, out, on_step=on_step)
    console.print(f"saved the fine-tuned model to {out}; use it with --set env.model={out}")
    keys = ("train_loss", "val_loss_before", "val_loss")
    console.print("RESULT " + " ".join(f"{k}={metrics[f'sft/{k}']:.4f}" for k in keys if f"sft/{k}" in metrics),
                  soft_wrap=True)
    return 0
