"""Agent checkpoints: safetensors for tensors, JSON for everything else, written atomically; no pickles.

A checkpoint directory holds ``policy/`` (a plain HF model directory: safetensors, config, tokenizer), the
separate critic trunk ``value_model/`` if any, ``agent.safetensors`` (the value head),
``optimizer.safetensors`` (the optimizer's tensors) and ``agent.json`` (config, KL controller, counters,
sampling/shuffling/env RNG states, optimizer hyperparameters). :class:`Checkpointing` gives
:class:`~rlhf_gym.agents.core.OnPolicyAgent` its ``save``/``load``; an algorithm with more state overrides
the ``_extra_state``/``_load_extra_state`` hooks. Every file is read through the checked loaders of
:mod:`rlhf_gym.io`, so a torn or edited checkpoint is a ModelError naming the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import save_file

from rlhf_gym.core.jsonio import read_json
from rlhf_gym.core.models import load_causal_lm, quiet_transformers
from rlhf_gym.errors import ModelError, RLHFGymError
from rlhf_gym.io import atomic_dir, expect, read_tensors, reading


class Checkpointing:
    """``save``/``load`` of an on-policy agent (mixed into :class:`~rlhf_gym.agents.core.OnPolicyAgent`)."""

    def save(self, path: str | Path) -> Path:
        """Writes a checkpoint directory atomically (temp dir + rename); returns its path.

        ``policy/`` is a plain HF model directory (safetensors + config + tokenizer), ``value_model/`` the
        separate critic trunk if any, ``agent.safetensors`` the value head, ``optimizer.safetensors`` the
        optimizer's tensors, ``agent.json`` the config, KL-controller state, counters and RNG states.
        """
        path = Path(path)
        with atomic_dir(path) as tmp:
            with quiet_transformers():
                self.policy.lm.save_pretrained(tmp / "policy")
                if self.env is not None:
                    self.env.unwrapped.engine.tok.save_pretrained(tmp / "policy")
                if self.policy.value_model is not None:
                    self.policy.value_model.save_pretrained(tmp / "value_model")
            head = self.policy.value_head.state_dict() if self.policy.value_head is not None else {}
            save_file({f"value_head.{k}": v.detach().contiguous() for k, v in head.items()}, tmp / "agent.safetensors")
            opt = self.optimizer.state_dict()
            save_file({f"{i}.{k}": v.contiguous() for i, s in opt["state"].items() for k, v in s.items()
                       if torch.is_tensor(v)}, tmp / "optimizer.safetensors")
            meta = {
                "algorithm": self.algorithm,
                "config": self._saved_config(),
                "kl_controller": self.kl_controller.state_dict(),
                "counters": {"num_timesteps": self.num_timesteps, "num_rollouts": self.num_rollouts,
                             "num_episodes": self.num_episodes},
                "rng": {"sample": rng_state_to_text(self._sample_gen.get_state()), "shuffle": rng_state_to_text(self._shuffle_gen.get_state()),
                        "env": self.env.unwrapped.np_random.bit_generator.state if self.env is not None else None},
                "optimizer_param_groups": [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
                                           for g in opt["param_groups"]],
                "env": self._env_spec,
                **self._ptx_state(),
                **self._extra_state(tmp),
            }
            (tmp / "agent.json").write_text(json.dumps(meta, indent=2))
        return path

    #: The shape of ``agent.json`` (see :func:`rlhf_gym.io.expect`), checked before anything is restored.
    META_SPEC: ClassVar[dict[str, str]] = {
        "algorithm": "str", "config": "dict", "kl_controller": "dict", "counters": "dict", "rng": "dict",
        "optimizer_param_groups": "list", "env": "dict?"}

    def _saved_config(self) -> dict[str, Any]:
        """The hyperparameters written to ``agent.json["config"]``."""
        return asdict(self.config)

    @classmethod
    def _config_from_meta(cls, meta: dict[str, Any], path: Path) -> dict[str, Any]:
        """Inverse of :meth:`_saved_config`: the hyperparameters this class is rebuilt with.

        Checkpoints written before PPO-ptx moved into every agent's config kept the ptx fields apart, under
        ``agent.json["ptx"]``; they are merged back here."""
        ptx = meta.get("ptx") or {}
        if not isinstance(ptx, dict) or not set(ptx) <= {"ptx_coef", "ptx_data", "ptx_batch_size", "ptx_max_length"}:
            raise ModelError(f"agent checkpoint {path / 'agent.json'}: 'ptx' must be an object with keys "
                             "ptx_coef, ptx_data, ptx_batch_size, ptx_max_length")
        return {**meta["config"], **ptx}

    @classmethod
    def read_meta(cls, path: str | Path) -> dict[str, Any]:
        """``agent.json`` of a checkpoint directory, checked for shape; a ModelError naming the file otherwise."""
        path = Path(path)
        if not (path / "agent.json").is_file():
            raise ModelError(f"{path} is not an agent checkpoint (no agent.json)")
        where = f"agent checkpoint {path / 'agent.json'}"
        meta = expect(read_json(path / "agent.json", "agent checkpoint", ModelError), cls.META_SPEC, where)
        expect(meta["counters"], {"num_timesteps": "int", "num_rollouts": "int", "num_episodes": "int"},
               f"{where}: counters")
        expect(meta["rng"], {"sample": "str", "shuffle": "str", "env": "dict?"}, f"{where}: rng")
        expect(meta["kl_controller"], {"beta": "number"}, f"{where}: kl_controller")
        if meta["env"] is not None:
            expect(meta["env"], {"id": "str?", "kwargs": "~dict?"}, f"{where}: env")
        if not all(isinstance(g, dict) for g in meta["optimizer_param_groups"]):
            raise ModelError(f"{where}: 'optimizer_param_groups' must be a list of objects")
        return meta

    @classmethod
    def load(cls, path: str | Path, env: Any = None, *, logger: Callable[[dict], Any] | None = None,
             **overrides: Any) -> Any:
        """Rebuilds a saved agent; training continues exactly where it stopped (given the same env).

        ``env`` defaults to the env id the agent was built from, if any; without one the agent can only
        ``predict``. ``overrides`` replace saved hyperparameters (e.g. ``learning_rate``).
        """
        path = Path(path)
        meta = cls.read_meta(path)
        if meta["algorithm"] != cls.algorithm:
            raise ModelError(f"{path} holds a {meta['algorithm']} agent, not {cls.algorithm}")
        env_kwargs = None
        if env is None and meta.get("env") and meta["env"].get("id"):
            env, env_kwargs = meta["env"]["id"], meta["env"].get("kwargs") or {}
        config = {**cls._config_from_meta(meta, path), **overrides}
        # A LoRA policy is rebuilt on the env's reference and its adapter loaded in _load_state.
        policy = None
        if config.get("lora") is None:
            with reading(path / "policy", "the policy of agent checkpoint"):
                policy = load_causal_lm(path / "policy")
        try:
            agent = cls(env, policy=policy, logger=logger, env_kwargs=env_kwargs, **config)
        except RLHFGymError as e:
            raise type(e)(f"agent checkpoint {path}: {e}") from e
        with reading(path, "agent checkpoint"):  # shapes that do not fit the model, a torn optimizer state
            agent._load_state(path, meta)
        return agent

    def _load_state(self, path: Path, meta: dict) -> None:
        if self.config.lora is not None:
            from rlhf_gym.core.lora import load_adapter

            load_adapter(self.policy.lm, path / "policy")
        if self.policy.value_model is not None:
            self.policy.value_model.load_state_dict(load_causal_lm(path / "value_model").state_dict())
        head = read_tensors(path / "agent.safetensors", "value head", device=str(self.device))
        if self.policy.value_head is not None:
            self.policy.value_head.load_state_dict({k.removeprefix("value_head."): v for k, v in head.items()})
        elif head:
            raise ValueError(f"{path / 'agent.safetensors'} holds a value head but {self.algorithm} has no critic")
        state: dict[int, dict] = {}
        for key, v in read_tensors(path / "optimizer.safetensors", "optimizer state", device=str(self.device)).items():
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = v.cpu() if name == "step" else v
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["optimizer_param_groups"]]
        for g in groups:
            g["lr"] = self.config.learning_rate
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.kl_controller.load_state_dict(meta["kl_controller"])
        for k, v in meta["counters"].items():
            setattr(self, k, int(v))
        self._sample_gen.set_state(rng_state_from_text(meta["rng"]["sample"]))
        self._shuffle_gen.set_state(rng_state_from_text(meta["rng"]["shuffle"]))
        if self.env is not None and meta["rng"]["env"] is not None:
            rng_state = meta["rng"]["env"]
            bit_gen = getattr(np.random, rng_state["bit_generator"])()
            bit_gen.state = rng_state
            self.env.unwrapped.np_random = np.random.Generator(bit_gen)
        self._load_ptx_state(path, meta)
        self._load_extra_state(path, meta)

    def _extra_state(self, directory: Path) -> dict:
        """Algorithm hook: write extra files into ``directory``; return extra JSON fields."""
        return {}

    def _load_extra_state(self, path: Path, meta: dict) -> None:
        """Algorithm hook: restore what :meth:`_extra_state` wrote."""


def rng_state_to_text(state: torch.Tensor) -> str:
    """A torch generator state as base64 text, for the JSON part of a checkpoint."""
    return base64.b64encode(bytes(state.cpu().tolist())).decode()


def rng_state_from_text(text: str) -> torch.Tensor:
    """Inverse of :func:`rng_state_to_text`."""
    return torch.tensor(list(base64.b64decode(text)), dtype=torch.uint8)
