"""The arithmetic task (rlhf_gym/tasks/arithmetic.py): its gold judge, its prompt splits, its env and its model."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rlhf_gym  # noqa: F401  (registers the tasks' ids)
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.generation import left_pad
from rlhf_gym.core.models import ASSETS_DIR, load_causal_lm, load_tokenizer
from rlhf_gym.core.sampler import sample
from rlhf_gym.errors import DataError
from rlhf_gym.tasks import get_task
from rlhf_gym.tasks.arithmetic import ArithmeticGold, evaluate_expression, prompts, split_of

# The model asset is built by scripts/build_arith.py; it is not committed yet (no build reached a middling
# starting accuracy so far), so the tests that need it are skipped until it is.
needs_model = pytest.mark.skipif(not (ASSETS_DIR / "tiny-arith-gpt2" / "config.json").is_file(),
                                 reason="rlhf_gym/assets/tiny-arith-gpt2 not built (scripts/build_arith.py)")

CASES = [  # (prompt, completion, gold)
    ("Q: 37+45-12=", "70", 1.0),
    ("Q: 37+45-12=", " 70", 1.0),
    ("Q: 37+45-12=", "  \n70 and that is it", 1.0),
    ("Q: 37+45-12=", "70.", 1.0),
    ("Q: 37+45-12=", "71", 0.0),
    ("Q: 37+45-12=", "700", 0.0),
    ("Q: 37+45-12=", "70.5", 0.0),
    ("Q: 37+45-12=", "7 0", 0.0),
    ("Q: 37+45-12=", "the answer is 70", 0.0),
    ("Q: 37+45-12=", "", 0.0),
    ("Q: 12-45=", "-33", 1.0),
    ("Q: 12-45=", "33", 0.0),
    ("Q: 12-45=", "- 33", 0.0),
    ("Q: 3+4*5=", "23", 1.0),
    ("Q: 3+4*5=", "35", 0.0),
    ("Q: 7*8-3=", "53", 1.0),
    ("Q: 2+=", "2", 0.0),
    ("Q: 2**3=", "8", 0.0),
    ("Q: __import__('os').system('true')=", "0", 0.0),
    ("the food was", "70", 0.0),
    ("", "", 0.0),
    ("Q: " + "(" * 500 + "1" + ")" * 500 + "=", "1", 0.0),
]


def test_gold_on_hand_written_texts():
    scores = ArithmeticGold().score([p for p, _, _ in CASES], [c for _, c, _ in CASES])
    assert scores.dtype == torch.float32
    assert scores.tolist() == [g for _, _, g in CASES]


def test_gold_agrees_with_python_on_generated_prompts():
    batch = prompts("eval", 200)
    answers = [str(eval(p[3:-1])) for p in batch]  # the test may eval what it generated itself
    assert ArithmeticGold().score(batch, answers).tolist() == [1.0] * 200
    assert evaluate_expression("-(2-9)*2") == 14 and evaluate_expression("1 +") is None


def test_gold_refuses_mismatched_batches():
    with pytest.raises(DataError, match="2 prompts but 1 completions"):
        ArithmeticGold().score(["Q: 1+1=", "Q: 1+2="], ["2"])


def test_splits_are_disjoint_deterministic_and_distinct():
    train, eval_ = load_prompts("arithmetic:train", n=3000), load_prompts("arithmetic:eval", n=500)
    assert not set(train) & set(eval_)
    assert len(set(eval_)) == 500 and all(split_of(p[3:-1]) == "eval" for p in eval_)
    assert load_prompts("arithmetic:eval", n=500) == eval_ and prompts("eval", 10) == eval_[:10]
    task = get_task("arithmetic")
    texts = {t[: t.index("=") + 1] for t in task.make_pretraining_text(3000)}
    demos = task.make_demonstrations(500, seed=1)
    assert not texts & set(eval_) and not {p for p, _ in demos} & set(eval_)
    assert ArithmeticGold().score(*zip(*demos)).tolist() == [1.0] * 500
    assert task.make_pretraining_text(50, seed=3) == task.make_pretraining_text(50, seed=3)
    assert task.make_pretraining_text(50, seed=3) != task.make_pretraining_text(50, seed=4)
    assert len(set(load_prompts("arithmetic:eval"))) < 2000 == len(load_prompts("arithmetic:eval"))  # repeats
    with pytest.raises(DataError, match="unknown arithmetic prompt split"):
        load_prompts("arithmetic:test")


@needs_model
def test_check_env():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    assert gym.spec("rlhf_gym/Arithmetic-v0").kwargs == {"task": "arithmetic", "max_new_tokens": 6}
    env = gym.make("rlhf_gym/Arithmetic-v0")
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)


@needs_model
def test_shipped_model_starts_middling():
    """The band to assert once a middling asset is shipped (target: T=1 accuracy 0.2-0.45)."""
    task = get_task("arithmetic")
    tok, lm = load_tokenizer(task.model), load_causal_lm(task.model)
    assert tok.eos_token == "<|endoftext|>" and all(len(tok(str(d))["input_ids"]) == 1 for d in range(10))
    batch = load_prompts(task.eval_prompts, n=256)
    ids, mask = left_pad([tok(p)["input_ids"] for p in batch], tok.pad_token_id)
    out = sample(lm, ids, mask, max_new_tokens=task.max_new_tokens, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    completions = tok.batch_decode(out.tokens, skip_special_tokens=True)
    accuracy = ArithmeticGold().score(batch, completions).mean().item()
    assert 0.1 < accuracy < 0.6
