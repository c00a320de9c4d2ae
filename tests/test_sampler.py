"""The continuous-batching sampler: each episode gets what it would get alone, whatever the schedule."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from rlhf_gym.agents.nlpo import TopPMask
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.generation import cached_forward, left_pad, position_ids_from_mask
from rlhf_gym.core.kvcache import SlabCache
from rlhf_gym.core.models import load_tokenizer
from rlhf_gym.core.sampler import sample
from rlhf_gym.core.world import EMBEDDED_MODEL_DIR
from rlhf_gym.errors import ConfigError

T = 24


@pytest.fixture(scope="module")
def lm():
    return AutoModelForCausalLM.from_pretrained(EMBEDDED_MODEL_DIR).eval()


@pytest.fixture(scope="module")
def batch():
    """18 review prompts of different lengths; the embedded model ends about half its rows before T tokens."""
    tok = load_tokenizer(EMBEDDED_MODEL_DIR)
    texts = load_prompts("embedded:eval")[:18]
    texts[3] = texts[3] + " and the rest of it was long , slow and dull , but"  # a wider prompt
    ids, mask = left_pad([tok(t)["input_ids"] for t in texts], tok.pad_token_id)
    return ids, mask, tok.eos_token_id, tok.pad_token_id


def alone(lm, ids, mask, eos, pad, uniforms, **kw):
    """Each prompt sampled by itself (its own left padding trimmed), stacked."""
    outs = [sample(lm, ids[i:i + 1], mask[i:i + 1], max_new_tokens=T, eos_token_id=eos, pad_token_id=pad,
                   uniforms=uniforms[i:i + 1], **kw) for i in range(len(ids))]
    return [torch.cat([getattr(o, f) for o in outs]) for f in ("tokens", "logprobs", "mask")]


@pytest.mark.parametrize("slots", [1, 4, 7, None])
@pytest.mark.parametrize("kw", [{}, {"temperature": 0.7, "top_k": 20, "min_new_tokens": 3}])
def test_every_schedule_gives_each_episode_what_it_gets_alone(lm, batch, slots, kw):
    ids, mask, eos, pad = batch
    u = torch.rand(len(ids), T, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tokens, logprobs, token_mask = alone(lm, ids, mask, eos, pad, u, **kw)
    ended_early = int((token_mask.sum(1) < T).sum())
    assert 4 <= ended_early <= len(ids) - 2  # rows finish at different steps, so slots really are reused
    out = sample(lm, ids, mask, max_new_tokens=T, eos_token_id=eos, pad_token_id=pad, uniforms=u, slots=slots, **kw)
    assert torch.equal(out.tokens, tokens) and torch.equal(out.mask, token_mask)
    torch.testing.assert_close(out.logprobs, logprobs, atol=1e-5, rtol=0)
    assert bool((out.tokens[~out.mask] == pad).all()) and bool((out.logprobs[~out.mask] == 0).all())
    if kw.get("min_new_tokens"):
        assert not bool((out.tokens[:, :3] == eos).any())


def test_logprobs_are_the_models_and_the_generator_seeds_the_draws(lm, batch):
    ids, mask, eos, pad = batch
    kw = dict(max_new_tokens=T, eos_token_id=eos, pad_token_id=pad)
    a = sample(lm, ids, mask, generator=torch.Generator().manual_seed(0), slots=5, **kw)
    b = sample(lm, ids, mask, generator=torch.Generator().manual_seed(0), slots=5, **kw)
    c = sample(lm, ids, mask, generator=torch.Generator().manual_seed(1), slots=5, **kw)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    for r in (0, 3, 11):  # one uncached forward over prompt + completion gives the same log-probs
        n = int(a.mask[r].sum())
        full = torch.cat([ids[r][mask[r].bool()], a.tokens[r, :n]])[None]
        with torch.no_grad():
            logits = lm(full).logits[0, -n - 1:-1].log_softmax(-1)
        truth = logits.gather(-1, a.tokens[r, :n, None]).squeeze(-1)
        torch.testing.assert_close(a.logprobs[r, :n], truth, atol=1e-4, rtol=0)


def test_draws_follow_the_models_distribution(lm, batch):
    """2,000 first tokens of one prompt through 3 slots: their frequencies are the model's top-5 probabilities."""
    ids, mask, eos, pad = batch
    n = 2000
    out = sample(lm, ids[:1].repeat(n, 1), mask[:1].repeat(n, 1), max_new_tokens=1, eos_token_id=eos,
                 pad_token_id=pad, top_k=5, slots=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = lm(ids[:1], attention_mask=mask[:1], position_ids=position_ids_from_mask(mask[:1])).logits[0, -1]
    top = logits.topk(5)
    probs = top.values.softmax(-1)
    freq = torch.stack([(out.tokens[:, 0] == t).float().mean() for t in top.indices])
    assert bool(torch.isin(out.tokens[:, 0], top.indices).all())  # top-k: nothing outside the 5
    assert float((freq - probs).abs().sum()) / 2 < 0.04  # total variation; its sd here is about 0.01


def test_a_lockstep_mask_model_sees_each_episodes_own_tokens(lm, batch):
    ids, mask, eos, pad = batch
    u = torch.rand(len(ids), T, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mask_model = TopPMask(lm, top_p=0.3, min_tokens=2)
    tokens, _, token_mask = alone(lm, ids, mask, eos, pad, u, logits_mask=mask_model)
    out = sample(lm, ids, mask, max_new_tokens=T, eos_token_id=eos, pad_token_id=pad, uniforms=u, slots=4,
                 logits_mask=mask_model)
    assert torch.equal(out.tokens, tokens) and torch.equal(out.mask, token_mask)
    free = sample(lm, ids, mask, max_new_tokens=T, eos_token_id=eos, pad_token_id=pad, uniforms=u, slots=4)
    assert not torch.equal(free.tokens, out.tokens)  # the mask did restrict the draws


def test_a_prompt_wider_than_the_compacted_cache_is_written_whole(lm):
    """Short prompts first, so compaction narrows the cache; then a 40-token prompt takes a slot."""
    tok = load_tokenizer(EMBEDDED_MODEL_DIR)
    seqs = [tok("good")["input_ids"]] * 3 + [tok(" ".join(["the food was good"] * 10))["input_ids"]]
    ids, mask = left_pad(seqs, tok.pad_token_id)
    u = torch.rand(4, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kw = dict(max_new_tokens=30, eos_token_id=-1, pad_token_id=tok.pad_token_id, uniforms=u)
    one_slot = sample(lm, ids, mask, slots=1, **kw)
    last = sample(lm, ids[3:], mask[3:], **{**kw, "uniforms": u[3:]})
    assert torch.equal(one_slot.tokens[3], last.tokens[0])
    torch.testing.assert_close(one_slot.logprobs[3], last.logprobs[0], atol=1e-5, rtol=0)


def test_a_row_that_takes_a_new_prompt_joins_the_next_decode(lm, batch):
    """Through one slot, episode after episode: its first token comes from its prefill, so the decode forwards
    are exactly the tokens fed back (every token but each episode's last), with no step sat out in between."""
    ids, mask, eos, pad = batch
    widths = []
    hook = lm.register_forward_pre_hook(lambda _, args, kwargs: widths.append(kwargs["input_ids"].shape[1]),
                                        with_kwargs=True)
    try:
        out = sample(lm, ids[:6], mask[:6], max_new_tokens=T, eos_token_id=eos, pad_token_id=pad, slots=1,
                     generator=torch.Generator().manual_seed(3))
    finally:
        hook.remove()
    lengths = out.mask.sum(1)
    assert int((lengths < T).sum()) >= 2  # some episodes end on EOS
    assert widths.count(1) == int((lengths - 1).sum())
    assert len(widths) - widths.count(1) == 6  # one prefill per prompt


def test_a_cached_forward_computes_the_next_token_logits_alone(lm, batch):
    ids, mask, *_ = batch
    pos = position_ids_from_mask(mask)
    logits, _ = cached_forward(lm, ids, mask, pos)
    assert logits.shape == (len(ids), 1, lm.config.vocab_size)  # no LM head over the prompt positions
    with torch.no_grad():
        full = lm(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    torch.testing.assert_close(logits, full[:, -1:], atol=1e-5, rtol=0)


def test_slab_cache_matches_dynamic_cache_and_compacts(lm, batch):
    ids, mask, *_ = batch
    pos = position_ids_from_mask(mask)
    a, dyn = cached_forward(lm, ids, mask, pos)
    b, slab = cached_forward(lm, ids, mask, pos, SlabCache(capacity=4))  # too small: it grows
    m = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    step = torch.full((len(ids), 1), 7)
    a2, _ = cached_forward(lm, step, m, pos[:, -1:] + 1, dyn)
    b2, _ = cached_forward(lm, step, m, pos[:, -1:] + 1, slab)
    assert torch.equal(a, b) and torch.equal(a2, b2)
    dead = int((mask.sum(0) == 0).sum())  # leading columns that are padding in every row
    if dead:
        slab.drop_columns(dead)
        b3, _ = cached_forward(lm, step, torch.cat([m[:, dead:], m[:, :1]], 1), pos[:, -1:] + 2, slab)
        a3, _ = cached_forward(lm, step, torch.cat([m, m[:, :1]], 1), pos[:, -1:] + 2, dyn)
        torch.testing.assert_close(a3, b3, atol=1e-5, rtol=0)
    assert isinstance(dyn, DynamicCache) and slab.length == m.shape[1] + (1 - dead if dead else 0)


def test_bad_arguments_are_one_line_errors(lm, batch):
    ids, mask, eos, pad = batch
    with pytest.raises(ConfigError, match="slots"):
        sample(lm, ids, mask, max_new_tokens=4, eos_token_id=eos, pad_token_id=pad, slots=0)
    with pytest.raises(ConfigError, match="uniforms has shape"):
        sample(lm, ids, mask, max_new_tokens=4, eos_token_id=eos, pad_token_id=pad, uniforms=torch.rand(2, 4))
    empty = sample(lm, ids[:0], mask[:0], max_new_tokens=4, eos_token_id=eos, pad_token_id=pad)
    assert empty.tokens.shape == (0, 4)
