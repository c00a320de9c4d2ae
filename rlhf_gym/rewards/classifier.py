"""Any HF sequence-classification model as a reward, e.g. a DistilBERT sentiment classifier for IMDB."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from rlhf_gym.core.models import quiet_transformers
from rlhf_gym.errors import ConfigError, ModelError


class ClassifierReward:
    """Scores ``prompt + completion`` (or the completion alone) by one label of a text classifier.

    Args:
        model: hub name (e.g. ``lvwerra/distilbert-imdb``), local directory, or a loaded model.
        label: the label to reward, by name (``"POSITIVE"``) or index; case-insensitive for names.
        tokenizer: defaults to the model's own.
        output: ``"logit"`` (the label's raw logit, as TRL's sentiment example), ``"prob"`` (softmax
            probability) or ``"logit_margin"`` (label logit minus the mean of the others).
        include_prompt: score the prompt and completion together (default) or the completion alone.
        batch_size, max_length, device: batching, truncation and placement.
    """

    OUTPUTS = ("logit", "prob", "logit_margin")

    def __init__(
        self,
        model: str | Path | PreTrainedModel,
        label: str | int = 1,
        *,
        tokenizer=None,
        output: str = "logit",
        include_prompt: bool = True,
        batch_size: int = 64,
        max_length: int = 512,
        device: str | torch.device | None = None,
    ):
        if output not in self.OUTPUTS:
            raise ConfigError(f"classifier output {output!r} is not one of {', '.join(self.OUTPUTS)}")
        name = model if not isinstance(model, PreTrainedModel) else model.config.name_or_path
        try:
            with quiet_transformers():
                self.model = (
                    model if isinstance(model, PreTrainedModel)
                    else AutoModelForSequenceClassification.from_pretrained(str(model))
                )
                self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(name))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load classifier {str(name)!r}: {str(e).splitlines()[0]}") from e
        self.model.eval().to(device or "cpu")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.label_index = self._label_index(label)
        self.output, self.include_prompt = output, include_prompt
        self.batch_size, self.max_length = batch_size, max_length
        self.name = f"classifier:{Path(str(name)).name}[{label}]"

    def _label_index(self, label: str | int) -> int:
        n = self.model.config.num_labels
        if isinstance(label, int):
            if not 0 <= label < n:
                raise ConfigError(f"classifier label index {label} is out of range for {n} labels")
            return label
        names = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
        if label.lower() not in names:
            raise ConfigError(f"classifier has no label {label!r}; its labels are {sorted(names)}")
        return names[label.lower()]

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        texts = [p + c for p, c in zip(prompts, completions)] if self.include_prompt else list(completions)
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[i : i + self.batch_size], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            logits = self.model(**enc).logits.float()
            if self.output == "prob":
                out.append(logits.softmax(-1)[:, self.label_index])
            elif self.output == "logit_margin":
                others = torch.cat([logits[:, : self.label_index], logits[:, self.label_index + 1 :]], dim=-1)
                out.append(logits[:, self.label_index] - others.mean(-1))
            else:
                out.append(logits[:, self.label_index])
        return torch.cat(out).cpu() if out else torch.zeros(0)

    def __repr__(self) -> str:
        return f"ClassifierReward({self.name}, output={self.output})"
