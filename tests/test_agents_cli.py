"""Every registered algorithm from the command line, as a user runs it: ``rlhf-gym train --agent agents/<algo>.yaml``
trains, evaluates and checkpoints; the checkpoint loads with the Python API under the same name; and a run
stopped half-way and resumed writes the same metrics as one that was never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_gym.agents import ALGORITHMS, algorithm_class
from rlhf_gym.cli import main
from rlhf_gym.runner import checkpoint as ckpt

PRESETS = Path(__file__).resolve().parent.parent / "agents"
NATIVE = [name for name, spec in ALGORITHMS.items() if spec.kind == "native"]
ENV = ("task: sentiment\nmodel: {tiny}\nprompts: {w}/p.txt\neval_prompts: {w}/p.txt\nreward: gold\nmax_new_tokens: 4\n"
       "num_envs: 4\n")
PROMPTS = "the movie was\nthe food\ni loved this\nthis hotel was dirty and\n"
#: What makes each preset tiny (the run section is the same for all).
TINY = {"bon": ["agent.batch_size=2", "agent.n=2", "agent.kl_pool=4"],
        "dpo": ["agent.simulated_pairs=12", "agent.batch_size=4", "agent.minibatch_size=4"],
        "ipo": ["agent.simulated_pairs=12", "agent.batch_size=4", "agent.minibatch_size=4"]}
RUN = ["run.eval_episodes=2", "run.torch_threads=1", "run.eval_every=1", "run.checkpoint_every=1"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_lm_dir):
    w = tmp_path_factory.mktemp("algos-cli")
    (w / "env.yaml").write_text(ENV.format(tiny=tiny_lm_dir, w=w))
    (w / "p.txt").write_text(PROMPTS)
    return w


def train(w: Path, algo: str, out: Path, tokens: int, resume: bool = False) -> int:
    sets = [*TINY.get(algo, ["agent.batch_size=4", "agent.minibatch_size=4"]), *RUN, f"run.total_timesteps={tokens}"]
    args = ["train", "--out", str(out), "--no-progress", "--wandb", "disabled"]
    args += ["--resume"] if resume else ["--env", str(w / "env.yaml"), "--agent", str(PRESETS / f"{algo}.yaml")]
    for s in sets if not resume else [f"run.total_timesteps={tokens}"]:
        args += ["--set", s]
    return main(args)


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo", NATIVE)
def test_each_preset_trains_loads_in_python_and_resumes_exactly(algo, work, tmp_path):
    straight, halted = tmp_path / "straight", tmp_path / "halted"
    assert train(work, algo, straight, 80) == 0
    result = json.loads((straight / "result.json").read_text())
    assert result["steps"] >= 80 and result["updates"] >= 3 and {"gold_reward", "kl"} <= set(result["eval"])

    agent = algorithm_class(algo).load(ckpt.latest_checkpoint(straight) / "agent")  # the name gives the class
    assert agent.num_timesteps == result["steps"] and agent.algorithm == algorithm_class(algo).algorithm

    assert train(work, algo, halted, 8) == 0
    assert len(rows(halted)) == 2  # step 0 and one update
    assert train(work, algo, halted, 80, resume=True) == 0
    assert rows(halted) == rows(straight)
