"""Bradley–Terry reward-model training on a tiny local GPT-2 (no downloads)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from rlhf_gym.errors import ConfigError, ModelError
from rlhf_gym.rewards.base import RewardFunction
from rlhf_gym.rewards.learned import LearnedReward
from rlhf_gym.rewards.preferences import PreferencePair
from rlhf_gym.rewards.rm_train import (
    RewardModelConfig,
    evaluate_reward_model,
    preference_loss,
    preference_metrics,
    split_pairs,
    train_reward_model,
)

WORDS = "the a film plot actor scene story music was is and it very quite rather long short".split()
PROMPTS = [
    "The movie",
    "This film",
    "The show",
    "My review",
    "The plot",
    "Overall it",
    "The cast",
    "In short",
]


def synthetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Chosen completions contain the word 'great' somewhere; rejected ones never do."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        rejected = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
        chosen = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
        chosen.insert(rng.randint(0, len(chosen)), "great")
        pairs.append(PreferencePair(rng.choice(PROMPTS), " " + " ".join(chosen), " " + " ".join(rejected)))
    return pairs


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    """A randomly initialised 2-layer GPT-2 with a byte-level BPE tokenizer, saved like a hub checkpoint."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    corpus = [p + " " + " ".join(WORDS + ["great"]) for p in PROMPTS] * 20
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.save_pretrained(path)
    eos = fast.eos_token_id
    config = GPT2Config(
        vocab_size=len(fast),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return str(path)


def config(tiny_lm: str, **overrides) -> RewardModelConfig:
    defaults = dict(base_model=tiny_lm, lr=3e-3, epochs=4, batch_size=16, max_length=32, val_fraction=0.25)
    return RewardModelConfig(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_lm, tmp_path_factory):
    """One training run shared by the tests that only inspect its results."""
    out = tmp_path_factory.mktemp("runs") / "rm"
    logged: list[dict] = []
    model, tokenizer, metrics = train_reward_model(
        synthetic_pairs(240), config(tiny_lm), out_dir=out, callback=logged.append, progress=False
    )
    return model, tokenizer, metrics, logged, out


# ---------------------------------------------------------------------------------------------- the loss


def test_loss_is_bradley_terry_and_margin_raises_it():
    chosen, rejected = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 1.0])
    expected = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    assert torch.allclose(preference_loss(chosen, rejected), expected)
    with_margin = preference_loss(chosen, rejected, margin=torch.tensor([1.0, 1.0]))
    assert torch.allclose(with_margin, -torch.nn.functional.logsigmoid(chosen - rejected - 1.0).mean())
    assert with_margin > preference_loss(chosen, rejected)


def test_tie_loss_is_minimised_at_equal_rewards_and_symmetric():
    tie = torch.tensor([True])
    at = {
        d: preference_loss(torch.tensor([d]), torch.tensor([0.0]), tie=tie).item() for d in (-2.0, 0.0, 2.0)
    }
    assert at[0.0] == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert at[2.0] == pytest.approx(at[-2.0]) and at[2.0] > at[0.0]
    d = torch.tensor([1.5])  # -½(log σ(d) + log σ(-d)); a margin does not apply to ties
    expected = -0.5 * (torch.nn.functional.logsigmoid(d) + torch.nn.functional.logsigmoid(-d))
    got = preference_loss(d, torch.tensor([0.0]), tie=tie, margin=torch.tensor([3.0]))
    assert torch.allclose(got, expected)


def test_weights_and_reward_centring():
    chosen, rejected = torch.tensor([3.0, -1.0]), torch.tensor([1.0, 0.0])
    per_pair = -torch.nn.functional.logsigmoid(chosen - rejected)
    weighted = preference_loss(chosen, rejected, weight=torch.tensor([3.0, 1.0]))
    assert torch.allclose(weighted, (3 * per_pair[0] + per_pair[1]) / 4)
    centred = preference_loss(chosen, rejected, center_rewards_coefficient=0.1)
    assert torch.allclose(centred, per_pair.mean() + 0.1 * ((chosen + rejected) ** 2).mean())


def test_metrics_accuracy_margin_and_calibration():
    chosen, rejected = torch.tensor([2.0, 2.0, -1.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 0.0])
    tie = torch.tensor([False, False, False, True])
    m = preference_metrics(chosen, rejected, tie)
    assert m["accuracy"] == pytest.approx(2 / 3)  # the tie is left out
    assert m["mean_margin"] == pytest.approx(1.0)
    assert sum(b["count"] for b in m["calibration"]) == 6  # 3 pairs, both orders
    assert 0 <= m["ece"] <= 1
    perfect = preference_metrics(torch.zeros(100), torch.zeros(100))  # σ(0)=0.5 and half the orders win
    assert perfect["ece"] == pytest.approx(0.0)


def test_split_keeps_prompts_together_and_is_seeded():
    pairs = synthetic_pairs(200)
    train, val = split_pairs(pairs, 0.25, seed=1)
    assert len(train) + len(val) == 200 and 30 <= len(val) <= 80
    assert not {p.prompt for p in train} & {p.prompt for p in val}
    assert split_pairs(pairs, 0.25, seed=1) == (train, val)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="val_fraction"):
        RewardModelConfig(val_fraction=1.0)
    with pytest.raises(ConfigError, match="lr"):
        RewardModelConfig(lr=0)


# ---------------------------------------------------------------------------------------------- training


def test_training_learns_the_preference(trained):
    _, _, metrics, logged, _ = trained
    # Measured on AMD EPYC over config seeds 0-7 (scripts/audit_learning_tests.py rm): val accuracy 1.0 on
    # every seed; train loss 0.53-0.63 -> 0.009-0.071 (falls >= 7.6x), val loss 0.21-0.49 -> 0.002-0.017
    # (>= 25x). We assert accuracy >= 0.9 and each loss at least halved: far inside every seed's result.
    assert metrics["rm/val_accuracy"] >= 0.9
    assert logged[-1]["rm/train_loss"] < 0.5 * logged[0]["rm/train_loss"]
    assert logged[-1]["rm/val_loss"] < 0.5 * logged[0]["rm/val_loss"]
    assert [e["rm/epoch"] for e in logged] == list(range(1, len(logged) + 1))
    assert all(e["step"] > 0 and "rm/val_ece" in e for e in logged)
    assert len(metrics["rm/val_calibration"]) == 10


def test_saved_directory_loads_as_reward_function_with_identical_scores(trained):
    model, tokenizer, metrics, _, out = trained
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not list(out.parent.glob("rm.tmp-*"))
    stats = json.loads((out / "reward_stats.json").read_text())
    assert stats["mean"] == metrics["rm/reward_mean"] and stats["std"] == metrics["rm/reward_std"]

    pairs = synthetic_pairs(20, seed=7)
    prompts, completions = [p.prompt for p in pairs], [p.chosen for p in pairs]
    loaded = LearnedReward(out, device="cpu")
    assert isinstance(loaded, RewardFunction)
    in_memory = LearnedReward(model, tokenizer, stats={"mean": stats["mean"], "std": stats["std"]})
    torch.testing.assert_close(loaded.score(prompts, completions), in_memory.score(prompts, completions))
    raw = LearnedReward(out, normalize=False, device="cpu").score(prompts, completions)
    torch.testing.assert_close(loaded.score(prompts, completions), (raw - stats["mean"]) / stats["std"])


def test_scores_do_not_depend_on_padding_or_batching(trained):
    _, _, _, _, out = trained
    pairs = synthetic_pairs(9, seed=3)
    prompts, completions = [p.prompt for p in pairs], [p.rejected + " and" * i for i, p in enumerate(pairs)]
    batched = LearnedReward(out, device="cpu", batch_size=64).score(prompts, completions)
    one_by_one = LearnedReward(out, device="cpu", batch_size=1).score(prompts, completions)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_evaluate_reward_model_on_fresh_pairs(trained):
    _, _, _, _, out = trained
    result = evaluate_reward_model(
        LearnedReward(out, normalize=False, device="cpu"), synthetic_pairs(60, seed=11)
    )
    # 8 config seeds on AMD EPYC: accuracy 1.0 and mean margin 4.0-6.2 on every seed.
    assert result["accuracy"] >= 0.9 and result["mean_margin"] > 0
    assert {"ece", "calibration", "n_pairs"} <= result.keys()


def test_early_stopping_keeps_the_best_weights(tiny_lm):
    rng = random.Random(0)  # coin-flip labels: nothing to learn, so the validation loss soon stops improving
    pairs = [PreferencePair(p.prompt, *rng.sample([p.chosen, p.rejected], 2)) for p in synthetic_pairs(64)]
    logged: list[dict] = []
    _, _, metrics = train_reward_model(
        pairs, config(tiny_lm, epochs=12, early_stopping_patience=1), callback=logged.append, progress=False
    )
    assert len(logged) < 12  # 8 seeds (labels and config) on AMD EPYC: stopped after 2-3 of the 12 epochs
    best = min(logged, key=lambda e: e["rm/val_loss"])
    assert metrics["rm/best_epoch"] == best["rm/epoch"] and metrics["rm/epochs"] == len(logged)
    assert metrics["rm/val_loss"] == pytest.approx(best["rm/val_loss"], rel=1e-5)


def test_training_is_deterministic_for_a_seed(tiny_lm):
    pairs = synthetic_pairs(48)
    runs = [train_reward_model(pairs, config(tiny_lm, epochs=2), progress=False) for _ in range(2)]
    (m1, _, metrics1), (m2, _, metrics2) = runs
    assert metrics1 == metrics2
    for (name, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_existing_output_and_missing_model_are_one_line_errors(tiny_lm, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ConfigError, match="already exists"):
        train_reward_model(synthetic_pairs(8), config(tiny_lm), out_dir=tmp_path / "taken", progress=False)
    with pytest.raises(ModelError, match="cannot load base model"):
        train_reward_model(synthetic_pairs(8), config(str(tmp_path / "nope")), progress=False)
    with pytest.raises(ModelError, match="not a reward-model directory"):
        LearnedReward(tmp_path / "taken")


def test_failed_save_leaves_nothing_behind(tiny_lm, tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerFast

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", broken)
    from rlhf_gym.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cannot write .*rm: disk full"):  # an OS error on an output, named
        train_reward_model(
            synthetic_pairs(16), config(tiny_lm, epochs=1), out_dir=tmp_path / "rm", progress=False
        )
    assert list(tmp_path.iterdir()) == []
