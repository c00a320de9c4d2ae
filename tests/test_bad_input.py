"""Bad input through the CLI: every malformed config, prompt, preference or demonstration file is one
``error: ...`` line and exit code 2, and nothing is left half-written in the output directory."""

from __future__ import annotations

import pytest

from rlhf_gym.cli import main

PROMPTS = "the movie was\nthe food\n"
ENV = "task: sentiment\nmodel: {tiny}\nprompts: {tmp}/p.txt\neval_prompts: {tmp}/p.txt\nreward: gold\nmax_new_tokens: 4\nnum_envs: 2\n"
AGENT = "algo: ppo\nbatch_size: 2\nminibatch_size: 1\nrun:\n  total_timesteps: 8\n  eval_episodes: 2\n"
TRAIN = ["train", "--env", "{tmp}/env.yaml", "--agent", "{tmp}/agent.yaml", "--out", "{tmp}/out", "--no-progress",
         "--wandb", "disabled"]
DEMO = ["demo", "--model", "{tiny}", "--out", "{tmp}/out", "--prefs", "{tmp}/prefs.jsonl"]
SFT = ["sft", "--model", "{tiny}", "--out", "{tmp}/out", "--data", "{tmp}/demos.jsonl"]
PAIR = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'


def env(extra: str = "", drop: str = "") -> dict[str, str]:
    """Files for `train` with the valid env preset changed: ``drop`` removes a key, ``extra`` adds/overrides lines."""
    lines = [line for line in ENV.splitlines() if not (drop and line.startswith(f"{drop}:"))]
    keys = {line.split(":")[0] for line in extra.splitlines() if ":" in line}
    lines = [line for line in lines if line.split(":")[0] not in keys] + extra.splitlines()
    return {"env.yaml": "\n".join(lines) + "\n", "agent.yaml": AGENT, "p.txt": PROMPTS}


def agent(text: str) -> dict[str, str]:
    return {"env.yaml": ENV, "agent.yaml": text, "p.txt": PROMPTS}


def valid() -> dict[str, str]:
    return {"env.yaml": ENV, "agent.yaml": AGENT, "p.txt": PROMPTS}


# (id, files, argv, part of the expected message)
CASES = [
    # ----- env presets: files and YAML
    ("env-missing", {"agent.yaml": AGENT}, TRAIN, "env.yaml does not exist"),
    ("env-empty", {**valid(), "env.yaml": ""}, TRAIN, "env.yaml is empty"),
    ("env-comments-only", {**valid(), "env.yaml": "# nothing\n"}, TRAIN, "env.yaml is empty"),
    ("env-bad-yaml", {**valid(), "env.yaml": "model: [unclosed\n"}, TRAIN, "invalid YAML"),
    ("env-bad-indent", {**valid(), "env.yaml": "model: a\n  beta: 1\n"}, TRAIN, "env.yaml:2: invalid YAML"),
    ("env-a-list", {**valid(), "env.yaml": "- model\n- beta\n"}, TRAIN, "must hold a mapping"),
    ("env-not-utf8", {**valid(), "env.yaml": b"model: \xff\xfe\n"}, TRAIN, "is not UTF-8 text"),
    ("env-is-a-directory", {"agent.yaml": AGENT, "env.yaml/x": "x"}, TRAIN, "is not a file"),
    # ----- env presets: keys, types, ranges
    ("env-unknown-key", env("bta: 0.1"), TRAIN, "unknown key env.bta; did you mean 'beta'?"),
    ("env-unknown-key-far", env("zzz: 1"), TRAIN, "unknown key env.zzz; valid keys: task, model"),
    ("env-beta-string", env("beta: high"), TRAIN, "env.beta: expected a number, got 'high'"),
    ("env-beta-negative", env("beta: -0.5"), TRAIN, "env.beta: must be >= 0, got -0.5"),
    ("env-beta-nan", env("beta: .nan"), TRAIN, "env.beta: expected a finite number"),
    ("env-tokens-zero", env("max_new_tokens: 0"), TRAIN, "env.max_new_tokens: must be >= 1, got 0"),
    ("env-tokens-float", env("max_new_tokens: 2.5"), TRAIN, "env.max_new_tokens: expected an integer, got 2.5"),
    ("env-tokens-bool", env("max_new_tokens: true"), TRAIN, "env.max_new_tokens: expected an integer, got True"),
    ("env-estimator", env("kl_estimator: k9"), TRAIN, "env.kl_estimator: expected 'k1' or 'k2' or 'k3', got 'k9'"),
    ("env-num-envs-list", env("num_envs: [2]"), TRAIN, "env.num_envs: expected an integer, got [2]"),
    ("env-model-int", env("model: 3"), TRAIN, "env.model: expected a string or null, got 3"),  # null = the task's
    # ----- env presets: what they point at
    ("env-model-missing", env("model: /nonexistent/model"), TRAIN, "model path /nonexistent/model does not exist"),
    ("env-reward-unknown", env("reward: bogus"), TRAIN, "unknown reward 'bogus'"),
    ("env-prompt-too-long", env("max_prompt_tokens: 1"), TRAIN, "more than max_prompt_tokens=1"),
    ("env-context-exceeded", env("max_new_tokens: 5000"), TRAIN, "exceeds the model's context"),
    ("prompts-missing", env("prompts: {tmp}/nope.txt"), TRAIN, "nope.txt does not exist"),
    ("prompts-empty", {**env("prompts: {tmp}/empty.txt"), "empty.txt": ""}, TRAIN, "holds no prompts"),
    ("prompts-blank-lines", {**env("prompts: {tmp}/blank.txt"), "blank.txt": "\n \n\n"}, TRAIN, "holds no prompts"),
    ("prompts-binary", {**env("prompts: {tmp}/bin.txt"), "bin.txt": b"\xff\xfe\x00x"}, TRAIN, "is not UTF-8 text"),
    ("prompts-bad-json", {**env("prompts: {tmp}/p.jsonl"), "p.jsonl": '{"prompt": "a"}\n{oops\n'}, TRAIN,
     "p.jsonl:2: not valid JSON"),
    ("prompts-no-field", {**env("prompts: {tmp}/p.jsonl"), "p.jsonl": '{"question": "a"}\n'}, TRAIN,
     "p.jsonl:1: expected an object with a string 'prompt' or 'text' field"),
    ("prompts-number", {**env("prompts: {tmp}/p.jsonl"), "p.jsonl": '{"prompt": 5}\n'}, TRAIN, "p.jsonl:1:"),
    ("eval-prompts-missing", env("eval_prompts: {tmp}/nope.txt"), TRAIN, "nope.txt does not exist"),
    ("embedded-split", env("prompts: embedded:test"), TRAIN, "unknown embedded prompt split 'test'"),
    # ----- agent presets
    ("agent-no-algo", agent("learning_rate: 0.1\n"), TRAIN, "agent is missing 'algo'"),
    ("agent-unknown-algo", agent("algo: ppo2\n"), TRAIN, "unknown algorithm 'ppo2'; did you mean 'ppo'?"),
    ("agent-unknown-key", agent("algo: ppo\nlearning_rat: 0.1\n"), TRAIN, "did you mean 'learning_rate'?"),
    ("agent-lr-negative", agent("algo: ppo\nlearning_rate: -1\n"), TRAIN, "learning_rate=-1.0 is invalid: must be > 0"),
    ("agent-lr-string", agent("algo: ppo\nlearning_rate: fast\n"), TRAIN, "agent.learning_rate: expected a number"),
    ("agent-gamma-range", agent("algo: ppo\ngamma: 2\n"), TRAIN, "gamma=2.0 is invalid: must be in [0, 1]"),
    ("agent-minibatch", agent("algo: ppo\nbatch_size: 4\nminibatch_size: 3\n"), TRAIN, "must divide batch_size=4"),
    ("agent-clip-zero", agent("algo: ppo\nclip_range: 0\n"), TRAIN, "clip_range=0.0 is invalid"),
    ("agent-nlpo-top-p", agent("algo: nlpo\ntop_p: 1.5\n"), TRAIN, "top_p=1.5 is invalid: must be in (0, 1]"),
    ("agent-ptx-negative", agent("algo: a2c\nptx_coef: -1\n"), TRAIN, "ptx_coef=-1.0 is invalid"),
    ("agent-ptx-data-missing", agent("algo: ppo\nbatch_size: 2\nptx_coef: 0.5\nptx_data: {tmp}/nope.txt\n"), TRAIN,
     "ptx_data: prompt file"),
    ("agent-run-not-mapping", agent("algo: ppo\nrun: 5\n"), TRAIN, "run must be a mapping"),
    ("agent-run-unknown", agent("algo: ppo\nrun:\n  total_steps: 5\n"), TRAIN, "did you mean 'total_timesteps'?"),
    ("agent-run-zero-budget", agent("algo: ppo\nrun:\n  total_timesteps: 0\n"), TRAIN, "run.total_timesteps: must be >= 1"),
    ("agent-sb3-kl-penalty", agent("algo: sb3-ppo\nkl_penalty: both\n"), TRAIN, "expected 'reward' or 'entropy'"),
    # ----- --set overrides and command lines
    ("set-no-equals", valid(), [*TRAIN, "--set", "env.beta"], "expected KEY=VALUE"),
    ("set-no-section", valid(), [*TRAIN, "--set", "beta=1"], "prefix the key with its section, e.g. env.beta=1"),
    ("set-bad-section", valid(), [*TRAIN, "--set", "agnt.gamma=1"], "unknown section 'agnt'; did you mean 'agent'?"),
    ("set-bad-yaml", valid(), [*TRAIN, "--set", "env.beta=[1"], "--set env.beta:1: invalid YAML"),
    ("set-out-of-range", valid(), [*TRAIN, "--set", "run.eval_episodes=0"], "run.eval_episodes: must be >= 1"),
    ("train-no-out", valid(), TRAIN[:5], "train needs --out DIR"),
    ("train-no-env", valid(), ["train", "--agent", "{tmp}/agent.yaml", "--out", "{tmp}/out"], "needs --env FILE"),
    ("resume-nothing", valid(), ["train", "--out", "{tmp}/out", "--resume"], "cannot resume"),
    ("eval-no-run", valid(), ["eval", "--run", "{tmp}/out"], "is not a run directory"),
    ("report-no-run", valid(), ["report", "--run", "{tmp}/out"], "does not exist"),
    # ----- preference files (rlhf-gym demo --prefs)
    ("prefs-missing", {}, DEMO, "prefs.jsonl"),
    ("prefs-empty", {"prefs.jsonl": ""}, DEMO, "prefs.jsonl"),
    ("prefs-bad-json", {"prefs.jsonl": PAIR + "{nope\n"}, DEMO, "prefs.jsonl:2"),
    ("prefs-missing-field", {"prefs.jsonl": '{"prompt": "p", "chosen": "a"}\n'}, DEMO, "prefs.jsonl:1"),
    ("prefs-not-object", {"prefs.jsonl": "[1, 2]\n"}, DEMO, "expected a JSON object"),
    ("prefs-text-number", {"prefs.jsonl": '{"prompt": "p", "chosen": 1, "rejected": "b"}\n'}, DEMO, "prefs.jsonl:1"),
    ("prefs-bad-label", {"prefs.jsonl": '{"input_text": "p", "candidate1": "a", "candidate2": "b", '
                                        '"human_preference": 3}\n'}, DEMO, "prefs.jsonl:1"),
    ("prefs-short-ranking", {"prefs.jsonl": '{"prompt": "p", "completions": ["a"]}\n'}, DEMO, "prefs.jsonl:1"),
    ("prefs-negative-weight", {"prefs.jsonl": '{"prompt": "p", "chosen": "a", "rejected": "b", "weight": -1}\n'}, DEMO,
     "prefs.jsonl:1"),
    ("prefs-csv-columns", {"prefs.csv": "question,answer\nq,a\n"}, [*DEMO[:-1], "{tmp}/prefs.csv"], "prefs.csv"),
    ("demo-bad-size", {"prefs.jsonl": PAIR}, [*DEMO, "--eval-episodes", "0"], "demo: invalid --eval-episodes=0"),
    ("demo-zero-kl-target", {"prefs.jsonl": PAIR}, [*DEMO, "--kl-target", "0"], "demo: invalid --kl-target=0.0"),
    ("demo-nan-kl-target", {"prefs.jsonl": PAIR}, [*DEMO, "--kl-target", "nan"], "demo: invalid --kl-target=nan"),
    ("demo-zero-adaptive-beta", {"prefs.jsonl": PAIR}, [*DEMO, "--adaptive-beta", "0"],
     "demo: invalid --adaptive-beta=0.0"),
    ("demo-short-kl-horizon", {"prefs.jsonl": PAIR}, [*DEMO, "--kl-horizon", "8"],
     "demo: invalid --kl-horizon=8: must be at least the batch size (32 episodes)"),
    # ----- demonstration files (rlhf-gym sft --data)
    ("demos-missing", {}, SFT, "demos.jsonl does not exist"),
    ("demos-empty", {"demos.jsonl": "\n\n"}, SFT, "holds no demonstrations"),
    ("demos-bad-json", {"demos.jsonl": "{nope\n"}, SFT, "demos.jsonl:1: not valid JSON"),
    ("demos-no-completion", {"demos.jsonl": '{"prompt": "p"}\n'}, SFT, "demos.jsonl:1: missing field 'completion'"),
    ("demos-wrong-type", {"demos.jsonl": '{"prompt": "p", "completion": 3}\n'}, SFT,
     "field 'completion' must be a string, got int"),
    ("demos-empty-completion", {"demos.jsonl": '{"prompt": "p", "completion": "  "}\n'}, SFT, "the completion is empty"),
    ("sft-epochs-zero", {"demos.jsonl": '{"prompt": "p", "completion": "c"}\n'}, [*SFT, "--epochs", "0"],
     "sft: invalid epochs=0"),
    ("sft-world-zero", {}, ["sft", "--from-world", "0", "--out", "{tmp}/out"], "positive number of demonstrations"),
]


def test_at_least_40_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, files, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, files, argv, expected, tmp_path, tiny_lm_dir, capsys):
    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path)).replace("{tiny}", tiny_lm_dir)

    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fill(content).encode() if isinstance(content, str) else content)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    code = main([fill(a) for a in argv])

    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    assert fill(expected) in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_existing_run_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code = main(["train", "--env", "envs/sentiment.yaml", "--agent", "agents/ppo.yaml", "--out", str(tmp_path / "out")])
    assert code == 2 and "already holds files" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
