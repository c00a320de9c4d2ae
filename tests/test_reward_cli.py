"""``rlhf-gym reward simulate|train|eval`` end to end on a tiny local model, and its bad-input behaviour."""

from __future__ import annotations

import json

import pytest

from rlhf_gym.cli import main
from rlhf_gym.rewards.preferences import load_preferences


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["reward", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def result_line(out: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    return dict(item.split("=") for item in last.split()[1:])


def metrics_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tiny_lm_dir, tmp_path_factory):
    """simulate → train once for the module: (folder, preference file, reward-model folder, exit codes)."""
    root = tmp_path_factory.mktemp("cli")
    prefs, rm = root / "prefs.jsonl", root / "rm"
    outputs = []
    for argv in (
        ["simulate", "--out", str(prefs), "--model", tiny_lm_dir, "--n-comparisons", "30", "--max-new-tokens", "6",
         "--annotators", "a:0.05,b:0.1:0.1", "--no-progress"],
        ["train", "--prefs", str(prefs), "--out", str(rm), "--base-model", tiny_lm_dir, "--epochs", "1",
         "--batch-size", "8", "--max-length", "32", "--no-progress"],
    ):
        outputs.append(main(["reward", *argv]))
    return root, prefs, rm, outputs


def test_simulate_train_eval(trained, capsys):
    root, prefs, rm, codes = trained
    assert codes == [0, 0]
    assert len(load_preferences(prefs)) == 30
    sim_metrics = metrics_rows(root / "prefs.metrics.jsonl")
    assert sim_metrics[0]["sim/n_records"] == 30

    for name in ("config.json", "model.safetensors", "reward_stats.json", "tokenizer.json", "metrics.jsonl"):
        assert (rm / name).is_file(), name
    rows = metrics_rows(rm / "metrics.jsonl")
    assert rows[0]["rm/epoch"] == 1 and "rm/reward_std" in rows[-1]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary leftovers

    code, out, _ = run_cli(capsys, "eval", "--model", str(rm), "--prefs", str(prefs), "--fresh", "0",
                           "--no-progress")
    assert code == 0
    result = result_line(out)
    assert 0 <= float(result["accuracy"]) <= 1 and result["spearman"] == "nan"
    eval_rows = metrics_rows(rm / "eval" / "metrics.jsonl")
    assert eval_rows[0]["eval/n_pairs"] == 30 and "eval/ece" in eval_rows[0]
    assert len(json.loads((rm / "eval" / "eval.json").read_text())["calibration"]) == 10


def test_eval_with_fresh_texts(trained, tiny_lm_dir, capsys, monkeypatch):
    from rlhf_gym.rewards import annotators

    class TinyGenerator(annotators.CandidateGenerator):
        def __init__(self, model=None, **kwargs):  # the task's model is replaced by the tiny one
            super().__init__(tiny_lm_dir, device="cpu", max_new_tokens=6, **kwargs)

    monkeypatch.setattr(annotators, "CandidateGenerator", TinyGenerator)
    _, prefs, rm, _ = trained
    out_dir = rm.parent / "eval-fresh"
    code, out, _ = run_cli(capsys, "eval", "--model", str(rm), "--prefs", str(prefs), "--fresh", "16",
                           "--out", str(out_dir), "--no-progress")
    assert code == 0
    assert "spearman" in result_line(out)
    samples = metrics_rows(out_dir / "samples.jsonl")
    assert len(samples) > 0 and {"prompt", "completion", "reward", "gold"} <= samples[0].keys()


def test_malformed_preferences_exit_2_and_write_nothing(trained, tmp_path, capsys):
    _, _, rm, _ = trained
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": " b", "rejected": " c"}\n{"prompt": "a", "chosen": " b"}\n')
    out_dir = tmp_path / "rm"
    code, _, err = run_cli(capsys, "train", "--prefs", str(bad), "--out", str(out_dir), "--no-progress")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and f"{bad}:2" in err and "rejected" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]

    code, _, err = run_cli(capsys, "eval", "--model", str(rm), "--prefs", str(bad), "--out",
                           str(tmp_path / "eval"), "--fresh", "0")
    assert code == 2 and f"{bad}:2" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_identical_sides_and_bad_label(tmp_path, capsys):
    same = tmp_path / "same.csv"
    same.write_text("input_text,candidate1,candidate2,human_preference\nHi, there, there,1\n")
    code, _, err = run_cli(capsys, "train", "--prefs", str(same), "--out", str(tmp_path / "rm"))
    assert code == 2 and f"{same}:2" in err and "same text" in err

    label = tmp_path / "label.jsonl"
    label.write_text(json.dumps({"input_text": "Hi", "candidate1": " a", "candidate2": " b",
                                 "human_preference": "both"}) + "\n")
    code, _, err = run_cli(capsys, "train", "--prefs", str(label), "--out", str(tmp_path / "rm"))
    assert code == 2 and f"{label}:1" in err and "unknown preference label" in err
    assert not (tmp_path / "rm").exists()


def test_simulate_bad_options_write_nothing(tmp_path, capsys):
    for argv in (["--annotators", "a:fast"], ["--flip-rate", "2"], ["--format", "rankings", "--tie-threshold", "0.1"]):
        code, _, err = run_cli(capsys, "simulate", "--out", str(tmp_path / "p.jsonl"), *argv)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run_cli(capsys, "simulate", "--out", str(tmp_path / "p.txt"))
    assert code == 2 and ".jsonl or .csv" in err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_folder_is_refused(trained, capsys):
    _, prefs, rm, _ = trained
    code, _, err = run_cli(capsys, "train", "--prefs", str(prefs), "--out", str(rm))
    assert code == 2 and "not empty" in err


@pytest.mark.parametrize("command", ["simulate", "train", "eval"])
def test_help_explains_options_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reward", command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--seed" in text and "--wandb" in text
