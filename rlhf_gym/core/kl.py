r"""KL estimators and β controllers.

The per-token KL penalty compares the policy π with the frozen reference π_ref on the sampled token a:

* ``k1 = log π(a|s) − log π_ref(a|s)``  — unbiased, can be negative, linear (so it splits exactly);
* ``k2 = ½ (log π(a|s) − log π_ref(a|s))²`` — low variance, biased;
* ``k3 = (r − 1) − log r`` with ``r = π_ref(a|s) / π(a|s)`` — unbiased and always ≥ 0 (Schulman, 2020).

Who pays what (the environment cannot know π): ``r_t = −β·KL_t`` with k1 splits exactly into

    −β·k1 = β·log π_ref(a|s)  +  (−β·log π(a|s))
            └ the environment ┘    └ the agent ┘

so the environment pays ``β·log π_ref(a|s)`` and the agent adds ``−β·log π(a|s)`` for the action it took.
Averaged over a ~ π at a state this is the identity

    −β·KL(π(·|s) ‖ π_ref(·|s)) = β·E_{a~π}[log π_ref(a|s)] + β·H(π(·|s)),

so an agent that cannot add its own term per sample may instead add an entropy bonus with coefficient β.
That is exact for the expected per-state penalty but myopic: an entropy bonus in the loss is not
propagated through returns, whereas a per-token reward is. k2 and k3 are not linear in log π, so they
need both log-probs: agents pass theirs to the batched environment, which then pays the full term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlhf_gym.errors import ConfigError

KL_ESTIMATORS = ("k1", "k2", "k3")


def check_estimator(name: str) -> str:
    """Returns ``name`` if it is a known estimator, else raises a ConfigError listing the valid ones."""
    if name not in KL_ESTIMATORS:
        raise ConfigError(f"unknown KL estimator {name!r}; choose one of {', '.join(KL_ESTIMATORS)}")
    return name


def kl_estimate(logprob: torch.Tensor, ref_logprob: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL estimate from the sampled token's log-probs under the policy and the reference.

    >>> lp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])
    >>> kl_estimate(lp, ref, "k1").item(), kl_estimate(lp, ref, "k2").item()
    (1.0, 0.5)
    """
    log_ratio = logprob - ref_logprob
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    check_estimator(estimator)
    raise AssertionError("unreachable")


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_ref) summed over the vocabulary (last dimension) from two sets of logits."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    ref_logp = torch.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - ref_logp)).sum(-1)


@dataclass
class FixedKLController:
    """A constant KL coefficient β."""

    beta: float = 0.05

    def __post_init__(self) -> None:
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ConfigError(f"kl beta must be a finite number >= 0, got {self.beta}")

    def update(self, kl: float, n_steps: int) -> float:
        """Nothing to adapt; returns β."""
        return self.beta

    def state_dict(self) -> dict:
        return {"type": "fixed", "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])


@dataclass
class AdaptiveKLController:
    """Adapts β towards a target KL per episode (Ziegler et al., 2019).

    After each batch, ``β ← β·(1 + clip(kl/target − 1, −0.2, 0.2)·n_steps/horizon)``: β grows when the
    measured KL is above target and shrinks when below, by at most 20% per ``horizon`` steps.
    """

    beta: float = 0.05
    target: float = 6.0
    horizon: int = 10_000

    def __post_init__(self) -> None:
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ConfigError(f"kl beta must be a finite number >= 0, got {self.beta}")
        if not self.target > 0:
            raise ConfigError(f"kl target must be > 0, got {self.target}")
        if not self.horizon > 0:
            raise ConfigError(f"kl horizon must be > 0, got {self.horizon}")

    def update(self, kl: float, n_steps: int) -> float:
        """Moves β given the mean per-episode KL of the last batch of ``n_steps`` episodes; returns β."""
        if not math.isfinite(kl):
            raise ConfigError(f"cannot adapt β to a non-finite KL ({kl})")
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon
        return self.beta

    def state_dict(self) -> dict:
        return {"type": "adaptive", "beta": self.beta, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.beta, self.target, self.horizon = float(state["beta"]), float(state["target"]), int(state["horizon"])


KLController = FixedKLController | AdaptiveKLController


def make_kl_controller(beta: float = 0.05, target: float | None = None, horizon: int = 10_000) -> KLController:
    """A fixed controller, or an adaptive one when ``target`` is given."""
    if target is None:
        return FixedKLController(beta)
    return AdaptiveKLController(beta, target, horizon)
