"""The sequence-level rollout buffer, GAE and minibatching shared by every agent.

Each episode is stored once, as a row: its left-padded prompt and its right-padded completion with one value
per generated token (log-prob, reference log-prob, value, reward, advantage, return). Rows that continue the
same prompt share a **group id** (``samples_per_prompt`` > 1: GRPO's and RLOO's groups, a DPO pair) and are
stored next to each other; minibatches shuffle whole groups, so a group is never split when the minibatch
size is a multiple of the group size. Memory therefore grows
with the number of tokens, ``N·(P + T)``, where a token-by-token buffer of observations would hold
``N·T·(P + T)``. A minibatch is a set of rows, trimmed to its own widest prompt and completion, fed to the
policy as one teacher-forced sequence each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is True."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of ``x`` over the entries where ``mask`` is True."""
    mean = masked_mean(x, mask)
    n = mask.sum().clamp(min=2)
    return ((x - mean).square() * mask).sum() / (n - 1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x − mean) / std`` over the masked entries; padding becomes 0."""
    return ((x - masked_mean(x, mask)) * torch.rsqrt(masked_var(x, mask) + eps)) * mask


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 − Var(returns − values) / Var(returns)`` over the masked entries (NaN when returns are constant)."""
    var_returns = masked_var(returns, mask)
    if float(var_returns) == 0.0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask) / var_returns)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, gae_lambda: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates over right-padded episodes: ``(advantages, returns)``, each ``(N, T)``.

    ``δ_t = r_t + γ·V_{t+1} − V_t`` and ``A_t = δ_t + γλ·A_{t+1}``, where every episode ends (terminates) at
    its last masked token, so ``V`` and ``A`` past it count as 0. Returns are ``A + V``; padding gets 0.
    """
    mask = mask.to(rewards.dtype)
    values = values * mask
    n, t_max = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(n, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(t_max)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * gae_lambda * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


@dataclass
class Minibatch:
    """Rows of a :class:`RolloutBuffer` ready for one teacher-forced forward.

    ``input_ids``/``attention_mask`` are ``prompt + completion`` (left-padded prompt, right-padded
    completion); every other tensor is ``(n, T)`` over the completion, ``T`` the widest completion here.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    ref_logprobs: torch.Tensor
    rewards: torch.Tensor
    scores: torch.Tensor  # (n,)
    group_ids: torch.Tensor  # (n,)

    @property
    def n_tokens(self) -> int:
        """Completion columns (the ``T`` the policy's forward must return)."""
        return self.tokens.shape[1]


@dataclass
class RolloutBuffer:
    """One rollout: ``N`` episodes, each stored once (see the module docstring)."""

    prompt_ids: torch.Tensor  # (N, P) long, left-padded
    prompt_mask: torch.Tensor  # (N, P) long
    tokens: torch.Tensor  # (N, T) long, right-padded
    token_mask: torch.Tensor  # (N, T) bool, True on generated tokens (EOS included)
    logprobs: torch.Tensor  # (N, T) log π_old(a_t|s_t) of the behaviour policy
    ref_logprobs: torch.Tensor  # (N, T) log π_ref(a_t|s_t)
    values: torch.Tensor  # (N, T) V_old(s_t)
    rewards: torch.Tensor  # (N, T) −β·KL_t, plus the score on each episode's last token
    scores: torch.Tensor  # (N,) reward-function score of each episode
    advantages: torch.Tensor | None = None  # (N, T), from compute_advantages
    returns: torch.Tensor | None = None  # (N, T), from compute_advantages
    group_ids: torch.Tensor | None = None  # (N,) long: rows with one id continue one prompt (None: one row each)

    def __post_init__(self) -> None:
        if self.group_ids is None:
            self.group_ids = torch.arange(len(self), device=self.tokens.device)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_tokens(self) -> int:
        """Generated tokens held (the agents' unit of timesteps)."""
        return int(self.token_mask.sum())

    @property
    def nbytes(self) -> int:
        """Bytes of tensor storage held."""
        return sum(t.numel() * t.element_size() for f in fields(self)
                   if isinstance(t := getattr(self, f.name), torch.Tensor))

    def compute_advantages(self, gamma: float, gae_lambda: float, normalize: bool = True) -> None:
        """Fills ``advantages`` (whitened over all tokens when ``normalize``) and ``returns`` with GAE."""
        self.advantages, self.returns = gae(self.rewards, self.values, self.token_mask, gamma, gae_lambda)
        if normalize:
            self.advantages = whiten(self.advantages, self.token_mask)

    def select(self, idx: torch.Tensor) -> Minibatch:
        """Rows ``idx`` as a :class:`Minibatch`, trimmed to their own padding (advantages are 0 until computed)."""
        prompt_ids, prompt_mask = self.prompt_ids[idx], self.prompt_mask[idx]
        first = int(prompt_mask.bool().any(0).float().argmax())
        token_mask = self.token_mask[idx]
        width = int(token_mask.sum(1).max())
        cut = {name: (t if (t := getattr(self, name)) is not None else torch.zeros_like(self.values))[idx, :width]
               for name in ("tokens", "logprobs", "values", "advantages", "returns", "ref_logprobs", "rewards")}
        token_mask = token_mask[:, :width]
        return Minibatch(
            input_ids=torch.cat([prompt_ids[:, first:], cut["tokens"]], dim=1),
            attention_mask=torch.cat([prompt_mask[:, first:].long(), token_mask.long()], dim=1),
            token_mask=token_mask, scores=self.scores[idx], group_ids=self.group_ids[idx], **cut,
        )

    @property
    def n_groups(self) -> int:
        """Distinct prompts (groups of rows) held."""
        return int(self.group_ids.unique().numel())

    def group_view(self, x: torch.Tensor) -> torch.Tensor:
        """A per-row tensor ``(N, ...)`` as ``(groups, K, ...)``: rows of a group are contiguous and groups equal-sized."""
        return x.reshape(self.n_groups, len(self) // self.n_groups, *x.shape[1:])

    def minibatches(self, size: int, generator: torch.Generator | None = None) -> Iterator[Minibatch]:
        """All rows once, in minibatches of ``size`` episodes; whole groups are shuffled with ``generator``."""
        k = len(self) // self.n_groups
        order = torch.randperm(self.n_groups, generator=generator).to(self.tokens.device)
        if k > 1:  # groups are contiguous rows [g·K, (g+1)·K)
            order = (order[:, None] * k + torch.arange(k, device=order.device)).reshape(-1)
        for start in range(0, len(self), size):
            yield self.select(order[start : start + size])
