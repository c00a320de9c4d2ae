"""The episode engine both environments run on: N token sequences advanced one token at a time.

State lives in tensors on the reference model's device:

* ``ids``/``mask`` ``(N, W)`` — left-padded sequences in a fixed window ``W = max_prompt_tokens +
  max_new_tokens``, the newest token always in the last column (this is also the observation);
* the reference model's KV cache over the same window, slid by one column per step: a row never holds more
  than ``W`` live tokens, so the column that falls off is padding in every row;
* ``next_logp`` ``(N, V)`` — the reference's log-probs for each row's next token.

A step reads the reference log-prob of each action from ``next_logp`` (no extra forward), appends the
actions, runs one cached forward for the whole batch, and scores the rows that finished in one reward call.
Rows that reset get their prompt's KV written into their slice of the cache, so the others keep theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.core.checks import check, check_int, check_number
from rlhf_gym.core.generation import token_logprobs, top_p_mask
from rlhf_gym.core.kl import check_estimator, kl_estimate
from rlhf_gym.core.models import check_vocab
from rlhf_gym.core.window import SlidingWindowLM
from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.rewards.base import RewardFunction, checked_scores

#: Largest KL coefficient accepted: beyond it β·KL overflows float32 rewards to -inf (found by hypothesis at
#: β = 5.9e37), and no experiment weighs the KL a million times the reward.
MAX_BETA = 1e6


def model_context(model: PreTrainedModel) -> int | None:
    """The longest sequence the model's position embeddings allow, if it has such a limit."""
    cfg = model.config
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        if isinstance(getattr(cfg, key, None), int):
            return getattr(cfg, key)
    return None


def check_min_new_tokens(value: object, max_new_tokens: int) -> int:
    """``min_new_tokens``: an integer in ``[0, max_new_tokens]`` (EOS is refused until that many tokens)."""
    value = check_int(value, "min_new_tokens", low=0)
    if value > max_new_tokens:
        raise ConfigError(f"min_new_tokens={value} is invalid: must be <= max_new_tokens={max_new_tokens}")
    return value


@dataclass
class Finished:
    """Rows that ended on this step, with their texts and reward-model scores."""

    rows: np.ndarray
    prompts: list[str]
    completions: list[str]
    scores: torch.Tensor


class EpisodeEngine:
    """Holds N episodes of prompt + continuation and the reference model's view of them.

    See :class:`rlhf_gym.envs.TextGenEnv` for the meaning of the arguments.
    """

    def __init__(
        self,
        ref_model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        reward_fn: RewardFunction,
        *,
        num_rows: int,
        beta: float,
        kl_estimator: str,
        max_new_tokens: int,
        max_prompt_tokens: int | None,
        min_new_tokens: int = 0,
    ):
        beta = check_number(beta, "beta", low=0, high=MAX_BETA)
        max_new_tokens = check_int(max_new_tokens, "max_new_tokens", low=1)
        min_new_tokens = check_min_new_tokens(min_new_tokens, max_new_tokens)
        if max_prompt_tokens is not None:
            max_prompt_tokens = check_int(max_prompt_tokens, "max_prompt_tokens", low=1)
        num_rows = check_int(num_rows, "num_envs", low=1)
        check(isinstance(kl_estimator, str), "kl_estimator", kl_estimator, "must be 'k1', 'k2' or 'k3'")
        if not prompts:
            raise DataError("the prompt set is empty: an episode needs a prompt to continue")
        check_vocab(ref_model, tokenizer)
        self.ref, self.tok, self.reward_fn = ref_model, tokenizer, reward_fn
        self.kl_estimator = check_estimator(kl_estimator)
        self.beta, self.max_new_tokens, self.n = float(beta), max_new_tokens, num_rows
        self.min_new_tokens = min_new_tokens
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.vocab_size = ref_model.config.vocab_size
        self.device = next(ref_model.parameters()).device
        self.prompts = list(prompts)
        self.prompt_ids = self._tokenize_prompts(max_prompt_tokens)
        self.max_prompt_tokens = max_prompt_tokens or max(len(p) for p in self.prompt_ids)
        self.width = self.max_prompt_tokens + max_new_tokens
        context = model_context(ref_model)
        if context is not None and self.width > context:
            raise ConfigError(
                f"max_prompt_tokens {self.max_prompt_tokens} + max_new_tokens {max_new_tokens} = {self.width} "
                f"exceeds the model's context of {context} tokens"
            )
        self.window = SlidingWindowLM(ref_model, num_rows, self.width, self.pad)
        self.n_generated = torch.zeros(num_rows, dtype=torch.long, device=self.device)
        self.prompt_index = np.zeros(num_rows, dtype=np.int64)
        self.next_logp = torch.zeros(num_rows, self.vocab_size, device=self.device)

    def use_reference(self, model: torch.nn.Module) -> None:
        """Makes ``model`` the reference from now on. It must compute what the current reference computes
        (e.g. the same weights seen through a LoRA adapter-disabled view), so the KV cache stays valid."""
        self.ref = self.window.model = model

    @property
    def ids(self) -> torch.Tensor:
        """``(N, W)`` left-padded token ids: the observation."""
        return self.window.ids

    @property
    def mask(self) -> torch.Tensor:
        return self.window.mask

    def _tokenize_prompts(self, max_prompt_tokens: int | None) -> list[list[int]]:
        ids = self.tok(self.prompts, add_special_tokens=False)["input_ids"]
        start = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.eos
        ids = [p if p else [start] for p in ids]  # an empty prompt is conditioned on BOS alone
        if max_prompt_tokens is not None:
            for i, p in enumerate(ids):
                if len(p) > max_prompt_tokens:
                    raise DataError(
                        f"prompt {i} ({self.prompts[i][:40]!r}...) has {len(p)} tokens, more than "
                        f"max_prompt_tokens={max_prompt_tokens}"
                    )
        return ids

    def add_prompt(self, text: str) -> int:
        """Index of ``text`` in the prompt list, adding (and checking) it if it is new."""
        if text in self.prompts:
            return self.prompts.index(text)
        ids = self.tok(text, add_special_tokens=False)["input_ids"] or [self.tok.bos_token_id or self.eos]
        if len(ids) > self.max_prompt_tokens:
            raise DataError(f"prompt {text[:40]!r} has {len(ids)} tokens, more than max_prompt_tokens="
                            f"{self.max_prompt_tokens}")
        self.prompts.append(text)
        self.prompt_ids.append(ids)
        return len(self.prompts) - 1

    # ----- resetting rows ---------------------------------------------------------------------------
    def reset_rows(self, rows: np.ndarray, prompt_indices: np.ndarray) -> None:
        """Starts new episodes in ``rows`` with the given prompts: one reference forward over the prompts."""
        self.window.reset_rows(rows, [self.prompt_ids[i] for i in prompt_indices])
        rows_t = torch.as_tensor(rows, device=self.device)
        self.next_logp[rows_t] = self.window.next_logits[rows_t].log_softmax(-1)
        self.n_generated[rows_t] = 0
        self.prompt_index[rows] = prompt_indices

    # ----- stepping -----------------------------------------------------------------------------------
    def check_actions(self, actions: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Every action a token id; no EOS in an ``active`` row before ``min_new_tokens`` tokens."""
        if actions.shape != (self.n,):
            raise ConfigError(f"expected {self.n} actions, got shape {tuple(actions.shape)}")
        bad = (actions < 0) | (actions >= self.vocab_size)
        if bool(bad.any()):
            value = int(actions[bad][0])
            raise ConfigError(f"action {value} is outside the vocabulary [0, {self.vocab_size})")
        if self.min_new_tokens:
            early = (actions == self.eos) & ~self.eos_allowed()
            if active is not None:
                early &= active
            if bool(early.any()):
                row = int(early.nonzero()[0, 0])
                raise ConfigError(
                    f"action {self.eos} (EOS) is invalid as token {int(self.n_generated[row]) + 1} of row {row}: "
                    f"min_new_tokens={self.min_new_tokens} forbids EOS before {self.min_new_tokens} tokens "
                    f"(see action_masks())")

    def eos_allowed(self) -> torch.Tensor:
        """``(N,)`` bool: whether each row may end with EOS on its next token (``min_new_tokens`` reached)."""
        return self.n_generated >= self.min_new_tokens

    def action_masks(self, top_p: float | None = None, min_tokens: int = 1) -> torch.Tensor:
        """``(N, V)`` bool: allowed next tokens — all, or the reference's top-p nucleus (at least ``min_tokens``)
        — without EOS in rows that have not yet generated ``min_new_tokens`` tokens. The nucleus is taken
        over the tokens that remain once EOS is excluded, so a row never has an empty mask."""
        no_eos = ~self.eos_allowed()
        if top_p is None:
            allowed = torch.ones(self.n, self.vocab_size, dtype=torch.bool, device=self.device)
            allowed[:, self.eos] &= ~no_eos
            return allowed
        logits = self.next_logp.clone()
        logits[no_eos, self.eos] = float("-inf")
        allowed = top_p_mask(logits, top_p, min_tokens)
        allowed[no_eos, self.eos] = False
        return allowed

    @torch.no_grad()
    def advance(self, actions: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Appends ``actions`` to every row; returns (reference log-probs, terminated) per row.

        Rows not ``active`` (about to be reset) still move through the forward pass — one batched call is
        cheaper than splitting the batch — and their results are ignored.
        """
        ref_logp = self.next_logp.gather(1, actions[:, None]).squeeze(1)
        self.n_generated += active.long()
        terminated = active & ((actions == self.eos) | (self.n_generated >= self.max_new_tokens))
        # When every row has ended, the next reset rebuilds the whole cache: skip the forward.
        go_on = bool((active & ~terminated).any())
        self.window.append(actions, compute=go_on)
        if go_on:
            self.next_logp = self.window.next_logits.log_softmax(-1)
        return ref_logp, terminated

    def kl_rewards(self, ref_logp: torch.Tensor, policy_logp: torch.Tensor | None) -> torch.Tensor:
        """Per-token KL part of the reward: the full ``-β·KL`` if the agent gave its log-probs, else ``β·log π_ref``."""
        if policy_logp is None:
            return self.beta * ref_logp
        return -self.beta * kl_estimate(policy_logp.to(ref_logp), ref_logp, self.kl_estimator)

    def completion_ids(self, row: int) -> list[int]:
        """The generated tokens of ``row`` (EOS excluded)."""
        n = int(self.n_generated[row])
        toks = self.ids[row, self.width - n :].tolist() if n else []
        return toks[:-1] if toks and toks[-1] == self.eos else toks

    def decode_completions(self, rows: Sequence[int]) -> list[str]:
        return self.tok.batch_decode([self.completion_ids(r) for r in rows], skip_special_tokens=True)

    def score_rows(self, rows: np.ndarray) -> Finished:
        """Scores the finished ``rows`` with one reward call."""
        prompts = [self.prompts[i] for i in self.prompt_index[rows]]
        completions = self.decode_completions(rows)
        scores = checked_scores(self.reward_fn, prompts, completions) if len(rows) else torch.zeros(0)
        return Finished(rows, prompts, completions, scores)

    def observation(self, rows: slice | np.ndarray = slice(None)) -> dict[str, np.ndarray]:
        # Copies: on CPU .numpy() shares memory, and the state tensors are updated in place.
        return {"input_ids": self.ids[rows].cpu().numpy().copy(), "attention_mask": self.mask[rows].cpu().numpy().copy()}

    # ----- whole episodes at once ---------------------------------------------------------------------
    @torch.no_grad()
    def score_episodes(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
        prompt_indices: np.ndarray | None = None,
        policy_logprobs: torch.Tensor | None = None,
    ) -> EpisodeScores:
        """Rewards for whole episodes: one teacher-forced reference forward and one reward call.

        ``prompt_ids``/``prompt_mask`` are left-padded ``(N, P)``; ``tokens``/``token_mask`` are the
        right-padded completions ``(N, T)`` (as :func:`rlhf_gym.core.sampler.sample` returns them).
        """
        prompt_ids, prompt_mask = prompt_ids.to(self.device), prompt_mask.to(self.device)
        tokens, token_mask = tokens.to(self.device), token_mask.to(self.device).bool()
        if not bool(token_mask[:, 0].all()):
            raise ConfigError("every episode needs at least one generated token (token_mask[:, 0] is False)")
        if self.min_new_tokens:
            k = min(self.min_new_tokens, tokens.shape[1])
            early = ((tokens[:, :k] == self.eos) & token_mask[:, :k]).any(1)
            if bool(early.any()):
                row = int(early.nonzero()[0, 0])
                at = int((tokens[row, :k] == self.eos).nonzero()[0, 0])
                raise ConfigError(f"episode {row} ends with EOS as token {at + 1}, but min_new_tokens="
                                  f"{self.min_new_tokens} forbids EOS before {self.min_new_tokens} tokens")
        ref_logp = token_logprobs(self.ref, prompt_ids, prompt_mask, tokens, token_mask)
        kl_part = self.kl_rewards(ref_logp, policy_logprobs) * token_mask
        lengths = token_mask.sum(1)
        completions = self.tok.batch_decode(
            [row[: int(n)][row[: int(n)] != self.eos].tolist() for row, n in zip(tokens, lengths)],
            skip_special_tokens=True,
        )
        if prompt_indices is not None:
            prompts = [self.prompts[i] for i in prompt_indices]
        else:
            prompts = self.tok.batch_decode([p[m.bool()].tolist() for p, m in zip(prompt_ids, prompt_mask)],
                                            skip_special_tokens=True)
        scores = checked_scores(self.reward_fn, prompts, completions).to(self.device)
        rewards = kl_part.clone()
        rewards[torch.arange(len(tokens), device=self.device), lengths - 1] += scores
        return EpisodeScores(rewards, ref_logp * token_mask, scores, prompts, completions)


@dataclass
class EpisodeScores:
    """Per-token rewards of whole episodes, as :meth:`EpisodeEngine.score_episodes` returns them."""

    rewards: torch.Tensor  # (N, T): KL part on every generated token, plus the score on the last one
    ref_logprobs: torch.Tensor  # (N, T): log π_ref of each generated token (0 on padding)
    scores: torch.Tensor  # (N,): the reward function's score of each finished text
    prompts: list[str]
    completions: list[str]
