"""Malformed input to the CLI, table-driven: corrupt run files, unwritable outputs, plans that fail late, bad
configs. Every row: exit code 2, exactly one ``error:`` line naming the culprit, no traceback, and the work
folder exactly as it was (no file added, removed or changed: sizes and mtimes compared)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_gym.cli import main

ENV = ("task: sentiment\nmodel: {tiny}\nprompts: {w}/p.txt\neval_prompts: {w}/p.txt\nreward: gold\nmax_new_tokens: 4\n"
       "num_envs: 2\n")
AGENT = ("algo: ppo\nbatch_size: 2\nminibatch_size: 1\nn_epochs: 1\nptx_coef: 0.1\nptx_data: {w}/p.txt\n"
         "run:\n  total_timesteps: 8\n  eval_episodes: 2\n  torch_threads: 1\n  keep_checkpoints: 1\n")
PROMPTS = "the movie was\nthe food\ni loved this\n"
RESUME = ["train", "--out", "{w}/run", "--resume", "--no-progress", "--wandb", "disabled"]
TRAIN = ["train", "--env", "{w}/env.yaml", "--agent", "{w}/agent.yaml", "--out", "{w}/new", "--no-progress",
         "--wandb", "disabled"]
EVAL = ["eval", "--run", "{w}/run", "--episodes", "2", "--samples", "0"]
REPORT = ["report", "--run", "{w}/run"]
BENCH = ["bench", "--agents", "{w}/agent.yaml", "--envs", "{w}/env.yaml", "{w}/env2.yaml", "--seeds", "1",
         "--out", "{w}/bench", "--wandb", "disabled"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_lm_dir):
    """A finished tiny run (PPO-ptx, one checkpoint) and its presets, made once; rows work on copies."""
    w = tmp_path_factory.mktemp("malformed-base")
    for name, text in (("env.yaml", ENV), ("agent.yaml", AGENT), ("p.txt", PROMPTS)):
        (w / name).write_text(text.replace("{tiny}", tiny_lm_dir).replace("{w}", str(w)))
    assert main(["train", "--env", str(w / "env.yaml"), "--agent", str(w / "agent.yaml"), "--out", str(w / "run"),
                 "--no-progress", "--wandb", "disabled"]) == 0
    return w


# ----- mutations of the copied work folder w (each takes w and the newest checkpoint ck) --------------------
def cut(rel: str, keep: float | int = 0.5):
    def f(w: Path, ck: Path) -> None:
        p = (ck if rel.startswith("ck/") else w) / rel.removeprefix("ck/")
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return f


def put(rel: str, content: str | bytes):
    def f(w: Path, ck: Path) -> None:
        p = (ck if rel.startswith("ck/") else w) / rel.removeprefix("ck/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return f


def edit_json(rel: str, change):
    def f(w: Path, ck: Path) -> None:
        p = ck / rel
        data = json.loads(p.read_text())
        change(data)
        p.write_text(json.dumps(data))
    return f


def sub(rel: str, old: str, new: str, count: int = 1):
    def f(w: Path, ck: Path) -> None:
        p = (ck if rel.startswith("ck/") else w) / rel.removeprefix("ck/")
        text = p.read_text()
        assert old in text, (rel, old)
        p.write_text(text.replace(old, new, count))
    return f


def rm(rel: str):
    def f(w: Path, ck: Path) -> None:
        ((ck if rel.startswith("ck/") else w) / rel.removeprefix("ck/")).unlink()
    return f


def both(*fs):
    def f(w: Path, ck: Path) -> None:
        for g in fs:
            g(w, ck)
    return f


def stray_step(w: Path, ck: Path) -> None:
    shutil.copytree(ck, ck.parent / "step-final")


def lines(rel: str, change):
    def f(w: Path, ck: Path) -> None:
        p = w / rel
        rows = p.read_text().splitlines()
        p.write_text("\n".join(change(rows)) + "\n")
    return f


def no_op(w: Path, ck: Path) -> None: ...


def long_eval_prompts(w: Path, ck: Path) -> None:
    (w / "long.txt").write_text("the movie was " * 40 + "\n")


def bench_done_cell(change):
    """OUT/env/agent/seed-0 is a finished copy of the run, then ``change`` spoils its result.json."""
    def f(w: Path, ck: Path) -> None:
        cell = w / "bench1" / "env" / "agent" / "seed-0"
        shutil.copytree(w / "run", cell)
        change(cell / "result.json")
    return f


def corrupt_result(text: str):
    return bench_done_cell(lambda p: p.write_text(text))


def env2(line: str):
    """A second env preset: the first with ``line`` (``key: value``) replacing or adding that key."""
    def f(w: Path, ck: Path) -> None:
        key = line.split(":")[0]
        kept = [x for x in (w / "env.yaml").read_text().splitlines() if x.split(":")[0] != key]
        (w / "env2.yaml").write_text("\n".join([*kept, line]) + "\n")
    return f


BENCH1 = [*BENCH[:5], *BENCH[6:9], "{w}/bench1", *BENCH[10:]]  # one env preset, into {w}/bench1

# (id, mutation, argv, part of the expected message)
CASES = [
    # ----- safetensors files of the checkpoint (resume reads them all)
    ("policy-truncated", cut("ck/agent/policy/model.safetensors"), RESUME, "agent/policy"),
    ("policy-empty", cut("ck/agent/policy/model.safetensors", 0), RESUME, "agent/policy"),
    ("policy-garbage", put("ck/agent/policy/model.safetensors", b"\x00" * 64), RESUME, "agent/policy"),
    ("value-head-truncated", cut("ck/agent/agent.safetensors"), RESUME, "agent.safetensors"),
    ("value-head-empty", cut("ck/agent/agent.safetensors", 0), RESUME, "agent.safetensors"),
    ("value-head-missing", rm("ck/agent/agent.safetensors"), RESUME, "agent.safetensors does not exist"),
    ("optimizer-truncated", cut("ck/agent/optimizer.safetensors", 0.7), RESUME, "optimizer.safetensors"),
    ("optimizer-empty", cut("ck/agent/optimizer.safetensors", 0), RESUME, "optimizer.safetensors"),
    ("rng-truncated", cut("ck/rng.safetensors"), RESUME, "rng.safetensors"),
    ("rng-empty", cut("ck/rng.safetensors", 0), RESUME, "rng.safetensors"),
    ("rng-missing", rm("ck/rng.safetensors"), RESUME, "rng.safetensors does not exist"),
    # ----- runner.json
    ("runner-truncated", cut("ck/runner.json"), RESUME, "runner.json: not valid JSON"),
    ("runner-empty", cut("ck/runner.json", 0), RESUME, "runner.json is empty"),
    ("runner-a-list", put("ck/runner.json", "[1, 2]"), RESUME, "runner.json must hold a JSON object"),
    ("runner-no-rng", edit_json("runner.json", lambda d: d.pop("rng")), RESUME, "runner.json has no 'rng'"),
    ("runner-step-string", edit_json("runner.json", lambda d: d.update(step="8")), RESUME,
     "'step' must be an integer"),
    ("runner-step-other", edit_json("runner.json", lambda d: d.update(step=7)), RESUME, "does not fit checkpoint"),
    ("runner-no-updates", edit_json("runner.json", lambda d: d.pop("updates")), RESUME, "has no 'updates'"),
    ("runner-duplicate-key", put("ck/runner.json", '{"step": 8, "step": 8}'), RESUME, "duplicate key 'step'"),
    ("runner-nan", sub("ck/runner.json", '"wall_time": ', '"wall_time": NaN, "x": '), RESUME, "NaN is not JSON"),
    ("runner-rng-python", edit_json("runner.json", lambda d: d["rng"].update(python=[1])), RESUME,
     "RNG state of checkpoint"),
    ("runner-rng-numpy", edit_json("runner.json", lambda d: d["rng"].update(numpy="x")), RESUME, "'numpy' must be a list"),
    # ----- the agent's agent.json
    ("agent-json-truncated", cut("ck/agent/agent.json"), RESUME, "agent.json: not valid JSON"),
    ("agent-json-empty", cut("ck/agent/agent.json", 0), RESUME, "agent.json is empty"),
    ("agent-json-list", put("ck/agent/agent.json", "[]"), RESUME, "agent.json must hold a JSON object"),
    ("agent-json-no-config", edit_json("agent/agent.json", lambda d: d.pop("config")), RESUME, "has no 'config'"),
    ("agent-json-counters", edit_json("agent/agent.json", lambda d: d["counters"].update(num_rollouts="1")), RESUME,
     "counters: 'num_rollouts' must be an integer"),
    ("agent-json-algorithm", edit_json("agent/agent.json", lambda d: d.update(algorithm="A2C")), RESUME,
     "holds a A2C agent, not PPO"),
    ("agent-json-rng-text", edit_json("agent/agent.json", lambda d: d["rng"].update(sample="!!")), RESUME,
     "agent checkpoint"),
    ("agent-json-bad-lr", edit_json("agent/agent.json", lambda d: d["config"].update(learning_rate="x")), RESUME,
     "agent checkpoint"),
    ("agent-json-groups", edit_json("agent/agent.json", lambda d: d.update(optimizer_param_groups=[1])), RESUME,
     "optimizer_param_groups"),
    ("agent-json-ptx", edit_json("agent/agent.json", lambda d: d.update(ptx=[1])), RESUME, "'ptx' must be an object"),
    ("stray-step-final", stray_step, RESUME, "step-final is not a checkpoint name"),
    ("stray-step-final-eval", stray_step, EVAL, "step-final is not a checkpoint name"),
    # ----- metrics.jsonl / samples.jsonl
    ("metrics-row-a-list", lines("run/metrics.jsonl", lambda r: ["[1, 2]", *r]), RESUME, "metrics.jsonl:1: expected a JSON object"),
    ("metrics-step-null", lines("run/metrics.jsonl", lambda r: [r[0].replace('"step": 0', '"step": null'), *r[1:]]),
     RESUME, "metrics.jsonl:1: 'step' must be an integer"),
    ("metrics-torn-middle", lines("run/metrics.jsonl", lambda r: [r[0][:5], *r[1:]]), RESUME, "metrics.jsonl:1: not valid JSON"),
    ("samples-step-string", lines("run/samples.jsonl", lambda r: [r[0].replace('"step": 0', '"step": "0"'), *r[1:]]),
     RESUME, "samples.jsonl:1: 'step'"),
    ("metrics-not-utf8", put("run/metrics.jsonl", b'{"step": 0}\n\xff\xfe\n'), RESUME, "metrics.jsonl is not UTF-8"),
    ("report-step-null", lines("run/metrics.jsonl", lambda r: [r[0].replace('"step": 0', '"step": null'), *r[1:]]),
     REPORT, "metrics.jsonl:1"),
    ("report-samples-not-object", lines("run/samples.jsonl", lambda r: [*r, '"x"']), REPORT, "samples.jsonl"),
    # ----- the run's config and its digest
    ("config-truncated", cut("run/config.yaml"), RESUME, "config.yaml"),
    ("config-empty", cut("run/config.yaml", 0), RESUME, "config.yaml is empty"),
    ("config-edited", sub("run/config.yaml", "beta: 0.05", "beta: 0.3"), RESUME, "env.beta is 0.3 there but was 0.05"),
    ("config-edited-budget", sub("run/config.yaml", "total_timesteps: 8", "total_timesteps: 80"), RESUME,
     "run.total_timesteps is 80 there but was 8"),
    ("config-dropped-line", sub("run/config.yaml", "  beta: 0.05", "  #"), RESUME, "env.beta is missing"),
    ("config-duplicate-key", sub("run/config.yaml", "  beta: 0.05", "  beta: 0.05\n  beta: 0.05"), RESUME,
     "duplicate key 'beta'"),
    ("config-section-a-list", put("run/config.yaml", "env: [1]\nagent: {algo: ppo}\nrun: {}\n"), RESUME,
     "env must be a mapping"),
    ("digest-missing", rm("run/config.sha256"), RESUME, "config.sha256 is missing"),
    ("digest-garbage", put("run/config.sha256", "not a digest\n"), RESUME, "config.sha256 must hold one sha256"),
    ("config-json-edited-too", both(sub("run/config.yaml", "beta: 0.05", "beta: 0.3"),
                                    sub("run/config.json", '"beta":0.05', '"beta":0.3')), RESUME,
     "does not match its digest"),
    ("eval-config-edited", sub("run/config.yaml", "beta: 0.05", "beta: 0.3"), EVAL, "env.beta is 0.3"),
    ("report-config-edited", sub("run/config.yaml", "beta: 0.05", "beta: 0.3"), REPORT, "env.beta is 0.3"),
    ("eval-policy-truncated", cut("ck/agent/policy/model.safetensors"), EVAL, "agent/policy"),
    ("resume-set-junk", no_op, [*RESUME, "--set", "run.total_timesteps=lots"], "run.total_timesteps: expected an integer"),
    # ----- result.json of a finished run (bench reads them for its table)
    ("result-truncated", bench_done_cell(lambda p: p.write_bytes(p.read_bytes()[:20])), BENCH1, "result.json"),
    ("result-a-list", corrupt_result("[]"), BENCH1, "result.json must hold a JSON object"),
    ("result-eval-string", corrupt_result('{"eval": {"kl": "x"}, "initial_eval": {}, "steps": 8, "updates": 1, '
                                          '"wall_time": 1.0}'), BENCH1, "eval.kl must be a number"),
    ("result-no-steps", corrupt_result('{"eval": {}, "initial_eval": {}, "updates": 1, "wall_time": 1}'), BENCH1,
     "has no 'steps'"),
    # ----- outputs the OS refuses
    ("train-out-under-a-file", put("afile", "x"), [*TRAIN[:5], "--out", "{w}/afile/run", *TRAIN[7:]], "afile is a file"),
    ("train-out-is-a-file", put("afile", "x"), [*TRAIN[:5], "--out", "{w}/afile", *TRAIN[7:]], "afile is a file"),
    ("demo-out-under-a-file", put("afile", "x"), ["demo", "--model", "{tiny}", "--out", "{w}/afile/demo"],
     "afile is a file"),
    ("demo-out-is-a-file", put("afile", "x"), ["demo", "--model", "{tiny}", "--out", "{w}/afile"], "afile is a file"),
    ("bench-out-under-a-file", put("afile", "x"), [*BENCH1[:-3], "{w}/afile/b", *BENCH1[-2:]], "afile is a file"),
    ("sft-out-under-a-file", put("afile", "x"), ["sft", "--from-world", "4", "--model", "{tiny}", "--out",
                                                 "{w}/afile/sft"], "afile is a file"),
    ("reward-sim-under-a-file", put("afile", "x"), ["reward", "simulate", "--out", "{w}/afile/p.jsonl"],
     "afile is a file"),
    ("reward-train-out-is-a-file", put("afile", "x"), ["reward", "train", "--prefs", "{w}/p.txt", "--out", "{w}/afile"],
     "afile is a file"),
    ("bench-cell-is-a-file", put("bench1/env/agent/seed-0", "x"), BENCH1, "seed-0 is a file"),
    # ----- failures that used to come after training had started writing
    ("eval-prompt-too-long", long_eval_prompts, [*TRAIN, "--set", "env.eval_prompts={w}/long.txt"],
     "exceeds the model's context"),
    ("bench-second-env-prompts", env2("eval_prompts: {w}/nope.txt"), BENCH,
     "nope.txt does not exist"),
    ("bench-second-env-long-eval", both(long_eval_prompts, env2("eval_prompts: {w}/long.txt")), BENCH,
     "exceeds the model's context"),
    ("bench-second-env-bad-reward", env2("gold: bogus"), BENCH, "unknown reward 'bogus'"),
    # ----- configs
    ("env-duplicate-key", sub("env.yaml", "reward: gold\n", "reward: gold\nreward: gold\n"), TRAIN,
     "env.yaml:6: invalid YAML (duplicate key 'reward'"),
    ("agent-run-duplicate-key", sub("agent.yaml", "  eval_episodes: 2\n", "  eval_episodes: 2\n  eval_episodes: 3\n"),
     TRAIN, "duplicate key 'eval_episodes'"),
    ("agent-bad-date", sub("agent.yaml", "  torch_threads: 1", "  seed: 2024-13-45"), TRAIN, "invalid YAML value"),
    ("env-unknown-key", sub("env.yaml", "reward:", "rewrd:"), TRAIN, "unknown key env.rewrd"),
    ("env-wrong-type", sub("env.yaml", "num_envs: 2", "num_envs: two"), TRAIN, "env.num_envs: expected an integer"),
    ("env-unhashable-key", put("env.yaml", "? [a, b]\n: 1\n"), TRAIN, "env.yaml:1: invalid YAML"),
    ("set-duplicate-key", no_op, [*TRAIN, "--set", "agent.lora={r: 1, r: 2}"], "duplicate key 'r'"),
    ("set-empty-key", no_op, [*TRAIN, "--set", "=1"], "expected KEY=VALUE"),
    ("set-date", no_op, [*TRAIN, "--set", "run.seed=2024-13-45"], "invalid YAML value"),
    ("set-unclosed", no_op, [*TRAIN, "--set", "env.task={a"], "--set env.task"),
]


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


def test_at_least_50_rows():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, mutate, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_error_line_and_changes_nothing(name, mutate, argv, expected, base, tmp_path,
                                                                tiny_lm_dir, capsys):
    w = tmp_path / "w"
    shutil.copytree(base, w)
    for path in ("env.yaml", "agent.yaml", "run/config.yaml", "run/config.json"):  # the copy's own paths
        p = w / path
        p.write_text(p.read_text().replace(str(base), str(w)))
    (w / "run" / "config.sha256").write_text(
        __import__("hashlib").sha256((w / "run" / "config.json").read_text().strip().encode()).hexdigest() + "\n")
    ck = sorted((w / "run" / "checkpoints").glob("step-*"))[-1]

    def fill(text: str) -> str:
        return text.replace("{w}", str(w)).replace("{tiny}", tiny_lm_dir)

    mutate(w, ck)
    for p in w.glob("*.yaml"):
        p.write_text(fill(p.read_text()))
    before = _snapshot(tmp_path)

    code = main([fill(a) for a in argv])

    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert fill(expected) in errors[0], errors[0]
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before  # nothing added, removed or rewritten


@pytest.mark.parametrize("argv, expected", [
    (["train", "--out", "{w}/run", "--resume", "--no-progress"], "config.sha256 is missing"),
    (["report", "--run", "{w}/run"], "metrics.jsonl:1"),
], ids=["resume", "report"])
def test_exit_code_2_in_a_real_process(argv, expected, base, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base / "run", w / "run")
    (w / "run" / "config.sha256").unlink()
    (w / "run" / "metrics.jsonl").write_text("[]\n")
    child = subprocess.run([sys.executable, "-m", "rlhf_gym.cli", *(a.replace("{w}", str(w)) for a in argv)],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"})
    assert child.returncode == 2, child.stderr[-2000:]
    errors = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in child.stderr


def test_a_read_only_output_folder_is_refused_before_any_work(base, tmp_path, monkeypatch, capsys):
    """Root may write anywhere, so the read-only folder is simulated: os.access says no for it."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    argv = ["train", "--env", str(base / "env.yaml"), "--agent", str(base / "agent.yaml"), "--out", str(ro / "run")]
    assert main(argv) == 2
    assert f"{ro} is not writable" in capsys.readouterr().err
    assert not list(ro.iterdir())


def test_an_os_error_while_writing_names_the_path(tmp_path, monkeypatch):
    from rlhf_gym.errors import ConfigError
    from rlhf_gym.io import atomic_dir, write_text_atomic

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(ConfigError, match=r"cannot write .*x\.txt: No space left on device"):
        write_text_atomic(tmp_path / "x.txt", "hi")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to replace it"), atomic_dir(tmp_path / "f"):
        pass
    assert (tmp_path / "f").read_text() == "mine"


def test_a_failing_new_run_leaves_nothing(base, tmp_path, monkeypatch, capsys):
    """An error after the run directory was created (here: in the first policy update) removes it again."""
    from rlhf_gym.agents import PPO
    from rlhf_gym.errors import RewardError

    def broken(self, buffer):
        raise RewardError("the reward went away")

    monkeypatch.setattr(PPO, "update", broken)
    out = tmp_path / "run"
    assert main(["train", "--env", str(base / "env.yaml"), "--agent", str(base / "agent.yaml"), "--out", str(out),
                 "--no-progress", "--wandb", "disabled"]) == 2
    assert "the reward went away" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "nlpo"])
def test_every_cli_checkpoint_loads_with_the_python_api(algo, base, tmp_path, capsys):
    from rlhf_gym.agents import A2C, NLPO, PPO

    agent = tmp_path / "agent.yaml"
    text = (base / "agent.yaml").read_text().replace("algo: ppo", f"algo: {algo}")
    agent.write_text(text.replace("n_epochs: 1\n", "") if algo == "a2c" else text)
    out = tmp_path / "run"
    assert main(["train", "--env", str(base / "env.yaml"), "--agent", str(agent), "--out", str(out),
                 "--no-progress", "--wandb", "disabled"]) == 0
    ck = sorted((out / "checkpoints").glob("step-*"))[-1] / "agent"
    cls = {"ppo": PPO, "a2c": A2C, "nlpo": NLPO}[algo]
    from rlhf_gym.runner.build import make_env
    from rlhf_gym.runner.rundir import load_run

    plain = cls.load(ck)  # prediction only: the ptx text is not needed without an env to train on
    assert plain.num_timesteps == 8 and plain.env is None
    env = make_env(load_run(out))
    mixed = cls.load(ck, env=env)  # and it trains on, with the pretraining mix it was trained with
    assert mixed.config.ptx_coef == 0.1 and mixed.num_timesteps == 8
    mixed.learn(2)
    assert mixed.num_timesteps > 8 and mixed.history[-1]["loss/ptx"] > 0
