"""NLPO (Ramamurthy et al., 2023, RL4LMs): PPO whose actions are restricted to a masking policy's top-p set.

Natural Language Policy Optimization is PPO (see :mod:`rlhf_gym.agents.ppo`) on a smaller action space: at
every state only the tokens in the top-p nucleus of a *masking policy* may be taken (at least
``min_tokens`` of them, RL4LMs' defaults being p = 0.9 and 100 tokens). The masking policy is a frozen copy
of the policy, refreshed every ``mask_update_every`` rollouts, so the mask follows the policy with a lag.

The mask is applied in both places the policy's distribution appears, so they agree:

* while sampling, as the ``logits_mask`` of :func:`~rlhf_gym.core.sampler.sample` (the masking policy runs
  in lockstep with the policy, with its own KV cache), and in :meth:`predict`;
* in the update, where the log-probs, ratios and entropy come from the masked, renormalised distribution
  (one teacher-forced forward of the masking policy per minibatch).

The KL penalty therefore compares the masked policy with the reference, as RL4LMs does.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import NLPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = NLPO(env, mask_update_every=5, seed=0).learn(32)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 32
True
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from rlhf_gym.agents.buffer import Minibatch, RolloutBuffer
from rlhf_gym.agents.policy import vocab_size
from rlhf_gym.agents.ppo import PPO, PPOConfig
from rlhf_gym.core.checks import check, is_int, is_number
from rlhf_gym.core.generation import position_ids_from_mask, top_p_mask
from rlhf_gym.core.models import freeze, load_causal_lm, quiet_transformers


@dataclass
class NLPOConfig(PPOConfig):
    """NLPO's hyperparameters: PPO's (see :class:`PPOConfig`) plus the action mask."""

    top_p: float = 0.9
    """Nucleus of the masking policy that stays allowed at each step."""
    min_tokens: int = 100
    """The mask keeps at least this many tokens (clamped to the vocabulary)."""
    mask_update_every: int = 10
    """Copy the policy into the masking policy after every this many rollouts."""

    def validate(self) -> None:
        super().validate()
        check(is_number(self.top_p) and 0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        check(is_int(self.min_tokens) and self.min_tokens >= 1, "min_tokens", self.min_tokens, "must be an integer >= 1")
        check(is_int(self.mask_update_every) and self.mask_update_every >= 1, "mask_update_every",
              self.mask_update_every, "must be an integer >= 1")


class TopPMask:
    """``logits_mask`` for :func:`~rlhf_gym.core.sampler.sample`: the masking model's top-p next tokens.

    The sampler runs ``model`` in lockstep with the policy (same rows, its own KV cache) and asks
    :meth:`allowed` which of the next tokens the masking model's logits permit.
    """

    def __init__(self, model: PreTrainedModel, top_p: float, min_tokens: int):
        self.model, self.top_p, self.min_tokens = model, top_p, min_tokens

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean ``(N, V)``: the top-p nucleus (at least ``min_tokens``) of next-token ``logits``."""
        return top_p_mask(logits.float(), self.top_p, self.min_tokens)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mask after left-padded sequences, from one forward of the masking model (``predict``)."""
        positions = position_ids_from_mask(attention_mask)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                            logits_to_keep=1).logits[:, -1]
        return self.allowed(logits)


class NLPO(PPO):
    """PPO with a top-p action mask from a lagged copy of the policy. ``NLPO(env, policy=None, **NLPOConfig)``."""

    config_class = NLPOConfig
    algorithm = "NLPO"
    config: NLPOConfig

    def _setup(self) -> None:
        self.mask_policy = freeze(copy.deepcopy(self.policy.lm))
        self.min_tokens = min(self.config.min_tokens, vocab_size(self.policy.lm))
        self.mask_version = 0  # rollouts done when the masking policy was last copied from the policy

    def refresh_mask_policy(self, version: int | None = None) -> None:
        """Copies the current policy's weights into the masking policy (``version``: rollouts done)."""
        self.mask_policy.load_state_dict(self.policy.lm.state_dict())
        self.mask_version = self.num_rollouts if version is None else version

    def sampling_mask_fn(self) -> TopPMask:
        return TopPMask(self.mask_policy, self.config.top_p, self.min_tokens)

    @torch.no_grad()
    def action_mask(self, mb: Minibatch) -> torch.Tensor:
        logits = self.mask_policy(input_ids=mb.input_ids, attention_mask=mb.attention_mask,
                                  position_ids=position_ids_from_mask(mb.attention_mask),
                                  logits_to_keep=mb.n_tokens + 1).logits[:, :-1]
        allowed = top_p_mask(logits.float(), self.config.top_p, self.min_tokens)
        # The sampled token was allowed while sampling; keep it allowed even if float noise moved the boundary.
        return allowed.scatter(-1, mb.tokens[..., None], True)

    @torch.no_grad()
    def next_token_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.sampling_mask_fn()(input_ids, attention_mask)

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        metrics = super().update(buffer)
        metrics["nlpo/mask_version"] = self.mask_version
        done = self.num_rollouts + 1  # rollouts completed, this one included (learn() counts it afterwards)
        if done % self.config.mask_update_every == 0:
            self.refresh_mask_policy(version=done)
        return metrics

    def _extra_state(self, directory: Path) -> dict:
        with quiet_transformers():
            self.mask_policy.save_pretrained(directory / "mask_policy")
        return {"mask_version": self.mask_version}

    def _load_extra_state(self, path: Path, meta: dict) -> None:
        self.mask_policy.load_state_dict(load_causal_lm(path / "mask_policy").state_dict())
        self.mask_version = int(meta["mask_version"])
