r"""PPO-ptx (InstructGPT, Ouyang et al. 2022): a language-modelling loss on pretraining text mixed into the update.

InstructGPT maximises ``E_RL[r − β·KL] + γ·E_{x∼D_pretrain}[log π(x)]`` to keep the policy's language
ability while it chases the reward. Here that is an extension of any native agent, in the runner, through
the agents' one documented extension point for gradient steps: :meth:`OnPolicyAgent.optimizer_step` is
called after the algorithm's loss has been back-propagated and before the step; :class:`PtxMixin` first
back-propagates ``ptx_coef · NLL(pretraining batch)`` into the same gradient, so every optimizer step the
algorithm takes (PPO: one per minibatch and epoch; A2C: one per rollout) carries the mixed objective, and
gradient clipping applies to the sum.

Agent config fields (added to every native algorithm's config by :func:`with_ptx`):

* ``ptx_coef`` — γ; 0 (the default) turns it off and the agent behaves exactly as without the mixin;
* ``ptx_data`` — the pretraining text: ``task`` or ``embedded`` (the env's task's pretraining text,
  :attr:`rlhf_gym.tasks.Task.pretraining_text`), a ``.txt``
  (one text per line) or ``.jsonl`` file (``text`` field), ``hf:NAME`` or a dataset directory;
* ``ptx_batch_size`` — texts per ptx batch; ``ptx_max_length`` — tokens kept per text.

The ptx batches are drawn with the agent's own seeded generator, saved in its checkpoints, so a resumed run
draws the same batches. The loss is logged as ``loss/ptx``.

Checkpoints keep the ptx fields apart from the algorithm's own (``agent.json["ptx"]``, beside ``"config"``),
so a checkpoint written by ``rlhf-gym train`` loads with the plain Python API too — ``PPO.load(DIR/checkpoints/
step-N/agent)`` — as the algorithm without the pretraining mix; the runner's class (:func:`with_ptx`) loads it
with the mix, as it trained.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from rlhf_gym.core.checks import check, is_int, is_number
from rlhf_gym.errors import DataError

_CACHE: dict[type, type] = {}
PTX_FIELDS = ("ptx_coef", "ptx_data", "ptx_batch_size", "ptx_max_length")


def ptx_config_class(base: type) -> type:
    """``base`` (an agent config dataclass) extended with the ptx fields."""

    @dataclasses.dataclass
    class Config(base):
        ptx_coef: float = dataclasses.field(default=0.0, metadata={
            "doc": "γ: weight of the pretraining LM loss mixed into every update (InstructGPT's PPO-ptx); 0 = off"})
        ptx_data: str = dataclasses.field(default="embedded", metadata={
            "doc": "pretraining text: 'embedded' or 'task' (the task's), a .txt/.jsonl file, 'hf:NAME' or a dataset dir"})
        ptx_batch_size: int = dataclasses.field(default=8, metadata={"doc": "texts per pretraining batch"})
        ptx_max_length: int = dataclasses.field(default=64, metadata={"doc": "tokens kept per pretraining text"})

        def validate(self) -> None:
            super().validate()
            check(is_number(self.ptx_coef) and self.ptx_coef >= 0, "ptx_coef", self.ptx_coef, "must be >= 0")
            check(is_int(self.ptx_batch_size) and self.ptx_batch_size >= 1, "ptx_batch_size", self.ptx_batch_size,
                  "must be an integer >= 1")
            check(is_int(self.ptx_max_length) and self.ptx_max_length >= 2, "ptx_max_length", self.ptx_max_length,
                  "must be an integer >= 2")

    Config.__name__ = Config.__qualname__ = base.__name__
    Config.__doc__ = base.__doc__
    Config.__module__ = base.__module__
    return Config


#: The ``ptx_data`` values that mean "the task's pretraining text" (``embedded`` is the historical name).
TASK_TEXT = ("task", "embedded")


def load_ptx_texts(source: str, task: Any = None) -> list[str]:
    """The pretraining texts named by ``ptx_data``: ``task``/``embedded`` are 2000 texts of ``task``'s
    :attr:`~rlhf_gym.tasks.Task.pretraining_text` (default task: sentiment), anything else a prompt source."""
    if source in TASK_TEXT:
        from rlhf_gym.tasks import DEFAULT_TASK, get_task

        return get_task(task if task is not None else DEFAULT_TASK).make_pretraining_text(2000)
    from rlhf_gym.core.data import load_prompts

    try:
        return load_prompts(source)
    except DataError as e:
        raise DataError(f"ptx_data: {e}") from e


class PtxMixin:
    """Mixes ``ptx_coef · NLL`` of pretraining text into every optimizer step (see the module docstring)."""

    def _setup(self) -> None:
        super()._setup()
        self._ptx_losses: list[float] = []
        self._ptx_gen = torch.Generator().manual_seed((self.config.seed or 0) + 2)
        self._ptx_ids = None
        if self.config.ptx_coef > 0:
            engine = self._require_env().unwrapped.engine
            tok = engine.tok
            texts = load_ptx_texts(self.config.ptx_data, getattr(engine, "task", None))
            eos = tok.eos_token or ""
            self._ptx_ids = [ids[: self.config.ptx_max_length]
                             for ids in tok([t + eos for t in texts], add_special_tokens=False)["input_ids"]
                             if len(ids) >= 2]
            if not self._ptx_ids:
                raise DataError(f"ptx_data {self.config.ptx_data!r} holds no text of 2 tokens or more")

    def ptx_loss(self) -> torch.Tensor:
        """Mean next-token NLL of one random batch of pretraining text under the policy."""
        idx = torch.randint(len(self._ptx_ids), (self.config.ptx_batch_size,), generator=self._ptx_gen)
        seqs = [self._ptx_ids[i] for i in idx.tolist()]
        width = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):  # right-padded; labels -100 on padding
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        labels = ids.masked_fill(mask == 0, -100)
        return self.policy.lm(input_ids=ids, attention_mask=mask, labels=labels).loss

    def optimizer_step(self) -> float:
        if self._ptx_ids is not None:
            loss = self.ptx_loss()
            (self.config.ptx_coef * loss).backward()
            self._ptx_losses.append(loss.item())
        return super().optimizer_step()

    def train(self, buffer) -> dict[str, float]:
        metrics = super().train(buffer)
        if self._ptx_losses:
            metrics["loss/ptx"] = sum(self._ptx_losses) / len(self._ptx_losses)
            self._ptx_losses.clear()
        return metrics

    def _saved_config(self) -> dict[str, Any]:
        return {k: v for k, v in super()._saved_config().items() if k not in PTX_FIELDS}

    @classmethod
    def _config_from_meta(cls, meta: dict[str, Any], path: Path) -> dict[str, Any]:
        from rlhf_gym.errors import ModelError

        ptx = meta.get("ptx") or {}
        if not isinstance(ptx, dict) or set(ptx) - set(PTX_FIELDS):
            raise ModelError(f"agent checkpoint {path / 'agent.json'}: 'ptx' must be an object with keys "
                             f"{', '.join(PTX_FIELDS)}")
        return {**super()._config_from_meta(meta, path), **ptx}

    def _extra_state(self, directory: Path) -> dict:
        from rlhf_gym.agents.saving import rng_state_to_text

        return {**super()._extra_state(directory), "ptx": {k: getattr(self.config, k) for k in PTX_FIELDS},
                "ptx_rng": rng_state_to_text(self._ptx_gen.get_state())}

    def _load_extra_state(self, path: Path, meta: dict) -> None:
        from rlhf_gym.agents.saving import rng_state_from_text

        super()._load_extra_state(path, meta)
        if "ptx_rng" in meta:
            if not isinstance(meta["ptx_rng"], str):
                raise TypeError("'ptx_rng' must be a string")
            self._ptx_gen.set_state(rng_state_from_text(meta["ptx_rng"]))


def with_ptx(agent_cls: type) -> type:
    """A subclass of ``agent_cls`` whose config has the ptx fields and whose updates mix in the LM loss."""
    if agent_cls not in _CACHE:
        _CACHE[agent_cls] = type(agent_cls.__name__, (PtxMixin, agent_cls), {
            "config_class": ptx_config_class(agent_cls.config_class),
            "__doc__": f"{agent_cls.__doc__}\n\nWith optional PPO-ptx (see :mod:`rlhf_gym.runner.ptx`).",
            "__module__": __name__,
        })
    return _CACHE[agent_cls]
