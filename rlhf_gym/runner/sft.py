"""Supervised fine-tuning on demonstrations: InstructGPT's first step, the warm start before RL.

Demonstrations are ``{prompt, completion}`` pairs: a JSONL file (one object per line), or a task's own
(:attr:`rlhf_gym.tasks.Task.demonstrations`; for ``sentiment``, the review world's positive reviews: opening
as prompt, positive continuation as completion). The loss is the next-token negative log-likelihood of the completion tokens
(and EOS) given the prompt; prompt tokens are context only. The result is a plain HF model directory that a
run uses as its reference model and policy init: ``--set env.model=DIR``.

>>> import tempfile
>>> demos = task_demonstrations(16)  # a real warm start: 2,000
>>> metrics = train_sft(demos, SFTConfig(epochs=1, batch_size=8), tempfile.mkdtemp() + "/sft")
>>> sorted(metrics)
['sft/n_train', 'sft/n_val', 'sft/train_loss', 'sft/val_loss', 'sft/val_loss_before']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlhf_gym.core.checks import check_fields, device_name, is_blank, resolve_device
from rlhf_gym.core.data import read_jsonl_objects
from rlhf_gym.core.models import quiet_transformers
from rlhf_gym.errors import ConfigError, DataError, ModelError
from rlhf_gym.io import atomic_dir


@dataclass(frozen=True)
class Demonstration:
    """One demonstration: the completion a labeller wrote for the prompt."""

    prompt: str
    completion: str


@dataclass
class SFTConfig:
    """Hyperparameters of supervised fine-tuning."""

    model: str = "embedded"  # model to fine-tune: 'embedded', a hub name or a local dir
    epochs: int = 2  # passes over the demonstrations
    learning_rate: float = 1e-4  # AdamW step size
    batch_size: int = 16  # demonstrations per optimizer step
    max_length: int = 64  # tokens kept per prompt + completion
    val_fraction: float = 0.1  # share of demonstrations held out to report validation loss
    seed: int = 0  # seeds the split, the shuffling and torch
    device: str | None = None  # None = CUDA when available

    def __post_init__(self) -> None:
        self.device = device_name(self.device, "sft: device")
        check_fields(self, "sft: ")  # types: an int is an int, a float is finite
        checks = {"epochs": self.epochs >= 1, "learning_rate": self.learning_rate > 0, "batch_size": self.batch_size >= 1,
                  "max_length": self.max_length >= 2, "val_fraction": 0 <= self.val_fraction < 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"sft: invalid {name}={getattr(self, name)!r}")


def load_demonstrations(path: str | Path) -> list[Demonstration]:
    """Reads a JSONL file of ``{"prompt": str, "completion": str}`` objects (blank lines are skipped)."""
    p = Path(path)
    demos = []
    for i, obj in read_jsonl_objects(p, "demonstration file"):
        for key in ("prompt", "completion"):
            if key not in obj:
                raise DataError(f"{p}:{i}: missing field {key!r} (a demonstration is {{prompt, completion}})")
            if not isinstance(obj[key], str):
                raise DataError(f"{p}:{i}: field {key!r} must be a string, got {type(obj[key]).__name__}")
        if is_blank(obj["completion"]):
            raise DataError(f"{p}:{i}: the completion is empty")
        demos.append(Demonstration(obj["prompt"], obj["completion"]))
    if not demos:
        raise DataError(f"demonstration file {p} holds no demonstrations")
    return demos


def task_demonstrations(n: int, task: Any = None, seed: int = 0) -> list[Demonstration]:
    """``n`` demonstrations of a registered task (a name or a Task; default ``sentiment``): its
    :attr:`~rlhf_gym.tasks.Task.demonstrations`, stream ``seed``."""
    from rlhf_gym.tasks import DEFAULT_TASK, get_task

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--from-task needs a positive number of demonstrations, got {n}")
    pairs = get_task(task if task is not None else DEFAULT_TASK).make_demonstrations(n, seed)
    return [Demonstration(prompt, completion) for prompt, completion in pairs]


#: The historical name of :func:`task_demonstrations` (``--from-world``).
world_demonstrations = task_demonstrations


def _batch(tok: Any, demos: list[Demonstration], max_length: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded ``prompt + completion + EOS``; labels are -100 on the prompt and on padding."""
    rows, labels = [], []
    for d in demos:
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        p = tok(d.prompt, add_special_tokens=False)["input_ids"] or [start]
        c = tok(d.completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = (p + c)[-max_length:]  # keep the end: the completion is what is learnt
        n_prompt = max(0, len(ids) - len(c))
        rows.append(ids)
        labels.append([-100] * n_prompt + ids[n_prompt:])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    lab = torch.full_like(input_ids, -100)
    for i, (r, la) in enumerate(zip(rows, labels)):
        input_ids[i, : len(r)], mask[i, : len(r)], lab[i, : len(la)] = torch.tensor(r), 1, torch.tensor(la)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": lab.to(device)}


def _nll(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token NLL over the labelled tokens. Computed here rather than by ``model(labels=...)``:
    transformers cannot name GPT-2's loss type and warns about it on every call."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["labels"][:, 1:].flatten(),
                                             ignore_index=-100)


@torch.no_grad()
def _loss(model: Any, tok: Any, demos: list[Demonstration], cfg: SFTConfig, device: str) -> float:
    total, n = 0.0, 0
    for lo in range(0, len(demos), cfg.batch_size):
        batch = _batch(tok, demos[lo : lo + cfg.batch_size], cfg.max_length, device)
        k = int((batch["labels"][:, 1:] != -100).sum())
        total += float(_nll(model, batch)) * k
        n += k
    return total / max(n, 1)


def train_sft(demos: list[Demonstration], cfg: SFTConfig, out_dir: str | Path | None = None,
              on_step: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Fine-tunes ``cfg.model`` on ``demos``; saves it (HF dir, atomically) to ``out_dir``; returns metrics.

    ``on_step(step, total_steps, loss)`` is called after every optimizer step (progress bars).
    """
    from rlhf_gym.core.models import load_causal_lm, load_tokenizer, resolve_model_path
    if not demos:
        raise DataError("no demonstrations to train on")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not empty; choose a new --out")
    device = resolve_device(cfg.device, "sft: device") or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tok = load_tokenizer(resolve_model_path(cfg.model))
    torch.manual_seed(cfg.seed)
    model = load_causal_lm(cfg.model, device=device)
    order = torch.randperm(len(demos), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    n_val = int(len(demos) * cfg.val_fraction)
    val, train = [demos[i] for i in order[:n_val]], [demos[i] for i in order[n_val:]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    shuffle = torch.Generator().manual_seed(cfg.seed + 1)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total, step = cfg.epochs * steps_per_epoch, 0
    metrics: dict[str, Any] = {"sft/n_train": len(train), "sft/n_val": len(val)}
    if val:
        metrics["sft/val_loss_before"] = _loss(model, tok, val, cfg, device)
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(train), generator=shuffle).tolist()
        for lo in range(0, len(train), cfg.batch_size):
            batch = _batch(tok, [train[i] for i in perm[lo : lo + cfg.batch_size]], cfg.max_length, device)
            loss = _nll(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            metrics["sft/train_loss"] = loss.item()
            if on_step is not None:
                on_step(step, total, loss.item())
    model.eval()
    if val:
        metrics["sft/val_loss"] = _loss(model, tok, val, cfg, device)
    if not all(math.isfinite(v) for k, v in metrics.items() if k.endswith("loss")) or not all(
            bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise ModelError(f"sft diverged (the loss or the weights are not finite after {step} steps with "
                         f"learning_rate={cfg.learning_rate}); nothing was saved — lower learning_rate")
    if out is not None:
        with atomic_dir(out) as tmp:  # `out` is absent or empty (checked above)
            with quiet_transformers():
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
            (tmp / "sft_metrics.json").write_text(json.dumps({**metrics, "config": vars(cfg)}, indent=1))
    return metrics
