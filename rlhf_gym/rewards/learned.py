"""A trained reward model as a :class:`~rlhf_gym.rewards.base.RewardFunction`.

A reward-model directory is an ordinary Hugging Face model directory (a sequence-classification model with
one output, safetensors weights, tokenizer files) plus ``reward_stats.json``, written by
:func:`rlhf_gym.rewards.rm_train.train_reward_model`. :class:`LearnedReward` loads it, scores
``prompt + completion`` texts in batches and normalises the scores with the saved statistics, so a
reward of 0 is an average training text and 1 is one standard deviation better.

>>> import tempfile
>>> from rlhf_gym.rewards.preferences import PreferencePair
>>> from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model
>>> rm_dir = tempfile.mkdtemp() + "/rm"  # `rlhf-gym reward train` writes such a directory
>>> _ = train_reward_model([PreferencePair("The film was", " wonderful.", " awful.")] * 16,
...                        RewardModelConfig(epochs=2, lr=1e-3, val_fraction=0), out_dir=rm_dir, progress=False)
>>> reward = LearnedReward(rm_dir)
>>> good, bad = reward.score(["The film was"] * 2, [" wonderful.", " awful."])
>>> bool(good > 0 > bad)  # normalised: 0 is an average training text
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from rlhf_gym.core.checks import check, check_int, is_bool, is_int, is_number, resolve_device
from rlhf_gym.core.jsonio import read_json
from rlhf_gym.core.models import quiet_transformers
from rlhf_gym.errors import ModelError, RewardError

STATS_FILE = "reward_stats.json"


def prepare_tokenizer(model: PreTrainedModel, tokenizer: Any) -> None:
    """Makes ``model`` and ``tokenizer`` agree on padding so the score is read at the last real token.

    Sequence-classification heads of decoder models (GPT-2 and friends) read the score at the rightmost
    token that is not ``model.config.pad_token_id``. GPT-2 has no pad token, so its EOS token is used, and
    the model is told. Padding goes on the right; truncation drops the *start* of long texts, because the
    end of the completion is what is being judged.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"


def sequence_rewards(
    model: PreTrainedModel, tokenizer: Any, texts: Sequence[str], max_length: int
) -> torch.Tensor:
    """One forward pass: the scalar score of every text, shape ``(len(texts),)`` (keeps the graph)."""
    device = next(model.parameters()).device
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return model(**batch.to(device)).logits[:, 0].float()


class LearnedReward:
    """Scores ``prompt + completion`` with a sequence-classification reward model.

    Args:
        path_or_model: a reward-model directory, or an in-memory model (then pass ``tokenizer`` too).
        tokenizer: the model's tokenizer; read from the directory when omitted.
        normalize: subtract the mean and divide by the std of the rewards on the training texts.
        stats: ``{"mean": ..., "std": ...}``; read from ``reward_stats.json`` when omitted. Needed when
            ``normalize`` is on.
        device: where to run the model; defaults to where an in-memory model already is, and to CUDA when
            available for a model loaded from a directory.
        batch_size: texts per forward pass.
        max_length: longer texts keep their last ``max_length`` tokens; defaults to the training length.

    Puts the model in eval mode. Scores are computed without gradients and returned on the CPU.
    """

    def __init__(
        self,
        path_or_model: str | os.PathLike | PreTrainedModel,
        tokenizer: Any = None,
        *,
        normalize: bool = True,
        stats: Mapping[str, float] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        max_length: int | None = None,
    ):
        saved: dict[str, Any] = {}
        device = resolve_device(device, "device")
        check(is_bool(normalize), "normalize", normalize, "must be true or false (a bool)")
        batch_size = check_int(batch_size, "batch_size", low=1)
        if max_length is not None:
            max_length = check_int(max_length, "max_length", low=2)
        stats_where = "stats"
        if isinstance(path_or_model, (str, os.PathLike)):
            model, loaded_tokenizer, saved = load_reward_model(path_or_model)
            tokenizer = tokenizer or loaded_tokenizer
            device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self.name = f"LearnedReward({path_or_model})"
            stats_where = str(Path(path_or_model) / STATS_FILE)
        else:
            model = path_or_model
            if tokenizer is None:
                raise ModelError(
                    "LearnedReward(model) needs the model's tokenizer: LearnedReward(model, tokenizer)"
                )
            self.name = f"LearnedReward({type(model).__name__})"
        if getattr(model.config, "num_labels", None) != 1:
            raise ModelError(
                f"{self.name}: a reward model has one output, this one has {model.config.num_labels}"
            )
        if stats is not None:
            stats_where = "stats"
            if not isinstance(stats, Mapping):
                raise ModelError(f"{self.name}: stats={stats!r} is invalid: a mapping {{'mean': ..., 'std': ...}}")
        stats = stats if stats is not None else saved
        if normalize and not {"mean", "std"} <= stats.keys():
            raise ModelError(
                f"{self.name}: no reward statistics to normalise with; pass stats= or normalize=False"
            )
        self.mean, self.std = check_stats(stats, stats_where) if normalize else (0.0, 1.0)
        self.model = model.to(device) if device is not None else model
        self.model.eval()
        self.tokenizer = tokenizer
        prepare_tokenizer(self.model, self.tokenizer)
        self.batch_size = batch_size
        saved_length = saved.get("max_length")
        if saved_length is not None and not (is_int(saved_length) and saved_length >= 2):
            raise ModelError(f"{stats_where}: max_length={saved_length!r} is invalid: must be an integer >= 2")
        self.max_length = max_length or saved_length or _position_limit(self.model, tokenizer)

    @torch.no_grad()  # not inference_mode: callers may use the scores in autograd expressions
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Normalised scores of ``prompt + completion``, float32 tensor of shape ``(N,)`` on the CPU."""
        if len(prompts) != len(completions):
            raise RewardError(f"{self.name}: got {len(prompts)} prompts but {len(completions)} completions")
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        raw = torch.empty(len(texts))
        for start in range(0, len(texts), self.batch_size):
            chunk = order[start : start + self.batch_size]
            raw[chunk] = sequence_rewards(
                self.model, self.tokenizer, [texts[i] for i in chunk], self.max_length
            ).cpu()
        return (raw - self.mean) / self.std

    def __repr__(self) -> str:
        return self.name


def load_reward_model(path: str | os.PathLike) -> tuple[PreTrainedModel, Any, dict[str, Any]]:
    """Loads ``(model, tokenizer, stats)`` from a reward-model directory; ``stats`` is ``{}`` if absent."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a reward-model directory (no config.json)")
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(path)
            tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load the reward model ({str(e).strip().splitlines()[0]})") from e
    stats_path = path / STATS_FILE
    stats = read_json(stats_path, "reward-model stats", ModelError) if stats_path.exists() else {}
    return model, tokenizer, stats


def check_stats(stats: Mapping[str, Any], where: str) -> tuple[float, float]:
    """``(mean, std)`` of normalisation statistics: a finite mean and a finite std > 0, or a ModelError naming
    ``where`` (a std of 0 would score every text ±inf)."""
    mean, std = stats.get("mean"), stats.get("std")
    if not is_number(mean):
        raise ModelError(f"{where}: mean={mean!r} is invalid: must be a finite number")
    if not (is_number(std) and std > 0):
        raise ModelError(f"{where}: std={std!r} is invalid: must be a finite number > 0")
    return float(mean), float(std)


def _position_limit(model: PreTrainedModel, tokenizer: Any) -> int:
    limits = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(model.config, "n_positions", None),
    ]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1e9 else None)
    return min((n for n in limits if n), default=512)
