"""Run checkpoints: ``DIR/checkpoints/step-NNNNNNNNN/``, written atomically, the newest K kept.

A checkpoint directory holds

* ``agent/`` — the agent's own checkpoint (``agent.save``): the policy as an HF safetensors directory, the
  value head, the optimizer's tensors as safetensors and its hyperparameters as JSON, the KL controller,
  counters, and the agent's sampling, shuffling and environment RNG states;
* ``rng.safetensors`` — the process-wide torch RNG state (``torch.get_rng_state()``, CUDA too if present);
* ``runner.json`` — what the runner itself needs to continue: the step, the number of updates, the Python
  and NumPy global RNG states, the evaluation and checkpoint schedule, the wall time so far.

It is first written to a hidden temporary folder beside it and renamed into place (``rlhf_gym.io.atomic_dir``), so a
process killed at any moment leaves either the previous checkpoints or the new one, never a torn one;
leftover temp directories are removed by the next save. ``runner.json`` is written last and marks a
complete checkpoint.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from rlhf_gym.core.jsonio import read_json
from rlhf_gym.errors import ModelError
from rlhf_gym.io import atomic_dir, expect, read_tensors, reading
from rlhf_gym.runner.tracking import jsonable

CHECKPOINTS, RUNNER_FILE, RNG_FILE = "checkpoints", "runner.json", "rng.safetensors"
_STEP_NAME = re.compile(r"step-(\d+)")
#: What ``runner.json`` holds (see :func:`rlhf_gym.io.expect`).
RUNNER_SPEC = {"step": "int", "updates": "~int", "wall_time": "~number", "initial_eval": "~dict?", "rng": "dict"}


def capture_rng() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Python, NumPy and torch global RNG states as ``(JSON-able dict, tensors)``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    return state, tensors


def restore_rng(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = []
    for p in root.iterdir():
        if not p.name.startswith("step-") or not (p / RUNNER_FILE).is_file():
            continue  # hidden temp folders of a write killed midway, unrelated files
        if not _STEP_NAME.fullmatch(p.name):
            raise ModelError(f"{p} is not a checkpoint name (expected step-NNNNNNNNN); move it out of {root}")
        done.append(p)
    return sorted(done, key=lambda p: int(p.name.removeprefix("step-")))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, save_agent: Callable[[Path], Any], state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Writes ``checkpoints/step-{step}`` atomically and deletes all but the ``keep`` newest.

    ``save_agent(path)`` writes the agent's checkpoint into ``path``; ``state`` goes into ``runner.json``
    together with the global RNG states captured now.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*"):  # leftovers of a write killed midway
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:09d}"
    with atomic_dir(final) as tmp:  # the same step saved twice (a final save after a periodic one) replaces it
        save_agent(tmp / "agent")
        rng_state, rng_tensors = capture_rng()
        save_file(rng_tensors, tmp / RNG_FILE)
        (tmp / RUNNER_FILE).write_text(json.dumps(jsonable({"step": step, **state, "rng": rng_state}),
                                                  indent=1))
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, restore_global_rng: bool = True) -> dict[str, Any]:
    """Reads ``runner.json`` of a checkpoint (and restores the global RNG states); returns it.

    A missing, truncated or edited ``runner.json`` or ``rng.safetensors`` is a ModelError naming the file.
    """
    path = Path(path)
    if not (path / RUNNER_FILE).is_file():
        raise ModelError(f"{path} is not a complete checkpoint (no {RUNNER_FILE})")
    where = f"checkpoint state {path / RUNNER_FILE}"
    state = expect(read_json(path / RUNNER_FILE, "checkpoint state", ModelError), RUNNER_SPEC, where)
    name = _STEP_NAME.fullmatch(path.name)
    if state["step"] < 0 or state.get("updates", 0) < 0 or (name and int(name.group(1)) != state["step"]):
        raise ModelError(f"{where}: step {state['step']} (updates {state.get('updates')}) does not fit checkpoint "
                         f"{path.name}")
    rng = expect(state["rng"], {"python": "list", "numpy": "list"}, f"{where}: rng")
    if restore_global_rng:
        tensors = read_tensors(path / RNG_FILE, "checkpoint RNG state")
        with reading(path, "the RNG state of checkpoint"):
            restore_rng(rng, tensors)
    return state
