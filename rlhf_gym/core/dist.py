"""Process-group helpers for data-parallel runs (``torchrun``); each is a no-op in a single process.

The agents, the runner and the CLI all ask the same questions — how many ranks, am I rank 0, wait for the
others — so the answers live on the ground floor rather than in any one of them.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum", "barrier", "init_from_env", "is_main_process", "rank", "world_size"]


def world_size() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True on rank 0, and in a plain single-process run: the process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    """Waits for every rank (nothing to wait for in a single process)."""
    if world_size() > 1:
        dist.barrier()


def init_from_env(backend: str | None = None) -> bool:
    """Joins the process group described by ``torchrun``'s environment variables; True if distributed.

    Does nothing (and returns False) when ``WORLD_SIZE`` is unset or 1. The backend defaults to NCCL when
    CUDA is available (each process then uses ``cuda:LOCAL_RANK``) and gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def _comm_device() -> torch.device:
    """Where small tensors for collectives live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()
