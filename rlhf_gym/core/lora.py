"""LoRA policies through peft, with the reference model as the same base with the adapter disabled.

Full fine-tuning holds two copies of the language model: the trainable policy and the frozen reference that
the KL penalty compares it with. With LoRA the policy is the reference's own weights plus a low-rank adapter,
so one copy serves both:

* :func:`add_lora` injects a peft LoRA adapter into a model **in place** (``peft.get_peft_model``); the
  returned ``PeftModel`` is the policy, and only the adapter trains;
* :func:`rlhf_gym.envs.lora.lora_on_reference` does that to an environment's reference model and makes the
  environment's reference the adapter-disabled view of the same modules (the reference belongs with the env).

Agents take this as one hyperparameter (``rlhf_gym.agents.OnPolicyConfig.lora``)::

    PPO(env, lora={"r": 8, "alpha": 16})                    # or, in an agent preset:  lora: {r: 8, alpha: 16}

Checkpoints then hold the adapter alone (``policy/adapter_model.safetensors`` + ``adapter_config.json``);
:func:`load_adapter` reads it back onto the shared base. peft is an optional dependency
(``pip install rlhf_gym[lora]``); nothing here imports it until LoRA is asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel

from rlhf_gym.core.checks import check_fields
from rlhf_gym.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from peft import PeftModel

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _peft():
    try:
        import peft
    except ModuleNotFoundError as e:
        raise ConfigError("lora needs peft: pip install 'rlhf_gym[lora]' (or pip install peft)") from e
    return peft


@dataclass
class LoraSpec:
    """The adapter: rank ``r``, scale ``alpha / r``, ``dropout`` and the modules it adapts."""

    r: int = 8
    """Rank of the low-rank update ``B·A``."""
    alpha: float = 16.0
    """The update is scaled by ``alpha / r``."""
    dropout: float = 0.0
    """Dropout on the adapter's input. The agents keep their policy in eval mode (PPO's ratio must compare
    one function), so it only acts if a caller trains the model in train mode."""
    target_modules: list[str] | str | None = None
    """Module names (or a regex) to adapt; None: peft's default for the architecture (GPT-2: ``c_attn``)."""

    def __post_init__(self) -> None:
        check_fields(self, "lora.")  # types first; the ranges below
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"lora.r={self.r!r} is invalid: must be an integer >= 1")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not self.alpha > 0:
            raise ConfigError(f"lora.alpha={self.alpha!r} is invalid: must be a number > 0")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout={self.dropout!r} is invalid: must be in [0, 1)")
        t = self.target_modules
        if not (t is None or (isinstance(t, str) and t) or
                (isinstance(t, list | tuple) and t and all(isinstance(m, str) and m for m in t))):
            raise ConfigError(f"lora.target_modules={t!r} is invalid: a module name, a list of them, or null")
        if isinstance(t, tuple):
            self.target_modules = list(t)

    @classmethod
    def from_mapping(cls, spec: LoraSpec | dict[str, Any]) -> LoraSpec:
        """A spec from a config mapping such as ``{"r": 8, "alpha": 16}``; unknown keys are an error."""
        if isinstance(spec, LoraSpec):
            return spec
        if not isinstance(spec, dict):
            raise ConfigError(f"lora={spec!r} is invalid: a mapping such as {{r: 8, alpha: 16}}, or null for none")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(valid))
        if unknown:
            raise ConfigError(f"lora: unknown key(s) {unknown}; valid: {valid}")
        return cls(**spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def peft_config(self, model: PreTrainedModel):
        """The ``peft.LoraConfig`` for ``model`` (``fan_in_fan_out`` set for GPT-2-style ``Conv1D`` layers)."""
        from transformers.pytorch_utils import Conv1D

        conv1d = any(isinstance(m, Conv1D) for m in model.modules())
        return _peft().LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                  target_modules=self.target_modules, fan_in_fan_out=conv1d,
                                  task_type="CAUSAL_LM")


def add_lora(model: PreTrainedModel, spec: LoraSpec | dict[str, Any]) -> PeftModel:
    """Injects a fresh LoRA adapter into ``model`` in place; returns the ``PeftModel`` (only the adapter trains).

    The adapter's ``B`` starts at zero, so the returned model computes exactly what ``model`` did.
    """
    spec = LoraSpec.from_mapping(spec)
    peft = _peft()
    if isinstance(model, peft.PeftModel) or getattr(model, "peft_config", None):
        raise ConfigError("this model already carries a peft adapter; LoRA is added to a plain causal LM")
    with _quiet_peft():
        try:
            return peft.get_peft_model(model, spec.peft_config(model))
        except ValueError as e:  # e.g. target modules not found, or no default for this architecture
            raise ConfigError(f"cannot add LoRA to {type(model).__name__}: {str(e).splitlines()[0]}") from e


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """Silences a transformers deprecation warning raised from inside peft (nothing a user can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def adapter_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """The adapter's tensors, as ``save_pretrained`` writes them."""
    return _peft().get_peft_model_state_dict(model)


def load_adapter(model: PeftModel, directory: str | Path) -> None:
    """Loads adapter weights saved by ``model.save_pretrained(directory)`` into ``model`` (same spec)."""
    from safetensors.torch import load_file

    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ModelError(f"{directory} holds no LoRA adapter ({ADAPTER_WEIGHTS} is missing)")
    device = next(model.parameters()).device
    result = _peft().set_peft_model_state_dict(model, load_file(path, device=str(device)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ModelError(f"{path} does not fit this LoRA policy (unexpected {unexpected[:3]}...): "
                         "was it saved with the same lora settings?")


def load_lora_model(directory: str | Path, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None) -> PeftModel:
    """A saved adapter directory as its base model (``base_model_name_or_path``) plus the adapter, eval mode."""
    from transformers import AutoModelForCausalLM

    from rlhf_gym.core.models import fuse_gelu, quiet_transformers

    peft = _peft()
    try:
        cfg = peft.PeftConfig.from_pretrained(str(directory))
        with quiet_transformers():
            base = fuse_gelu(AutoModelForCausalLM.from_pretrained(cfg.base_model_name_or_path,
                                                                  **({"dtype": dtype} if dtype else {})))
        with _quiet_peft(), quiet_transformers():
            model = peft.PeftModel.from_pretrained(base, str(directory))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the LoRA adapter in {directory}: {str(e).splitlines()[0]}") from e
    return (model.to(device) if device is not None else model).eval()
