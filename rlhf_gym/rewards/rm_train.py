"""Bradley–Terry reward-model training from preference pairs.

The reward model is an HF sequence-classification model with one output (a causal LM such as the shipped tiny
GPT-2 gets a fresh linear score head). For a pair with rewards r⁺ (chosen) and r⁻ (rejected),
``d = r⁺ - r⁻``, the loss per pair is

* ``-log σ(d - margin)`` for a preference (Bradley–Terry; a positive margin asks for a larger gap),
* ``-½ (log σ(d) + log σ(-d))`` for a tie: the likelihood of "each side wins half the time", minimised at
  ``d = 0``,

averaged with the pair weights (so a K-way ranking counts once), plus the optional reward-centring term
``coef · mean((r⁺ + r⁻)²)`` that keeps rewards near zero (Eisenstein et al. 2023; TRL's
``center_rewards_coefficient``).

>>> import tempfile
>>> from rlhf_gym.rewards.preferences import PreferencePair  # or load_preferences("prefs.jsonl")
>>> pairs = [PreferencePair("The film was", " wonderful and moving.", " dull and awful.")] * 16
>>> config = RewardModelConfig(epochs=2, lr=1e-3, val_fraction=0)
>>> model, tokenizer, metrics = train_reward_model(pairs, config, out_dir=tempfile.mkdtemp() + "/rm", progress=False)
>>> metrics["rm/n_train"], metrics["rm/epochs"]
(16, 2)
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from rlhf_gym.core.checks import check_fields, device_name, resolve_device
from rlhf_gym.core.models import quiet_transformers, resolve_model_path
from rlhf_gym.errors import ConfigError, DataError, ModelError
from rlhf_gym.io import atomic_dir
from rlhf_gym.rewards.base import RewardFunction, checked_scores
from rlhf_gym.rewards.learned import STATS_FILE, LearnedReward, prepare_tokenizer, sequence_rewards
from rlhf_gym.rewards.preferences import PreferencePair


@dataclass
class RewardModelConfig:
    """Hyperparameters of reward-model training."""

    base_model: str | None = None  # HF name or local dir to start from; None = the shipped tiny GPT-2
    lr: float = 1e-4  # AdamW learning rate
    epochs: int = 3  # maximum passes over the training pairs
    batch_size: int = 16  # pairs per optimiser step
    max_length: int = 128  # tokens per prompt+completion text; longer texts keep their end
    val_fraction: float = 0.1  # share of pairs held out for validation, split by prompt (0 = none)
    early_stopping_patience: int | None = 2  # epochs without a better val loss before stopping; None = never
    center_rewards_coefficient: float = 0.0  # weight of the mean((r⁺ + r⁻)²) centring term (try 0.01)
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient-norm clipping threshold
    seed: int = 0  # seeds head initialisation, split, shuffling and dropout
    device: str | None = None  # "cpu", "cuda", ...; None = CUDA when available

    def __post_init__(self):
        self.device = device_name(self.device, "reward model config: device")
        check_fields(self, "reward model config: ")  # types: a bool is a bool, a float is finite
        checks = {
            "lr": self.lr > 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 2,
            "val_fraction": 0 <= self.val_fraction < 1,
            "early_stopping_patience": self.early_stopping_patience is None
            or self.early_stopping_patience >= 1,
            "center_rewards_coefficient": self.center_rewards_coefficient >= 0,
            "weight_decay": self.weight_decay >= 0,
            "max_grad_norm": self.max_grad_norm > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"reward model config: invalid {name}={getattr(self, name)!r}")


def preference_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    tie: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """The weighted Bradley–Terry loss described in the module docstring (a scalar).

    >>> round(preference_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), 4)  # log 2
    0.6931
    """
    d = r_chosen - r_rejected
    margin = torch.zeros_like(d) if margin is None else margin
    weight = torch.ones_like(d) if weight is None else weight
    tie = torch.zeros_like(d, dtype=torch.bool) if tie is None else tie
    per_pair = torch.where(tie, -0.5 * (F.logsigmoid(d) + F.logsigmoid(-d)), -F.logsigmoid(d - margin))
    loss = (weight * per_pair).sum() / weight.sum()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * (r_chosen + r_rejected).pow(2).mean()
    return loss


def preference_metrics(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, tie: torch.Tensor | None = None, n_bins: int = 10
) -> dict[str, Any]:
    """Accuracy, mean margin and calibration of rewards on pairs; ties are left out.

    Calibration compares the predicted ``P(first preferred) = σ(r_first - r_second)`` with how often the first
    was preferred, in ``n_bins`` equal-width bins over [0, 1]; each pair is counted in both orders, so the
    bins are symmetric. ``ece`` is the count-weighted mean ``|predicted - observed|`` (expected calibration
    error). Returns ``accuracy``, ``mean_margin``, ``ece``, ``n_pairs`` and ``calibration`` (a list of
    ``{"low", "high", "count", "predicted", "observed"}``).
    """
    d = (r_chosen - r_rejected).detach().double().cpu()
    if tie is not None:
        d = d[~tie.cpu()]
    if len(d) == 0:
        return {
            "accuracy": math.nan,
            "mean_margin": math.nan,
            "ece": math.nan,
            "n_pairs": 0,
            "calibration": [],
        }
    predicted = torch.cat([torch.sigmoid(d), torch.sigmoid(-d)])
    observed = torch.cat([torch.ones_like(d), torch.zeros_like(d)])
    bins = (predicted * n_bins).long().clamp(max=n_bins - 1)
    calibration, ece = [], 0.0
    for i in range(n_bins):
        in_bin = bins == i
        count = int(in_bin.sum())
        p = float(predicted[in_bin].mean()) if count else None
        o = float(observed[in_bin].mean()) if count else None
        calibration.append(
            {"low": i / n_bins, "high": (i + 1) / n_bins, "count": count, "predicted": p, "observed": o}
        )
        ece += count / len(predicted) * abs(p - o) if count else 0.0
    accuracy = float(((d > 0).double() + 0.5 * (d == 0).double()).mean())
    return {
        "accuracy": accuracy,
        "mean_margin": float(d.mean()),
        "ece": ece,
        "n_pairs": len(d),
        "calibration": calibration,
    }


def evaluate_reward_model(
    reward_fn: RewardFunction, pairs: Sequence[PreferencePair], n_bins: int = 10
) -> dict[str, Any]:
    """:func:`preference_metrics` of any reward function on ``pairs`` (use unnormalised scores for calibration).

    >>> from rlhf_gym.rewards import CallableReward
    >>> pairs = [PreferencePair("p", " good", " bad"), PreferencePair("p", " fine", " awful")]
    >>> evaluate_reward_model(CallableReward(lambda ps, cs: [len(c) for c in cs]), pairs)["accuracy"]
    0.5
    """
    if not pairs:
        raise DataError("no preference pairs to evaluate on")
    prompts = [p.prompt for p in pairs]
    r_chosen = checked_scores(reward_fn, prompts, [p.chosen for p in pairs])
    r_rejected = checked_scores(reward_fn, prompts, [p.rejected for p in pairs])
    return preference_metrics(r_chosen, r_rejected, torch.tensor([p.tie for p in pairs]), n_bins)


def split_pairs(
    pairs: Sequence[PreferencePair], val_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Seeded train/validation split that keeps all pairs of a prompt on one side (rankings don't leak).

    With a single prompt there is nothing to group by, and the pairs themselves are split.
    """
    rng = random.Random(seed)
    target = round(val_fraction * len(pairs))
    if target == 0:
        return list(pairs), []
    prompts = sorted({p.prompt for p in pairs})
    if len(prompts) == 1:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        held = set(order[:target])
        return [p for i, p in enumerate(pairs) if i not in held], [
            p for i, p in enumerate(pairs) if i in held
        ]
    rng.shuffle(prompts)
    sizes = {prompt: 0 for prompt in prompts}
    for p in pairs:
        sizes[p.prompt] += 1
    val_prompts, n_val = set(), 0
    for prompt in prompts:
        if n_val >= target:
            break
        if n_val + sizes[prompt] < len(pairs):  # always leave something to train on
            val_prompts.add(prompt)
            n_val += sizes[prompt]
    return [p for p in pairs if p.prompt not in val_prompts], [p for p in pairs if p.prompt in val_prompts]


def train_reward_model(
    pairs: Sequence[PreferencePair],
    config: RewardModelConfig | None = None,
    out_dir: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> tuple[PreTrainedModel, Any, dict[str, Any]]:
    """Trains a Bradley–Terry reward model; returns ``(model, tokenizer, metrics)`` with the best weights.

    Args:
        pairs: the preference pairs (see :func:`rlhf_gym.rewards.preferences.load_preferences`).
        config: hyperparameters; defaults to :class:`RewardModelConfig()`.
        out_dir: if given, the model is saved there (HF directory + ``reward_stats.json``), atomically: it is
            written to ``out_dir.tmp-XXXX`` and renamed into place, so a failure leaves nothing at ``out_dir``.
            It must not exist yet (or be empty).
        callback: called after every epoch with ``{"step": optimiser steps, "rm/epoch": ..., "rm/train_loss":
            ..., "rm/train_accuracy": ..., "rm/val_loss": ..., "rm/val_accuracy": ..., "rm/val_margin": ...,
            "rm/val_ece": ...}`` (no ``rm/val_*`` keys when ``val_fraction`` is 0).
        progress: show a progress bar.

    The returned metrics hold the final ``rm/*`` values of the kept (best) model plus ``rm/best_epoch``,
    ``rm/n_train``, ``rm/n_val``, ``rm/reward_mean``, ``rm/reward_std`` (normalisation statistics: pass
    ``stats={"mean": ..., "std": ...}`` to :class:`LearnedReward` to score with the in-memory model) and
    ``rm/val_calibration`` (bins, see :func:`preference_metrics`).
    """
    cfg = config or RewardModelConfig()
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, PreferencePair) for p in pairs):
        raise DataError("train_reward_model needs a non-empty list of PreferencePair (see load_preferences)")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not empty; choose a new output folder or delete it")

    torch.manual_seed(cfg.seed)  # the score head is initialised randomly
    model, tokenizer = _load_base(cfg)
    train, val = split_pairs(pairs, cfg.val_fraction, cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    shuffler = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    bar = tqdm(total=cfg.epochs * n_batches, desc="reward model", unit="step", disable=not progress)

    step, best, best_epoch, best_state, stale = 0, math.inf, 0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses, correct = [], []
        for idx in torch.randperm(len(train), generator=shuffler).split(cfg.batch_size):
            batch = [train[i] for i in idx.tolist()]
            r_chosen, r_rejected = _pair_rewards(model, tokenizer, batch, cfg.max_length)
            loss = preference_loss(
                r_chosen,
                r_rejected,
                **_pair_tensors(batch, r_chosen.device),
                center_rewards_coefficient=cfg.center_rewards_coefficient,
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            correct.extend(
                bool(c > r) for c, r, pair in zip(r_chosen, r_rejected, batch, strict=True) if not pair.tie
            )
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")

        logged = {"step": step, "rm/epoch": epoch, "rm/train_loss": sum(losses) / len(losses)}
        logged["rm/train_accuracy"] = sum(correct) / len(correct) if correct else math.nan
        if val:
            logged.update(_scalar(_evaluate(model, tokenizer, val, cfg), "rm/val_"))
        if callback is not None:
            callback(dict(logged))
        if not val:  # nothing to select on: keep the last weights
            best_epoch = epoch
        elif logged["rm/val_loss"] < best:
            best, best_epoch, stale = logged["rm/val_loss"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if cfg.early_stopping_patience is not None and stale >= cfg.early_stopping_patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()

    metrics: dict[str, Any] = {"rm/best_epoch": best_epoch, "rm/epochs": epoch, "rm/n_train": len(train)}
    metrics["rm/n_val"] = len(val)
    if val:
        final = _evaluate(model, tokenizer, val, cfg)
        metrics.update(_scalar(final, "rm/val_"), **{"rm/val_calibration": final["calibration"]})
    metrics.update(_reward_stats(model, tokenizer, train, cfg))
    if not all(math.isfinite(metrics[k]) for k in ("rm/reward_mean", "rm/reward_std")):
        raise ModelError(f"reward-model training diverged (rewards are not finite after {step} steps with "
                         f"lr={cfg.lr}); nothing was saved — lower lr or max_grad_norm")
    if out is not None:
        _save_atomic(model, tokenizer, cfg, metrics, out)
    return model, tokenizer, metrics


# ---------------------------------------------------------------------------------------------- helpers


def _load_base(cfg: RewardModelConfig) -> tuple[PreTrainedModel, Any]:
    base = resolve_model_path(cfg.base_model)  # None or "embedded": the shipped tiny GPT-2
    if cfg.base_model is None and not Path(base).is_dir():
        raise ModelError(f"the shipped tiny GPT-2 is missing at {base}; pass base_model= (a name or a path)")
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load base model {base!r} ({str(e).strip().splitlines()[0]})") from e
    device = resolve_device(cfg.device, "reward model config: device") or (
        "cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    prepare_tokenizer(model, tokenizer)
    return model, tokenizer


def _pair_rewards(model, tokenizer, batch: Sequence[PreferencePair], max_length: int):
    """Rewards of the chosen and rejected texts of a batch, in one forward pass."""
    texts = [p.prompt + p.chosen for p in batch] + [p.prompt + p.rejected for p in batch]
    rewards = sequence_rewards(model, tokenizer, texts, max_length)
    return rewards[: len(batch)], rewards[len(batch) :]


def _pair_tensors(batch: Sequence[PreferencePair], device) -> dict[str, torch.Tensor]:
    return {
        "margin": torch.tensor([p.margin for p in batch], device=device),
        "weight": torch.tensor([p.weight for p in batch], device=device),
        "tie": torch.tensor([p.tie for p in batch], device=device),
    }


@torch.no_grad()
def _evaluate(model, tokenizer, pairs: Sequence[PreferencePair], cfg: RewardModelConfig) -> dict[str, Any]:
    """Bradley–Terry loss (without the centring term) and :func:`preference_metrics` on ``pairs``."""
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), 4 * cfg.batch_size):
        r_chosen, r_rejected = _pair_rewards(
            model, tokenizer, pairs[start : start + 4 * cfg.batch_size], cfg.max_length
        )
        chosen.append(r_chosen)
        rejected.append(r_rejected)
    r_chosen, r_rejected = torch.cat(chosen), torch.cat(rejected)
    tensors = _pair_tensors(pairs, r_chosen.device)
    result = preference_metrics(r_chosen, r_rejected, tensors["tie"])
    result["loss"] = preference_loss(r_chosen, r_rejected, **tensors).item()
    result["margin"] = result.pop("mean_margin")
    return result


def _scalar(result: dict[str, Any], prefix: str) -> dict[str, float]:
    return {prefix + k: v for k, v in result.items() if k in ("loss", "accuracy", "margin", "ece")}


def _reward_stats(
    model, tokenizer, train: Sequence[PreferencePair], cfg: RewardModelConfig
) -> dict[str, float]:
    """Mean and std of the raw reward over the distinct training texts (the normalisation statistics)."""
    texts = sorted({(p.prompt, side) for p in train for side in (p.chosen, p.rejected)})
    scorer = LearnedReward(
        model, tokenizer, normalize=False, batch_size=4 * cfg.batch_size, max_length=cfg.max_length
    )
    rewards = scorer.score([t[0] for t in texts], [t[1] for t in texts]).double()
    std = float(rewards.std()) if len(rewards) > 1 else 1.0
    return {
        "rm/reward_mean": float(rewards.mean()),
        "rm/reward_std": max(std, 1e-6),
        "rm/n_texts": len(texts),
    }


def _save_atomic(model, tokenizer, cfg: RewardModelConfig, metrics: dict[str, Any], out: Path) -> None:
    """Writes the HF directory and ``reward_stats.json`` to ``out.tmp-XXXX``, then renames it to ``out``."""
    from importlib.metadata import version  # not rlhf_gym.__version__: importing the package loads envs/

    with atomic_dir(out) as tmp:  # `out` is absent or empty (checked before training)
        with quiet_transformers():
            model.save_pretrained(tmp)  # safetensors
            tokenizer.save_pretrained(tmp)
        stats = {
            "mean": metrics["rm/reward_mean"],
            "std": metrics["rm/reward_std"],
            "max_length": cfg.max_length,
            "truncation_side": "left",
            "config": dataclasses.asdict(cfg),
            "metrics": {k: v for k, v in metrics.items() if k != "rm/val_calibration"},
            "calibration": metrics.get("rm/val_calibration"),
            "rlhf_gym_version": version("rlhf_gym"),
        }
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
