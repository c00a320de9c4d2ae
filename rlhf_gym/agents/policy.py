"""The actor-critic every agent trains: any HF causal LM (the actor) plus a scalar value head (the critic).

By default the value head reads the LM's own last hidden state (a shared trunk, as in TRL and RL4LMs);
``value_model`` gives the critic a trunk of its own (a copy of the LM whose logits are never used), so the
value loss cannot pull on the policy's weights. Critic-free algorithms (GRPO, RLOO, REINFORCE++, DPO) build
it with ``critic=False``: no value head exists and the values are zeros.

One teacher-forced forward over ``prompt + completion`` gives, for every completion position ``t``, the
logits that predicted token ``t`` and the value ``V(s_t)`` of the state before it — never one forward per
token. Dropout stays off (the module is kept in eval mode): PPO's ratio must compare the same function.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from rlhf_gym.core.generation import position_ids_from_mask, trim_left_padding


def vocab_size(model: PreTrainedModel) -> int:
    """The number of next-token logits ``model`` produces (its action space)."""
    head = model.get_output_embeddings()
    if head is not None and hasattr(head, "out_features"):
        return int(head.out_features)
    return int(model.config.vocab_size)


def hidden_size(model: PreTrainedModel) -> int:
    """Width of the model's last hidden state."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    size = getattr(cfg, "hidden_size", None)
    return int(size) if size is not None else int(model.get_input_embeddings().embedding_dim)


class ActorCritic(nn.Module):
    """A causal LM with a value head on its last hidden state (or on a separate ``value_model``'s).

    The value head is a zero-initialised ``Linear(hidden, 1)`` in float32, so ``V ≡ 0`` before training
    and construction consumes no randomness. With ``critic=False`` it is None and ``forward`` returns zeros.
    """

    def __init__(self, lm: PreTrainedModel, value_model: PreTrainedModel | None = None, critic: bool = True):
        super().__init__()
        self.lm = lm
        self.value_model = value_model if critic else None
        self.value_head = None
        if critic:
            trunk = value_model if value_model is not None else lm
            self.value_head = nn.Linear(hidden_size(trunk), 1, device=next(trunk.parameters()).device)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self.eval()

    def train(self, mode: bool = True) -> ActorCritic:  # dropout stays off (see the module doc)
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, T, V)`` (float32) predicting the last ``n_tokens`` tokens, and values ``(N, T)``.

        ``input_ids`` is a left-padded prompt followed by a right-padded completion of ``n_tokens`` columns;
        position ``t`` of the outputs belongs to the state that produced completion token ``t``.
        """
        positions = position_ids_from_mask(attention_mask)
        shared = self.value_model is None and self.value_head is not None
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                      output_hidden_states=shared, logits_to_keep=n_tokens + 1)
        logits = out.logits[:, :-1].float()
        if self.value_head is None:
            return logits, logits.new_zeros(logits.shape[:2])
        if shared:
            hidden = out.hidden_states[-1]
        else:
            hidden = self.value_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                                      output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
        values = self.value_head(hidden[:, -n_tokens - 1 : -1].float()).squeeze(-1)
        return logits, values

    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Float32 logits ``(N, V)`` for the next token of left-padded sequences (what ``predict`` reads)."""
        input_ids, attention_mask = trim_left_padding(input_ids, attention_mask)
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=position_ids_from_mask(attention_mask), logits_to_keep=1)
        return out.logits[:, -1].float()
