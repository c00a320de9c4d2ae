"""The commongen task: its gold judge, its prompt splits, its Gymnasium id and its shipped starting model."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rlhf_gym  # noqa: F401  (registers the ids)
from rlhf_gym.core.data import load_prompts
from rlhf_gym.tasks import get_task
from rlhf_gym.tasks.commongen import CommonGenGold, demonstrations, parse_concepts, pretraining_text
from rlhf_gym.tasks.commongen_world import CommonGenWorld, grammatical_bigrams, split_of, words_of

PROMPT = "Words: ball, dog, park. Sentence:"


@pytest.fixture(scope="module")
def gold():
    return CommonGenGold()


def score(gold, completion: str, prompt: str = PROMPT) -> float:
    return gold.score([prompt], [completion]).item()


def test_gold_on_hand_written_texts(gold):
    full = score(gold, " The old dog chases a red ball in the park.")
    assert full == pytest.approx(1.0)
    assert score(gold, " Two dogs chased some balls near the park.") == pytest.approx(1.0)  # inflections count
    assert score(gold, " The dog is chasing a ball.") == pytest.approx(full * 2 / 3)
    assert score(gold, " dog ball park") == 0.0
    assert score(gold, " dog, ball, park.") < 0.3
    assert score(gold, " park the ball chases dog in a.") < 0.3  # word salad with every word
    assert score(gold, " The dog the dog the dog the ball in the park.") < 0.5  # repetition
    assert score(gold, "") == 0.0 and score(gold, " !!! ...") == 0.0
    assert score(gold, " The dog chases a ball in the park", ) < full  # no closing "."


def test_gold_never_raises_on_garbage(gold):
    scores = gold.score(["garbage", "", "Words: . Sentence:", PROMPT], ["The dog.", "x", "y", "\x00\ufffd"])
    assert scores.dtype == torch.float32 and scores.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert parse_concepts(None) is None


def test_generated_sentences_are_full_score(gold):
    items = CommonGenWorld(5, "train").items(200)
    assert gold.score([i.prompt for i in items], [i.sentence for i in items]).min().item() == pytest.approx(1.0)
    prompts, completions = zip(*demonstrations(50))
    assert gold.score(prompts, completions).min().item() == pytest.approx(1.0)
    bigrams = grammatical_bigrams()
    for text in pretraining_text(50):
        words = words_of(text.partition("Sentence:")[2])
        assert all(p in bigrams for p in zip(words, words[1:]))


def test_splits_disjoint_and_deterministic():
    train = {parse_concepts(p) for p in load_prompts("commongen:train", n=2000)}
    held_out = {parse_concepts(p) for p in load_prompts("commongen:eval", n=2000)}
    assert not train & held_out
    assert {split_of(c) for c in held_out} == {"eval"} and {split_of(c) for c in train} == {"train"}
    assert CommonGenWorld(3, "eval").items(20) == CommonGenWorld(3, "eval").items(20)
    assert CommonGenWorld(3, "eval").items(20) != CommonGenWorld(4, "eval").items(20)
    assert pretraining_text(5, seed=1) == pretraining_text(5, seed=1) != pretraining_text(5, seed=0)


def test_check_env():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("rlhf_gym/Commongen-v0")
    assert env.unwrapped.engine.task is get_task("commongen")
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)


def test_shipped_model_starts_middling(gold):
    from rlhf_gym.agents.evaluation import evaluate

    env = gym.make("rlhf_gym/Commongen-v0")
    metrics = evaluate(env.unwrapped.engine.ref, env, prompts="commongen:eval", n=256, seed=0)
    # measured 0.39-0.46 (sd 0.27-0.31 per sample) over sampling seeds 0-4: fluent, about half the words
    assert 0.25 < metrics["gold_reward"] < 0.65
