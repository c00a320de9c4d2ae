"""Registered ids in fresh processes and in ``AsyncVectorEnv`` workers (docs/vectorization.md).

Everything that starts processes runs in a child interpreter under ``subprocess.run(timeout=...)``, so a
regression to the old fork hang fails here instead of hanging the suite; inside, every async reset and step
has its own timeout too. ``check_env`` over every registered id is in tests/test_env.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Shared by the child scripts: the same seeds and actions through a vector env, observations and rewards out.
ROLLOUT = """
import json, numpy as np, gymnasium as gym
KW = dict(max_new_tokens=3)
def rollout(envs, steps=4):
    async_ = isinstance(envs, gym.vector.AsyncVectorEnv)
    if async_:
        envs.reset_async(seed=[3, 4]); obs, _ = envs.reset_wait(timeout=60)
    else:
        obs, _ = envs.reset(seed=[3, 4])
    out, rewards = [obs["input_ids"].tolist()], []
    for t in range(steps):
        actions = np.array([11 + t, 200 + t])
        if async_:
            envs.step_async(actions); obs, r, *_ = envs.step_wait(timeout=60)
        else:
            obs, r, *_ = envs.step(actions)
        out.append(obs["input_ids"].tolist()); rewards.append(r.tolist())
    envs.close()
    return out, rewards
def sync():
    return rollout(gym.vector.SyncVectorEnv([lambda: gym.make("rlhf_gym:rlhf_gym/Sentiment-v0", **KW)] * 2))
"""


def run_child(script: str, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, "-c", ROLLOUT + script], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child timed out after {timeout} s (hang?); stderr:\n{(e.stderr or b'')[-3000:]!r}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same_rollout(a, b):
    (obs_a, rew_a), (obs_b, rew_b) = a, b
    assert obs_a == obs_b
    # One torch thread in a worker may round the reference log-probs differently in the last place.
    np.testing.assert_allclose(rew_a, rew_b, rtol=1e-4, atol=1e-5)


FORK_HAZARD = sys.platform == "linux" and "OpenMP" in torch.__config__.parallel_info()


@pytest.fixture(scope="module")
def child() -> dict:
    """One ``python -c`` that does not import rlhf_gym (one interpreter start instead of two): first the ids
    in that fresh process and spawn workers, then, once torch has run there, fork-started workers."""
    return run_child(f"""
import sys
assert "rlhf_gym" not in sys.modules
try:
    gym.make("rlhf_gym/Sentiment-v0")
    plain = "made"
except gym.error.NamespaceNotFound:
    plain = "NamespaceNotFound"
env = gym.make("rlhf_gym:rlhf_gym/Sentiment-v0", **KW)
obs, _ = env.reset(seed=0)
out = dict(plain=plain, single=type(env.unwrapped).__name__)
from rlhf_gym.envs import make_async
envs = make_async(num_envs=2, **KW)
out.update(ctx=envs.context, spawn=rollout(envs), sync=sync())
if {FORK_HAZARD}:
    import multiprocessing as mp, torch
    torch.set_num_threads(2)
    a = torch.randn(256, 256); (a @ a).sum()
    def matmul(): torch.randn(256, 256) @ torch.randn(256, 256)
    p = mp.get_context("fork").Process(target=matmul); p.start(); p.join(2)
    out.update(raw_fork_hangs=p.is_alive()); p.kill(); p.join()
    out.update(fork_make_vec=rollout(gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=2, vectorization_mode="async",
                                                  vector_kwargs=dict(context="fork"), **KW)))
    out.update(fork_by_hand=rollout(gym.vector.AsyncVectorEnv(
        [lambda: gym.make("rlhf_gym/Sentiment-v0", **KW)] * 2, context="fork")))
print(json.dumps(out))
""", timeout=180)


def test_fresh_process_knows_only_the_module_form(child):
    """Gymnasium 1.x loads no entry-point plugins: in a process that has not imported rlhf_gym the plain
    id is unknown, and ``"rlhf_gym:rlhf_gym/Sentiment-v0"`` (Gymnasium imports the module) works."""
    assert child["plain"] == "NamespaceNotFound"
    assert child["single"] == "TextGenEnv"


def test_spawn_workers_match_sync(child):
    """``make_async`` starts spawn workers that the caller's ``__main__`` did not prepare, and they step
    exactly as ``SyncVectorEnv`` does for the same seeds and actions."""
    assert child["ctx"] == "spawn"
    assert_same_rollout(child["spawn"], child["sync"])


@pytest.mark.skipif(not FORK_HAZARD, reason="the fork hazard is OpenMP's thread pool on Linux")
def test_fork_after_torch_ran_matches_sync(child):
    """After the parent ran a parallel torch op a raw forked child that runs one hangs (so the hazard is
    real here), while fork-started async envs, by make_vec and by hand with the plain id, match sync."""
    assert child["raw_fork_hangs"], "a forked child did not hang: this test no longer shows the hazard"
    assert_same_rollout(child["fork_make_vec"], child["sync"])
    assert_same_rollout(child["fork_by_hand"], child["sync"])


def test_fork_safe_torch_only_acts_in_a_forked_process():
    from rlhf_gym.envs import registration

    assert registration.fork_safe_torch() is False  # the importing process keeps its threads
    assert registration.make_text_env.metadata is registration.TextGenEnv.metadata


def test_importing_the_package_registers_ids_without_loading_models_and_forks_stay_safe() -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, sys
        import gymnasium as gym
        import rlhf_gym
        assert "rlhf_gym/Sentiment-v0" in gym.registry, "ids are registered on import"
        assert "transformers" not in sys.modules and "rlhf_gym.envs" not in sys.modules, "nothing heavy yet"
        import torch
        torch.set_num_threads(2)
        pid = os.fork()
        if pid == 0:  # a forked child that imports the env module only now is still made safe
            from rlhf_gym.envs import fork_safe_torch
            os._exit(0 if fork_safe_torch() and torch.get_num_threads() == 1 else 1)
        _, status = os.waitpid(pid, 0)
        from rlhf_gym.envs import fork_safe_torch
        assert os.waitstatus_to_exitcode(status) == 0 and not fork_safe_torch()  # the importing process is left alone
        print(rlhf_gym.envs.make_async.__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "make_async"
