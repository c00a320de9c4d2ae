"""DPO, IPO and online DPO: the losses by hand, the three preference formats, labelling, resume, learning."""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest
import torch
from test_agents import comparable, make_env, vowel_reward

from rlhf_gym.agents import DPO, IPO, OnlineDPO
from rlhf_gym.agents.dpo import preference_loss, sequence_logps
from rlhf_gym.cli import main
from rlhf_gym.core.generation import token_logprobs
from rlhf_gym.errors import ConfigError, DataError


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# ----- the losses by hand ------------------------------------------------------------------------------------
CHOSEN, REJECTED = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
REF_CHOSEN, REF_REJECTED = torch.tensor([-3.5, -4.0]), torch.tensor([-3.5, -3.0])
# h = (π_w − ref_w) − (π_l − ref_l): pair 1 (0.5) − (−0.5) = 1;  pair 2 (−1) − (1) = −2


def test_dpo_loss_accuracy_and_margins_by_hand():
    loss, stats = preference_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.5)
    expected = (-log_sigmoid(0.5 * 1) - log_sigmoid(0.5 * -2)) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    # implicit rewards β·(log π − log π_ref): chosen (0.25, −0.5), rejected (−0.25, 0.5): one pair of two is right
    assert math.isclose(stats["rewards/chosen"], (0.25 - 0.5) / 2, abs_tol=1e-6)
    assert math.isclose(stats["rewards/rejected"], (-0.25 + 0.5) / 2, abs_tol=1e-6)
    assert stats["rewards/accuracies"] == 0.5
    assert math.isclose(stats["rewards/margins"], (0.5 - 1.0) / 2, abs_tol=1e-6)
    weighted, _ = preference_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.5, weights=torch.tensor([1.0, 3.0]))
    assert math.isclose(weighted.item(), (-log_sigmoid(0.5) - 3 * log_sigmoid(-1.0)) / 4, rel_tol=1e-6)
    smooth, _ = preference_loss(CHOSEN[:1], REJECTED[:1], REF_CHOSEN[:1], REF_REJECTED[:1], beta=0.5, label_smoothing=0.1)
    assert math.isclose(smooth.item(), -0.9 * log_sigmoid(0.5) - 0.1 * log_sigmoid(-0.5), rel_tol=1e-6)


def test_ipo_loss_by_hand_on_per_token_averages():
    loss, _ = preference_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.5, loss="ipo")
    assert math.isclose(loss.item(), ((1 - 1 / (2 * 0.5)) ** 2 + (-2 - 1) ** 2) / 2, rel_tol=1e-6)  # (0 + 9) / 2
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert sequence_logps(logp, mask, average=False).tolist() == [-6.0, -4.0]
    assert sequence_logps(logp, mask, average=True).tolist() == [-2.0, -4.0]


# ----- preference files -----------------------------------------------------------------------------------
PROMPTS = ["the movie was", "the food", "i loved this", "this hotel was dirty and", "a"]


def style_pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen completions are vowel words, rejected ones consonant words (vowel_reward tells them apart)."""
    rng = random.Random(seed)

    def words(letters: str) -> str:
        return "".join(" " + "".join(rng.choice(letters) for _ in range(rng.randint(1, 3))) for _ in range(2))

    return [{"prompt": rng.choice(PROMPTS), "chosen": words("aeiou"), "rejected": words("tdnrs")} for _ in range(n)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_collect_reads_all_three_formats(tiny_lm_dir, prompts, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "the food", "chosen": " aa", "rejected": " tt"}] * 4)
    with open(tmp_path / "cand.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["input_text", "candidate1", "candidate2", "human_preference"])
        w.writeheader()
        w.writerows([{"input_text": "the food", "candidate1": " tt", "candidate2": " aa", "human_preference": 2}] * 4)
        w.writerow({"input_text": "the food", "candidate1": " tt", "candidate2": " aa", "human_preference": "tie"})
    ranks = write_jsonl(tmp_path / "rank.jsonl", [{"prompt": "the food", "completions": [" aa", " ee", " tt"]}] * 2)
    env = make_env(tiny_lm_dir, prompts, n=4)
    tok = env.engine.tok
    for source, n_pairs, weight in [(pairs, 4, 1.0), (str(tmp_path / "cand.csv"), 4, 1.0), (ranks, 6, 1 / 3)]:
        agent = DPO(env, data=source, eval_fraction=0.0, seed=0)
        assert len(agent.train_pairs) == n_pairs  # the tie is dropped
        buf, _ = agent.collect()
        assert len(buf) == 4 and buf.group_ids.tolist() == [0, 0, 1, 1]
        assert buf.weights.tolist() == pytest.approx([weight] * 2)
        texts = tok.batch_decode(buf.tokens.masked_fill(~buf.token_mask, tok.pad_token_id), skip_special_tokens=True)
        if source != ranks:
            assert texts == [" aa", " tt"] * 2  # chosen first; candidates' human_preference=2 picks candidate2
        assert buf.token_mask[:, -1].sum() <= 4 and (buf.tokens[buf.token_mask] == env.engine.eos).sum() == 4  # EOS
        assert (buf.ref_logprobs[buf.token_mask] < 0).all() and (buf.logprobs[~buf.token_mask] == 0).all()


def test_bad_preference_data_is_a_one_line_error(tiny_lm_dir, prompts, tmp_path):
    env = make_env(tiny_lm_dir, prompts, n=4)
    with pytest.raises(DataError, match="no such preference file"):
        DPO(env, data=str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty file"):
        DPO(env, data=str(tmp_path / "empty.jsonl"))
    one = write_jsonl(tmp_path / "one.jsonl", style_pairs(1))
    with pytest.raises(DataError, match=r"one.jsonl: 1 training pairs .* fewer than the 2 of one batch"):
        DPO(env, data=one, eval_fraction=0.0)
    long = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "a", "chosen": " ab" * 80, "rejected": " b"}] * 4)
    with pytest.raises(DataError, match=r"long.jsonl: pair 0: prompt \+ chosen is \d+ tokens, more than the model's context of 64"):
        DPO(env, data=long)
    with pytest.raises(ConfigError, match="samples_per_prompt=3 is invalid"):
        DPO(env, data=one, samples_per_prompt=3, batch_size=6)


def test_cli_bad_data_path_is_one_line_exit_2(tiny_lm_dir, tmp_path, capsys):
    (tmp_path / "p.txt").write_text("the movie was\nthe food\n")
    (tmp_path / "env.yaml").write_text(f"task: sentiment\nmodel: {tiny_lm_dir}\nprompts: {tmp_path}/p.txt\n"
                                       f"eval_prompts: {tmp_path}/p.txt\nreward: gold\nmax_new_tokens: 4\nnum_envs: 2\n")
    (tmp_path / "agent.yaml").write_text(f"algo: dpo\ndata: {tmp_path}/nope.jsonl\nbatch_size: 2\nrun:\n"
                                         "  total_timesteps: 8\n  eval_episodes: 2\n")
    code = main(["train", "--env", f"{tmp_path}/env.yaml", "--agent", f"{tmp_path}/agent.yaml", "--out",
                 f"{tmp_path}/out", "--no-progress", "--wandb", "disabled"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "nope.jsonl: no such preference file" in err
    assert not (tmp_path / "out").exists()


# ----- one step, the held-out accuracy, online labelling --------------------------------------------------------
def test_one_dpo_step_raises_the_chosen_minus_rejected_log_prob(tiny_lm_dir, prompts, tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", style_pairs(8))
    agent = DPO(make_env(tiny_lm_dir, prompts, n=8), data=data, eval_fraction=0.0, seed=0, learning_rate=1e-3)
    buf, _ = agent.collect()
    before = agent._pair_buffer([agent.train_pairs[i] for i in agent.sampler.order[:4]])
    agent.update(buf)
    after = agent._pair_buffer([agent.train_pairs[i] for i in agent.sampler.order[:4]])

    def delta(b):
        s = sequence_logps(b.logprobs, b.token_mask, average=False)
        return s[0::2] - s[1::2]

    assert (delta(after) > delta(before)).all(), (delta(before), delta(after))
    torch.testing.assert_close(after.ref_logprobs, before.ref_logprobs)  # the reference is frozen


def test_held_out_implicit_accuracy_by_hand(tiny_lm_dir, prompts, tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", style_pairs(40))
    env = make_env(tiny_lm_dir, prompts, n=8)
    agent = DPO(env, data=data, eval_fraction=0.25, seed=0, learning_rate=1e-3).learn(200)
    assert len(agent.eval_pairs) == 10
    right = []
    for prompt, chosen, rejected, *_ in agent.eval_pairs:
        ids, mask = torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long)

        def ratio(side, ids=ids, mask=mask):
            t, m = torch.tensor([side]), torch.ones(1, len(side), dtype=torch.bool)
            return float(token_logprobs(agent.lm, ids, mask, t, m).sum() - token_logprobs(env.engine.ref, ids, mask, t, m).sum())

        right.append(0.1 * ratio(chosen) > 0.1 * ratio(rejected))
    assert agent.evaluate_preferences()["eval/implicit_accuracy"] == pytest.approx(np.mean(right))


def test_online_dpo_orders_each_pair_by_the_reward(tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts, n=16)
    agent = OnlineDPO(env, seed=0, learning_rate=1e-3)
    buf, metrics = agent.collect()
    assert env.engine.beta == 0.0 and metrics["objective/beta"] == 0.0  # the env pays no KL
    chosen, rejected = buf.scores[0::2], buf.scores[1::2]
    assert (chosen >= rejected).all() and buf.group_ids.tolist() == [g for g in range(8) for _ in range(2)]
    assert buf.weights.tolist() == (chosen != rejected).float().tolist()  # ties carry weight 0
    sampled = sorted(s for _, _, s in agent.last_rollout_texts)
    assert sorted(buf.scores.tolist()) == pytest.approx(sampled)  # the same episodes, reordered
    assert set(OnlineDPO(env, seed=0, labeler="annotators").collect()[0].weights.tolist()) <= {0.0, 1.0}


# ----- checkpoints ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DPO, IPO, OnlineDPO])
def test_save_load_and_resume_is_exact(cls, tiny_lm_dir, prompts, tmp_path):
    kw = {} if cls is OnlineDPO else {"data": write_jsonl(tmp_path / "p.jsonl", style_pairs(12))}
    agent = cls(make_env(tiny_lm_dir, prompts, n=8), seed=3, learning_rate=1e-3, minibatch_size=4, **kw).learn(60)
    n = len(agent.history)
    agent.save(tmp_path / "ckpt")
    agent.learn(150)  # DPO's 11 training pairs run out in this stretch: the resumed permutation continues
    resumed = cls.load(tmp_path / "ckpt", env=make_env(tiny_lm_dir, prompts, n=8)).learn(150)
    assert comparable(resumed.history) == comparable(agent.history[n:]) and resumed.num_timesteps == agent.num_timesteps
    for p, q in zip(agent.lm.parameters(), resumed.lm.parameters()):
        torch.testing.assert_close(p, q)
    assert cls.load(tmp_path / "ckpt").env is None  # prediction-only without an env


# ----- learning ------------------------------------------------------------------------------------------------------
def sampled_vowel_reward(agent, env, n=64):
    ids, mask, _ = env.sample_prompts(n)
    s = agent.generate(ids, mask, generator=torch.Generator().manual_seed(123))
    texts = env.engine.tok.batch_decode(s.tokens.masked_fill(~s.mask, env.engine.pad), skip_special_tokens=True)
    return float(np.mean(vowel_reward(None, texts)))


def test_offline_dpo_raises_held_out_accuracy_and_the_chosen_style(tiny_lm_dir, prompts, tmp_path):
    # Measured over seeds 0, 1, 2 (this body with the seed varied): held-out implicit accuracy 0.0 -> 1.0 for each (it is
    # 0 at the start, when every implicit reward is 0; 0.5 would be chance); the sampled vowel reward of 4-token
    # continuations 0.103/0.105/0.109 -> 0.82/0.57/0.81 (gain 0.47-0.72, mean 0.63, sd 0.14). Untrained, the
    # reward varies 0.103-0.109 over those seeds. We assert a gain > 0.25: under every seed's, 50x the noise.
    data = write_jsonl(tmp_path / "p.jsonl", style_pairs(120))
    env = make_env(tiny_lm_dir, prompts, n=16, max_new_tokens=4)
    agent = DPO(env, data=data, seed=0, learning_rate=1e-2, eval_pairs_every=0)
    before = sampled_vowel_reward(agent, env)
    agent.learn(6000)
    assert agent.evaluate_preferences()["eval/implicit_accuracy"] > 0.9
    assert sampled_vowel_reward(agent, env) > before + 0.25


def test_online_dpo_raises_the_reward(tiny_lm_dir, prompts):
    # Measured over seeds 0, 1, 2, 32 updates of 48 tokens at lr 3e-2, gain = mean of the last 2 rollouts' scores
    # minus the first 2: 0.902, 0.846, 0.922 (mean 0.89, sd 0.04); no learning (lr 1e-9): 0.002, -0.052, -0.009
    # (sd 0.03). We assert > 0.5: 9 sd under the mean gain and 15 sd above the no-learning spread.
    env = make_env(tiny_lm_dir, prompts, max_new_tokens=3)
    agent = OnlineDPO(env, seed=0, learning_rate=3e-2).learn(32 * 48)
    scores = [m["objective/scores"] for m in agent.history]
    assert np.mean(scores[-2:]) > np.mean(scores[:2]) + 0.5, scores
