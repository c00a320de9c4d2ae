"""The environment's side of a LoRA policy: its reference becomes the policy's base with the adapter disabled.

:func:`lora_on_reference` turns the env's frozen reference into a LoRA policy sharing its weights
(:func:`rlhf_gym.core.lora.add_lora`), and the env keeps computing the reference through
:class:`AdapterDisabledLM`, a view that runs every forward under ``peft_model.disable_adapter()``: exactly
the base model, whatever the adapter has learnt, and no second copy of the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import PreTrainedModel

from rlhf_gym.core.lora import LoraSpec, add_lora
from rlhf_gym.errors import ConfigError

if TYPE_CHECKING:
    from peft import PeftModel

    from rlhf_gym.envs.engine import EpisodeEngine

__all__ = ["AdapterDisabledLM", "lora_on_reference"]


class AdapterDisabledLM(nn.Module):
    """The base model of a LoRA ``PeftModel``: every forward runs with the adapter disabled.

    Stands in for a frozen reference model wherever one is used (``model(input_ids=..., ...)``, ``generate``,
    ``config``, the embeddings), without a second copy of the weights. It is a view, not a copy: its
    parameters are the peft model's (adapter included, though the adapter never acts here).
    """

    def __init__(self, peft_model: PeftModel):
        super().__init__()
        self.peft_model = peft_model

    @property
    def base(self) -> PreTrainedModel:
        """The underlying transformers model (the adapter is injected into its layers)."""
        return self.peft_model.get_base_model()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.peft_model.disable_adapter():
            return self.base(*args, **kwargs)

    @torch.no_grad()
    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """``generate`` of the base model, adapter disabled."""
        with self.peft_model.disable_adapter():
            return self.base.generate(*args, **kwargs)

    @property
    def config(self):
        return self.base.config

    @property
    def generation_config(self):
        return self.base.generation_config

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def get_input_embeddings(self) -> nn.Module:
        return self.base.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.base.get_output_embeddings()


def lora_on_reference(engine: EpisodeEngine, spec: LoraSpec | dict[str, Any]) -> PeftModel:
    """Turns the environment's reference model into a LoRA policy sharing its weights (see the module doc).

    The engine's reference becomes the adapter-disabled view of the returned ``PeftModel``; its KV cache stays
    valid, since the view computes what the reference computed.
    """
    if isinstance(engine.ref, AdapterDisabledLM):
        raise ConfigError("this env's reference model already serves a LoRA policy; build a new env for another "
                          "LoRA agent (two agents would otherwise share and overwrite one adapter)")
    if not isinstance(engine.ref, PreTrainedModel):
        raise ConfigError(f"lora needs the env's reference to be a transformers model, got {type(engine.ref).__name__}")
    policy = add_lora(engine.ref, spec)
    engine.use_reference(AdapterDisabledLM(policy))
    return policy


