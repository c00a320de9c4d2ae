"""Shared fixtures: tiny local models built on the fly (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests: CI replays a fixed set of examples (derandomize), so whether a submission lands never
# depends on luck; locally every run explores new examples. Model calls make examples slow, not stuck.
_QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, database=None, deadline=None, suppress_health_check=_QUIET_CHECKS)
settings.register_profile("dev", database=None, deadline=None, suppress_health_check=_QUIET_CHECKS)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

CORPUS = [
    "the movie was great and the acting was wonderful",
    "the food was awful and the service was slow",
    "i loved this book , it was fun and moving",
    "this hotel was dirty and the staff were rude",
    "a fine product that works as described",
] * 20


def build_tiny_lm(path, vocab_size: int = 300, n_positions: int = 64, seed: int = 0):
    """A 2-layer GPT-2 and a byte-level BPE tokenizer saved in ``path`` (random weights, seeded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(fast), n_embd=32, n_layer=2, n_head=2, n_positions=n_positions,
                     eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id, pad_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine thread hand-offs cost up to 10x.
    Set before every test, so a CLI test that changes the thread count cannot slow the ones after it."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny_lm")))


@pytest.fixture(scope="session")
def prompts():
    return ["the movie was", "the food", "i loved this", "this hotel was dirty and", "a"]
