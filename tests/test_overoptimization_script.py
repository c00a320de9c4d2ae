"""``scripts/overoptimization.py`` end to end in its tiniest setting, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from rlhf_gym.runner.overopt import at_proxy, peak

_spec = importlib.util.spec_from_file_location(
    "overoptimization_script", Path(__file__).parents[1] / "scripts" / "overoptimization.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)

RESULT = re.compile(r"RESULT bon_r2=(\S+) rl_r2=(\S+) gold_peak_before_end=(\S+)\Z")


def test_tiniest_run_writes_results_png_and_result_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLHF_GYM_CACHE", str(tmp_path / "cache"))  # its own tiny proxy, not the shared cache
    out = tmp_path / "out"
    argv = ["--tasks", "concise", "--comparisons", "16", "--pool", "4", "--pool-prompts", "2", "--ns", "1,2,3,4",
            "--timesteps", "400", "--seeds", "0", "1", "--eval-every", "1", "--eval-episodes", "4",
            "--threads", "1", "--out", str(out)]
    assert script.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    match = RESULT.match(lines[-1])
    assert match, lines[-1]
    bon_r2, _, fraction = (float(x) for x in match.groups())
    assert bon_r2 <= 1.0 and 0.0 <= fraction <= 1.0
    assert (out / "overopt-concise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    task = results["tasks"][0]
    bon = task["proxies"]["16"]["bon"]
    assert bon["n"] == [1, 2, 3, 4] and bon["gold_gain"][0] == 0.0 and bon["kl"][0] == 0.0
    assert len(task["proxies"]["16"]["rl"]["curves"]) == 2
    kp = task["kl_penalty"]
    assert kp["beta"] == 0.05 and len(kp["kl_curves"]) == 2
    assert {"gold_reward", "perplexity", "distinct_2", "kl"} <= kp["kl"]["at_equal_proxy"].keys()
    assert any("| concise | 16 | RL |" in line for line in lines)
    # a second call reuses the finished PPO runs
    assert script.main(argv) == 0
    assert RESULT.match(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--tasks", "nope"], ["--comparisons", "5"], ["--ns", "1,999"], ["--pool", "x"],
                                  ["--ns", "2,3"], ["--kl-proxy", "7"], ["--seeds", "1", "1"], ["--tasks", "imdb"]])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        script.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_peak_and_equal_proxy_interpolation():
    pk = peak([0, 1, 2, 3], [0.0, 0.5, 0.3, 0.2], [0.0, 1.0, 1.5, 2.0])
    assert pk["kl_at_peak"] == 1 and pk["gold_lost"] == pytest.approx(0.3) and pk["overoptimised"]
    assert not peak([0, 1], [0.0, 1.0], [0.0, 1.0])["peaks_before_end"]
    curve = {"rm_reward": [0.0, 1.0, 2.0], "gold_reward": [0.0, 0.4, 0.2], "kl": [0.0, 2.0, 4.0]}
    assert at_proxy(curve, 1.5, ("gold_reward", "kl")) == pytest.approx({"gold_reward": 0.3, "kl": 3.0})
    assert at_proxy(curve, 3.0) is None
