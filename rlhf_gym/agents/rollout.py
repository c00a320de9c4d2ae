"""What every on-policy agent shares before its update: the common config and rollout collection.

A rollout is one batch of whole episodes:

1. ``env.sample_prompts(batch_size)`` draws left-padded prompts from the env's seeded RNG;
2. :func:`rlhf_gym.core.generation.sample` continues them with the policy and one KV cache (NLPO passes its
   action mask through ``logits_mask_fn``);
3. one teacher-forced forward per minibatch of sequences gives the behaviour log-probs ``log π_old`` and the
   values ``V_old`` of every generated token (the same function the update later evaluates);
4. one ``env.score_episodes(..., logprobs=log π_old)`` call pays ``r_t = −β·KL_t`` on every token plus the
   reward function's score on the last one, β coming from the agent's KL controller;
5. GAE turns rewards and values into advantages and returns; the KL controller sees the batch's KL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from rlhf_gym.agents.buffer import RolloutBuffer, explained_variance, masked_mean
from rlhf_gym.core.checks import check, check_fields, device_name, is_int, is_number
from rlhf_gym.core.kl import KLController, kl_estimate


@dataclass
class OnPolicyConfig:
    """Hyperparameters every on-policy agent shares. Timesteps are generated tokens."""

    learning_rate: float = 1e-4
    """Adam step size."""
    batch_size: int | None = None
    """Episodes per rollout (None: the env's ``num_envs``)."""
    minibatch_size: int | None = None
    """Episodes per gradient minibatch, dividing ``batch_size`` (None: the whole batch)."""
    gamma: float = 1.0
    """Discount per token."""
    gae_lambda: float = 0.95
    """GAE λ (1.0: Monte-Carlo returns minus the value baseline)."""
    normalize_advantage: bool = True
    """Whiten advantages over all tokens of a rollout."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (the KL penalty already keeps the policy spread out)."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient's global norm to this (None: no clipping)."""
    kl_coef: float | None = None
    """Initial KL coefficient β (None: the env's ``beta``)."""
    adaptive_kl_target: float | None = None
    """Target KL per episode in nats for the adaptive β controller (None: β stays fixed)."""
    adaptive_kl_horizon: int = 10_000
    """Episodes over which the adaptive controller moves β by at most 20%."""
    temperature: float = 1.0
    """Sampling temperature; the update scores actions at the same temperature."""
    separate_value_model: bool = False
    """Give the critic its own copy of the LM as trunk instead of sharing the policy's."""
    lora: dict | None = None
    """LoRA adapter for the policy, e.g. ``{r: 8, alpha: 16, dropout: 0.0, target_modules: null}`` (see
    :mod:`rlhf_gym.core.lora`): only the adapter and the value head train, and the reference is the same base
    model with the adapter disabled, so no second copy of the weights exists (None: full fine-tuning)."""
    seed: int | None = None
    """Seeds sampling, minibatch order and the env's prompt draws (same seed, same run on CPU)."""
    device: str | None = None
    """Where the policy lives, e.g. ``"cpu"``, ``"cuda:1"`` (None: the env reference model's device)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises a ConfigError naming the first impossible field (types first, see :func:`check_fields`)."""
        self.device = device_name(self.device, "device")  # spelling only: the agent checks it is available
        check_fields(self, skip=("lora",))  # lora is checked (and may be a LoraSpec) below
        check(is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        for name in ("batch_size", "minibatch_size"):
            v = getattr(self, name)
            check(v is None or (is_int(v) and v >= 1), name, v, "must be an integer >= 1")
        if self.batch_size is not None and self.minibatch_size is not None:
            check(self.batch_size % self.minibatch_size == 0, "minibatch_size", self.minibatch_size,
                  f"must divide batch_size={self.batch_size}")
        check(is_number(self.gamma) and 0 <= self.gamma <= 1, "gamma", self.gamma, "must be in [0, 1]")
        check(is_number(self.gae_lambda) and 0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda,
              "must be in [0, 1]")
        for name in ("vf_coef", "ent_coef"):
            check(is_number(getattr(self, name)) and getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        check(self.max_grad_norm is None or (is_number(self.max_grad_norm) and self.max_grad_norm > 0),
              "max_grad_norm", self.max_grad_norm, "must be > 0 or None")
        check(self.kl_coef is None or (is_number(self.kl_coef) and self.kl_coef >= 0), "kl_coef", self.kl_coef,
              "β must be a number >= 0")
        check(self.adaptive_kl_target is None or (is_number(self.adaptive_kl_target) and self.adaptive_kl_target > 0),
              "adaptive_kl_target", self.adaptive_kl_target, "must be > 0 or None")
        check(is_int(self.adaptive_kl_horizon) and self.adaptive_kl_horizon >= 1, "adaptive_kl_horizon",
              self.adaptive_kl_horizon, "must be an integer >= 1")
        check(is_number(self.temperature) and self.temperature > 0, "temperature", self.temperature, "must be > 0")
        check(self.seed is None or is_int(self.seed), "seed", self.seed, "must be an integer or None")
        if self.lora is not None:
            from rlhf_gym.core.lora import LoraSpec

            self.lora = LoraSpec.from_mapping(self.lora).to_dict()
            check(not self.separate_value_model, "separate_value_model", True,
                  "not supported with lora (the value head reads the LoRA policy's own trunk)")


@runtime_checkable
class Callback(Protocol):
    """Called after every rollout's update with its metrics; returning False stops training.

    A plain callable ``fn(metrics) -> bool | None`` works too (None means go on).
    """

    def on_rollout_end(self, metrics: dict) -> bool: ...


def run_callbacks(callbacks: list[Callback | Callable[[dict], bool | None]], metrics: dict) -> bool:
    """Calls every callback; True unless one of them returned False."""
    keep_going = True
    for cb in callbacks:
        result = cb.on_rollout_end(metrics) if isinstance(cb, Callback) else cb(metrics)
        keep_going &= result is not False
    return keep_going


@torch.no_grad()
def collect_rollout(agent, kl_controller: KLController) -> tuple[RolloutBuffer, dict]:
    """One batch of episodes from ``agent.env`` (see the module docstring); returns the buffer and metrics."""
    env, cfg, device = agent.env, agent.config, agent.device
    engine = env.unwrapped.engine
    beta = engine.beta = float(kl_controller.beta)
    prompt_ids, prompt_mask, prompt_indices = env.unwrapped.sample_prompts(cfg.batch_size)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    samples = agent.generate(prompt_ids, prompt_mask)
    width = int(samples.mask.sum(1).max())
    tokens, token_mask = samples.tokens[:, :width], samples.mask[:, :width]

    zeros = torch.zeros(token_mask.shape, device=device)
    buf = RolloutBuffer(prompt_ids, prompt_mask, tokens, token_mask, logprobs=zeros.clone(),
                        ref_logprobs=zeros.clone(), values=zeros.clone(), rewards=zeros.clone(),
                        scores=zeros[:, 0].clone())
    for start in range(0, len(buf), cfg.minibatch_size):
        rows = torch.arange(start, min(start + cfg.minibatch_size, len(buf)), device=device)
        mb = buf.select(rows)
        logp, _, values = agent.evaluate_actions(mb, with_entropy=False)
        buf.logprobs[rows, : mb.n_tokens] = logp * mb.token_mask
        buf.values[rows, : mb.n_tokens] = values * mb.token_mask

    scored = env.unwrapped.score_episodes(prompt_ids, prompt_mask, tokens, token_mask, prompt_indices,
                                          logprobs=buf.logprobs)
    buf.ref_logprobs = scored.ref_logprobs.to(device)
    buf.rewards = scored.rewards.to(device).float()
    buf.scores = scored.scores.to(device).float()
    buf.compute_advantages(cfg.gamma, cfg.gae_lambda, cfg.normalize_advantage)

    kl = (kl_estimate(buf.logprobs, buf.ref_logprobs, engine.kl_estimator) * token_mask).sum(1)
    kl_controller.update(float(kl.mean()), len(buf))
    agent.last_rollout_texts = list(zip(scored.prompts, scored.completions, buf.scores.tolist()))
    lengths = token_mask.sum(1).float()
    return buf, {
        "objective/kl": float(kl.mean()),
        "objective/entropy": float((-buf.logprobs * token_mask).sum(1).mean()),
        "objective/scores": float(buf.scores.mean()),
        "objective/rlhf_reward": float(buf.rewards.sum(1).mean()),
        "objective/non_score_reward": float((buf.rewards.sum(1) - buf.scores).mean()),
        "objective/beta": beta,
        "objective/length": float(lengths.mean()),
        "val/mean": float(masked_mean(buf.values, token_mask)),
        "val/explained_variance": explained_variance(buf.values, buf.returns, token_mask),
    }
