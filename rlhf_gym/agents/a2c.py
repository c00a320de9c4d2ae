"""A2C for language models: synchronous advantage actor-critic, the choice DeepMind made for Gopher and Sparrow.

Everything before the update (sampling with a KV cache, KL-shaped rewards, GAE, whitening) is the shared
core in :mod:`rlhf_gym.agents.rollout`; this file is the update: **one** gradient step per rollout on

    L = −E_t[A_t · log π(a_t|s_t)]  +  c_v·½·E_t[(V(s_t) − R_t)²]  −  c_e·E_t[H(π(·|s_t))]

with E_t the mean over every generated token of the rollout. No ratio, no clipping: the data is used once,
by the policy that sampled it. ``minibatch_size`` only bounds memory — gradients of all minibatches are
accumulated before the single step.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import A2C
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = A2C(env, learning_rate=3e-4, seed=0).learn(32)  # a real run: learn(20_000)
>>> agent.num_timesteps >= 32
True
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_gym.agents.buffer import RolloutBuffer
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.rollout import OnPolicyConfig


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C's hyperparameters (the shared ones are documented on :class:`OnPolicyConfig`)."""

    learning_rate: float = 3e-4
    """Adam step size (one step per rollout, so larger than PPO's)."""
    gae_lambda: float = 1.0
    """GAE λ; 1.0 is A2C's n-step return to the episode's end minus the value baseline."""


class A2C(OnPolicyAgent):
    """Advantage actor-critic with a KL-shaped reward. ``A2C(env, policy=None, **A2CConfig fields)``."""

    config_class = A2CConfig
    algorithm = "A2C"
    config: A2CConfig

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        cfg = self.config
        n_tokens = buffer.n_tokens
        totals = {"loss/policy": 0.0, "loss/value": 0.0, "policy/entropy": 0.0}
        for mb in buffer.minibatches(cfg.minibatch_size, self._shuffle_gen):
            logp, entropy, values = self.evaluate_actions(mb)
            mask = mb.token_mask.float()
            # Sums over this minibatch's tokens / all tokens of the rollout: the accumulated gradient is the
            # gradient of the rollout-wide token mean.
            pg_loss = -(mb.advantages * logp * mask).sum() / n_tokens
            v_loss = 0.5 * ((values - mb.returns).square() * mask).sum() / n_tokens
            ent = (entropy * mask).sum() / n_tokens
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
            loss.backward()
            for key, value in zip(totals, (pg_loss, v_loss, ent)):
                totals[key] += value.item()
        totals["policy/grad_norm"] = self.optimizer_step()
        # The one step is taken by the policy that sampled: ratio ≡ 1, so nothing is clipped and no KL moved.
        totals.update({"policy/approxkl": 0.0, "policy/clipfrac": 0.0, "policy/n_updates": 1})
        return totals
