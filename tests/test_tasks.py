"""The task registry (rlhf_gym.tasks) and the acceptance test of issue 11: no module outside tasks/ names a world."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlhf_gym  # noqa: F401  (registers the built-in tasks' ids)
from rlhf_gym.errors import ConfigError
from rlhf_gym.tasks import Task, _unregister_task, get_task, list_tasks, register_task

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rlhf_gym"
WORLD_NAMES = re.compile(r'ReviewWorld|VaderGold|"embedded:(train|eval)')
# Where the world may be named: the tasks themselves, the world's own modules and the prompt loader that
# serves its "embedded:" sources, and the module that defines the VADER judge.
ALLOWED = ("rlhf_gym/tasks/", "rlhf_gym/core/world", "rlhf_gym/core/data.py", "rlhf_gym/rewards/gold.py")

def world_mentions() -> list[str]:
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WORLD_NAMES.search(line):
                hits.append(f"{rel}:{i}: {line.strip()}")
    return hits


def test_no_module_outside_tasks_names_a_world():
    hits = world_mentions()
    assert not hits, "modules outside rlhf_gym/tasks/ name the world:\n" + "\n".join(hits)


def toy_task(name: str = "toy-echo", **kw) -> Task:
    fields = dict(name=name, version=0, description="a toy", model="embedded", tokenizer=None,
                  train_prompts="embedded:train", eval_prompts="embedded:eval",
                  gold=lambda: (lambda prompts, completions: [float(len(c)) for c in completions]))
    return Task(**{**fields, **kw})


@pytest.fixture
def toy():
    task = register_task(toy_task())
    yield task
    _unregister_task(task.name)


def test_sentiment_is_registered():
    task = get_task("sentiment")
    assert task.env_id == "rlhf_gym/Sentiment-v0"
    assert task in list_tasks()
    assert gym.spec("rlhf_gym/Sentiment-v0").kwargs == {"task": "sentiment", "max_new_tokens": 24}
    demos = task.make_demonstrations(3)
    assert len(demos) == 3 and all(isinstance(p, str) and c for p, c in demos)
    assert len(task.make_pretraining_text(5)) == 5


def test_registered_toy_task_id_works_single_and_vector(toy):
    assert toy.env_id == "rlhf_gym/ToyEcho-v0"
    env = gym.make(toy.env_id, max_new_tokens=2)
    assert env.unwrapped.engine.task is toy
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, reward, terminated, _, info = env.step(env.action_space.sample())
    assert info["rm_score"] == pytest.approx(len(info["completion"]))  # the toy's gold is the reward
    envs = gym.make_vec(toy.env_id, num_envs=2, max_new_tokens=2)
    assert envs.engine.task is toy
    obs, _ = envs.reset(seed=0)
    assert obs["input_ids"].shape[0] == 2
    envs.step(np.array([5, 6]))
    env.close(), envs.close()


def test_unknown_task_is_one_line_config_error():
    with pytest.raises(ConfigError, match=r"^unknown task 'sentimnet'; did you mean 'sentiment'\?") as e:
        get_task("sentimnet")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown task"):
        gym.make("rlhf_gym/Sentiment-v0", task="nope")


def test_duplicate_registration_refused(toy):
    with pytest.raises(ConfigError, match="already registered"):
        register_task(toy_task())
    with pytest.raises(ConfigError, match="already registered"):
        register_task(toy_task(name="sentiment"))


@pytest.mark.parametrize("field, value, message", [
    ("name", "Toy", "name='Toy' is invalid"),
    ("version", -1, "version=-1 is invalid"),
    ("version", True, "version=True is invalid"),
    ("model", "", "model='' is invalid"),
    ("gold", "vader", "gold='vader' is invalid"),
    ("demonstrations", [], "demonstrations=[] is invalid"),
    ("metrics", (), "metrics=() is invalid"),
    ("annotator_temperature", float("nan"), "annotator_temperature=nan is invalid"),
])
def test_task_validation_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        toy_task(**{field: value})


def test_the_parts_come_from_the_task(toy):
    """Evaluation, the runner's env config, SFT demonstrations and ptx text take the task's parts."""
    from rlhf_gym.agents.evaluation import evaluate
    from rlhf_gym.agents.ptx import load_ptx_texts
    from rlhf_gym.runner.config import EnvConfig
    from rlhf_gym.runner.sft import task_demonstrations, world_demonstrations

    env = gym.make(toy.env_id, max_new_tokens=3)
    metrics = evaluate(env.unwrapped.engine.ref, env, prompts=["a", "b"], n=2)
    assert metrics["gold_reward"] == pytest.approx(np.mean([len(s["completion"]) for s in metrics["samples"]]))
    cfg = EnvConfig(task="sentiment")
    task = get_task("sentiment")
    assert (cfg.model, cfg.prompts, cfg.eval_prompts) == (task.model, task.train_prompts, task.eval_prompts)
    assert EnvConfig(task="sentiment", prompts="p.txt").prompts == "p.txt"  # a given field beats the task's
    with pytest.raises(ConfigError, match="unknown task 'sentimnet'; did you mean 'sentiment'"):
        EnvConfig(task="sentimnet")  # a typo is an error, never a silent fall-back to another task
    assert world_demonstrations(3) == task_demonstrations(3, "sentiment")
    assert [(d.prompt, d.completion) for d in task_demonstrations(3)] == task.make_demonstrations(3)
    with pytest.raises(ConfigError, match="has no demonstrations"):
        task_demonstrations(3, toy)
    assert load_ptx_texts("task") == load_ptx_texts("embedded") == task.make_pretraining_text(2000)
    with pytest.raises(ConfigError, match="has no pretraining text"):
        load_ptx_texts("task", toy)
    env.close()


@pytest.mark.parametrize("argv", [
    ["sft", "--from-task", "2", "--task", "nope", "--out", "{tmp}/out"],
    ["reward", "simulate", "--task", "nope", "--out", "{tmp}/prefs.jsonl"],
    ["reward", "train", "--task", "nope", "--prefs", "{tmp}/prefs.jsonl", "--out", "{tmp}/rm"],
    ["demo", "--task", "nope", "--out", "{tmp}/demo"],
])
def test_cli_task_flag_unknown_is_an_error(argv, tmp_path, capsys):
    from rlhf_gym.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def doc_blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_docs_worked_example_runs(tmp_path, monkeypatch):
    """docs/tasks.md's example, as written: one module, one YAML preset, then the usage block."""
    import shutil
    import sys

    module, usage = doc_blocks("python")
    (preset,) = doc_blocks("yaml")
    assert module.startswith("# my_tasks.py\n") and preset.startswith("# envs/brevity.yaml\n")
    (tmp_path / "my_tasks.py").write_text(module, encoding="utf-8")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "brevity.yaml").write_text(preset, encoding="utf-8")
    shutil.copytree(ROOT / "agents", tmp_path / "agents")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        exec(compile(usage, "docs/tasks.md", "exec"), {"__name__": "docs_example"})
        task = get_task("brevity")
        assert task.env_id == "rlhf_gym/Brevity-v0" and task.metrics == ("gold_reward", "kl", "mean_length")
        assert get_task("my_tasks:brevity") is task
        assert gym.spec(task.env_id).kwargs == {"task": "my_tasks:brevity", "max_new_tokens": task.max_new_tokens}
    finally:
        if "brevity" in {t.name for t in list_tasks()}:
            _unregister_task("brevity")
        sys.modules.pop("my_tasks", None)


def test_module_task_name_imports_the_module_or_says_why():
    with pytest.raises(ConfigError, match=r"task no_such_module_xyz:toy: cannot import module 'no_such_module_xyz'"):
        get_task("no_such_module_xyz:toy")


def test_imdb_is_a_hub_task_run_here_on_local_stand_ins(tiny_lm_dir, prompts):
    from rlhf_gym.runner.config import EnvConfig, load_run_config

    task = get_task("imdb")
    assert task.env_id == "rlhf_gym/Imdb-v0" and task.model == "gpt2" and task.demonstrations is None
    env = gym.make(task.env_id, model=tiny_lm_dir, prompts=prompts, max_new_tokens=2)  # nothing downloaded
    assert env.unwrapped.engine.task is task
    env.reset(seed=0)
    assert EnvConfig(task="imdb").model == "gpt2"
    cfg = load_run_config(ROOT / "envs" / "imdb.yaml", ROOT / "agents" / "ppo.yaml")
    assert cfg.env.task_spec() is task and cfg.env.reward.startswith("classifier:")
    env.close()


def test_a_task_from_outside_the_package_reaches_spawned_workers(tmp_path):
    """docs/tasks.md: make_async("my_tasks:rlhf_gym/Brevity-v0") in a fresh interpreter, spawn workers."""
    import os
    import subprocess
    import sys

    (tmp_path / "my_tasks.py").write_text(doc_blocks("python")[0], encoding="utf-8")
    script = (
        "import numpy as np\n"
        "from rlhf_gym.envs import make_async\n"
        "if __name__ == '__main__':\n"
        "    envs = make_async('my_tasks:rlhf_gym/Brevity-v0', 2, max_new_tokens=1)\n"
        "    envs.reset_async(seed=[1, 2]); envs.reset_wait(timeout=60)\n"
        "    envs.step_async(np.array([5, 6])); _, r, term, _, info = envs.step_wait(timeout=60)\n"
        "    assert term.all(), term\n"
        "    print('OK', [float(x) for x in info['rm_score']])\n"
        "    envs.close()\n"
    )
    (tmp_path / "run.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    out = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OK" in out.stdout
