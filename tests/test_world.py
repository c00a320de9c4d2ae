"""The embedded default world: the review generator and the shipped tokenizer and tiny GPT-2."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rlhf_gym.core.world import EMBEDDED_MODEL_DIR, EVAL_SEED, SENTIMENTS, TRAIN_SEED, Review, ReviewWorld
from rlhf_gym.errors import ConfigError


@pytest.fixture(scope="module")
def held_out() -> list[Review]:
    return ReviewWorld(EVAL_SEED).reviews(400)


@pytest.fixture(scope="module")
def vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(EMBEDDED_MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(EMBEDDED_MODEL_DIR).eval()


# ---- generator -----------------------------------------------------------------------------------


def test_same_seed_same_reviews_and_prefix_stable():
    assert ReviewWorld(3).reviews(50) == ReviewWorld(3).reviews(50)
    assert ReviewWorld(3).reviews(50)[:20] == ReviewWorld(3).reviews(20)
    assert ReviewWorld(3).prompts(20) == [r.prompt for r in ReviewWorld(3).reviews(20)]


def test_seeds_are_different_streams():
    train = {r.text for r in ReviewWorld(TRAIN_SEED).reviews(2000)}
    held = [r.text for r in ReviewWorld(EVAL_SEED).reviews(2000)]
    assert sum(text in train for text in held) <= 2  # the grammar is large; exact repeats are rare


def test_review_shape(held_out):
    for review in held_out:
        assert review.text == review.prompt + review.continuation
        assert review.continuation.startswith(" ") and not review.prompt.endswith(" ")
        assert review.text.endswith(".")
        assert 15 <= len(review.text.split()) <= 40
        assert 4 <= len(review.prompt.split()) <= 10
        assert review.sentiment in SENTIMENTS


def test_all_sentiments_occur(held_out):
    counts = Counter(r.sentiment for r in held_out)
    assert all(counts[s] >= 0.15 * len(held_out) for s in SENTIMENTS), counts


def test_prompts_carry_no_sentiment(held_out, vader):
    assert all(vader.polarity_scores(r.prompt)["compound"] == 0 for r in held_out)


def test_gold_judge_agrees_with_labels(held_out, vader):
    def compound(review: Review) -> float:
        return vader.polarity_scores(review.continuation)["compound"]

    positive = [compound(r) > 0.05 for r in held_out if r.sentiment == "positive"]
    negative = [compound(r) < -0.05 for r in held_out if r.sentiment == "negative"]
    neutral = [abs(compound(r)) <= 0.05 for r in held_out if r.sentiment == "neutral"]
    assert sum(positive) / len(positive) > 0.8
    assert sum(negative) / len(negative) > 0.8
    assert sum(neutral) / len(neutral) > 0.8


@pytest.mark.parametrize("bad", [-1, 2.5, "3", None])
def test_bad_counts_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ReviewWorld().reviews(bad)
    with pytest.raises(ConfigError):
        ReviewWorld().prompts(bad)


def test_bad_seed_is_a_config_error():
    with pytest.raises(ConfigError):
        ReviewWorld(seed="0")


def test_zero_reviews():
    assert ReviewWorld().reviews(0) == []


# ---- shipped tokenizer and model -----------------------------------------------------------------


def test_tokenizer_loads_with_special_tokens(tokenizer):
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.eos_token_id == tokenizer.pad_token_id is not None


def test_tokenizer_round_trips_and_splits_at_the_prompt(tokenizer, held_out):
    for review in held_out[:50]:
        ids = tokenizer(review.text)["input_ids"]
        assert tokenizer.decode(ids) == review.text
        pieces = tokenizer(review.prompt)["input_ids"] + tokenizer(review.continuation)["input_ids"]
        assert pieces == ids


def test_model_matches_tokenizer(model, tokenizer):
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == model.config.pad_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def _encode(tokenizer, reviews: list[Review]) -> list[list[int]]:
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer([r.text for r in reviews])["input_ids"]]


@torch.no_grad()
def _lm_perplexity(model, sequences: list[list[int]]) -> float:
    """Per predicted token: all but each text's first, EOS included. Right padding, masked out."""
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="sum")
    return math.exp(nll.item() / mask[:, 1:].sum().item())


def _unigram_perplexity(train: list[list[int]], held: list[list[int]], vocab_size: int) -> float:
    counts = Counter(t for seq in train for t in seq)
    total = sum(counts.values()) + vocab_size
    targets = [t for seq in held for t in seq[1:]]
    return math.exp(-sum(math.log((counts[t] + 1) / total) for t in targets) / len(targets))


def test_shipped_model_is_a_language_model_of_the_world(model, tokenizer, held_out):
    train = _encode(tokenizer, ReviewWorld(TRAIN_SEED).reviews(2000))
    held = _encode(tokenizer, held_out[:200])
    lm = _lm_perplexity(model, held)
    unigram = _unigram_perplexity(train, held, len(tokenizer))
    assert lm < unigram / 3, (lm, unigram)


def test_docstring_examples_run():
    import doctest

    import rlhf_gym.core.world as world

    result = doctest.testmod(world)
    assert result.attempted > 0 and result.failed == 0
