"""What every agent shares before its update: the common config, the callbacks, and the default rollout.

:class:`Rollouts` gives every agent the first two steps of its loop, each a method an algorithm may override:

:meth:`~Rollouts.collect` — one batch of whole episodes:

1. ``env.sample_prompts(batch_size / K)`` draws left-padded prompts from the env's seeded RNG, each repeated
   ``K = samples_per_prompt`` times as one group of rows;
2. :func:`rlhf_gym.core.sampler.sample` continues them with the policy, ``rollout_slots`` rows at a time
   (a row that ends on EOS takes the next prompt), NLPO's masking model in lockstep;
3. one teacher-forced forward per minibatch of sequences gives the behaviour log-probs ``log π_old`` and the
   values ``V_old`` of every generated token (the same function the update later evaluates);
4. one ``env.score_episodes(..., logprobs=log π_old)`` call pays ``r_t = −β·KL_t`` on every token plus the
   reward function's score on the last one, β being :meth:`~Rollouts.reward_beta` (the KL controller's β;
   0 for an algorithm that puts the KL in its loss instead), and returns ``log π_ref``;
5. the KL controller sees the batch's KL.

:meth:`~Rollouts.compute_advantages` — GAE over the token rewards and values, whitened (PPO, A2C, NLPO);
critic-free algorithms replace it with group-relative, leave-one-out or globally normalised returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from rlhf_gym.agents.buffer import RolloutBuffer, explained_variance, masked_mean
from rlhf_gym.core.checks import check, check_fields, device_name, is_int, is_number
from rlhf_gym.core.kl import kl_estimate


@dataclass
class OnPolicyConfig:
    """Hyperparameters every on-policy agent shares. Timesteps are generated tokens."""

    learning_rate: float = 1e-4
    """Adam step size."""
    batch_size: int | None = None
    """Episodes per rollout (None: the env's ``num_envs``)."""
    samples_per_prompt: int = 1
    """K: completions sampled per prompt, stored as one group (GRPO/RLOO's group size); divides ``batch_size``."""
    minibatch_size: int | None = None
    """Episodes per gradient minibatch, dividing ``batch_size`` (None: the whole batch)."""
    rollout_slots: int | None = None
    """Rows the sampler runs at once (None: the whole batch); a row that ends takes the next prompt."""
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
    ptx_coef: float = 0.0
    """γ: weight of the pretraining LM loss mixed into every update (InstructGPT's PPO-ptx); 0 = off."""
    ptx_data: str = "embedded"
    """Pretraining text: 'embedded' or 'task' (the task's), a .txt/.jsonl file, 'hf:NAME' or a dataset dir."""
    ptx_batch_size: int = 8
    """Texts per pretraining batch."""
    ptx_max_length: int = 64
    """Tokens kept per pretraining text."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises a ConfigError naming the first impossible field (types first, see :func:`check_fields`)."""
        self.device = device_name(self.device, "device")  # spelling only: the agent checks it is available
        check_fields(self, skip=("lora",))  # lora is checked (and may be a LoraSpec) below
        check(is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        for name in ("batch_size", "minibatch_size", "rollout_slots"):
            v = getattr(self, name)
            check(v is None or (is_int(v) and v >= 1), name, v, "must be an integer >= 1")
        check(is_int(self.samples_per_prompt) and self.samples_per_prompt >= 1, "samples_per_prompt",
              self.samples_per_prompt, "must be an integer >= 1")
        if self.batch_size is not None:
            check(self.batch_size % self.samples_per_prompt == 0, "samples_per_prompt", self.samples_per_prompt,
                  f"must divide batch_size={self.batch_size}")
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
        check(is_number(self.ptx_coef) and self.ptx_coef >= 0, "ptx_coef", self.ptx_coef, "must be >= 0")
        check(is_int(self.ptx_batch_size) and self.ptx_batch_size >= 1, "ptx_batch_size", self.ptx_batch_size,
              "must be an integer >= 1")
        check(is_int(self.ptx_max_length) and self.ptx_max_length >= 2, "ptx_max_length", self.ptx_max_length,
              "must be an integer >= 2")
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




class Rollouts:
    """The default ``collect`` and ``compute_advantages`` of every agent (see the module docstring)."""

    def reward_beta(self) -> float:
        """The β the env's reward pays per token, ``r_t = −β·KL_t``: the KL controller's (0 when the loss has it)."""
        return float(self.kl_controller.beta)

    @torch.no_grad()
    def collect(self) -> tuple[RolloutBuffer, dict[str, float]]:
        """One batch of ``batch_size`` episodes, ``samples_per_prompt`` per prompt; returns the buffer and metrics."""
        env, cfg, device = self.env, self.config, self.device
        engine, k = env.unwrapped.engine, cfg.samples_per_prompt
        engine.beta = self.reward_beta()
        prompt_ids, prompt_mask, prompt_indices = env.unwrapped.sample_prompts(cfg.batch_size // k)
        if k > 1:
            prompt_ids, prompt_mask = prompt_ids.repeat_interleave(k, 0), prompt_mask.repeat_interleave(k, 0)
            prompt_indices = prompt_indices.repeat(k)
        prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
        samples = self.generate(prompt_ids, prompt_mask)
        width = int(samples.mask.sum(1).max())
        tokens, token_mask = samples.tokens[:, :width], samples.mask[:, :width]

        zeros = torch.zeros(token_mask.shape, device=device)
        buf = RolloutBuffer(prompt_ids, prompt_mask, tokens, token_mask, logprobs=zeros.clone(),
                            ref_logprobs=zeros.clone(), values=zeros.clone(), rewards=zeros.clone(),
                            scores=zeros[:, 0].clone(),
                            group_ids=torch.arange(len(tokens) // k, device=device).repeat_interleave(k))
        for start in range(0, len(buf), cfg.minibatch_size):
            rows = torch.arange(start, min(start + cfg.minibatch_size, len(buf)), device=device)
            mb = buf.select(rows)
            logp, _, values = self.evaluate_actions(mb, with_entropy=False)
            buf.logprobs[rows, : mb.n_tokens] = logp * mb.token_mask
            buf.values[rows, : mb.n_tokens] = values * mb.token_mask

        scored = env.unwrapped.score_episodes(prompt_ids, prompt_mask, tokens, token_mask, prompt_indices,
                                              logprobs=buf.logprobs)
        buf.ref_logprobs = scored.ref_logprobs.to(device).masked_fill(~token_mask, 0.0)  # 0 on padding, as logprobs
        buf.rewards = scored.rewards.to(device).float()
        buf.scores = scored.scores.to(device).float()
        kl = (kl_estimate(buf.logprobs, buf.ref_logprobs, engine.kl_estimator) * token_mask).sum(1)
        beta = float(self.kl_controller.beta)
        self.kl_controller.update(float(kl.mean()), len(buf))
        self.last_rollout_texts = list(zip(scored.prompts, scored.completions, buf.scores.tolist()))
        return buf, {
            "objective/kl": float(kl.mean()),
            "objective/entropy": float((-buf.logprobs * token_mask).sum(1).mean()),
            "objective/scores": float(buf.scores.mean()),
            "objective/rlhf_reward": float(buf.rewards.sum(1).mean()),
            "objective/non_score_reward": float((buf.rewards.sum(1) - buf.scores).mean()),
            "objective/beta": beta,
            "objective/length": float(token_mask.sum(1).float().mean()),
        }

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        """Fills ``batch.advantages`` and ``batch.returns``: GAE, whitened when ``normalize_advantage``."""
        cfg = self.config
        batch.compute_advantages(cfg.gamma, cfg.gae_lambda, cfg.normalize_advantage)
        return {"val/mean": float(masked_mean(batch.values, batch.token_mask)),
                "val/explained_variance": explained_variance(batch.values, batch.returns, batch.token_mask)}
