r"""RAFT: reward-ranked fine-tuning (Dong et al. 2023), the ReST-style loop (Gulcehre et al. 2023) of sampling,
keeping the best and imitating it.

Each rollout samples K = ``samples_per_prompt`` completions of every prompt with the current policy (the
shared :meth:`~rlhf_gym.agents.rollout.Rollouts.collect`), scores them with the env's reward function and
keeps one per prompt, the best (the first of tied ones):

    kept(x) = argmax_i r(x, y_i)              kept only if r(x, y_kept) ≥ the q-quantile of the batch's best rewards

(q = ``keep_quantile``; 0 keeps every prompt's best — RAFT with acceptance ratio 1 — while e.g. 0.5 keeps the
best-scoring half of the prompts: a ReST-style reward filter, whose threshold ReST raises between Improve steps
and which here is the batch's quantile). The update is supervised fine-tuning on the kept samples: for
``n_epochs`` passes, each minibatch of kept samples gets one Adam step on

    L = −Σ_{kept rows, t} log π(y_t | x, y_<t) / (kept tokens in the minibatch)          (token-mean NLL)

so the policy moves toward its own best-of-K distribution, a step of approximate best-of-K policy iteration.
``compute_advantages`` marks the kept rows: ``advantages`` is 1 on their generated tokens and 0 elsewhere,
and the loss is the advantage-weighted NLL, so rows not kept contribute no gradient. The objective is the
reward function's score alone; no critic is built, the KL to the reference is not in the objective (β = 0)
and is reported as ``objective/kl`` like every agent's.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import RAFT
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=8, max_new_tokens=4)
>>> agent = RAFT(env, samples_per_prompt=4, learning_rate=1e-4, seed=0).learn(64)  # a real run: learn(8_000)
>>> agent.history[-1]["raft/kept_fraction"], agent.num_rollouts >= 2
(0.25, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_gym.agents.buffer import RolloutBuffer
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.rollout import OnPolicyConfig
from rlhf_gym.core.checks import check, is_int, is_number


def raft_loss(logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``−Σ w·log π / Σ w``: the NLL per token of the rows and tokens where ``weights`` (0/1) is 1.

    >>> raft_loss(torch.tensor([[-1.0, -3.0], [-5.0, -7.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    tensor(2.)
    """
    return -(weights * logp).sum() / weights.sum().clamp(min=1.0)


@dataclass
class RAFTConfig(OnPolicyConfig):
    """RAFT's hyperparameters (the shared ones are documented on :class:`OnPolicyConfig`)."""

    learning_rate: float = 1e-4
    """Adam step size of the supervised updates."""
    samples_per_prompt: int = 4
    """K: completions sampled per prompt, of which the best is kept."""
    n_epochs: int = 2
    """Passes of the supervised loss over each rollout's kept samples."""
    keep_quantile: float = 0.0
    """Keep a prompt's best only if it reaches this quantile of the batch's bests (0: keep every prompt's)."""
    kl_coef: float | None = 0.0
    """β of the env's per-token reward: RAFT ranks by score alone, so 0 (the KL is only reported)."""

    def validate(self) -> None:
        super().validate()
        check(is_int(self.n_epochs) and self.n_epochs >= 1, "n_epochs", self.n_epochs, "must be an integer >= 1")
        check(is_number(self.keep_quantile) and 0 <= self.keep_quantile < 1, "keep_quantile", self.keep_quantile,
              "must be in [0, 1)")


class RAFT(OnPolicyAgent):
    """Reward-ranked fine-tuning on the best of K samples. ``RAFT(env, policy=None, **RAFTConfig fields)``."""

    config_class = RAFTConfig
    algorithm = "RAFT"
    uses_critic = False
    config: RAFTConfig

    def reward_beta(self) -> float:
        return 0.0  # the KL is not in RAFT's objective (see the module docstring)

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        """Marks the kept rows: ``advantages`` = 1 on their generated tokens, 0 elsewhere; ``returns`` = 0."""
        scores = batch.group_view(batch.scores)  # (groups, K)
        best = scores.argmax(1)
        best_scores = scores.gather(1, best[:, None]).squeeze(1)
        threshold = torch.quantile(best_scores.double(), self.config.keep_quantile).to(best_scores.dtype)
        keep = best_scores >= threshold
        kept = torch.zeros_like(scores, dtype=torch.bool)
        kept[torch.arange(len(best), device=kept.device), best] = keep
        kept = kept.reshape(-1)
        batch.advantages = (kept[:, None] & batch.token_mask).float()
        batch.returns = torch.zeros_like(batch.advantages)
        return {"raft/kept_fraction": float(kept.float().mean()), "raft/threshold": float(threshold),
                "raft/kept_scores": float(batch.scores[kept].mean()),
                "raft/kept_length": float(batch.token_mask[kept].sum(1).float().mean())}

    def update(self, batch: RolloutBuffer) -> dict[str, float]:
        """``n_epochs`` passes of :func:`raft_loss` over the kept rows, ``minibatch_size / K`` rows a step."""
        cfg = self.config
        kept = (batch.advantages[:, 0] > 0).nonzero().squeeze(1)
        per_step = max(1, cfg.minibatch_size // cfg.samples_per_prompt)
        losses, norms = [], []
        for _ in range(cfg.n_epochs):
            order = kept[torch.randperm(len(kept), generator=self._shuffle_gen).to(kept.device)]
            for start in range(0, len(order), per_step):
                mb = batch.select(order[start : start + per_step])
                logp, _, _ = self.evaluate_actions(mb, with_entropy=False)
                loss = raft_loss(logp, mb.advantages)
                loss.backward()
                norms.append(self.optimizer_step())
                losses.append(loss.item())
        return {"loss/sft": _mean(losses), "policy/grad_norm": _mean(norms), "policy/n_updates": len(losses)}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
