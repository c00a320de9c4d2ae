"""The environment contract: spaces, rewards, KV-cache correctness, bulk == token-by-token, checks, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import rlhf_gym  # noqa: F401  (registers the envs)
from rlhf_gym.core.generation import left_pad, position_ids_from_mask, token_logprobs
from rlhf_gym.core.sampler import sample
from rlhf_gym.envs import TextGenEnv, TextGenVecEnv
from rlhf_gym.errors import ConfigError, DataError, ModelError, RewardError


def length_reward(prompts, completions):
    return [len(c) / 10 for c in completions]


def make_vec(tiny_lm_dir, prompts, n=4, **kw):
    kw = {"reward": length_reward, "max_new_tokens": 6, **kw}
    return TextGenVecEnv(num_envs=n, model=tiny_lm_dir, prompts=prompts, **kw)


def true_ref_logprobs(model, prompt_ids, tokens):
    """log π_ref of each token from one uncached forward over the unpadded sequence (the ground truth)."""
    ids = torch.tensor([prompt_ids + tokens])
    with torch.no_grad():
        logp = model(ids).logits[0, len(prompt_ids) - 1 : -1].log_softmax(-1)
    return logp.gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)


def run_first_episodes(env, rng, eos_at=None):
    """Steps a vec env with random actions until every row has finished one episode."""
    e = env.engine
    env.reset(seed=3)
    prompt_index = e.prompt_index.copy()
    tokens = [[] for _ in range(env.num_envs)]
    rewards = [[] for _ in range(env.num_envs)]
    ref_lps = [[] for _ in range(env.num_envs)]
    scores = [None] * env.num_envs
    done = np.zeros(env.num_envs, dtype=bool)
    t = 0
    while not done.all():
        actions = rng.integers(1, e.vocab_size, size=env.num_envs)
        if eos_at is not None:
            actions[(eos_at == t)] = e.eos
        _, r, term, _, info = env.step(actions)
        for i in np.flatnonzero(~done):
            tokens[i].append(int(actions[i]))
            rewards[i].append(float(r[i]))
            ref_lps[i].append(float(info["ref_logprob"][i]))
            if term[i]:
                scores[i] = float(info["rm_score"][i])
        done |= term
        t += 1
    return prompt_index, tokens, rewards, ref_lps, scores


def test_kv_cached_ref_logprobs_match_uncached_forward(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=4)
    rng = np.random.default_rng(0)
    eos_at = np.array([2, -1, 4, -1])  # rows end at different times, so some rows reset while others go on
    prompt_index, tokens, _, ref_lps, _ = run_first_episodes(env, rng, eos_at)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    for i in range(4):
        truth = true_ref_logprobs(model, env.engine.prompt_ids[prompt_index[i]], tokens[i])
        torch.testing.assert_close(torch.tensor(ref_lps[i]), truth, atol=1e-4, rtol=1e-4)
    assert [len(t) for t in tokens] == [3, 6, 5, 6]


def test_rows_reset_mid_batch_keep_other_rows_exact(tiny_lm_dir, prompts):
    """After a row resets (NEXT_STEP), its new episode and its neighbours' still match an uncached forward."""
    env = make_vec(tiny_lm_dir, prompts, n=3, max_new_tokens=5)
    e, rng = env.engine, np.random.default_rng(1)
    env.reset(seed=0)
    history = {i: (int(e.prompt_index[i]), []) for i in range(3)}
    checked = 0
    for t in range(14):
        actions = rng.integers(1, e.vocab_size, size=3)
        actions[0] = e.eos if t in (1, 4) else actions[0]  # row 0 ends early twice
        needs_reset = env._needs_reset.copy()
        _, _, term, _, info = env.step(actions)
        for i in range(3):
            if needs_reset[i]:
                history[i] = (int(e.prompt_index[i]), [])
                continue
            p, toks = history[i]
            toks.append(int(actions[i]))
            truth = true_ref_logprobs(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), e.prompt_ids[p], toks)
            assert info["ref_logprob"][i] == pytest.approx(float(truth[-1]), abs=1e-4)
            checked += 1
    assert checked > 30


def test_bulk_scoring_equals_token_by_token(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=4, beta=0.3)
    prompt_index, tokens, rewards, _, scores = run_first_episodes(env, np.random.default_rng(2),
                                                                  eos_at=np.array([1, 3, -1, 0]))
    e = env.engine
    width = max(len(e.prompt_ids[i]) for i in prompt_index)
    p_ids = torch.full((4, width), e.pad)
    p_mask = torch.zeros(4, width, dtype=torch.long)
    for r, i in enumerate(prompt_index):
        s = e.prompt_ids[i]
        p_ids[r, width - len(s):], p_mask[r, width - len(s):] = torch.tensor(s), 1
    t = max(len(x) for x in tokens)
    toks = torch.full((4, t), e.pad)
    tmask = torch.zeros(4, t, dtype=torch.bool)
    for r, x in enumerate(tokens):
        toks[r, : len(x)], tmask[r, : len(x)] = torch.tensor(x), True
    bulk = env.score_episodes(p_ids, p_mask, toks, tmask, prompt_index)
    for r in range(4):
        torch.testing.assert_close(bulk.rewards[r, : len(tokens[r])], torch.tensor(rewards[r]), atol=1e-4, rtol=1e-4)
        assert bulk.scores[r].item() == pytest.approx(scores[r])
    assert (bulk.rewards[~tmask] == 0).all()


def test_agent_logprobs_give_full_kl_penalty(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=2, beta=0.5, kl_estimator="k3", max_new_tokens=8)
    env.reset(seed=0)
    logprobs = torch.tensor([-1.0, -3.0])
    _, r, _, _, info = env.step(np.array([5, 6]), logprobs=logprobs)
    ref = torch.tensor(info["ref_logprob"])
    log_ratio = logprobs - ref
    expected = -0.5 * (torch.expm1(-log_ratio) + log_ratio)
    torch.testing.assert_close(torch.tensor(r), expected.float().double())  # float64, like SyncVectorEnv


def test_bulk_path_with_own_sampler(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=8, max_new_tokens=5)
    env.reset(seed=0)
    ids, mask, idx = env.sample_prompts(8)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    s = sample(model, ids, mask, max_new_tokens=5, eos_token_id=env.engine.eos, pad_token_id=env.engine.pad,
               generator=torch.Generator().manual_seed(0))
    out = env.score_episodes(ids, mask, s.tokens, s.mask, idx, logprobs=s.logprobs)
    # Policy == reference here, so the k1 KL of every sampled token is zero up to rounding.
    torch.testing.assert_close(out.rewards.sum(1), out.scores, atol=1e-4, rtol=1e-4)
    assert out.completions and all(isinstance(c, str) for c in out.completions)


def test_sampler_logprobs_match_uncached(tiny_lm_dir, prompts):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    env = make_vec(tiny_lm_dir, prompts, n=4)
    env.reset(seed=0)
    ids, mask, idx = env.sample_prompts(4)
    s = sample(model, ids, mask, max_new_tokens=6, eos_token_id=env.engine.eos, pad_token_id=env.engine.pad,
               generator=torch.Generator().manual_seed(1))
    for r in range(4):
        toks = s.tokens[r][s.mask[r]].tolist()
        truth = true_ref_logprobs(model, env.engine.prompt_ids[idx[r]], toks)
        torch.testing.assert_close(s.logprobs[r][s.mask[r]], truth, atol=1e-4, rtol=1e-4)
    assert position_ids_from_mask(torch.tensor([[0, 0, 1, 1]])).tolist() == [[0, 0, 0, 1]]


def test_teacher_forced_logprobs_match_uncached_across_chunks(tiny_lm_dir):
    """Rows of every prompt and completion length, several forwards' worth: each row's log-probs are its own
    uncached forward's, wherever packing and sorting put it."""
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, 50, size=rng.integers(1, 9)).tolist() for _ in range(11)]
    completions = [rng.integers(1, 50, size=rng.integers(1, 7)).tolist() for _ in range(11)]
    ids, mask = left_pad(prompts, pad_token_id=0)
    tokens = torch.zeros(11, 6, dtype=torch.long)
    tmask = torch.zeros(11, 6, dtype=torch.bool)
    for r, c in enumerate(completions):
        tokens[r, : len(c)], tmask[r, : len(c)] = torch.tensor(c), True
    got = token_logprobs(model, ids, mask, tokens, tmask, rows_per_forward=4)
    for r in range(11):
        truth = true_ref_logprobs(model, prompts[r], completions[r])
        torch.testing.assert_close(got[r, : len(completions[r])], truth, atol=1e-5, rtol=1e-5)
    assert (got[~tmask] == 0).all()
    tmask[2, 0] = False  # a completion with a hole is not right-padded
    with pytest.raises(ConfigError, match="token_mask row 2 has a gap"):
        token_logprobs(model, ids, mask, tokens, tmask)


def test_single_env_episode_and_render(tiny_lm_dir, prompts):
    env = TextGenEnv(model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=3,
                     render_mode="ansi")
    obs, info = env.reset(seed=0, options={"prompt": "the food"})
    assert info["prompt"] == "the food" and obs["attention_mask"][-1] == 1 and obs["attention_mask"][0] == 0
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(np.int64(7))
        assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
        total, steps = total + reward, steps + 1
    assert steps == 3 and info["completion"] and env.render() == "the food" + info["completion"]
    assert obs["input_ids"][-1] == 7
    with pytest.raises(gym.error.ResetNeeded):
        env.step(7)


def test_registered_env_and_make_vec(tiny_lm_dir, prompts):
    env = gym.make("rlhf_gym/Sentiment-v0", model=tiny_lm_dir, prompts=prompts, max_new_tokens=3)
    assert isinstance(env.unwrapped, TextGenEnv)
    venv = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=3, model=tiny_lm_dir, prompts=prompts, max_new_tokens=3)
    assert isinstance(venv, TextGenVecEnv) and venv.metadata["autoreset_mode"].name == "NEXT_STEP"
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)


def test_gymnasium_and_sb3_check_env(tiny_lm_dir, prompts):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for env_id in rlhf_gym.envs.ENV_IDS:
        env = gym.make(env_id, model=tiny_lm_dir, prompts=prompts, max_new_tokens=4)
        check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=True)


def test_seed_determinism(tiny_lm_dir, prompts):
    def rollout(seed):
        env = TextGenEnv(model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=4)
        env.action_space.seed(seed)
        out = []
        for _ in range(3):
            obs, _ = env.reset(seed=seed) if not out else env.reset()
            done = False
            while not done:
                obs, r, done, _, _ = env.step(env.action_space.sample())
                out.append((obs["input_ids"].tolist(), r))
        return out

    assert rollout(5) == rollout(5)
    assert rollout(5) != rollout(6)


# ----- bad input: one clear error naming the value ---------------------------------------------------------
def test_prompt_longer_than_context(tiny_lm_dir):
    with pytest.raises(ConfigError, match="exceeds the model's context of 64"):
        TextGenEnv(model=tiny_lm_dir, prompts=["the movie was " * 20], max_new_tokens=8)
    with pytest.raises(DataError, match="more than max_prompt_tokens=2"):
        TextGenEnv(model=tiny_lm_dir, prompts=["the movie was great"], max_prompt_tokens=2)


def test_empty_prompt_set(tiny_lm_dir):
    with pytest.raises(DataError, match="no prompts|empty"):
        TextGenEnv(model=tiny_lm_dir, prompts=[])


def test_tokenizer_that_does_not_fit_the_model(tiny_lm_dir, tmp_path):
    from conftest import build_tiny_lm

    big = build_tiny_lm(tmp_path / "big", vocab_size=400)
    with pytest.raises(ModelError, match=r"has \d+ tokens but model .* has only 300 embeddings"):
        TextGenEnv(model=tiny_lm_dir, tokenizer=str(big), prompts=["the food"])


def test_action_outside_vocabulary(tiny_lm_dir, prompts):
    env = TextGenEnv(model=tiny_lm_dir, prompts=prompts)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="action 100000 is outside the vocabulary"):
        env.step(100000)
    with pytest.raises(ConfigError, match="not a token id"):
        env.step(1.5)
    venv = make_vec(tiny_lm_dir, prompts, n=2)
    venv.reset(seed=0)
    with pytest.raises(ConfigError, match="action -1 is outside"):
        venv.step(np.array([3, -1]))


@pytest.mark.parametrize(
    "reward, match",
    [
        (lambda p, c: [float("nan")] * len(c), "returned nan for completion 0"),
        (lambda p, c: [1.0] * (len(c) + 1), "returned shape \\(2,\\), expected \\(1,\\)"),
        (lambda p, c: ["good"] * len(c), "not a float tensor"),
    ],
)
def test_bad_reward_function(tiny_lm_dir, prompts, reward, match):
    env = TextGenEnv(model=tiny_lm_dir, prompts=prompts, reward=reward, max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(RewardError, match=match):
        env.step(5)


def test_unknown_kl_estimator_and_bad_beta(tiny_lm_dir, prompts):
    with pytest.raises(ConfigError, match="unknown KL estimator 'k4'"):
        TextGenEnv(model=tiny_lm_dir, prompts=prompts, kl_estimator="k4")
    with pytest.raises(ConfigError, match="beta=-1 is invalid: must be a finite number in \\[0, 1000000.0\\]"):
        TextGenEnv(model=tiny_lm_dir, prompts=prompts, beta=-1)


def test_missing_model_dir():
    with pytest.raises(ModelError, match="does not exist"):
        TextGenEnv(model="./no/such/model", prompts=["x"])


def test_numpy_prompts_and_integer_arrays_are_accepted(tiny_lm_dir, prompts):
    venv = make_vec(tiny_lm_dir, np.array(prompts), n=2)
    assert venv.engine.prompts == list(prompts)
    with pytest.raises(gym.error.ResetNeeded):
        venv.step(np.array([3, 4]))
    venv.reset(seed=0, options={"prompt_index": np.array([1, 2])})
    assert venv.engine.prompt_index.tolist() == [1, 2]
    venv.step(torch.tensor([3, 4]), logprobs=torch.tensor([-1.0, -2.0]))
    venv.step(np.array([3, 4], dtype=np.int32), logprobs=np.array([-1.0, -2.0], dtype=np.float64))
    with pytest.raises(ConfigError, match="shape \\(2, 1\\)"):
        venv.step(np.array([[3], [4]]))


# ----- the agent's share of the KL through wrappers -------------------------------------------------------
def expected_kl_reward(beta, logprob, ref_logprob, estimator):
    """−β·KL_t as the env computes it (float32 tensors), for a check of exact equality."""
    from rlhf_gym.core.kl import kl_estimate

    lp, ref = torch.tensor([logprob], dtype=torch.float32), torch.tensor([ref_logprob], dtype=torch.float32)
    return float(beta * -kl_estimate(lp, ref, estimator)[0])


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_vec_policy_logprobs_through_wrappers_equal_step_kwarg(tiny_lm_dir, prompts, estimator):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics, TransformReward

    kw = dict(n=3, beta=0.4, kl_estimator=estimator, max_new_tokens=4)
    plain = make_vec(tiny_lm_dir, prompts, **kw)
    wrapped = RecordEpisodeStatistics(TransformReward(make_vec(tiny_lm_dir, prompts, **kw), lambda r: r))
    plain.reset(seed=1)
    wrapped.reset(seed=1)
    rng, eos = np.random.default_rng(0), plain.engine.eos
    for t in range(9):
        actions = rng.integers(1, plain.engine.vocab_size, size=3)
        actions[t % 3] = eos if t in (1, 5) else actions[t % 3]
        lp = -rng.random(3) * 3
        _, r_kwarg, term, _, info = plain.step(actions, logprobs=lp)
        wrapped.unwrapped.set_policy_logprobs(lp)
        _, r_set, term_set, _, _ = wrapped.step(actions)
        np.testing.assert_array_equal(r_set, r_kwarg)  # exactly the same reward
        assert (term == term_set).all() and wrapped.unwrapped._pending_logprobs is None
        share_only = plain.engine.beta * info["ref_logprob"]
        stepped = info["_ref_logprob"] & ~term
        assert (np.abs(r_set - share_only)[stepped] > 1e-4).all()  # the agent's log-probs were used
    # a pending value is consumed: the next step without one pays the reference share again
    wrapped.unwrapped.set_policy_logprobs(np.array([-1.0, -2.0, -3.0]))
    wrapped.step(np.array([5, 6, 7]))
    _, r, term, _, info = wrapped.step(np.array([5, 6, 7]))
    rows = info["_ref_logprob"] & ~term
    np.testing.assert_allclose(r[rows], (0.4 * info["ref_logprob"].astype(np.float64))[rows], rtol=1e-6)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_single_env_policy_logprob_full_kl_through_wrappers(tiny_lm_dir, prompts, estimator):
    from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

    env = RecordEpisodeStatistics(TimeLimit(gym.make(
        "rlhf_gym/Sentiment-v0", model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=3,
        beta=0.3, kl_estimator=estimator), max_episode_steps=50))
    env.reset(seed=0)
    total = 0.0
    for t, lp in enumerate([-0.5, None, -4.0]):
        if lp is not None:
            env.unwrapped.set_policy_logprobs(lp)
            assert env.unwrapped.policy_logprob == lp
        _, reward, terminated, _, info = env.step(9 + t)
        assert env.unwrapped.policy_logprob is None  # consumed by this step
        assert type(info["ref_logprob"]) is np.float32 and type(reward) is float
        kl = (expected_kl_reward(0.3, lp, info["ref_logprob"], estimator) if lp is not None
              else float(np.float32(0.3) * info["ref_logprob"]))
        expected = kl + (float(info["rm_score"]) if terminated else 0.0)
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-7) and (lp is None or reward == expected)
        total += reward
    assert terminated and type(info["rm_score"]) is np.float32 and isinstance(info["completion"], str)
    assert info["episode"]["r"] == pytest.approx(total)
    # the attribute Sync/AsyncVectorEnv set through set_attr, through gym.make's wrappers
    env.set_wrapper_attr("policy_logprob", -1.5)
    assert env.unwrapped.policy_logprob == -1.5
    env.reset()
    assert env.unwrapped.policy_logprob is None  # reset discards a pending value


def test_policy_logprobs_validation(tiny_lm_dir, prompts):
    env = TextGenEnv(model=tiny_lm_dir, prompts=prompts)
    for bad in ("a", float("nan"), float("inf"), [1.0], True):
        with pytest.raises(ConfigError, match="policy_logprob=.* is invalid: must be a finite number"):
            env.set_policy_logprobs(bad)
    env.set_policy_logprobs(np.float64(-2.0))
    env.set_policy_logprobs(torch.tensor(-2.0))
    assert env.policy_logprob == -2.0
    venv = make_vec(tiny_lm_dir, prompts, n=2)
    venv.reset(seed=0)
    with pytest.raises(ConfigError, match=r"shape \(2,\)"):
        venv.set_policy_logprobs(np.zeros(3))
    with pytest.raises(ConfigError, match="must be finite"):
        venv.set_policy_logprobs([float("nan"), -1.0])
    venv.set_policy_logprobs([-1.0, -2.0])
    with pytest.raises(ConfigError, match="pending"):
        venv.step(np.array([3, 4]), logprobs=[-1.0, -2.0])


# ----- min_new_tokens and action masks ------------------------------------------------------------------
def test_single_env_min_new_tokens_and_masks(tiny_lm_dir, prompts):
    env = TextGenEnv(model=tiny_lm_dir, prompts=prompts, reward=length_reward, max_new_tokens=5, min_new_tokens=2)
    eos = env.engine.eos
    with pytest.raises(gym.error.ResetNeeded):
        env.action_masks()
    env.reset(seed=0)
    for _ in range(2):
        mask = env.action_masks()
        assert mask.dtype == bool and mask.shape == (env.engine.vocab_size,) and not mask[eos] and mask.sum() == mask.size - 1
        with pytest.raises(ConfigError, match=r"action \d+ \(EOS\) is invalid .*min_new_tokens=2"):
            env.step(eos)
        env.step(5)
    assert env.action_masks().all()
    _, _, terminated, _, info = env.step(eos)
    assert terminated and len(env.engine.completion_ids(0)) == 2
    with pytest.raises(gym.error.ResetNeeded):
        env.action_masks()
    with pytest.raises(ConfigError, match="min_new_tokens=6 is invalid: must be <= max_new_tokens=5"):
        TextGenEnv(model=tiny_lm_dir, prompts=prompts, max_new_tokens=5, min_new_tokens=6)
    with pytest.raises(ConfigError, match="min_new_tokens=-1 is invalid"):
        TextGenVecEnv(num_envs=2, model=tiny_lm_dir, prompts=prompts, min_new_tokens=-1)


def test_vec_action_masks_min_new_tokens_and_top_p(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=3, max_new_tokens=4, min_new_tokens=1, action_mask_top_p=0.5,
                   action_mask_min_tokens=3)
    e = env.engine
    with pytest.raises(gym.error.ResetNeeded):
        env.action_masks()
    env.reset(seed=0)
    masks = env.action_masks()
    assert masks.shape == (3, e.vocab_size) and masks.dtype == bool
    assert not masks[:, e.eos].any() and (masks.sum(1) >= 3).all() and (masks.sum(1) < e.vocab_size).all()
    for r in range(3):  # the nucleus of the reference's next-token distribution, EOS left out
        logp = e.next_logp[r].clone()
        logp[e.eos] = float("-inf")
        top = logp.argsort(descending=True)[:3]
        assert masks[r, top.numpy()].all()
    with pytest.raises(ConfigError, match=r"\(EOS\) is invalid as token 1 of row 1"):
        env.step(np.array([5, e.eos, 5]))
    env.step(np.array([5, 6, 7]))
    masks = env.action_masks()
    allowed_eos = masks[:, e.eos]
    _, _, terminated, _, _ = env.step(np.array([e.eos, 5, 5]))  # EOS is fine from the second token on
    assert terminated.tolist() == [True, False, False]
    masks = env.action_masks()
    assert masks[0].all()  # row 0 restarts on the next step: its action is ignored
    assert masks.shape == (3, e.vocab_size) and allowed_eos.dtype == bool


def eos_prone_lm(tiny_lm_dir):
    """The tiny LM made to love EOS: its final hidden state always points at EOS's embedding."""
    lm = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    eos = lm.config.eos_token_id
    with torch.no_grad():
        lm.transformer.ln_f.weight.zero_()
        lm.transformer.ln_f.bias.copy_(lm.transformer.wte.weight[eos] * 5000)
    return lm


def test_sampler_min_new_tokens(tiny_lm_dir, prompts):
    lm = eos_prone_lm(tiny_lm_dir)
    env = make_vec(tiny_lm_dir, prompts, n=8, max_new_tokens=6)
    ids, mask, _ = env.sample_prompts(8)
    eos = env.engine.eos
    free = sample(lm, ids, mask, max_new_tokens=6, eos_token_id=eos, pad_token_id=env.engine.pad,
                  generator=torch.Generator().manual_seed(0))
    assert (free.tokens[:, 0] == eos).all()  # left alone, every row ends at once
    s = sample(lm, ids, mask, max_new_tokens=6, eos_token_id=eos, pad_token_id=env.engine.pad, min_new_tokens=3,
               generator=torch.Generator().manual_seed(0))
    assert not (s.tokens[:, :3] == eos).any() and (s.tokens[:, 3] == eos).all()
    assert s.mask[:, :4].all() and not s.mask[:, 4:].any()
    with pytest.raises(ConfigError, match="min_new_tokens=-2 is invalid"):
        sample(lm, ids, mask, max_new_tokens=2, eos_token_id=eos, pad_token_id=env.engine.pad, min_new_tokens=-2)


def test_score_episodes_rejects_early_eos(tiny_lm_dir, prompts):
    env = make_vec(tiny_lm_dir, prompts, n=2, max_new_tokens=4, min_new_tokens=2)
    ids, mask, idx = env.sample_prompts(2)
    eos = env.engine.eos
    tokens = torch.tensor([[5, 6, eos, 0], [5, eos, 0, 0]])
    tmask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    with pytest.raises(ConfigError, match="episode 1 ends with EOS as token 2, but min_new_tokens=2"):
        env.score_episodes(ids, mask, tokens, tmask, idx)
    tokens[1, 1], tokens[1, 2], tmask[1, 2] = 7, eos, True
    out = env.score_episodes(ids, mask, tokens, tmask, idx)
    assert out.rewards.shape == (2, 4)


def test_agents_respect_min_new_tokens(tiny_lm_dir, prompts):
    """An EOS-loving policy: the agent's sampler, its KV-cached stepper and a training rollout all hold EOS
    back until min_new_tokens (the env would refuse it otherwise)."""
    from rlhf_gym.agents import PPO

    env = make_vec(tiny_lm_dir, prompts, n=4, max_new_tokens=5, min_new_tokens=2)
    agent = PPO(env, policy=eos_prone_lm(tiny_lm_dir), seed=0, batch_size=4)
    ids, mask, _ = env.sample_prompts(4)
    s = agent.generate(ids, mask)
    assert (s.tokens[:, 2] == env.engine.eos).all() and not (s.tokens[:, :2] == env.engine.eos).any()
    agent.learn(8)  # score_episodes refuses early EOS, so this would raise if the rollout sampled one
    obs, _ = env.reset(seed=0)
    state, starts = agent.stepper(), np.ones(4, dtype=bool)
    ended = 0
    for _ in range(8):
        actions, state = agent.predict(obs, state=state, episode_start=starts)
        obs, _, terminated, _, _ = env.step(actions, logprobs=state.last_logprobs)
        starts = state.starts_after(terminated)
        ended += int(terminated.sum())
    assert ended >= 4
    masks = env.action_masks()
    actions, _ = agent.predict(obs, action_masks=masks)
    assert masks[np.arange(4), actions].all()
