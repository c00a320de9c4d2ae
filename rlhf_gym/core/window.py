"""A causal LM's incremental view of N left-padded sequences in a fixed window, with one KV cache.

The window holds ``W`` columns; the newest token is always in the last one. Appending a token runs one
cached forward for the whole batch and slides the window by one column: a row never holds more than ``W``
live tokens, so the column that falls off is padding in every row. A row that starts a new sequence gets its
prompt's keys and values written into its slice of the cache, so the other rows keep theirs. The environment
keeps one of these for the reference model; an agent that steps the environment token by token keeps one
for its policy.

The cache is a :class:`~rlhf_gym.core.kvcache.RingCache` of exactly ``W`` columns written in place: a new
token's keys and values overwrite the column that has just left the window, so a token costs a write of its
own keys and values, not a copy of the whole cache, and attention never reads a stale column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from rlhf_gym.core.generation import cached_forward, left_pad, position_ids_from_mask
from rlhf_gym.core.kvcache import RingCache, attends_by_column_order


class SlidingWindowLM:
    """N sequences of a causal LM in a ``width``-column window; ``next_logits`` predicts each row's next token."""

    def __init__(self, model: PreTrainedModel, num_rows: int, width: int, pad_token_id: int):
        self.model, self.n, self.width, self.pad = model, num_rows, width, pad_token_id
        self.device = next(model.parameters()).device
        self.ids = torch.full((num_rows, width), pad_token_id, dtype=torch.long, device=self.device)
        self.mask = torch.zeros_like(self.ids)
        self.next_logits: torch.Tensor | None = None  # (N, V), float32
        self.cache: RingCache | None = None
        self.ordered = attends_by_column_order(model.config)  # ALiBi: keep the ring's columns in window order

    @torch.no_grad()
    def reset_rows(self, rows: np.ndarray | Sequence[int], prompts: Sequence[Sequence[int]]) -> None:
        """Starts ``rows`` over with the given prompt token ids: one forward over those prompts alone."""
        rows_t = torch.as_tensor(np.asarray(rows), device=self.device, dtype=torch.long)
        longest = max(len(p) for p in prompts)
        new_ids, new_mask = left_pad(prompts, self.pad, self.width, self.device)
        self.ids[rows_t], self.mask[rows_t] = new_ids, new_mask
        # Only the last `longest` columns hold prompt tokens: run the model on those alone.
        ids, mask = new_ids[:, -longest:], new_mask[:, -longest:]
        logits, cache = cached_forward(self.model, ids, mask, position_ids_from_mask(mask))
        logits = logits[:, -1].float()
        if self.next_logits is None:
            self.next_logits = torch.zeros(self.n, logits.shape[-1], device=self.device)
        self.next_logits[rows_t] = logits
        if self.cache is None or len(rows_t) == self.n:
            self.cache = RingCache(cache, self.width, ordered=self.ordered)
        else:
            self.cache.write_rows(rows_t, cache)

    @torch.no_grad()
    def append(self, tokens: torch.Tensor, compute: bool = True) -> None:
        """Appends one token per row and slides the window; with ``compute`` runs the cached forward that
        gives the next ``next_logits`` (skip it when every row is about to be reset)."""
        # A row waiting to be reset may already fill the window; clamping keeps its position id in range.
        positions = self.mask.sum(1, keepdim=True).clamp(max=self.width - 1)
        window = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)  # the window + the new token
        self.ids = torch.cat([self.ids[:, 1:], tokens[:, None]], dim=1)
        self.mask = window[:, 1:]
        # The column that slides out is padding in every live row: the new token's keys overwrite it.
        self.cache.advance()
        if not compute:
            return
        attn = self.cache.physical(self.mask)
        logits, _ = cached_forward(self.model, tokens[:, None], attn, positions, self.cache)
        self.next_logits = logits[:, -1].float()
