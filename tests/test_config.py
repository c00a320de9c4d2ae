"""Run configs: presets, validation errors, --set overrides, the saved config round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rlhf_gym.agents.registry import ALGORITHMS as ALGOS
from rlhf_gym.agents.registry import algo_spec
from rlhf_gym.errors import ConfigError
from rlhf_gym.runner.config import (
    EnvConfig,
    RunConfig,
    dump_config,
    field_docs,
    load_resolved_config,
    load_run_config,
    parse_overrides,
    parse_yaml,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_PRESETS = sorted((ROOT / "envs").glob("*.yaml"))
AGENT_PRESETS = sorted((ROOT / "agents").glob("*.yaml"))


def test_required_presets_exist():
    assert {p.stem for p in ENV_PRESETS} >= {"sentiment", "sentiment-rm", "imdb"}
    assert {p.stem for p in AGENT_PRESETS} >= {"ppo", "a2c", "nlpo", "sb3-ppo"}


@pytest.mark.parametrize("agent", AGENT_PRESETS, ids=lambda p: p.stem)
@pytest.mark.parametrize("env", ENV_PRESETS, ids=lambda p: p.stem)
def test_every_preset_pair_validates(env, agent):
    cfg = load_run_config(env, agent)
    assert cfg.agent.algo in ALGOS
    assert isinstance(cfg.agent.config, algo_spec(cfg.agent.algo).config_class())


def test_agent_sections_use_the_algorithms_own_dataclass():
    cfg = load_run_config(ROOT / "envs/sentiment.yaml", ROOT / "agents/nlpo.yaml")
    from rlhf_gym.agents.nlpo import NLPOConfig

    assert isinstance(cfg.agent.config, NLPOConfig)  # PPO-ptx fields extend the algorithm's own config
    assert cfg.agent.config.top_p == 0.9 and cfg.agent.config.ptx_coef == 0.0


def test_overrides_are_yaml_scalars_with_dotted_keys():
    cfg = load_run_config(ROOT / "envs/sentiment.yaml", ROOT / "agents/ppo.yaml", [
        "env.beta=0.1", "agent.learning_rate=1e-5", "env.tokenizer=null", "run.total_timesteps=2e4",
        "agent.target_kl=0.05", "run.seed=7", "env.split=a: b"])
    assert cfg.env.beta == 0.1 and cfg.agent.config.learning_rate == 1e-5
    assert cfg.env.tokenizer is None and cfg.run.total_timesteps == 20000
    assert cfg.agent.config.target_kl == 0.05
    assert cfg.run.seed == 7 and cfg.agent.config.seed == 7  # the run's seed is the agent's
    assert cfg.env.split == "a: b"  # "a: b" is a string here, not a mapping


def test_yaml_reads_1e_minus_5_as_a_float():
    assert parse_yaml("lr: 1e-5", "x") == {"lr": 1e-5}
    assert parse_yaml("a: 1.5\nb: .5\nc: 2\nd: v1e5", "x") == {"a": 1.5, "b": 0.5, "c": 2, "d": "v1e5"}


@pytest.mark.parametrize("override, match", [
    ("env.bta=0.1", r"unknown key env\.bta; did you mean 'beta'\?"),
    ("agent.learning_rat=1", r"unknown key agent\.learning_rat; did you mean 'learning_rate'\?"),
    ("env.beta=-1", r"env\.beta: must be >= 0, got -1"),
    ("env.beta=abc", r"env\.beta: expected a number, got 'abc'"),
    ("env.max_new_tokens=1.5", r"env\.max_new_tokens: expected an integer, got 1\.5"),
    ("env.kl_estimator=k4", r"env\.kl_estimator: expected 'k1' or 'k2' or 'k3', got 'k4'"),
    ("agent.clip_range=0", r"agent: clip_range=0\.0 is invalid: must be > 0"),
    ("agent.algo=ppp", r"agent\.algo: unknown algorithm 'ppp'; did you mean 'ppo'\?"),
    ("beta=0.1", r"prefix the key with its section, e\.g\. env\.beta=0\.1"),
    ("envv.beta=0.1", r"unknown section 'envv'; did you mean 'env'\?"),
    ("env.beta", r"expected KEY=VALUE"),
    ("run.normalize=true", r"unknown key run\.normalize"),
])
def test_bad_overrides_name_the_field(override, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_run_config(ROOT / "envs/sentiment.yaml", ROOT / "agents/ppo.yaml", [override])
    assert "\n" not in str(e.value)


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: embedded\nbeta: [1, 2]\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: env\.beta: expected a number, got \[1, 2\]$"):
        load_run_config(bad, ROOT / "agents/ppo.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_run_config(ROOT / "envs/sentiment.yaml", ROOT / "agents/nlpo.yaml",
                          ["agent.ptx_coef=0.5", "env.beta=0.2"])
    text = dump_config(cfg)
    assert "# KL coefficient" in text  # the docs travel with the saved config
    (tmp_path / "config.yaml").write_text(text)
    again = load_resolved_config(tmp_path / "config.yaml")
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_field_has_a_one_line_doc(algo):
    for cls in (EnvConfig, RunConfig, algo_spec(algo).config_class()):
        docs = field_docs(cls)
        missing = [name for name in (f.name for f in dataclasses.fields(cls)) if not docs.get(name)]
        assert not missing, f"{cls.__name__} fields without a doc: {missing}"
        assert all("\n" not in d for d in docs.values())


def test_parse_overrides_keeps_nested_keys():
    assert parse_overrides(["agent.a.b=1", "env.x=[1, 2]"]) == [("agent", "a.b", 1), ("env", "x", [1, 2])]
