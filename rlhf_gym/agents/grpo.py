r"""GRPO (Shao et al., 2024, DeepSeekMath): PPO's clipped update with a group baseline instead of a critic.

Every prompt is sampled ``K = samples_per_prompt`` times (one *group*, see :mod:`rlhf_gym.agents.rollout`).
Each completion's sequence return ``R_i`` is its score (``kl_in="loss"``) or the sum of its KL-shaped token
rewards ``Σ_t r_t`` (``kl_in="reward"``), and its advantage, broadcast to every one of its tokens, is

    A_i = (R_i − b_i) / (std_{j∈group} R_j + 1e-4)      b_i = mean_{j∈group} R_j   (no std: scale_rewards=False)

(:meth:`GRPO.group_baseline` is ``b``; RLOO replaces it with the leave-one-out mean.) For ``n_epochs``
passes, each minibatch takes one step on the per-token loss ``ℓ_t = −min(ρ_t·A, clip(ρ_t, 1−ε, 1+ε_high)·A)
+ β·k3_t`` (``ρ_t = π/π_old``; ``k3_t = π_ref/π − 1 − log(π_ref/π)``, only with ``kl_in="loss"``, in which case
the env pays no KL), aggregated over the minibatch's ``n`` sequences of lengths ``|o_i|`` as ``loss_type``:

* ``"grpo"``    ``(1/n)·Σ_i (1/|o_i|)·Σ_t ℓ_{i,t}``   — each sequence weighs the same (DeepSeekMath);
* ``"dr_grpo"`` ``Σ_{i,t} ℓ_{i,t} / (n·max_new_tokens)`` — no length bias, no std (Liu et al., 2025, Dr. GRPO);
* ``"dapo"``    ``Σ_{i,t} ℓ_{i,t} / Σ_i |o_i|``        — each token weighs the same (Yu et al., 2025, DAPO;
  with ``clip_range_high`` ≈ 0.28 for its clip-higher).

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import GRPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=8, max_new_tokens=4)
>>> agent = GRPO(env, samples_per_prompt=4, learning_rate=1e-4, seed=0).learn(64)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 64, agent.history[0]["policy/clipfrac"]
(True, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from rlhf_gym.agents.buffer import RolloutBuffer, masked_mean
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.rollout import OnPolicyConfig
from rlhf_gym.core.checks import check, is_int, is_number
from rlhf_gym.core.kl import kl_estimate

LossType = Literal["grpo", "dr_grpo", "dapo"]


@dataclass
class GRPOConfig(OnPolicyConfig):
    """GRPO's hyperparameters (the shared ones are documented on :class:`OnPolicyConfig`)."""

    min_samples_per_prompt: ClassVar[int] = 2  # a group baseline needs at least two samples

    learning_rate: float = 1e-5
    """Adam step size."""
    samples_per_prompt: int = 4
    """K: completions per prompt, one group (>= 2)."""
    n_epochs: int = 1
    """Passes over each rollout (1 with one minibatch: fully on-policy, the ratio is 1)."""
    clip_range: float = 0.2
    """ε: the probability ratio is clipped to [1 − ε, 1 + ε_high]."""
    clip_range_high: float | None = None
    """ε_high, DAPO's clip-higher (None: ε)."""
    loss_type: LossType = "grpo"
    """How token losses are aggregated: "grpo" (per-sequence mean), "dr_grpo" (sum / (n·max_new_tokens)), "dapo" (token mean)."""
    scale_rewards: bool | None = None
    """Divide advantages by the group std (None: True, except False for loss_type="dr_grpo")."""
    kl_in: Literal["loss", "reward"] = "loss"
    """Where β·KL goes: "loss" (β·k3 per token in the loss; the env pays none) or "reward" (−β·KL per token from the env)."""

    def validate(self) -> None:
        super().validate()
        k_min = self.min_samples_per_prompt
        check(self.samples_per_prompt >= k_min, "samples_per_prompt", self.samples_per_prompt, f"must be >= {k_min}")
        check(is_int(self.n_epochs) and self.n_epochs >= 1, "n_epochs", self.n_epochs, "must be an integer >= 1")
        check(is_number(self.clip_range) and self.clip_range > 0, "clip_range", self.clip_range, "must be > 0")
        check(self.clip_range_high is None or (is_number(self.clip_range_high) and self.clip_range_high > 0),
              "clip_range_high", self.clip_range_high, "must be > 0 or None")

    @property
    def scales_rewards(self) -> bool:
        """``scale_rewards`` with its default resolved."""
        return self.scale_rewards if self.scale_rewards is not None else self.loss_type != "dr_grpo"


class GRPO(OnPolicyAgent):
    """Group Relative Policy Optimization. ``GRPO(env, policy=None, **GRPOConfig fields)``."""

    config_class = GRPOConfig
    algorithm = "GRPO"
    uses_critic = False
    config: GRPOConfig

    def reward_beta(self) -> float:
        """β the env pays per token: none when the KL is in the loss."""
        return 0.0 if self.config.kl_in == "loss" else float(self.kl_controller.beta)

    # ----- advantages ----------------------------------------------------------------------------------
    def sequence_returns(self, batch: RolloutBuffer) -> torch.Tensor:
        """``R_i`` ``(N,)``: the score (KL in the loss) or the sum of the KL-shaped token rewards."""
        return batch.scores if self.config.kl_in == "loss" else (batch.rewards * batch.token_mask).sum(1)

    def group_baseline(self, returns: torch.Tensor) -> torch.Tensor:
        """``b`` for grouped returns ``(groups, K)``: the group mean."""
        return returns.mean(1, keepdim=True).expand_as(returns)

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        """Fills ``batch.advantages`` (``A_i`` on every token of row i) and ``batch.returns`` (``R_i`` likewise)."""
        returns = self.sequence_returns(batch).float()
        grouped = batch.group_view(returns)
        adv = grouped - self.group_baseline(grouped)
        std = grouped.std(1, keepdim=True)
        if self.config.scales_rewards:
            adv = adv / (std + 1e-4)
        mask = batch.token_mask.float()
        batch.advantages = adv.reshape(-1)[:, None] * mask
        batch.returns = returns[:, None] * mask
        return {"objective/group_std": float(std.mean()), "objective/frac_zero_std": float((std < 1e-6).float().mean())}

    # ----- update --------------------------------------------------------------------------------------
    def aggregate(self, per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reduces a per-token loss ``(n, T)`` over a minibatch as ``loss_type`` says (module docstring)."""
        mask = mask.to(per_token.dtype)
        total = per_token * mask
        if self.config.loss_type == "grpo":
            return (total.sum(1) / mask.sum(1).clamp(min=1.0)).mean()
        if self.config.loss_type == "dr_grpo":
            return total.sum() / (per_token.shape[0] * self._require_env().unwrapped.engine.max_new_tokens)
        return total.sum() / mask.sum().clamp(min=1.0)

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        cfg = self.config
        low, high = 1 - cfg.clip_range, 1 + (cfg.clip_range_high if cfg.clip_range_high is not None else cfg.clip_range)
        beta = float(self.kl_controller.beta) if cfg.kl_in == "loss" else 0.0
        stats: dict[str, list[float]] = {k: [] for k in ("loss/policy", "loss/kl", "policy/approxkl",
                                                          "policy/clipfrac", "policy/grad_norm")}
        for _ in range(cfg.n_epochs):
            for mb in buffer.minibatches(cfg.minibatch_size, self._shuffle_gen):
                logp, _, _ = self.evaluate_actions(mb, with_entropy=False)
                mask = mb.token_mask
                log_ratio = logp - mb.logprobs
                ratio = log_ratio.exp()
                pg = torch.max(-mb.advantages * ratio, -mb.advantages * ratio.clamp(low, high))
                pg_loss = self.aggregate(pg, mask)
                loss = pg_loss
                if cfg.kl_in == "loss":
                    # Padding is set to the reference first: exp(log π_ref − log π) there can overflow to inf,
                    # and inf·0 would make the loss NaN.
                    kl_loss = self.aggregate(kl_estimate(logp, torch.where(mask, mb.ref_logprobs, logp), "k3"), mask)
                    loss = loss + beta * kl_loss
                    stats["loss/kl"].append(kl_loss.item())
                loss.backward()
                with torch.no_grad():
                    stats["policy/approxkl"].append(float(masked_mean((ratio - 1) - log_ratio, mask)))
                    stats["policy/clipfrac"].append(float(masked_mean(((ratio < low) | (ratio > high)).float(), mask)))
                stats["policy/grad_norm"].append(self.optimizer_step())
                stats["loss/policy"].append(pg_loss.item())
        out = {k: sum(v) / len(v) for k, v in stats.items() if v}
        out["policy/n_updates"] = len(stats["loss/policy"])
        return out
