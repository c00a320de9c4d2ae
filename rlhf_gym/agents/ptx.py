r"""PPO-ptx (InstructGPT, Ouyang et al. 2022): a language-modelling loss on pretraining text mixed into the update.

InstructGPT maximises ``E_RL[r − β·KL] + γ·E_{x∼D_pretrain}[log π(x)]`` to keep the policy's language
ability while it chases the reward. Here it is part of **every** agent (PPO, GRPO, DPO, ...), through the
agents' one extension point for gradient steps: :meth:`~rlhf_gym.agents.core.OnPolicyAgent.optimizer_step`
is called after the algorithm's loss has been back-propagated and before the step; :class:`PtxMixin` first
back-propagates ``ptx_coef · NLL(pretraining batch)`` into the same gradient, so every optimizer step the
algorithm takes (PPO: one per minibatch and epoch; A2C: one per rollout) carries the mixed objective, and
gradient clipping applies to the sum. Data parallelism composes with it: the gradients are reduced after
both backward passes.

The fields live on :class:`~rlhf_gym.agents.rollout.OnPolicyConfig`, so every algorithm takes them:

* ``ptx_coef`` — γ; 0 (the default) turns it off and the agent behaves exactly as without it;
* ``ptx_data`` — the pretraining text: ``task`` or ``embedded`` (the env's task's pretraining text,
  :attr:`rlhf_gym.tasks.Task.pretraining_text`), a ``.txt`` (one text per line) or ``.jsonl`` file
  (``text`` field), ``hf:NAME`` or a dataset directory;
* ``ptx_batch_size`` — texts per ptx batch; ``ptx_max_length`` — tokens kept per text.

The ptx batches are drawn with the agent's own seeded generator, saved in its checkpoints, so a resumed run
draws the same batches. The loss is logged as ``loss/ptx``.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import GRPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = GRPO(env, samples_per_prompt=2, ptx_coef=0.5, ptx_batch_size=2, seed=0).learn(16)
>>> agent.history[-1]["loss/ptx"] > 0
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlhf_gym.errors import DataError

PTX_FIELDS = ("ptx_coef", "ptx_data", "ptx_batch_size", "ptx_max_length")

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

    def _setup_ptx(self) -> None:
        self._ptx_losses: list[float] = []
        self._ptx_gen = torch.Generator().manual_seed((self.config.seed or 0) + 2)
        self._ptx_ids = None
        if self.config.ptx_coef > 0 and self.env is not None:  # without an env the agent only predicts
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

    def _add_ptx_gradient(self) -> None:
        if self._ptx_ids is not None:
            loss = self.ptx_loss()
            (self.config.ptx_coef * loss).backward()
            self._ptx_losses.append(loss.item())

    def _ptx_metrics(self) -> dict[str, float]:
        if not self._ptx_losses:
            return {}
        out = {"loss/ptx": sum(self._ptx_losses) / len(self._ptx_losses)}
        self._ptx_losses.clear()
        return out

    def _ptx_state(self) -> dict:
        from rlhf_gym.agents.saving import rng_state_to_text

        return {"ptx_rng": rng_state_to_text(self._ptx_gen.get_state())}

    def _load_ptx_state(self, path: Path, meta: dict) -> None:
        from rlhf_gym.agents.saving import rng_state_from_text

        if "ptx_rng" in meta:
            if not isinstance(meta["ptx_rng"], str):
                raise TypeError("'ptx_rng' must be a string")
            self._ptx_gen.set_state(rng_state_from_text(meta["ptx_rng"]))
