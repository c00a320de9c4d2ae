"""`rlhf-gym bench --suite embedded`: a task against its proxy, the leaderboard files, resuming, bad flags."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlhf_gym.cli import main
from rlhf_gym.runner.leaderboard import to_html, to_markdown

PPO = str(Path(__file__).resolve().parents[1] / "agents" / "ppo.yaml")


def test_suite_trains_on_the_proxy_and_writes_the_leaderboard(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RLHF_GYM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "board"
    argv = ["bench", "--suite", "embedded", "--tasks", "arithmetic", "--agents", PPO, "--seeds", "1", "--out", str(out),
            "--set", "run.total_timesteps=300", "--wandb", "disabled"]
    assert main(argv) == 0
    result = capsys.readouterr().out.strip().splitlines()[-1]
    assert result.startswith("RESULT runs=1 aggregate.ppo.norm_gold=")
    preset = (out / "presets" / "arithmetic.yaml").read_text()
    proxy = next((tmp_path / "cache" / "proxies").iterdir())
    assert f"reward: {proxy}" in preset and "gold: gold" in preset  # trains on the proxy, reports the gold
    board = json.loads((out / "leaderboard.json").read_text())
    row = board["tasks"][0]
    assert (row["task"], row["agent"], row["seeds"]) == ("arithmetic", "ppo", 1)
    assert math.isfinite(row["norm_gold"]) and row["rm_reward"] != row["gold_reward"]
    assert board["norms"]["arithmetic"]["best_of_64_gold"] > board["norms"]["arithmetic"]["start_gold"]
    for name in ("leaderboard.md", "leaderboard.html", "suite_curves.png", "results.md"):
        assert (out / name).stat().st_size > 0
    config = (out / "arithmetic" / "ppo" / "seed-0" / "config.yaml").read_text()
    assert "total_timesteps: 300" in config  # the user's --set beats the suite's budget
    assert main(argv) == 0  # a second call finds the run done and only rewrites the tables
    assert "(1 already done)" in capsys.readouterr().out


def board(agent: str) -> dict:
    row = {"task": "sentiment", "agent": agent, "seeds": 2, "reached": 1}
    for key in ("gold_reward", "norm_gold", "rm_reward", "kl", "perplexity", "distinct_2", "tokens_to_threshold",
                "wall_to_threshold", "wall_time"):
        row[key], row[f"{key}_std"] = 0.5, 0.1
    return {"tasks": [row], "threshold": 0.5,
            "aggregate": [{"agent": agent, "norm_gold": 0.5, "norm_gold_std": 0.1, "seeds": 2, "tasks": 1,
                           "reached": 1, "runs": 2}],
            "norms": {"sentiment": {"start_gold": 0.1, "best_of_64_gold": 0.9, "proxy_accuracy": 0.8}}}


def test_the_page_escapes_every_string() -> None:
    page = to_html(board("<script>alert(1)</script>"), title="a <b> title")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt; title" in page
    assert "0.50 ± 0.10" in page and "(1/2)" in page  # a threshold reached by 1 of 2 seeds says so
    assert "a\\|b" in to_markdown(board("a|b"))  # a pipe cannot break the markdown table


@pytest.mark.parametrize("argv,message", [
    (["--quick", "--agents", PPO, "--envs", "e.yaml"], "--quick needs --suite embedded"),
    (["--agents", PPO], "--agents FILE... and --envs FILE..., or --suite embedded"),
    (["--suite", "embedded", "--envs", "e.yaml"], "--envs and --suite exclude each other"),
    (["--suite", "embedded", "--tasks", "nope"], "nope"),
    (["--suite", "embedded", "--tasks", "imdb"], "is not shipped"),
    (["--suite", "embedded", "--tasks", "sentiment", "sentiment"], "names a task twice"),
    (["--suite", "embedded", "--agents", "missing.yaml"], "missing.yaml"),
])
def test_bad_suite_flags_are_one_line(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.setenv("RLHF_GYM_CACHE", str(tmp_path / "cache"))
    assert main(["bench", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "cache").exists()  # refused before any proxy was trained


def _fake_run(root: Path, agent: str, start: float, end: float):
    from rlhf_gym.runner.bench import BenchRun

    out = root / "sentiment" / agent / "seed-0"
    out.mkdir(parents=True)
    evals = {k: 0.5 for k in ("rm_reward", "kl", "perplexity", "distinct_2")}
    (out / "result.json").write_text(json.dumps({"eval": {**evals, "gold_reward": end},
                                                 "initial_eval": {**evals, "gold_reward": start},
                                                 "steps": 10, "updates": 1, "wall_time": 1.0}))
    (out / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval/gold_reward": start}) + "\n")
    return BenchRun(root / "sentiment.yaml", root / f"{agent}.yaml", 0, out)


def test_gold_is_normalised_from_the_starting_policy_not_best_of_n_s_own_start(tmp_path) -> None:
    from rlhf_gym.runner.leaderboard import leaderboard

    runs = [_fake_run(tmp_path, "ppo", 0.0, 0.6), _fake_run(tmp_path, "rloo", 0.0, 0.4),
            _fake_run(tmp_path, "bon", 0.8, 0.8)]  # best-of-n's step 0 is already its best of n
    board = leaderboard(runs, {"sentiment": {"start_gold": 0.0, "best_of_64_gold": 1.0, "proxy_accuracy": 0.9}})
    norm = {r["agent"]: r["norm_gold"] for r in board["tasks"]}
    assert norm == pytest.approx({"ppo": 0.6, "rloo": 0.4, "bon": 0.8})
