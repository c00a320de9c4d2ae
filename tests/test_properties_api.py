"""Property-based tests of the Python API's input handling: for arbitrary files, keyword values, actions and
reset options, the outcome is either a valid result or one :class:`~rlhf_gym.errors.RLHFGymError` line
(``ResetNeeded`` where Gymnasium says so) — never a traceback from torch, NumPy or json."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlhf_gym.agents.nlpo import NLPOConfig
from rlhf_gym.core.checks import is_blank
from rlhf_gym.core.data import load_prompts
from rlhf_gym.envs import TextGenEnv, TextGenVecEnv
from rlhf_gym.errors import RLHFGymError
from rlhf_gym.rewards.preferences import PreferencePair, load_preferences

PROMPTS = ["the movie was", "the food", "i loved this"]
SETTINGS = settings(max_examples=40)  # the rest of the settings: the profile in conftest.py
FEW = settings(max_examples=15)

# Values a confused caller might pass anywhere.
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 80), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.lists(st.integers(-1, 4), max_size=3),
    st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:x", "mps", "bogus", "k1", "k3", "ansi", "0.1", "8", "no"]),
    st.sampled_from([np.int64(3), np.float32(0.5), np.bool_(True), np.array(["a", "b"])]),
)
# Text with the characters that break loaders: BOMs, zero-width and other invisible ones, separators, NUL.
NASTY = st.lists(st.sampled_from(list("ab {}[]\":,\n\r\t\\0") + ["\ufeff", "\u200b", "\u200d", "\u2060", "\u00a0",
                                                                    "\u2028", "\x00", "é", "NaN", '"prompt"']),
                 max_size=40).map("".join)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(
                        ["prompt", "text", "chosen", "rejected", "completions", "tie", "margin", "weight",
                         "input_text", "candidate1", "candidate2", "human_preference"]), kids, max_size=4),
                    max_leaves=8)


def outcome(call):
    """The call's result, or its RLHFGymError/ResetNeeded after checking the message is one short line."""
    try:
        return call()
    except (RLHFGymError, gym.error.ResetNeeded) as e:
        message = str(e)
        assert message and "\n" not in message and len(message) <= 600, message
        return e


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    from rlhf_gym.core.models import load_causal_lm, load_tokenizer

    return load_causal_lm(tiny_lm_dir), load_tokenizer(tiny_lm_dir)


@pytest.fixture(scope="module")
def vec(lm):
    model, tok = lm
    env = TextGenVecEnv(num_envs=2, model=model, tokenizer=tok, prompts=PROMPTS, reward=lambda p, c: [0.0] * len(c),
                        max_new_tokens=4)
    env.reset(seed=0)
    return env


# ----- loaders ------------------------------------------------------------------------------------------------
@SETTINGS
@given(content=st.one_of(st.binary(max_size=60), NASTY.map(str.encode)), suffix=st.sampled_from([".txt", ".jsonl"]))
def test_prompt_files_load_or_fail_cleanly(workdir, content, suffix):
    path = workdir / f"prompts{suffix}"
    path.write_bytes(content)
    result = outcome(lambda: load_prompts(path))
    if isinstance(result, list):
        assert result and all(type(p) is str for p in result)
        assert not result[0].startswith("\ufeff")
        if suffix == ".txt":
            assert not any(is_blank(p) for p in result)


@SETTINGS
@given(lines=st.lists(JSON.map(lambda v: json.dumps(v, allow_nan=True)) | NASTY, min_size=1, max_size=4))
def test_jsonl_prompt_files_load_or_fail_cleanly(workdir, lines):
    path = workdir / "prompts.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = outcome(lambda: load_prompts(path))
    if isinstance(result, list):
        assert result and all(type(p) is str for p in result)


@SETTINGS
@given(records=st.lists(JSON, max_size=3), as_file=st.sampled_from([None, ".jsonl", ".json", ".csv"]))
def test_preferences_load_or_fail_cleanly(workdir, records, as_file):
    if as_file is None:
        source = records
    else:
        source = workdir / f"prefs{as_file}"
        if as_file == ".csv":
            rows = [r for r in records if isinstance(r, dict)]
            keys = sorted({k for r in rows for k in r}) or ["prompt"]
            text = ",".join(keys) + "\n" + "".join(
                ",".join(json.dumps(r.get(k, "")) for k in keys) + "\n" for r in rows)
        elif as_file == ".json":
            text = json.dumps(records, allow_nan=True)
        else:
            text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in records)
        source.write_text(text, encoding="utf-8")
    result = outcome(lambda: load_preferences(source))
    if isinstance(result, list):
        assert result and all(isinstance(p, PreferencePair) for p in result)
        for p in result:
            assert not is_blank(p.prompt) and not is_blank(p.chosen) and not is_blank(p.rejected)
            assert math.isfinite(p.weight) and p.weight > 0 and math.isfinite(p.margin) and type(p.tie) is bool


@SETTINGS
@given(content=st.binary(max_size=80), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_preference_files_of_random_bytes_fail_cleanly(workdir, content, suffix):
    path = workdir / f"bytes{suffix}"
    path.write_bytes(content)
    outcome(lambda: load_preferences(path))


# ----- the env API ------------------------------------------------------------------------------------------------
KWARGS = ["beta", "kl_estimator", "max_new_tokens", "max_prompt_tokens", "device", "render_mode", "seed",
          "action_mask_top_p", "action_mask_min_tokens", "prompts"]


@FEW
@given(kwargs=st.dictionaries(st.sampled_from(KWARGS), ANYTHING, min_size=1, max_size=3),
       vectorised=st.booleans())
def test_env_kwargs_build_a_working_env_or_fail_cleanly(lm, kwargs, vectorised):
    model, tok = lm
    base = {"model": model, "tokenizer": tok, "prompts": PROMPTS, "reward": lambda p, c: [0.0] * len(c),
            "max_new_tokens": 3}
    if vectorised:
        kwargs.pop("action_mask_top_p", None), kwargs.pop("action_mask_min_tokens", None)
        env = outcome(lambda: TextGenVecEnv(num_envs=2, **{**base, **kwargs}))
    else:
        env = outcome(lambda: TextGenEnv(**{**base, **kwargs}))
    if isinstance(env, Exception):
        return
    env.reset(seed=0)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert np.all(np.isfinite(reward)) and env.observation_space.contains(obs)


ACTION_DTYPES = st.sampled_from([np.int64, np.int32, np.uint8, np.float64, np.float32, np.bool_])


@SETTINGS
@given(actions=ACTION_DTYPES.flatmap(lambda dt: hnp.arrays(dt, st.sampled_from([(), (1,), (2,), (3,), (2, 1)]),
                                                           elements=hnp.from_dtype(np.dtype(dt), allow_nan=True)
                                                           if np.dtype(dt).kind == "f" else None)),
       as_tensor=st.booleans(),
       logprobs=st.none() | hnp.arrays(np.float64, st.sampled_from([(2,), (3,)]),
                                       elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_vec_step_with_random_actions_steps_or_fails_cleanly(vec, actions, as_tensor, logprobs):
    if actions.dtype in (np.int64, np.int32):
        actions = np.asarray(actions % 320)  # mostly inside the vocabulary (300), some outside
    given_actions = torch.from_numpy(np.array(actions)) if as_tensor else actions
    result = outcome(lambda: vec.step(given_actions, logprobs=logprobs))
    if isinstance(result, tuple):
        assert actions.shape == (2,) and np.issubdtype(actions.dtype, np.integer)
        assert np.all(np.isfinite(result[1]))


@SETTINGS
@given(options=st.one_of(ANYTHING, st.dictionaries(st.sampled_from(["prompt", "prompt_index", "reset_mask", "x"]),
                                                    ANYTHING | st.sampled_from([[0, 1], [2, 0], [True, False],
                                                                                np.array([True, True])]),
                                                    max_size=2)),
       seed=st.none() | ANYTHING)
def test_reset_with_random_options_resets_or_fails_cleanly(vec, options, seed):
    result = outcome(lambda: vec.reset(seed=seed, options=options))
    if isinstance(result, tuple):
        assert vec.observation_space.contains(result[0])
        assert all(0 <= i < len(vec.engine.prompts) for i in vec.engine.prompt_index)
    vec.reset(seed=0)  # leave it usable for the next example


# ----- config dataclasses -------------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_agent_configs_hold_only_well_typed_values(data):
    names = [f.name for f in dataclasses.fields(NLPOConfig) if f.name != "lora"]
    kwargs = data.draw(st.dictionaries(st.sampled_from(names), ANYTHING, max_size=3))
    cfg = outcome(lambda: NLPOConfig(**kwargs))
    if isinstance(cfg, Exception):
        return
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.type in ("bool",):
            assert type(value) is bool
        if isinstance(value, float):
            assert math.isfinite(value)
        assert not isinstance(value, np.generic)
    assert cfg.device is None or isinstance(cfg.device, str)


def test_a_kl_coefficient_that_would_overflow_the_reward_is_refused(tiny_lm_dir):
    # Found by the env-kwargs property above: beta=5.9e37 made float32 rewards -inf on some actions.
    with pytest.raises(RLHFGymError, match="beta=5.9e\\+37 is invalid"):
        TextGenEnv(model=tiny_lm_dir, prompts=PROMPTS, beta=5.9e37)
