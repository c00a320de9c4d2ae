"""Continuous-batching sampler: N prompts through ``slots`` rows of one preallocated KV cache.

A fixed batch wastes the slots of rows that end on EOS early: they ride along as padding until the longest
row ends. Here a row that finishes hands its slot to the next waiting prompt, so a rollout of N episodes
keeps ``slots`` rows busy until the queue is empty, and rows whose episode ended with nothing left to start
are dropped from the batch. Every step is one cached forward over the live rows' newest tokens; a slot that
starts a new episode gets its prompt by a prefill of the new prompts alone, spliced into its row of the
cache (cheaper on CPU than padding every row of the decode forward to the prompt's width), and draws its
first token from that prefill's logits, so it joins the very next decode forward.

What each episode gets does not depend on the schedule. Its t-th token is drawn with the t-th of its own
pre-drawn uniforms, by inverting the CDF of its own next-token distribution, and its attention sees only its
own columns (a slot's older columns are masked). So the same ``generator`` gives the same tokens whether the
episodes run alone, in a fixed batch or through any number of slots; log-probs agree to float rounding
(matrix shapes differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedModel

from rlhf_gym.core.checks import check_int
from rlhf_gym.core.generation import cached_forward, position_ids_from_mask, process_logits, trim_left_padding
from rlhf_gym.core.kvcache import SlabCache
from rlhf_gym.errors import ConfigError


@dataclass
class Samples:
    """What :func:`sample` returns: right-padded completions and the sampling log-probs of each token."""

    tokens: torch.Tensor  # (N, T) long, pad after the first EOS
    logprobs: torch.Tensor  # (N, T) float, log-prob of each token under the sampling distribution
    mask: torch.Tensor  # (N, T) bool, True for generated tokens up to and including EOS


class LockstepMask(Protocol):
    """A second LM run in lockstep with the sampler that restricts the next token (NLPO's top-p mask).

    The sampler feeds ``model`` exactly what it feeds the policy (its own KV cache, same rows) and masks the
    policy's logits with ``allowed(model's next-token logits)``.
    """

    model: PreTrainedModel

    def allowed(self, logits: torch.Tensor) -> torch.Tensor: ...


@dataclass
class _Staged:
    """Prompts prefilled together, waiting for free rows: each model's next-token logits and KV cache."""

    logits: list[torch.Tensor]
    caches: list
    mask: torch.Tensor
    used: int = 0


class _Rows:
    """The live rows of one or more models' KV caches: their attention mask and next position ids."""

    def __init__(self, models: list[PreTrainedModel], capacity: int):
        self.models = models
        self.caches = [SlabCache(capacity) for _ in models]
        self.attn: torch.Tensor | None = None  # (R, L) long: the columns each row attends to

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> _Staged:
        pos = position_ids_from_mask(mask)
        outs = [cached_forward(m, ids, mask, pos) for m in self.models]
        return _Staged([logits[:, -1].float() for logits, _ in outs], [cache for _, cache in outs], mask)

    def start(self, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        logits = [cached_forward(m, ids, mask, position_ids_from_mask(mask), c)[0][:, -1].float()
                  for m, c in zip(self.models, self.caches)]
        self.attn = mask.long()
        return logits

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor) -> list[torch.Tensor]:
        """One cached forward of one token per row."""
        self.attn = torch.cat([self.attn, self.attn.new_ones(len(tokens), 1)], dim=1)
        return [cached_forward(m, tokens[:, None], self.attn, positions[:, None], c)[0][:, -1].float()
                for m, c in zip(self.models, self.caches)]

    def splice(self, rows: torch.Tensor, staged: _Staged, take: torch.Tensor) -> None:
        """``rows`` start over with the staged prompts ``take``, written into their last columns."""
        prompt_mask = staged.mask[take]
        width = prompt_mask.shape[1]
        if width > self.attn.shape[1]:  # the cache is narrower than the prompt: widen every row on the left
            grow = width - self.attn.shape[1]
            self.attn = torch.cat([self.attn.new_zeros(len(self.attn), grow), self.attn], dim=1)
            for cache in self.caches:
                cache.pad_columns(grow)
        self.attn[rows] = 0
        self.attn[rows, -width:] = prompt_mask.long()
        for cache, new in zip(self.caches, staged.caches):
            cache.write_rows(rows, new, take)

    def keep(self, rows: torch.Tensor) -> None:
        self.attn = self.attn[rows]
        for cache in self.caches:
            cache.keep_rows(rows)

    def compact(self) -> None:
        """Drops leading columns no row attends to once they are a quarter of the cache."""
        dead = int(self.attn.bool().any(0).float().argmax())
        if dead >= max(8, self.attn.shape[1] // 4):
            self.attn = self.attn[:, dead:]
            for cache in self.caches:
                cache.drop_columns(dead)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    logits_mask: LockstepMask | None = None,
    min_new_tokens: int = 0,
    slots: int | None = None,
    uniforms: torch.Tensor | None = None,
    on_token: Callable[[int], None] | None = None,
) -> Samples:
    """Samples up to ``max_new_tokens`` continuations of left-padded prompts, ``slots`` rows at a time.

    ``slots`` (None: all prompts at once) is how many rows run together; a finished row takes the next
    prompt. EOS is never drawn as one of the first ``min_new_tokens`` tokens (masked before temperature,
    top-k and top-p, as the env's ``action_masks()`` does); ``logits_mask`` restricts every draw further.
    Finished rows emit padding. Episode ``i`` draws its ``t``-th token with ``uniforms[i, t]`` (float64 in
    [0, 1), ``(N, max_new_tokens)``; default: drawn from ``generator``). ``on_token(k)`` is told of every
    ``k`` tokens drawn together.
    """
    min_new_tokens = check_int(min_new_tokens, "min_new_tokens", low=0)
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", low=1)
    n, device = input_ids.shape[0], input_ids.device
    slots = n if slots is None else min(check_int(slots, "slots", low=1), n)
    tokens = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(n, max_new_tokens, device=device)
    mask = torch.zeros(n, max_new_tokens, dtype=torch.bool, device=device)
    if n == 0:
        return Samples(tokens, logprobs, mask)
    # Episode i's t-th draw is uniforms[i, t], whatever slot or step it runs in.
    if uniforms is None:
        uniforms = torch.rand(n, max_new_tokens, generator=generator, dtype=torch.float64, device=device)
    elif tuple(uniforms.shape) != (n, max_new_tokens):
        raise ConfigError(f"uniforms has shape {tuple(uniforms.shape)}; expected (N, max_new_tokens) = "
                          f"({n}, {max_new_tokens})")
    lengths = attention_mask.long().sum(1)
    models = [model] + ([logits_mask.model] if logits_mask is not None else [])
    rows = _Rows(models, capacity=input_ids.shape[1] + max_new_tokens + 8)

    def prefill(first: int) -> _Staged:  # prompts first.. in one forward, `slots` at a time
        episodes = torch.arange(first, min(first + slots, n), device=device)
        return rows.prefill(*trim_left_padding(input_ids[episodes], attention_mask[episodes]))

    eos = torch.tensor([eos_token_id], device=device)

    def draw(logits: list[torch.Tensor], episode: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Each row's next token, from its next-token logits and its episode's ``step``-th uniform; recorded."""
        next_logits = logits[0]
        early = step < min_new_tokens
        if min_new_tokens:
            next_logits = torch.where(early[:, None], next_logits.index_fill(-1, eos, float("-inf")), next_logits)
        next_logits = process_logits(next_logits, temperature, top_k, top_p)
        if logits_mask is not None:
            allowed = logits_mask.allowed(logits[1])
            allowed = torch.where(early[:, None], allowed.index_fill(-1, eos, False), allowed)
            allowed = allowed | ~allowed.any(-1, keepdim=True)  # a mask of EOS alone must leave something to draw
            next_logits = next_logits.masked_fill(~allowed, float("-inf"))
        logp = next_logits.log_softmax(-1)
        cum = logp.exp().double().cumsum(-1)  # float64: a float32 running sum over 50k entries loses the tail
        u = uniforms[episode, step][:, None]
        token = torch.searchsorted(cum, u * cum[:, -1:], right=True).squeeze(-1).clamp(max=cum.shape[-1] - 1)
        tokens[episode, step] = token
        logprobs[episode, step] = logp.gather(-1, token[:, None]).squeeze(-1)
        mask[episode, step] = True
        if on_token is not None:
            on_token(len(token))
        return token

    episode = torch.arange(slots, device=device)  # per live row: its episode, its step, its next position id
    step = torch.zeros(slots, dtype=torch.long, device=device)
    position = lengths[:slots].clone()
    token = draw(rows.start(*trim_left_padding(input_ids[:slots], attention_mask[:slots])), episode, step)
    queued, staged = slots, None  # the next episode to start; prefilled prompts not started yet
    while True:
        step, position = step + 1, position + 1
        ended = ((token == eos_token_id) | (step == max_new_tokens)).nonzero().squeeze(-1)
        # A row whose episode ended takes the next prompt before the decode: its prefilled keys and values are
        # spliced into the row and its first token is drawn from the prefill's logits, so no row sits a step out.
        while len(ended) and queued < n:
            if staged is None or staged.used == len(staged.mask):
                staged = prefill(queued)
            take = torch.arange(staged.used, min(staged.used + len(ended), len(staged.mask)), device=device)
            here, ended = ended[: len(take)], ended[len(take):]
            rows.splice(here, staged, take)
            new = torch.arange(queued, queued + len(take), device=device)
            first = draw([fresh[take] for fresh in staged.logits], new, torch.zeros_like(new))
            episode[here], step[here], position[here], token[here] = new, 1, lengths[new] + 1, first
            ended = torch.cat([ended, here if max_new_tokens == 1 else here[first == eos_token_id]])
            staged.used += len(take)
            queued += len(take)
        if len(ended):  # episodes ended with nothing left to start: their rows leave the batch
            if len(ended) == len(token):
                break
            keep = torch.ones(len(token), dtype=torch.bool, device=device)
            keep[ended] = False
            keep = keep.nonzero().squeeze(-1)
            rows.keep(keep)
            episode, step, position, token = episode[keep], step[keep], position[keep], token[keep]
        rows.compact()
        token = draw(rows.decode(token, position - 1), episode, step)
    return Samples(tokens, logprobs, mask)
