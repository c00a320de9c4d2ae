"""Preallocated KV caches written in place: no ``torch.cat`` per token.

``transformers``' :class:`~transformers.DynamicCache` concatenates every layer's keys and values on every
forward, copying the whole cache each token. :class:`SlabCache` keeps each layer's keys and values in one
buffer of ``capacity`` columns, writes a forward's new columns into it and hands attention a view of the
filled prefix, so a decode step copies only the new token's keys. The sampler keeps every sequence's newest
token in the last column, so all rows write the same columns; :meth:`SlabCache.drop_columns` discards
leading columns no row attends to any more (those of finished episodes) and
:meth:`SlabCache.keep_rows` the rows of finished sequences. The buffer doubles when it is full.

:class:`RingCache` is the sliding window's: exactly ``W`` columns, the newest token written over the column
that just left the window. Attention does not care in which order the columns lie (GPT-style models bake
positions into the hidden states or rotate them into the keys, and the mask says which columns are live),
so the window's mask is handed over rotated to match (:meth:`RingCache.physical`) and the buffers never
move. Models whose attention does read the column order (ALiBi: BLOOM, MPT, Falcon with ``alibi``) get an
``ordered`` ring instead, which shifts its buffers one column per token so that column order is window order.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


class SlabLayer(DynamicLayer):
    """One layer's keys and values in a preallocated ``(B, H, capacity, D)`` buffer; ``keys`` is a view."""

    def __init__(self, capacity: int = 64):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.device = key_states.device
        self._k = key_states.new_zeros(b, h, self.capacity, d)
        self._v = value_states.new_zeros(b, h, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        w = key_states.shape[-2]
        if self.length + w > self.capacity:
            self._resize(max(2 * self.capacity, self.length + w))
        self._k[:, :, self.length:self.length + w] = key_states
        self._v[:, :, self.length:self.length + w] = value_states
        self.length += w
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]
        return self.keys, self.values

    def _resize(self, capacity: int) -> None:
        k, v = self._k, self._v
        self.capacity = capacity
        self._k = k.new_zeros(*k.shape[:2], capacity, k.shape[-1])
        self._v = v.new_zeros(*v.shape[:2], capacity, v.shape[-1])
        self._k[:, :, :self.length], self._v[:, :, :self.length] = k[:, :, :self.length], v[:, :, :self.length]

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def drop_columns(self, n: int) -> None:
        if n <= 0 or not self.is_initialized:
            return
        keep = self.length - n
        self._k[:, :, :keep] = self._k[:, :, n:self.length].clone()
        self._v[:, :, :keep] = self._v[:, :, n:self.length].clone()
        self.length = keep
        self.keys, self.values = self._k[:, :, :keep], self._v[:, :, :keep]

    def pad_columns(self, n: int) -> None:
        """Prepends ``n`` zero columns to every row (a prompt wider than the cache is about to be written)."""
        if n <= 0:
            return
        if self.length + n > self.capacity:
            self._resize(2 * (self.length + n))
        self._k[:, :, n:self.length + n] = self._k[:, :, :self.length].clone()
        self._v[:, :, n:self.length + n] = self._v[:, :, :self.length].clone()
        self._k[:, :, :n], self._v[:, :, :n] = 0.0, 0.0
        self.length += n
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def write_rows(self, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Overwrites the last ``keys.shape[2]`` columns of ``rows`` (stale columns before them are masked)."""
        w = keys.shape[2]
        self._k[rows, :, self.length - w:self.length] = keys.to(self._k.dtype)
        self._v[rows, :, self.length - w:self.length] = values.to(self._v.dtype)

    def keep_rows(self, rows: torch.Tensor) -> None:
        if not self.is_initialized:
            return
        self._k, self._v = self._k[rows], self._v[rows]
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def reset(self) -> None:
        self.length = 0
        self.keys = self.values = None
        self.is_initialized = False


class SlabCache(Cache):
    """A :class:`~transformers.Cache` of :class:`SlabLayer`\\ s, one per transformer layer (created on first use)."""

    def __init__(self, capacity: int = 64):
        super().__init__(layers=None, layer_class_to_replicate=lambda: SlabLayer(capacity))

    @property
    def length(self) -> int:
        """Columns held (the same in every layer)."""
        return self.layers[0].length if self.layers else 0

    def drop_columns(self, n: int) -> None:
        """Forgets the ``n`` oldest columns of every row (their attention-mask columns must go too)."""
        for layer in self.layers:
            layer.drop_columns(n)

    def pad_columns(self, n: int) -> None:
        """Prepends ``n`` zero columns to every row."""
        for layer in self.layers:
            layer.pad_columns(n)

    def write_rows(self, rows: torch.Tensor, other: Cache, take: torch.Tensor) -> None:
        """Writes ``other``'s rows ``take`` (keys and values of every column) into ``rows``' last columns."""
        for layer, new in zip(self.layers, other.layers):
            layer.write_rows(rows, new.keys[take], new.values[take])

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keeps only ``rows`` (indices into the batch), in that order."""
        for layer in self.layers:
            layer.keep_rows(rows)


class RingLayer(DynamicLayer):
    """One layer's keys and values in ``(B, H, W, D)`` buffers; a decode step writes column ``head``."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values, self.head = keys, values, keys.shape[2] - 1
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys[:, :, self.head] = key_states[:, :, -1]
        self.values[:, :, self.head] = value_states[:, :, -1]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.keys.shape[2] - 1  # the query is the window's last column: it may attend to all W

    def get_max_length(self) -> int:
        return -1


def attends_by_column_order(config: Any) -> bool:
    """Whether a model's attention depends on where a key sits (ALiBi biases by column distance), so that a
    ring's rotated columns would change its output."""
    attn = getattr(config, "attn_config", None)
    return (getattr(config, "model_type", None) == "bloom" or bool(getattr(config, "alibi", False))
            or bool(attn.get("alibi", False) if isinstance(attn, dict) else getattr(attn, "alibi", False)))


class RingCache(Cache):
    """A window of ``W`` columns per row as a ring: logical column ``j`` (0 = oldest) is physical column
    ``(head + 1 + j) % W``. Built from a prefill's cache; one token per forward (:meth:`advance` first).

    ``ordered=True`` keeps ``head`` at the last column by shifting the buffers left one column per token
    (a copy of the cache per token, as ``DynamicCache`` makes): for models that attend by column order.
    """

    def __init__(self, prefill: Cache, width: int, ordered: bool = False):
        layers = []
        for layer in prefill.layers:
            k, v = layer.keys, layer.values
            keys = k.new_zeros(*k.shape[:2], width, k.shape[-1])
            values = v.new_zeros(*v.shape[:2], width, v.shape[-1])
            keys[:, :, width - k.shape[2]:], values[:, :, width - v.shape[2]:] = k, v
            layers.append(RingLayer(keys, values))
        super().__init__(layers=layers)
        self.width, self.head, self.ordered = width, width - 1, ordered

    def advance(self) -> None:
        """The next token goes into the column of the window's oldest (which the slide has just dropped)."""
        if self.ordered:
            for layer in self.layers:
                layer.keys[:, :, :-1] = layer.keys[:, :, 1:].clone()
                layer.values[:, :, :-1] = layer.values[:, :, 1:].clone()
            return
        self.head = (self.head + 1) % self.width
        for layer in self.layers:
            layer.head = self.head

    def physical(self, logical: torch.Tensor) -> torch.Tensor:
        """A ``(B, W)`` tensor in window order (oldest first) rearranged into the buffers' column order."""
        return logical.roll(self.head + 1, dims=1)

    def write_rows(self, rows: torch.Tensor, prefill: Cache) -> None:
        """``rows`` start over: the prefill's columns become their newest, every older column zero."""
        n = prefill.layers[0].keys.shape[2]
        cols = (self.head + 1 + torch.arange(self.width - n, self.width, device=rows.device)) % self.width
        for layer, new in zip(self.layers, prefill.layers):
            for buffer, fresh in ((layer.keys, new.keys), (layer.values, new.values)):
                block = buffer.new_zeros(len(rows), *buffer.shape[1:])
                block[:, :, cols] = fresh.to(buffer.dtype)
                buffer[rows] = block
