"""The runner's parts: tracking files, atomic checkpoints, reports, PPO-ptx, and a small train/eval/report run."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from rlhf_gym.cli import main
from rlhf_gym.runner import checkpoint as ckpt
from rlhf_gym.runner.report import write_report
from rlhf_gym.runner.tracking import Tracker, read_jsonl, resolve_wandb_mode

# ----- tracking ----------------------------------------------------------------------------------------------


def test_metrics_rows_have_step_and_slash_keys_and_nan_becomes_null(tmp_path):
    with Tracker(tmp_path, {"a": 1}, wandb_mode="disabled") as t:
        t.log({"step": 10, "objective/kl": np.float32(0.5), "eval/gold_reward": float("nan")})
        t.log_samples(10, [{"prompt": "p", "completion": "c", "score": torch.tensor(0.25)}])
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows == [{"step": 10, "objective/kl": 0.5, "eval/gold_reward": None}]
    assert read_jsonl(tmp_path / "samples.jsonl") == [
        {"step": 10, "kind": "rollout", "prompt": "p", "completion": "c", "score": 0.25}]


def test_resume_drops_rows_after_the_checkpoint_and_torn_lines(tmp_path):
    with Tracker(tmp_path, wandb_mode="disabled") as t:
        for step in (0, 10, 20, 30):
            t.log({"step": step, "x": step})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "x"')  # a writer killed mid-line
    with Tracker(tmp_path, wandb_mode="disabled", resume_step=20) as t:
        t.log({"step": 30, "x": -1})
    assert [(r["step"], r["x"]) for r in read_jsonl(tmp_path / "metrics.jsonl")] == [(0, 0), (10, 10), (20, 20), (30, -1)]


def test_wandb_mode_never_goes_online_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert resolve_wandb_mode(None)[0] == "offline"
    mode, note = resolve_wandb_mode("online")
    assert mode == "offline" and "no W&B API key" in note
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: falls back at once
    mode, note = resolve_wandb_mode("online")
    assert mode == "offline" and "unreachable" in note
    assert resolve_wandb_mode("disabled") == ("disabled", None)


def test_wandb_offline_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    with Tracker(tmp_path, {"env": {"beta": 0.1}}, wandb_mode="offline") as t:
        t.log({"step": 1, "objective/kl": 0.1})
    assert list((tmp_path / "wandb").glob("offline-run-*"))


# ----- checkpoints -------------------------------------------------------------------------------------------


def _save_agent(path):
    path.mkdir()
    (path / "weights").write_text("w")


def test_checkpoints_are_atomic_and_only_the_newest_k_are_kept(tmp_path):
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, _save_agent, {"updates": step // 10}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000000020", "step-000000030"]

    def crash(path):
        path.mkdir()
        raise KeyboardInterrupt  # killed while writing

    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 40, crash, {}, keep=2)
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000000030"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    (tmp_path / "checkpoints" / ".tmp-step-000000050-x").mkdir()  # left by a SIGKILL: ignored, then cleaned
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000000030"
    ckpt.save_checkpoint(tmp_path, 50, _save_agent, {}, keep=2)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_global_rng_states_round_trip(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = ckpt.save_checkpoint(tmp_path, 1, _save_agent, {"updates": 1})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    assert ckpt.load_checkpoint(path)["updates"] == 1
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


# ----- report ------------------------------------------------------------------------------------------------


def test_report_draws_curves_and_writes_markdown(tmp_path):
    with Tracker(tmp_path, wandb_mode="disabled") as t:
        t.log({"step": 0, "eval/gold_reward": 0.1, "eval/kl": 0.0})
        for step in (32, 64):
            t.log({"step": step, "objective/scores": step / 100, "objective/kl": 0.1, "objective/beta": 0.05,
                   "objective/entropy": 20.0})
        t.log({"step": 64, "eval/gold_reward": 0.4, "eval/kl": 1.5})
        t.log_samples(64, [{"prompt": "The food", "completion": " was | great", "gold": 0.6, "rm": 1.0, "kl": 2.0}],
                      kind="eval")
    png, md = write_report(tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "![training curves](curves.png)" in text and "was \\| great" in text and "| 64 | 0.4 |" in text


def test_report_of_an_empty_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


# ----- a whole (tiny) run through the CLI -------------------------------------------------------------------


@pytest.fixture
def tiny_presets(tmp_path, tiny_lm_dir, prompts):
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    env = tmp_path / "env.yaml"
    env.write_text(f"task: sentiment\nmodel: {tiny_lm_dir}\nprompts: {tmp_path / 'prompts.txt'}\n"
                   f"eval_prompts: {tmp_path / 'prompts.txt'}\nreward: gold\nmax_new_tokens: 6\nnum_envs: 4\n")
    agent = tmp_path / "agent.yaml"
    agent.write_text("algo: ppo\nlearning_rate: 1.0e-3\nbatch_size: 4\nminibatch_size: 2\nn_epochs: 2\n"
                     "run:\n  total_timesteps: 60\n  eval_every: 2\n  eval_episodes: 4\n  torch_threads: 1\n")
    return env, agent


def test_train_eval_report_on_a_tiny_model(tmp_path, tiny_presets, capsys):
    env, agent = tiny_presets
    out = tmp_path / "run"
    args = ["train", "--env", str(env), "--agent", str(agent), "--out", str(out), "--no-progress",
            "--wandb", "disabled", "--set", "agent.ptx_coef=0.5", "--set", f"agent.ptx_data={tiny_presets[0].parent / 'prompts.txt'}"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT gold_reward=") and " distinct_2=" in last
    rows = read_jsonl(out / "metrics.jsonl")
    assert rows[0]["step"] == 0 and "eval/gold_reward" in rows[0]
    assert all(isinstance(r["step"], int) for r in rows) and rows[-1]["step"] >= 60
    assert all(math.isfinite(r["loss/ptx"]) for r in rows[1:])  # PPO-ptx mixed into every update
    assert "eval/kl" in rows[-1] and json.loads((out / "result.json").read_text())["steps"] == rows[-1]["step"]
    assert (out / "config.yaml").is_file() and ckpt.latest_checkpoint(out) is not None

    assert main(["eval", "--run", str(out), "--episodes", "4"]) == 0
    eval_last = capsys.readouterr().out.strip().splitlines()[-1]
    assert eval_last.split()[1:] == last.split()[1:-1]  # same numbers as training's final evaluation
    assert main(["report", "--run", str(out)]) == 0
    assert (out / "curves.png").is_file() and (out / "report.md").is_file()

    assert main(args) == 2  # the run exists: refuse to overwrite it
    assert "pass --resume" in capsys.readouterr().err


def test_stock_sb3_run_has_the_same_files(tmp_path, tiny_presets, capsys):
    env, _ = tiny_presets
    agent = tmp_path / "sb3.yaml"
    agent.write_text("algo: sb3-ppo\nn_steps: 8\nbatch_size: 16\nn_epochs: 1\nrun:\n  total_timesteps: 64\n"
                     "  eval_episodes: 4\n")
    out = tmp_path / "sb3"
    assert main(["train", "--env", str(env), "--agent", str(agent), "--out", str(out), "--no-progress",
                 "--wandb", "disabled"]) == 0
    rows = read_jsonl(out / "metrics.jsonl")
    assert rows[0]["step"] == 0 and rows[-1]["step"] >= 64 and "objective/kl" in rows[-1] and "eval/kl" in rows[-1]
    assert main(["eval", "--run", str(out), "--episodes", "4"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("RESULT gold_reward=")


def test_bench_matrix_is_resumable_and_tabulated(tmp_path, tiny_presets, capsys):
    env, agent = tiny_presets
    a2c = tmp_path / "a2c.yaml"
    a2c.write_text("algo: a2c\nbatch_size: 4\nminibatch_size: 2\nrun:\n  eval_episodes: 4\n")
    args = ["bench", "--agents", str(agent), str(a2c), "--envs", str(env), "--seeds", "2", "--out",
            str(tmp_path / "bench"), "--set", "run.total_timesteps=24", "--wandb", "disabled"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("RESULT runs=4 env.agent.gold_reward=")
    runs = sorted(p.relative_to(tmp_path / "bench") for p in (tmp_path / "bench").glob("*/*/seed-*"))
    assert [str(p) for p in runs] == ["env/a2c/seed-0", "env/a2c/seed-1", "env/agent/seed-0", "env/agent/seed-1"]
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "| env | agent | 2 |" in table and " ± " in table and (tmp_path / "bench" / "curves.png").is_file()

    done = tmp_path / "bench" / "env" / "a2c" / "seed-1"
    (done / "result.json").unlink()  # as if it had been interrupted after its last checkpoint
    assert main(args) == 0
    assert "4 runs (3 already done)" in capsys.readouterr().out
    assert (done / "result.json").is_file()


def test_demo_pipeline_end_to_end_on_a_tiny_model(tmp_path, tiny_lm_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", tiny_lm_dir, "--out", str(out), "--comparisons", "24", "--rm-epochs", "1",
                 "--ppo-steps", "300", "--eval-episodes", "4", "--max-new-tokens", "4", "--eval-every", "1",
                 "--kl-target", "0.5", "--kl-horizon", "32"]) == 0
    text = capsys.readouterr().out
    last = text.strip().splitlines()[-1]
    assert last.startswith("RESULT gold_gain=") and " rm_gain=" in last and " kl=" in last
    assert " kl_target=0.5 kl_under_target=" in last and " fixed_kl=" in last
    assert "before PPO" in text and "fixed β=0.05" in text and "adaptive β" in text and "over-optimised" in text
    assert "KL target 0.5 nats: the adaptive-β run " in text
    for path in ("prefs.jsonl", "reward-model/reward_stats.json", "ppo-fixed/metrics.jsonl", "ppo-fixed/curves.png",
                 "ppo-fixed/report.md", "ppo-adaptive/metrics.jsonl", "ppo-adaptive/report.md", "proxy_vs_gold.png",
                 "summary.json"):
        assert (out / path).is_file(), path
    assert (out / "proxy_vs_gold.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kl_target"] == 0.5 and set(summary["runs"]) == {"fixed", "adaptive"}
    fixed, adaptive = summary["runs"]["fixed"], summary["runs"]["adaptive"]
    for run in (fixed, adaptive):
        assert run["gold_gain"] == pytest.approx(run["after"]["gold_reward"] - run["before"]["gold_reward"])
        assert set(run["after"]) >= {"gold_reward", "rm_reward", "kl", "distinct_2"}
    assert fixed["before"] == adaptive["before"]  # the same initial policy, evaluated on the same prompts
    assert fixed["final_beta"] == pytest.approx(0.05) and adaptive["final_beta"] != pytest.approx(0.15)
    assert summary["after"] == adaptive["after"] and summary["kl"] == adaptive["kl"] == adaptive["after"]["kl"]
    assert summary["kl_under_target"] == (adaptive["kl"] <= 0.5)
    betas = [r["objective/beta"] for r in read_jsonl(out / "ppo-adaptive" / "metrics.jsonl") if "objective/beta" in r]
    assert len(set(betas)) > 1  # the controller moved β
