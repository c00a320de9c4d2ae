"""``run.init_agent`` (a run that continues another's agent) and ``rlhf-gym iterate`` (rounds of online RLHF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_gym.cli import main
from rlhf_gym.runner.tracking import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
PPO = str(ROOT / "agents" / "ppo.yaml")
SMALL = ["--set", "run.torch_threads=1", "--set", "run.eval_episodes=16", "--set", "agent.batch_size=8",
         "--set", "agent.minibatch_size=4", "--set", "env.num_envs=8"]


def _train(out: Path, *sets: str) -> int:
    args = ["train", "--env", str(ROOT / "envs" / "sentiment.yaml"), "--agent", PPO, "--out", str(out), "--no-progress",
            "--wandb", "disabled", *SMALL, "--set", "run.eval_every=0"]
    return main([*args, *(x for s in sets for x in ("--set", s))])


def test_init_agent_continues_the_checkpointed_policy(tmp_path) -> None:
    assert _train(tmp_path / "a", "run.total_timesteps=200", "agent.learning_rate=0.003") == 0
    done = json.loads((tmp_path / "a" / "result.json").read_text())
    # No tokens left to train: the continued run's evaluations are of run a's final policy, with run a's seed.
    assert _train(tmp_path / "b", f"run.total_timesteps={done['steps']}", "agent.learning_rate=0.003",
                  f"run.init_agent={tmp_path / 'a'}") == 0
    rows = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert rows[0]["step"] == done["steps"]  # the token counter carries on
    again = json.loads((tmp_path / "b" / "result.json").read_text())["eval"]
    assert again["gold_reward"] == done["eval"]["gold_reward"] and again["kl"] == done["eval"]["kl"]
    assert done["initial_eval"]["gold_reward"] != done["eval"]["gold_reward"]  # a fresh agent would score this


def test_init_agent_that_is_no_checkpoint_is_one_line(tmp_path, capsys) -> None:
    assert _train(tmp_path / "c", f"run.init_agent={tmp_path}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.init_agent" in err[0] and "neither an agent checkpoint" in err[0]
    assert not (tmp_path / "c").exists()


def _iterate(out: Path, rounds: int, labels: int = 32) -> list[str]:
    return ["iterate", "--task", "sentiment", "--rounds", str(rounds), "--labels-per-round", str(labels),
            "--timesteps-per-round", "200", "--rm-epochs", "1", "--out", str(out), "--wandb", "disabled", *SMALL]


@pytest.mark.slow
def test_iterate_samples_the_current_policy_and_continues_ppo(tmp_path, capsys) -> None:
    out = tmp_path / "iter"
    assert main(_iterate(out, 1)) == 0
    assert main(_iterate(out, 2)) == 0  # more rounds continue the same experiment
    log = capsys.readouterr().out
    assert "round 0: done" in log and log.strip().splitlines()[-1].startswith("RESULT rounds=2 gold_reward=")
    r0, r1 = (json.loads((out / f"round-{r}" / "round.json").read_text()) for r in (0, 1))
    assert (r0["labels"], r1["labels"]) == (32, 64) and r1["tokens"] - r0["tokens"] >= 200  # a full round of PPO more
    config = (out / "round-1" / "ppo" / "config.yaml").read_text()
    assert f"init_agent: {out / 'round-0' / 'ppo'}" in config and "reward: " + str(out / "round-1" / "rm") in \
        (out / "round-1" / "env.yaml").read_text()
    first = [json.loads(line) for line in (out / "round-0" / "labels.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (out / "round-1" / "labels.jsonl").read_text().splitlines()]
    assert len(first) == len(second) == 32
    assert {r["prompt"] for r in first}.isdisjoint({r["prompt"] for r in second})  # a fresh slice of prompts
    with pytest.raises(SystemExit):
        main(["iterate", "--task", "sentiment", "--rounds", "x", "--out", str(out)])


@pytest.mark.parametrize("argv,message", [
    (["--rounds", "0"], "rounds=0 is invalid"),
    (["--labels-per-round", "-1"], "labels_per_round=-1 is invalid"),
    (["--task", "imdb"], "is not shipped"),
    (["--task", "nope"], "nope"),
    (["--agent", "missing.yaml"], "agent preset missing.yaml not found"),
    (["--set", "agent.learning_rate=fast"], "learning_rate"),
    (["--humans", "missing.sqlite"], "--humans missing.sqlite: no such label store"),
    (["--overlap", "0"], "overlap=0 is invalid"),
])
def test_bad_iterate_flags_are_one_line(tmp_path, capsys, argv, message) -> None:
    args = ["iterate", "--task", "sentiment", "--agent", PPO, "--out", str(tmp_path / "it"), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "it").exists()


def test_iterate_refuses_an_experiment_with_other_settings(tmp_path, capsys) -> None:
    out = tmp_path / "it"
    out.mkdir()
    (out / "iterate.json").write_text(json.dumps({"task": "sentiment", "labels_per_round": 7}))
    assert main(["iterate", "--task", "sentiment", "--agent", PPO, "--out", str(out)]) == 2
    assert "other settings (labels_per_round" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [(["--rounds", "1"], "--rounds=1 is invalid"),
                                           (["--seeds", "0", "0"], "--seeds=[0, 0] is invalid")])
def test_the_comparison_script_refuses_bad_flags_in_one_line(tmp_path, flags, message) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "iterated_rlhf.py"), *flags, "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {message}") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_iterate_names_a_torn_settings_file(tmp_path, capsys) -> None:
    out = tmp_path / "it"
    out.mkdir()
    (out / "iterate.json").write_text('{"task": "sent')
    assert main(["iterate", "--task", "sentiment", "--agent", PPO, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iterate settings" in err[0] and "iterate.json" in err[0]


@pytest.mark.slow
def test_iterate_with_humans_waits_for_people_s_labels_in_the_store(tmp_path) -> None:
    import threading

    from rlhf_gym.feedback.store import LabelStore
    from rlhf_gym.runner.iterate import IterateConfig, iterate

    db = tmp_path / "labels.sqlite"
    store = LabelStore(db)
    store.add_annotator("alice")
    alice = store.annotator_named("alice").id
    stop = threading.Event()

    def alice_labels() -> None:  # a person in the app: the shorter text wins, every item once
        while not stop.is_set():
            for stored in store.items():
                if store.label_of(stored.id, alice) is None:
                    one, two = stored.item.candidates
                    store.add_label(stored.id, alice, choice="a" if len(one) <= len(two) else "b")
            stop.wait(0.05)

    person = threading.Thread(target=alice_labels, daemon=True)
    person.start()
    said: list[str] = []
    try:
        cfg = IterateConfig(task="sentiment", rounds=1, labels_per_round=16, timesteps_per_round=200, agent=PPO,
                            rm_epochs=1, humans=str(db), poll_seconds=0.05, overrides=tuple(SMALL[1::2]))
        [summary] = iterate(cfg, tmp_path / "it", say=said.append)
    finally:
        stop.set()
        person.join()
    pairs = (tmp_path / "it" / "round-0" / "pairs.jsonl").read_text().splitlines()
    labels = [json.loads(line) for line in (tmp_path / "it" / "round-0" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == len(pairs) == summary["labels"] and 10 <= len(pairs) <= 16  # identical pairs dropped
    assert all(len(r["chosen"]) <= len(r["rejected"]) for r in labels)  # alice's verdicts, not a simulation's
    assert len(store.labels()) == len(pairs)
