"""The native vector env against Gymnasium's own SyncVectorEnv over single envs, in every autoreset mode.

The same seeds and the same tokens go into ``make_vec(id)`` (native, one KV cache) and
``make_vec(id, vectorization_mode="sync")`` (N single envs): observations, terminated, truncated, every info
key, mask, string and dtype must come out identical, row for row. Floats (rewards, ``ref_logprob``) agree to
float32 rounding: a batched forward over N rows is not bit-identical to N forwards of one row (they differ
in the last bit or two, about 1e-7), and that is the only freedom allowed.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import rlhf_gym  # noqa: F401  (registers the envs)
from rlhf_gym.envs import TextGenVecEnv
from rlhf_gym.errors import ConfigError

ENV_ID = "rlhf_gym/Sentiment-v0"


def length_reward(prompts, completions):
    return [len(c) / 10 for c in completions]


def env_kwargs(tiny_lm_dir, prompts, **kw):
    return {"model": tiny_lm_dir, "prompts": prompts, "reward": length_reward, "max_new_tokens": 4, "beta": 0.3, **kw}


def make_pair(tiny_lm_dir, prompts, mode, n=3, **kw):
    kwargs = env_kwargs(tiny_lm_dir, prompts, **kw)
    native = gym.make_vec(ENV_ID, num_envs=n, autoreset_mode=mode, **kwargs)
    sync = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
                        **kwargs)
    assert isinstance(native, TextGenVecEnv) and isinstance(sync, gym.vector.SyncVectorEnv)
    return native, sync


def assert_same(a, b, where="result"):
    """Equal values of the same types and dtypes, through dicts and object arrays."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a, b)):
                assert_same(x, y, f"{where}[{i}]")
        elif np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=where)
            assert ((a == 0) == (b == 0)).all(), f"{where}: zeros differ"  # masked entries stay exactly 0
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float | np.floating):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def drive(native, sync, mode, steps=14, seed=7, logprob_every=3):
    """Steps both envs with the same tokens (some rows end early on EOS); compares every output.

    Every ``logprob_every``-th step the agent's log-probs go in through the unwrapped native env and, for
    the sync env, through ``set_attr("policy_logprob", ...)`` on its sub-envs. Returns what was seen."""
    rng = np.random.default_rng(seed)
    n, eos = native.num_envs, native.unwrapped.engine.eos
    vocab = native.unwrapped.engine.vocab_size
    out_a, out_b = native.reset(seed=seed), sync.reset(seed=seed)
    assert_same(out_a, out_b, "reset")
    seen = {"terminated": 0, "final_info": 0, "reset_prompt_in_step": 0}
    for t in range(steps):
        actions = rng.integers(1, vocab, size=n)
        actions[rng.random(n) < 0.3] = eos
        if t % logprob_every == 1:
            lp = -rng.random(n) * 4
            native.unwrapped.set_policy_logprobs(lp)
            sync.set_attr("policy_logprob", [float(x) for x in lp])
        out_a, out_b = native.step(actions), sync.step(actions)
        assert_same(out_a, out_b, f"step {t}")
        _, rewards, terminated, truncated, info = out_a
        assert rewards.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
        seen["terminated"] += int(terminated.sum())
        seen["final_info"] += int("final_info" in info)
        seen["reset_prompt_in_step"] += int("prompt" in info and not terminated[info["_prompt"]].all())
        if mode is AutoresetMode.DISABLED and terminated.any():
            options = {"reset_mask": terminated.copy()}
            out_a, out_b = native.reset(options=dict(options)), sync.reset(options=dict(options))
            assert_same(out_a, out_b, f"reset_mask after step {t}")
    return seen


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_native_equals_sync_row_for_row(tiny_lm_dir, prompts, mode):
    native, sync = make_pair(tiny_lm_dir, prompts, mode, kl_estimator="k3")
    assert native.autoreset_mode is mode and native.metadata["autoreset_mode"] is mode
    assert sync.metadata["autoreset_mode"] is mode
    seen = drive(native, sync, mode)
    assert seen["terminated"] >= 4  # episodes really ended (and restarted) along the way
    assert (seen["final_info"] > 0) == (mode is AutoresetMode.SAME_STEP)
    assert (seen["reset_prompt_in_step"] > 0) == (mode is AutoresetMode.NEXT_STEP)


def test_rows_seeded_like_sub_envs(tiny_lm_dir, prompts):
    """Row i draws the prompts sub-env i would (seed + i), also for a list of seeds and after reseeding."""
    native, sync = make_pair(tiny_lm_dir, prompts, AutoresetMode.NEXT_STEP, n=4)
    for seed in (0, 1, [5, None, 2, 9]):
        _, a = native.reset(seed=seed)
        _, b = sync.reset(seed=seed)
        assert_same(a, b, f"seed={seed}")
    firsts = {tuple(native.reset(seed=s)[1]["prompt"]) for s in range(6)}
    assert len(firsts) > 1 and any(len(set(p)) > 1 for p in firsts)  # rows differ from one another


def test_same_step_final_obs_is_last_obs_of_the_episode(tiny_lm_dir, prompts):
    env = gym.make_vec(ENV_ID, num_envs=2, autoreset_mode="same_step", **env_kwargs(tiny_lm_dir, prompts))
    obs, _ = env.reset(seed=0)
    eos = env.unwrapped.engine.eos
    before = obs["input_ids"][0].copy()
    obs, _, terminated, _, info = env.step(np.array([eos, 5]))
    assert terminated.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False] and info["final_obs"][1] is None
    final = info["final_obs"][0]["input_ids"]
    assert final[-1] == eos and (final[:-1] == before[1:]).all()  # the finished episode, EOS last
    assert obs["attention_mask"][0].sum() < final.size and obs["input_ids"][0][-1] != eos  # the new episode
    assert info["final_info"]["_rm_score"].tolist() == [True, False] and info["_prompt"].tolist() == [True, False]
    assert info["_ref_logprob"].tolist() == [False, True]


def test_disabled_needs_reset_mask(tiny_lm_dir, prompts):
    env = gym.make_vec(ENV_ID, num_envs=3, autoreset_mode=AutoresetMode.DISABLED, **env_kwargs(tiny_lm_dir, prompts))
    env.reset(seed=0)
    eos = env.unwrapped.engine.eos
    obs, rewards, terminated, _, _ = env.step(np.array([5, eos, 6]))
    assert terminated.tolist() == [False, True, False]
    with pytest.raises(gym.error.ResetNeeded, match=r"rows \[1\] have terminated"):
        env.step(np.array([5, 5, 5]))
    obs2, info = env.reset(options={"reset_mask": np.array([False, True, False])})
    assert info["_prompt"].tolist() == [False, True, False] and info["prompt"][0] is None
    np.testing.assert_array_equal(obs2["input_ids"][[0, 2]], obs["input_ids"][[0, 2]])  # others untouched
    _, _, terminated, _, info = env.step(np.array([5, 5, 5]))
    assert info["_ref_logprob"].all()  # every row stepped: no reset step in between


def test_autoreset_mode_spellings_and_make_vec(tiny_lm_dir, prompts):
    kw = env_kwargs(tiny_lm_dir, prompts)
    for spelling, mode in [("next_step", AutoresetMode.NEXT_STEP), ("SameStep", AutoresetMode.SAME_STEP),
                           ("DISABLED", AutoresetMode.DISABLED)]:
        assert TextGenVecEnv(num_envs=1, autoreset_mode=spelling, **kw).autoreset_mode is mode
    assert TextGenVecEnv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP  # the class's stays put
    with pytest.raises(ConfigError, match="autoreset_mode='sometimes' is invalid"):
        TextGenVecEnv(num_envs=1, autoreset_mode="sometimes", **kw)
    # Gymnasium 1.4 refuses vector_kwargs for a native vector env; the keyword is the way in.
    with pytest.raises(gym.error.Error, match="vector_kwargs"):
        gym.make_vec(ENV_ID, num_envs=2, vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kw)


def test_docs_env_md_example_runs():
    """docs/env.md's code runs as written (the embedded model, through RecordEpisodeStatistics)."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "env.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "docs/env.md", "exec"), namespace)
    envs = namespace["envs"]
    assert namespace["rewards"].dtype == np.float64 and envs.unwrapped._pending_logprobs is None


def _strings(value) -> list:
    """Every str inside an info value (dicts, object arrays)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [s for v in value.ravel() for s in _strings(v)]
    return []


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_text_info_false_keeps_every_string_out_and_changes_nothing_else(tiny_lm_dir, prompts, mode):
    # Two native envs, with and without texts, stepped with the same tokens: the same info minus the texts.
    kwargs = env_kwargs(tiny_lm_dir, prompts)
    full = gym.make_vec(ENV_ID, num_envs=3, autoreset_mode=mode, **kwargs)
    bare = gym.make_vec(ENV_ID, num_envs=3, autoreset_mode=mode, text_info=False, **kwargs)
    outs = [(full.reset(seed=1), bare.reset(seed=1))]
    rng, eos, texts = np.random.default_rng(0), full.unwrapped.engine.eos, 0
    for _ in range(10):
        actions = rng.integers(1, full.unwrapped.engine.vocab_size, size=3)
        actions[rng.random(3) < 0.4] = eos
        a, b = full.step(actions), bare.step(actions)
        outs.append((a, b))
        if mode is AutoresetMode.DISABLED and a[2].any():
            mask = {"reset_mask": a[2].copy()}
            outs.append((full.reset(options=dict(mask)), bare.reset(options=dict(mask))))
    for a, b in outs:
        info_a, info_b = a[-1], b[-1]
        texts += len(_strings(info_a))
        assert _strings(info_b) == []
        assert not {k for k in info_b if k.lstrip("_") in ("prompt", "completion")}
        np.testing.assert_array_equal(a[0]["input_ids"], b[0]["input_ids"])
        assert set(info_a) - {"prompt", "_prompt", "completion", "_completion"} == set(info_b)
    assert texts > 0  # the full env really had texts to drop
    with pytest.raises(ConfigError, match="text_info='no'"):
        TextGenVecEnv(num_envs=2, text_info="no", **kwargs)
