"""Data-parallel training on CPU: 2 processes, gloo backend, spawned with torch.multiprocessing.

Each worker writes what it saw to a file; the assertions run in the test process.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlhf_gym.runner.tracking import read_jsonl

WORLD = 2
PROMPTS = ["the movie was", "the food", "i loved this", "this hotel was dirty and", "a", "the staff", "it was",
           "a fine", "the service"]


def vowel_reward(prompts, completions):
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


def _flat(agent) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in agent.policy.state_dict().values()])


def _agent_worker(rank: int, init_file: str, lm_dir: str, out_dir: str) -> None:
    from rlhf_gym.agents import PPO
    from rlhf_gym.agents.distributed import with_data_parallel
    from rlhf_gym.envs import TextGenVecEnv

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        env = TextGenVecEnv(num_envs=4, model=lm_dir, prompts=PROMPTS, reward=vowel_reward, max_new_tokens=4, beta=0.05)
        agent_cls = with_data_parallel(PPO)  # with PPO-ptx: two backward passes per step, one reduction
        local_steps: list[int] = []
        agent = agent_cls(env, seed=0, learning_rate=3e-3, minibatch_size=2, n_epochs=2, adaptive_kl_target=0.5,
                          adaptive_kl_horizon=100, ptx_coef=0.5, ptx_data=f"{out_dir}/ptx.txt", ptx_batch_size=2,
                          logger=lambda m: local_steps.append(int(m["step"])))  # the logger sees rank-local counts
        initial = _flat(agent)
        agent.learn(40)
        torch.save({"initial": initial, "final": _flat(agent), "history_steps": [m["step"] for m in agent.history],
                    "local_steps": local_steps, "num_timesteps": agent.num_timesteps, "rollouts": agent.num_rollouts,
                    "beta": agent.kl_controller.beta, "texts": agent.last_rollout_texts,
                    "kl": [m["objective/kl"] for m in agent.history]}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_data_parallel_ranks_sample_their_own_rollouts_and_stay_identical(tmp_path, tiny_lm_dir):
    (tmp_path / "ptx.txt").write_text("\n".join(PROMPTS) + "\n")
    mp.spawn(_agent_worker, args=(str(tmp_path / "rdzv"), tiny_lm_dir, str(tmp_path)), nprocs=WORLD)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))

    assert torch.equal(r0["final"], r1["final"])  # every replica took the same steps
    assert not torch.equal(r0["final"], r0["initial"])  # ... and they did move
    assert torch.equal(r0["initial"], r1["initial"])
    assert r0["texts"] != r1["texts"]  # each rank sampled its own episodes
    assert r0["beta"] == r1["beta"] and r0["beta"] != 0.05  # one adaptive β, fed by both ranks' KL
    assert r0["rollouts"] == r1["rollouts"] >= 2  # the ranks stopped after the same rollout
    assert r0["history_steps"] == r1["history_steps"] and r0["num_timesteps"] == r1["num_timesteps"]
    assert r0["kl"] == r1["kl"]  # metrics are averaged over ranks
    previous = [0] + r0["history_steps"][:-1]
    for i, before in enumerate(previous):  # a global step counts the tokens of both ranks
        assert r0["history_steps"][i] - before == sum(r["local_steps"][i] - before for r in (r0, r1))
    assert r0["num_timesteps"] >= 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_worker(rank: int, port: int, args: list[str], out_dir: str) -> None:
    from rlhf_gym.cli import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), WANDB_MODE="disabled")
    code = main(args)
    with open(f"{out_dir}/exit{rank}", "w") as f:
        f.write(str(code))


def test_train_command_on_two_ranks_writes_the_run_directory_once(tmp_path, tiny_lm_dir):
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    env = tmp_path / "env.yaml"
    env.write_text(f"task: sentiment\nmodel: {tiny_lm_dir}\nprompts: {tmp_path / 'prompts.txt'}\n"
                   f"eval_prompts: {tmp_path / 'prompts.txt'}\nreward: gold\nmax_new_tokens: 6\nnum_envs: 4\n")
    agent = tmp_path / "agent.yaml"
    agent.write_text("algo: ppo\nlearning_rate: 1.0e-3\nbatch_size: 4\nminibatch_size: 2\nn_epochs: 2\n"
                     "run:\n  total_timesteps: 80\n  eval_every: 0\n  eval_episodes: 4\n  torch_threads: 1\n"
                     "  checkpoint_every: 1\n  keep_checkpoints: 5\n")
    out = tmp_path / "run"
    args = ["train", "--env", str(env), "--agent", str(agent), "--out", str(out), "--no-progress"]
    mp.spawn(_cli_worker, args=(_free_port(), args, str(tmp_path)), nprocs=WORLD)

    assert [(tmp_path / f"exit{r}").read_text() for r in range(WORLD)] == ["0", "0"]
    rows = read_jsonl(out / "metrics.jsonl")
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] >= 80  # one writer, one row per update
    updates = rows[1:]
    assert len(list((out / "checkpoints").iterdir())) == len(updates)
    # Two ranks of 4 episodes each: an update spans up to 2 × 4 × 6 tokens, more than one rank can make.
    assert max(b["step"] - a["step"] for a, b in zip(rows, rows[1:])) > 4 * 6
    assert (out / "result.json").is_file()
