"""PPO for language models (Schulman et al., 2017; Ziegler et al., 2019): what makes it PPO, in one sitting.

Everything before the update (sampling with a KV cache, KL-shaped rewards, GAE, whitening) is the shared
core in :mod:`rlhf_gym.agents.rollout`; this file is the update. For ``n_epochs`` passes over the rollout,
each minibatch of episodes gets one teacher-forced forward and the loss

    L = −E_t[min(ρ_t·A_t, clip(ρ_t, 1 ± ε)·A_t)]                      clipped surrogate, ρ_t = π/π_old
        + c_v·½·E_t[max((V − R)², (clip(V, V_old ± ε_v) − R)²)]        clipped value loss
        − c_e·E_t[H(π(·|s_t))]                                          entropy bonus

with E_t the mean over generated tokens. Training on a rollout stops early once the approximate KL
``E_t[(ρ − 1) − log ρ]`` of a minibatch exceeds ``1.5·target_kl`` (as in Stable-Baselines3).

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import PPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = PPO(env, learning_rate=1e-4, minibatch_size=2, seed=0).learn(32)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 32, agent.num_rollouts >= 2
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_gym.agents.buffer import RolloutBuffer, masked_mean
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.rollout import OnPolicyConfig
from rlhf_gym.core.checks import check, is_int, is_number


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO's hyperparameters (the shared ones are documented on :class:`OnPolicyConfig`)."""

    learning_rate: float = 1e-4
    """Adam step size."""
    n_epochs: int = 4
    """Passes over each rollout."""
    clip_range: float = 0.2
    """ε: the probability ratio is clipped to [1 − ε, 1 + ε]."""
    clip_range_vf: float | None = 0.2
    """ε_v: new values stay within ±ε_v of the rollout's (None: no value clipping)."""
    target_kl: float | None = None
    """Stop a rollout's epochs once a minibatch's approximate KL exceeds 1.5× this (None: never)."""

    def validate(self) -> None:
        super().validate()
        check(is_int(self.n_epochs) and self.n_epochs >= 1, "n_epochs", self.n_epochs, "must be an integer >= 1")
        check(is_number(self.clip_range) and self.clip_range > 0, "clip_range", self.clip_range, "must be > 0")
        for name in ("clip_range_vf", "target_kl"):
            v = getattr(self, name)
            check(v is None or (is_number(v) and v > 0), name, v, "must be > 0 or None")


class PPO(OnPolicyAgent):
    """Proximal Policy Optimization with a KL-shaped reward. ``PPO(env, policy=None, **PPOConfig fields)``."""

    config_class = PPOConfig
    algorithm = "PPO"
    config: PPOConfig

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        cfg = self.config
        stats: dict[str, list[float]] = {k: [] for k in ("loss/policy", "loss/value", "policy/entropy",
                                                          "policy/approxkl", "policy/clipfrac", "policy/grad_norm")}
        stop = False
        for _ in range(cfg.n_epochs):
            for mb in buffer.minibatches(cfg.minibatch_size, self._shuffle_gen):
                logp, entropy, values = self.evaluate_actions(mb)
                mask = mb.token_mask
                log_ratio = logp - mb.logprobs
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
                stats["policy/approxkl"].append(float(approx_kl))
                if cfg.target_kl is not None and approx_kl > 1.5 * cfg.target_kl:
                    stop = True  # the policy moved too far from the one that sampled: end this rollout's update
                    break

                pg_loss = masked_mean(torch.max(-mb.advantages * ratio,
                                                -mb.advantages * ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)),
                                      mask)
                v_loss = (values - mb.returns).square()
                if cfg.clip_range_vf is not None:
                    v_clipped = mb.values + (values - mb.values).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
                    v_loss = torch.max(v_loss, (v_clipped - mb.returns).square())
                v_loss = 0.5 * masked_mean(v_loss, mask)
                ent = masked_mean(entropy, mask)
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent

                loss.backward()
                stats["policy/grad_norm"].append(self.optimizer_step())
                stats["loss/policy"].append(pg_loss.item())
                stats["loss/value"].append(v_loss.item())
                stats["policy/entropy"].append(ent.item())
                stats["policy/clipfrac"].append(float(masked_mean(((ratio - 1).abs() > cfg.clip_range).float(), mask)))
            if stop:
                break
        out = {k: sum(v) / len(v) if v else float("nan") for k, v in stats.items()}
        out["policy/n_updates"] = len(stats["loss/policy"])
        return out
