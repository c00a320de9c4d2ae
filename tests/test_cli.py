"""The command line teaches: every command has --help with examples, and the top-level help lists them."""

from __future__ import annotations

import pytest

from rlhf_gym.cli import build_parser, main

MINE = ["demo", "train", "eval", "sft", "report", "bench"]


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in MINE)


@pytest.mark.parametrize("command", MINE)
def test_every_command_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"rlhf-gym {command}" in out


def test_train_help_documents_every_env_and_run_field(capsys):
    from dataclasses import fields

    from rlhf_gym.runner.config import EnvConfig, RunConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {f.name} (" in out for cls in (EnvConfig, RunConfig) for f in fields(cls))


def test_print_config_shows_the_resolved_config_with_docs(capsys):
    assert main(["train", "--env", "envs/sentiment.yaml", "--agent", "agents/ppo.yaml", "--print-config",
                 "--set", "env.beta=0.2"]) == 0
    out = capsys.readouterr().out
    assert "beta: 0.2  # KL coefficient" in out and "algo: ppo" in out and "ptx_coef: 0.0" in out


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--wandb", "sometimes"])
    assert e.value.code == 2
