"""Data-parallel training through ``torch.distributed``: every rank samples its own rollouts, one shared policy.

Launch one process per device with ``torchrun`` (or ``accelerate launch``), which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`init_from_env` then joins the process group
(NCCL on GPUs, gloo on CPU). ``with_data_parallel(PPO)`` is PPO made data-parallel:

* **rollouts** — each rank samples its own batch of ``batch_size`` episodes: rank 0 keeps the agent's seeds,
  rank ``r`` derives its sampling, shuffling and prompt streams from ``(seed, r)``, so the global batch is
  ``world_size × batch_size`` distinct episodes;
* **gradients** — after every backward pass of a step and before clipping (the agents'
  :meth:`~rlhf_gym.agents.core.OnPolicyAgent.reduce_gradients` hook), gradients are averaged over ranks with
  ``torch.distributed.all_reduce``. Parameters are broadcast from rank 0 at construction, so with identical
  gradients every rank takes the identical Adam step and the replicas never drift (tested);
* **everything global stays global** — the KL controller adapts β to the KL of all ranks' episodes; the
  metrics callbacks see are averaged over ranks (``time/tokens_per_second`` summed), ``step`` and
  ``num_timesteps`` count the tokens of all ranks, and all ranks stop after the same rollout, when the
  global token budget is spent or any rank's callback says stop.

Why an all-reduce in the hook rather than wrapping the policy in ``DistributedDataParallel``: DDP reduces the
gradients of one backward pass that follows a forward through its wrapper, but a step here may take several
backward passes (PPO-ptx adds its pretraining loss before the step) and the policy is also called directly
(sampling, ``predict``), so the explicit reduction is what keeps every algorithm exact. It gives up DDP's
overlap of communication with the backward pass; the asynchronous per-tensor all-reduces are issued
together and waited on once.

Not supported: PPO's ``target_kl`` early stop (each rank would decide on its own minibatches and the ranks
would take different numbers of steps; it raises a ConfigError) and FSDP — sharding the policy, the reference
and the value head with ``torch.distributed.fsdp.fully_shard`` is the route for models that do not fit on one
device, and is future work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from rlhf_gym.agents.rollout import run_callbacks
from rlhf_gym.core.dist import all_reduce_sum, is_main_process, rank, world_size
from rlhf_gym.core.kl import KLController
from rlhf_gym.errors import ConfigError

_CACHE: dict[type, type] = {}
_COUNTERS = ("step", "rollout", "episodes")


def _rank_seed(seed: int, rank_: int, *stream: int) -> int:
    """A 63-bit seed for one random stream of one rank, independent across ranks and streams."""
    return int(np.random.SeedSequence([seed, rank_, *stream]).generate_state(1, np.uint64)[0] >> 1)


class GlobalKLController:
    """Wraps a KL controller so that it adapts β to the mean KL of every rank's episodes (β stays equal)."""

    def __init__(self, inner: KLController):
        self.inner = inner

    @property
    def beta(self) -> float:
        return self.inner.beta

    @beta.setter
    def beta(self, value: float) -> None:
        self.inner.beta = value

    def update(self, kl: float, n_steps: int) -> float:
        """All ranks' ``n_steps``-weighted mean KL and total episodes go to the wrapped controller."""
        weighted, episodes = all_reduce_sum([kl * n_steps, float(n_steps)])
        return self.inner.update(weighted / max(episodes, 1.0), int(episodes))

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


class _GlobalProgress:
    """The callback a data-parallel ``learn`` runs: global counters and metrics, then one stop decision."""

    def __init__(self, agent: Any, total_timesteps: int, callbacks: list):
        self.agent, self.total, self.callbacks = agent, total_timesteps, callbacks
        self.timesteps, self.episodes, self.done = agent.num_timesteps, agent.num_episodes, 0

    def __call__(self, metrics: dict) -> bool:
        a = self.agent
        keys = sorted(k for k, v in metrics.items() if k not in _COUNTERS and isinstance(v, int | float))
        local = [float(a.num_timesteps - self.timesteps), float(a.num_episodes - self.episodes)]
        sums = all_reduce_sum(local + [float(metrics[k]) for k in keys])
        tokens, episodes, values = int(sums[0]), int(sums[1]), sums[2:]
        self.timesteps = a.num_timesteps = self.timesteps + tokens
        self.episodes = a.num_episodes = self.episodes + episodes
        self.done += tokens
        n = world_size()
        metrics.update({k: v if k == "time/tokens_per_second" else v / n for k, v in zip(keys, values)})
        metrics.update(step=a.num_timesteps, episodes=a.num_episodes)
        keep_going = run_callbacks(self.callbacks, metrics) and self.done < self.total
        return all_reduce_sum([0.0 if keep_going else 1.0])[0] == 0.0


class DataParallelMixin:
    """Makes an :class:`~rlhf_gym.agents.core.OnPolicyAgent` data-parallel (see the module docstring).

    In a single process (torch.distributed not initialised, or one rank) it changes nothing.
    """

    def _setup(self) -> None:
        if world_size() > 1:
            if getattr(self.config, "target_kl", None) is not None:
                raise ConfigError("target_kl is not supported in data-parallel training (each rank would stop "
                                  "its epochs on its own minibatches); set it to null")
            for tensor in self.policy.state_dict().values():  # one starting point for every replica
                dist.broadcast(tensor, src=0)
            self._seed_rank_streams()
            self.kl_controller = GlobalKLController(self.kl_controller)
        super()._setup()

    def _seed_rank_streams(self, epoch: int = 0) -> None:
        """Gives rank ``r > 0`` its own sampling, minibatch and prompt streams (rank 0 keeps the agent's)."""
        r, seed = rank(), self.config.seed
        if r == 0 or seed is None:  # without a seed every process already drew its own
            return
        self._sample_gen.manual_seed(_rank_seed(seed, r, epoch, 0))
        self._shuffle_gen.manual_seed(_rank_seed(seed, r, epoch, 1))
        if self.env is not None:
            self.env.unwrapped.np_random = np.random.default_rng(_rank_seed(seed, r, epoch, 2))

    def _load_extra_state(self, path, meta: dict) -> None:
        # Every rank restored rank 0's checkpoint, RNG states included: re-derive the other ranks' streams
        # (from the rollouts done, so they do not replay the ones before the checkpoint). Rank 0 resumes
        # exactly; other ranks resume with fresh but deterministic streams.
        super()._load_extra_state(path, meta)
        if world_size() > 1:
            self._seed_rank_streams(epoch=self.num_rollouts)

    def reduce_gradients(self) -> None:
        super().reduce_gradients()
        n = world_size()
        if n == 1:
            return
        grads = []
        for p in self.params:
            if p.grad is None:  # a parameter this step did not reach: every rank must send the same tensors
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        for work in [dist.all_reduce(g, async_op=True) for g in grads]:  # issued together, waited on once
            work.wait()
        for g in grads:
            g.div_(n)

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = False) -> Any:
        """As the agent's ``learn``, with ``total_timesteps`` counting every rank's tokens (see the module doc)."""
        if world_size() == 1:
            return super().learn(total_timesteps, callback=callback, progress_bar=progress_bar)
        callbacks = callback if isinstance(callback, list | tuple) else ([] if callback is None else [callback])
        sync = _GlobalProgress(self, total_timesteps, list(callbacks))
        return super().learn(total_timesteps, callback=sync, progress_bar=progress_bar and is_main_process())


def with_data_parallel(agent_cls: type) -> type:
    """A subclass of ``agent_cls`` that trains data-parallel across the ranks of the default process group."""
    if agent_cls not in _CACHE:
        _CACHE[agent_cls] = type(agent_cls.__name__, (DataParallelMixin, agent_cls), {
            "__doc__": f"{agent_cls.__doc__}\n\nData-parallel (see :mod:`rlhf_gym.agents.distributed`).",
            "__module__": agent_cls.__module__,
        })
    return _CACHE[agent_cls]
