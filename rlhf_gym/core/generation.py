"""The pieces of KV-cached sampling shared by the sampler, the environments, the agents and the benchmarks.

Inputs are left-padded (the newest token is always in the last column), which is what lets a whole batch
advance one token per forward with one KV cache. Position ids come from the attention mask, so left padding
does not shift positions. The sampler itself is :func:`rlhf_gym.core.sampler.sample`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from rlhf_gym.errors import ConfigError

#: The KV cache's keyword and output field: ``cache`` since transformers 5.x renamed it, ``past_key_values``
#: before (the old name still works there, with a deprecation warning on every forward).
CACHE_FIELD = ("cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)}
               else "past_key_values")


def cached_forward(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   position_ids: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
    """One forward that extends ``cache`` (None: start one); returns ``(logits, cache)``.

    ``logits`` is ``(N, 1, V)``: the next-token logits after the last column only. Every caller samples from
    those, and a prefill that ran the LM head over every prompt position spent 15-27% of its time at GPT-2's
    50k vocabulary on logits nobody reads. The one place that speaks the installed transformers'
    cache API, for the sampler and the sliding window alike.
    """
    kwargs = {CACHE_FIELD: cache} if cache is not None else {}
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                logits_to_keep=1, **kwargs)
    return out.logits, getattr(out, CACHE_FIELD)


def left_pad(seqs: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None,
             device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as left-padded ``(ids, mask)`` of ``width`` columns (default: the longest)."""
    width = width or max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        if s:
            ids[r, width - len(s):] = torch.as_tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def trim_left_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drops leading columns that are padding in every row (a fixed-width observation is mostly padding)."""
    live_cols = attention_mask.bool().any(0)
    first = int(live_cols.float().argmax()) if live_cols.any() else 0
    return input_ids[:, first:], attention_mask[:, first:]


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each left-padded row (padding gets position 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def token_logprobs(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    tokens: torch.Tensor,
    token_mask: torch.Tensor,
    temperature: float = 1.0,
    rows_per_forward: int = 32,
) -> torch.Tensor:
    """Teacher-forced ``log p(token_t | prompt, tokens_<t)`` of right-padded ``tokens`` after left-padded prompts.

    The result is ``(N, T)`` on ``tokens``' device and 0 where ``token_mask`` is False; ``token_mask`` must
    be True on a prefix of each row, as the sampler returns it. Rows are sorted by length and run
    ``rows_per_forward`` at a time, each row's prompt and completion packed against the right edge and each
    forward trimmed to its rows' longest: a rollout's lengths vary, and padding costs as much compute as a
    real token.
    """
    device, home = next(model.parameters()).device, tokens.device
    out = torch.zeros(tokens.shape, device=device)
    if not len(tokens):
        return out.to(home)
    prompt_ids, tokens = prompt_ids.to(device), tokens.to(device)
    prompt_mask, token_mask = prompt_mask.to(device).long(), token_mask.to(device).bool()
    gaps = token_mask[:, 1:] & ~token_mask[:, :-1]
    if bool(gaps.any()):
        row = int(gaps.any(1).nonzero()[0, 0])
        raise ConfigError(f"token_mask row {row} has a gap: it must be True on a prefix of each row "
                          "(right-padded completions)")
    completion_len = token_mask.sum(1)
    total = prompt_mask.sum(1) + completion_len
    order = torch.argsort(total, stable=True)
    for chunk in order.split(rows_per_forward):
        t, width = max(1, int(completion_len[chunk].max())), int(total[chunk].max())
        ids = torch.cat([prompt_ids[chunk], tokens[chunk, :t]], dim=1)
        mask = torch.cat([prompt_mask[chunk], token_mask[chunk, :t].long()], dim=1)
        packed = torch.argsort(mask, dim=1, stable=True)[:, -width:]  # padding first, real tokens in order
        ids, mask = ids.gather(1, packed), mask.gather(1, packed)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                       logits_to_keep=t + 1).logits[:, :-1].float()
        if temperature != 1.0:
            logits = logits / temperature
        # log p = logit - logsumexp: unlike log_softmax this writes no vocabulary-wide tensor, which makes the
        # whole pass 10% faster at GPT-2's 50k vocabulary (BENCHMARKS.md, scripts/bench_sampler.py).
        logp = logits.gather(-1, ids[:, -t:, None]).squeeze(-1) - logits.logsumexp(-1)
        # Row r's j-th token sits in column t - len_r + j of the last t: shift it back to column j.
        n = completion_len[chunk]
        cols = (t - n)[:, None] + torch.arange(t, device=device)
        keep = cols < t
        out[chunk, :t] = logp.gather(1, cols.clamp(max=t - 1)) * keep
    return out.to(home)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row from unnormalised probabilities, by inverting the CDF.

    Exact, and about 10x faster on CPU than ``torch.multinomial``, which draws one random number per
    vocabulary entry: this draws one per row. Zero-probability tokens are never chosen (``right=True``).
    """
    cum = probs.double().cumsum(-1)  # float64: a float32 running sum over 50k entries loses the tail
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64, device=probs.device)
    return torch.searchsorted(cum, u * cum[:, -1:], right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


def top_p_mask(logits: torch.Tensor, top_p: float, min_tokens: int = 1) -> torch.Tensor:
    """Boolean mask of the smallest set of tokens whose probability reaches ``top_p`` (at least ``min_tokens``)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    keep_sorted = (cum - sorted_logits.softmax(-1)) < top_p
    keep_sorted[..., :min_tokens] = True
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Applies temperature, top-k and top-p to a batch of next-token logits (masked entries become -inf)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        logits = logits.masked_fill(~top_p_mask(logits, top_p), float("-inf"))
    return logits
