"""Reward functions: gold judge, HF classifier (on a local DistilBERT built here), callables, validation."""

from __future__ import annotations

import pytest
import torch

from rlhf_gym.errors import ConfigError, ModelError, RewardError
from rlhf_gym.rewards import CallableReward, checked_scores, make_reward
from rlhf_gym.rewards.gold import VaderGold


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory):
    """A tiny DistilBERT sentiment classifier with NEGATIVE/POSITIVE labels, like the IMDB one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("distilbert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "movie", "the", "was", "great", "awful"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=len(words), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                           id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    DistilBertForSequenceClassification(cfg).save_pretrained(path)
    return str(path)


def test_gold_judge_orders_sentiment():
    s = VaderGold().score(["", "", ""], ["a wonderful, great movie", "the movie", "an awful, boring movie"])
    assert s[0] > 0.5 and s[1] == 0 and s[2] < -0.5
    assert make_reward("gold").score([""], ["great"]).item() == s.new_tensor([0.6249]).item()


def test_classifier_reward_matches_the_model_logit(distilbert_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reward = make_reward(f"classifier:{distilbert_dir}@POSITIVE")
    prompts, completions = ["the movie", "the movie"], [" was great", " was awful bad"]
    got = reward.score(prompts, completions)
    model = AutoModelForSequenceClassification.from_pretrained(distilbert_dir).eval()
    tok = AutoTokenizer.from_pretrained(distilbert_dir)
    with torch.no_grad():
        for i, text in enumerate(["the movie was great", "the movie was awful bad"]):
            assert got[i].item() == pytest.approx(model(**tok(text, return_tensors="pt")).logits[0, 1].item(), abs=1e-5)
    prob = make_reward(f"classifier:{distilbert_dir}@0", output="prob").score(prompts, completions)
    assert ((prob > 0) & (prob < 1)).all()


def test_classifier_errors(distilbert_dir, tmp_path):
    with pytest.raises(ConfigError, match="has no label 'JOYFUL'"):
        make_reward(f"classifier:{distilbert_dir}@JOYFUL")
    with pytest.raises(ConfigError, match="out of range for 2 labels"):
        make_reward(f"classifier:{distilbert_dir}@5")
    with pytest.raises(ModelError, match="cannot load classifier"):
        make_reward(f"classifier:{tmp_path}/nothing-here")
    with pytest.raises(ConfigError, match="unknown reward 'sentiment'"):
        make_reward("sentiment")


def test_callable_rewards_batched_and_per_sample():
    batched = make_reward(lambda p, c: [len(x) for x in c])
    per_sample = CallableReward(lambda p, c: float(c.count("a")), batched=False, name="count_a")
    assert batched.score(["", ""], ["ab", "abc"]).tolist() == [2.0, 3.0]
    assert per_sample.score(["", ""], ["aa", "b"]).tolist() == [2.0, 0.0]


def test_checked_scores_names_the_function():
    nan = CallableReward(lambda p, c: [0.0, float("inf")], name="my_rm")
    with pytest.raises(RewardError, match="reward function my_rm returned inf for completion 1"):
        checked_scores(nan, ["", ""], ["x", "y"])
    with pytest.raises(RewardError, match="returned shape \\(1,\\), expected \\(2,\\)"):
        checked_scores(CallableReward(lambda p, c: [1.0], name="short"), ["", ""], ["x", "y"])
