"""Exact resume: a training process killed with SIGKILL and resumed ends with the same metrics as one never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rlhf_gym.cli import main
from rlhf_gym.runner import checkpoint as ckpt
from rlhf_gym.runner.tracking import read_jsonl

# Runs `rlhf-gym train` in a child process that SIGKILLs itself at a chosen point:
#   update N  — in the middle of the N-th policy update (checkpoints of earlier updates exist);
#   ckpt N    — in the middle of writing the N-th checkpoint (after the agent's files, before runner.json).
KILLER = textwrap.dedent("""
    import os, signal, sys
    where, n = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}
    def tripwire(original):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapped
    if where == "update":
        from rlhf_gym.agents import PPO
        PPO.update = tripwire(PPO.update)
    else:
        from rlhf_gym.runner import checkpoint
        checkpoint.capture_rng = tripwire(checkpoint.capture_rng)
    from rlhf_gym.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _train_args(env, agent, out, *extra):
    return ["train", "--env", str(env), "--agent", str(agent), "--out", str(out), "--no-progress",
            "--wandb", "disabled", *extra]


def _comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.fixture
def presets(tmp_path, tiny_lm_dir, prompts):
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    env = tmp_path / "env.yaml"
    env.write_text(f"task: sentiment\nmodel: {tiny_lm_dir}\nprompts: {tmp_path / 'prompts.txt'}\n"
                   f"eval_prompts: {tmp_path / 'prompts.txt'}\nreward: gold\nmax_new_tokens: 6\nnum_envs: 4\n")
    agent = tmp_path / "agent.yaml"
    # PPO-ptx and NLPO-free PPO with every stateful piece in play: Adam moments, shuffling, prompt draws,
    # sampling, the adaptive KL controller, the ptx batch generator.
    agent.write_text("algo: ppo\nlearning_rate: 3.0e-3\nbatch_size: 4\nminibatch_size: 2\nn_epochs: 2\n"
                     "adaptive_kl_target: 0.5\nadaptive_kl_horizon: 20\nptx_coef: 0.1\n"
                     f"ptx_data: {tmp_path / 'prompts.txt'}\n"
                     "run:\n  total_timesteps: 140\n  eval_every: 2\n  eval_episodes: 4\n  torch_threads: 1\n"
                     "  keep_checkpoints: 2\n")
    return env, agent


@pytest.mark.parametrize("where, n", [("update", 3), ("ckpt", 2)])
def test_sigkilled_run_resumes_exactly(tmp_path, presets, where, n, capsys):
    env, agent = presets
    reference = tmp_path / "uninterrupted"
    assert main(_train_args(env, agent, reference)) == 0
    expected = read_jsonl(reference / "metrics.jsonl")
    assert len(expected) >= 5  # step 0 + several updates

    out = tmp_path / f"killed-{where}"
    child = subprocess.run([sys.executable, "-c", KILLER, where, str(n), *_train_args(env, agent, out)],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "disabled"})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert ckpt.latest_checkpoint(out) is not None  # killed after the first checkpoint ...
    assert not (out / "result.json").exists()  # ... and before the end
    if where == "ckpt":
        assert list((out / "checkpoints").glob(".*"))  # the torn checkpoint (a hidden temp folder) is there, ignored

    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--wandb", "disabled"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert _comparable(read_jsonl(out / "metrics.jsonl")) == _comparable(expected)
    assert read_jsonl(out / "samples.jsonl") == read_jsonl(reference / "samples.jsonl")
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_resume_refuses_changes_that_would_not_continue_the_run(tmp_path, presets, capsys):
    env, agent = presets
    out = tmp_path / "run"
    assert main(_train_args(env, agent, out, "--set", "run.total_timesteps=20")) == 0
    assert main(["train", "--out", str(out), "--resume", "--set", "env.beta=0.3"]) == 2
    assert "cannot change a run being resumed" in capsys.readouterr().err
    assert main(_train_args(env, agent, out, "--resume", "--set", "agent.learning_rate=1")) == 2
    # a longer budget is fine: training continues from the last checkpoint
    assert main(["train", "--out", str(out), "--resume", "--set", "run.total_timesteps=40", "--no-progress",
                 "--wandb", "disabled"]) == 0
    assert read_jsonl(out / "metrics.jsonl")[-1]["step"] >= 40


def test_resume_keeps_the_config_digest_and_never_rewrites_it_with_other_settings(tmp_path, presets, capsys):
    import hashlib
    import json

    env, agent = presets
    out = tmp_path / "run"
    assert main(_train_args(env, agent, out, "--set", "run.total_timesteps=20")) == 0
    saved = json.loads((out / "config.json").read_text())
    digest = (out / "config.sha256").read_text().strip()
    assert digest == hashlib.sha256((out / "config.json").read_text().strip().encode()).hexdigest()
    assert saved["run"]["total_timesteps"] == 20 and saved["env"]["beta"] == 0.05
    stamp = (out / "config.yaml").stat().st_mtime_ns
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--wandb", "disabled"]) == 0
    assert (out / "config.yaml").stat().st_mtime_ns == stamp  # nothing changed: nothing rewritten
    # an allowed change is recorded in all three files, so the next resume checks against it
    assert main(["train", "--out", str(out), "--resume", "--set", "run.total_timesteps=40", "--no-progress",
                 "--wandb", "disabled"]) == 0
    assert json.loads((out / "config.json").read_text())["run"]["total_timesteps"] == 40
    assert (out / "config.sha256").read_text().strip() != digest
    capsys.readouterr()
    # the Python API refuses a config that is not the run's
    from rlhf_gym.errors import ConfigError
    from rlhf_gym.runner.rundir import load_run
    from rlhf_gym.runner.train import train

    cfg = load_run(out)
    cfg.env.beta = 0.5
    with pytest.raises(ConfigError, match="env.beta"):
        train(cfg, out, resume=True, progress=False)
