"""Property-based tests (hypothesis) of the config loader and the run-file loaders: whatever the input, the
result is either valid or one :class:`~rlhf_gym.errors.RLHFGymError` line naming the file — never another
exception, never a traceback-shaped message."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_gym.cli import main
from rlhf_gym.errors import RLHFGymError
from rlhf_gym.runner import checkpoint as ckpt
from rlhf_gym.runner.config import EnvConfig, RunConfig, load_run_config
from rlhf_gym.runner.tracking import read_jsonl

SETTINGS = settings(max_examples=25)  # the rest of the settings: the profile in conftest.py

ENV_KEYS = [f.name for f in dataclasses.fields(EnvConfig)]
RUN_KEYS = [f.name for f in dataclasses.fields(RunConfig)]
AGENT_KEYS = ["algo", "learning_rate", "batch_size", "minibatch_size", "n_epochs", "gamma", "clip_range", "lora",
              "ptx_coef", "temperature", "seed", "device"]
SCALARS = st.one_of(
    st.integers(-3, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["null", "true", "no", "~", ".nan", "-.inf", "1e-5", "2e4", "[1, 2", "{a: 1}", "{r: 1, r: 2}",
                     "[]", "2024-13-45", "2024-01-01", "!!binary AAAA", "&a 1", "*a", "'x", '"\\u00e9"', "k1",
                     "ppo", "a2c", "nlpo", "sb3-ppo", "embedded", "gold", "- x", "|", ">", "? x"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)


def _yamlish(keys: list[str]) -> st.SearchStrategy[str]:
    key = st.one_of(st.sampled_from(keys), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-", min_size=1, max_size=10))
    line = st.tuples(st.sampled_from(["", "  ", "    ", "\t"]), key, st.sampled_from([": ", ":", " : ", " "]), SCALARS)
    return st.lists(line.map("".join), max_size=8).map("\n".join)


def _one_line_naming(e: RLHFGymError, *names: str) -> None:
    msg = str(e)
    assert "\n" not in msg and msg.strip() == msg, msg
    assert any(n in msg for n in names), (msg, names)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    d = tmp_path_factory.mktemp("prop-presets")
    (d / "env.yaml").write_text("task: sentiment\nmodel: embedded\nreward: gold\n")
    (d / "agent.yaml").write_text("algo: ppo\nbatch_size: 2\nminibatch_size: 1\n")
    return d


@SETTINGS
@given(env_text=st.one_of(_yamlish(ENV_KEYS), st.text(max_size=60)),
       agent_text=st.one_of(_yamlish(AGENT_KEYS + ["run"]), st.just("algo: ppo\n")))
def test_config_files_load_or_fail_with_one_line_naming_the_file(env_text, agent_text, presets, tmp_path_factory):
    d = tmp_path_factory.mktemp("prop-config")
    env, agent = d / "env.yaml", d / "agent.yaml"
    env.write_text(env_text, encoding="utf-8")
    agent.write_text(agent_text, encoding="utf-8")
    try:
        cfg = load_run_config(env, agent)
    except RLHFGymError as e:
        _one_line_naming(e, str(env), str(agent))
    else:
        assert cfg.agent.algo and isinstance(cfg.env, EnvConfig)


@SETTINGS
@given(items=st.lists(st.tuples(st.sampled_from(["env", "agent", "run", "envv", ""]),
                                st.sampled_from(ENV_KEYS + RUN_KEYS + AGENT_KEYS + ["", "lora.r", "x.y"]),
                                st.sampled_from(["=", "", "=="]), SCALARS), min_size=1, max_size=3))
def test_set_overrides_apply_or_fail_with_one_line(items, presets):
    overrides = [f"{s}{'.' if s else ''}{k}{eq}{v}" for s, k, eq, v in items]
    try:
        load_run_config(presets / "env.yaml", presets / "agent.yaml", overrides)
    except RLHFGymError as e:
        _one_line_naming(e, "--set", str(presets / "env.yaml"), str(presets / "agent.yaml"))


# ----- run files of a real tiny run ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_lm_dir):
    d = tmp_path_factory.mktemp("prop-run")
    (d / "p.txt").write_text("the movie was\nthe food\ni loved this\n")
    (d / "env.yaml").write_text(f"task: sentiment\nmodel: {tiny_lm_dir}\nprompts: {d}/p.txt\neval_prompts: {d}/p.txt\n"
                                "reward: gold\nmax_new_tokens: 4\nnum_envs: 2\n")
    (d / "agent.yaml").write_text(f"algo: ppo\nbatch_size: 2\nminibatch_size: 1\nn_epochs: 1\nptx_coef: 0.1\n"
                                  f"ptx_data: {d}/p.txt\nrun:\n  total_timesteps: 8\n  eval_episodes: 2\n"
                                  "  torch_threads: 1\n  keep_checkpoints: 1\n")
    assert main(["train", "--env", str(d / "env.yaml"), "--agent", str(d / "agent.yaml"), "--out", str(d / "run"),
                 "--no-progress", "--wandb", "disabled"]) == 0
    return d / "run"


def _corrupt(data: bytes, kind: str, pos: float, junk: bytes) -> bytes:
    i = int(pos * len(data))
    if kind == "truncate":
        return data[:i]
    if kind == "flip":
        return data[:i] + bytes([(data[i] if i < len(data) else 0) ^ (junk[0] if junk else 0xFF)]) + data[i + 1:]
    return data[:i] + junk + data[i:]  # insert


CORRUPTION = st.tuples(st.sampled_from(["truncate", "flip", "insert"]), st.floats(0, 1), st.binary(max_size=8))


def _with_corrupted(path: Path, corruption: tuple, load) -> None:
    pristine = path.read_bytes()
    try:
        path.write_bytes(_corrupt(pristine, *corruption))
        try:
            load()
        except RLHFGymError as e:
            _one_line_naming(e, str(path.parent))
    finally:
        path.write_bytes(pristine)


@SETTINGS
@given(name=st.sampled_from(["runner.json", "rng.safetensors"]), corruption=CORRUPTION)
def test_checkpoint_state_loads_or_names_the_file(name, corruption, run):
    ck = ckpt.latest_checkpoint(run)
    _with_corrupted(ck / name, corruption, lambda: ckpt.load_checkpoint(ck))


@SETTINGS
@given(name=st.sampled_from(["metrics.jsonl", "samples.jsonl"]), corruption=CORRUPTION)
def test_jsonl_logs_load_or_name_the_file(name, corruption, run):
    def load():
        for row in read_jsonl(run / name):
            assert isinstance(row, dict) and isinstance(row["step"], int)

    _with_corrupted(run / name, corruption, load)


@SETTINGS
@given(corruption=CORRUPTION)
def test_run_config_loads_or_names_the_file(corruption, run):
    from rlhf_gym.runner.rundir import read_run_config

    _with_corrupted(run / "config.yaml", corruption, lambda: read_run_config(run, resume=True))


@pytest.fixture(scope="module")
def agent_env(run):
    from rlhf_gym.runner.build import make_env
    from rlhf_gym.runner.rundir import load_run

    return make_env(load_run(run))


@settings(SETTINGS, max_examples=15)
@given(name=st.sampled_from(["agent.json", "agent.safetensors", "optimizer.safetensors", "policy/model.safetensors",
                             "policy/config.json"]), corruption=CORRUPTION)
def test_agent_checkpoint_loads_or_names_the_file(name, corruption, run, agent_env):
    from rlhf_gym.agents import PPO

    agent_dir = ckpt.latest_checkpoint(run) / "agent"
    copy = agent_dir.parent.parent / ".prop-agent"  # loads never write, but keep the run's own files pristine
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(agent_dir, copy)
    try:
        _with_corrupted(copy / name, corruption, lambda: PPO.load(copy, env=agent_env))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
