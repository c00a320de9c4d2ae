r"""DPO (Rafailov et al., 2023, arXiv:2305.18290) and IPO (Azar et al., 2023, arXiv:2310.12036), offline.

The policy learns from preference pairs ``(x, y_w ≻ y_l)`` with no reward model and no sampling. With
``Δ_π = log π(y_w|x) − log π(y_l|x)`` and ``Δ_ref`` the same under the frozen reference (the env's, which is
the initial policy when ``policy=None``), the losses over a minibatch (weighted mean over pairs) are

    DPO:  −(1 − ε)·log σ(β·(Δ_π − Δ_ref)) − ε·log σ(−β·(Δ_π − Δ_ref))     ε = label_smoothing (cDPO)
    IPO:  (h − 1/(2τ))²,   h = Δ_π − Δ_ref,   τ = beta

DPO's log-likelihoods are **sums** over completion tokens; IPO's are **per-token averages** (as TRL does and
the IPO paper's length-normalised experiments), so τ does not scale with completion length. The implicit
reward of a completion is ``β·(log π − log π_ref)`` (in the loss's normalisation); ``rewards/accuracies`` is
the share of pairs whose chosen side has the strictly larger one (so 0 before the first step, where all are
0), ``eval/implicit_accuracy`` the same on held-out pairs; both losses log as ``loss/dpo``. Ties are dropped
(DPO has no tie term); a pair's ``margin`` (a reward-model field) is ignored.

Pairs come from :func:`rlhf_gym.rewards.preferences.load_preferences` (all three formats; rankings keep their
1/(K(K−1)/2) weights), or ``data="simulated"``: the task's simulated annotators over samples of the env's
reference model (see :mod:`rlhf_gym.agents.preference_data`). ``collect()`` draws
``batch_size/2`` training pairs without replacement (a fresh permutation from the agent's generator each pass)
and stores them as groups of two rows, chosen first, with their policy and reference log-probs; ``update()``
is shared with :class:`~rlhf_gym.agents.online_dpo.OnlineDPO`. A completion shorter than the env's
``max_new_tokens`` ends with EOS, as an episode would. Timesteps count the completion tokens of each batch.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import DPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = DPO(env, data="simulated", simulated_pairs=16, seed=0).learn(32)
>>> agent.num_timesteps >= 32, 0.0 <= agent.evaluate_preferences()["eval/implicit_accuracy"] <= 1.0
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlhf_gym.agents.buffer import RolloutBuffer
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.preference_data import PairItem, PairSampler, load_pairs, split_pairs
from rlhf_gym.agents.rollout import OnPolicyConfig
from rlhf_gym.core.checks import check, is_int, is_number
from rlhf_gym.core.generation import left_pad, token_logprobs
from rlhf_gym.errors import DataError


def preference_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, *, beta: float, loss: str = "dpo", label_smoothing: float = 0.0,
                    weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The DPO or IPO loss of pairs from their sequence log-probs (each ``(n,)``), and its metrics."""
    weights = torch.ones_like(chosen) if weights is None else weights
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    if loss == "ipo":
        per_pair = (h - 1 / (2 * beta)).square()
    else:
        per_pair = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    total = weights.sum()
    value = (weights * per_pair).sum() / total.clamp(min=1e-12)
    r_w, r_l = beta * (chosen - ref_chosen).detach(), beta * (rejected - ref_rejected).detach()
    mean = (lambda x: float((weights * x).sum() / total)) if float(total) > 0 else (lambda x: float("nan"))
    return value, {"loss/dpo": value.item(), "rewards/chosen": mean(r_w), "rewards/rejected": mean(r_l),
                   "rewards/accuracies": mean((r_w > r_l).float()), "rewards/margins": mean(r_w - r_l)}


def sequence_logps(logp: torch.Tensor, mask: torch.Tensor, average: bool) -> torch.Tensor:
    """``(n, T)`` token log-probs to ``(n,)``: the sum over completion tokens, or their mean when ``average``."""
    total = (logp * mask).sum(1)
    return total / mask.sum(1).clamp(min=1) if average else total


@dataclass
class PreferenceBuffer(RolloutBuffer):
    """A rollout buffer of pairs: groups of two rows (chosen, rejected), with one loss weight per pair."""

    weights: torch.Tensor | None = None  # (n_pairs,) weight of pair g (rows 2g, 2g+1); 0 drops it


@dataclass
class PreferenceLossConfig(OnPolicyConfig):
    """The preference loss's hyperparameters, shared by offline and online DPO."""

    learning_rate: float = 1e-5
    """Adam step size."""
    samples_per_prompt: int = 2
    """Rows per pair (chosen, rejected): always 2."""
    beta: float = 0.1
    """β of DPO (implicit-reward scale), τ of IPO (target margin 1/(2τ))."""
    loss: str = "dpo"
    """'dpo' (sigmoid loss on summed log-probs) or 'ipo' (squared loss on per-token averages)."""
    label_smoothing: float = 0.0
    """ε: assumed probability that a label is flipped (cDPO); DPO only."""
    n_epochs: int = 1
    """Passes over each batch of pairs."""

    def validate(self) -> None:
        super().validate()
        check(self.samples_per_prompt == 2, "samples_per_prompt", self.samples_per_prompt, "must be 2 (a pair)")
        check(self.minibatch_size is None or self.minibatch_size % 2 == 0, "minibatch_size", self.minibatch_size,
              "must be even, so a pair is never split")
        check(is_number(self.beta) and self.beta > 0, "beta", self.beta, "must be > 0")
        check(self.loss in ("dpo", "ipo"), "loss", self.loss, "must be 'dpo' or 'ipo'")
        check(is_number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5, "label_smoothing",
              self.label_smoothing, "must be in [0, 0.5)")
        check(is_int(self.n_epochs) and self.n_epochs >= 1, "n_epochs", self.n_epochs, "must be an integer >= 1")


@dataclass
class DPOConfig(PreferenceLossConfig):
    """Offline DPO's hyperparameters (the shared ones are documented on :class:`OnPolicyConfig`)."""

    data: str = "simulated"
    """Preference source for load_preferences (file, dataset dir, hub name), or 'simulated' (the env's task)."""
    simulated_pairs: int = 1024
    """Pairs the 'simulated' source labels."""
    eval_fraction: float = 0.1
    """Share of pairs held out for eval/implicit_accuracy (a fixed split of the data)."""
    eval_pairs_every: int = 10
    """Report eval/implicit_accuracy every N updates (0: only through evaluate_preferences())."""

    def validate(self) -> None:
        super().validate()
        check(isinstance(self.data, str) and self.data.strip() != "", "data", self.data, "must name a source")
        check(is_int(self.simulated_pairs) and self.simulated_pairs >= 1, "simulated_pairs", self.simulated_pairs,
              "must be an integer >= 1")
        check(is_number(self.eval_fraction) and 0 <= self.eval_fraction < 1, "eval_fraction", self.eval_fraction,
              "must be in [0, 1)")
        check(is_int(self.eval_pairs_every) and self.eval_pairs_every >= 0, "eval_pairs_every", self.eval_pairs_every,
              "must be an integer >= 0")


class DPO(OnPolicyAgent):
    """Direct Preference Optimization from a preference file. ``DPO(env, policy=None, **DPOConfig fields)``."""

    config_class = DPOConfig
    algorithm = "DPO"
    uses_critic = False
    config: DPOConfig

    def _setup(self) -> None:
        self.train_pairs: list[PairItem] = []
        self.eval_pairs: list[PairItem] = []
        self._eval_ref = None
        if self.env is not None:  # without one the agent only predicts
            cfg = self.config
            items, ties = load_pairs(cfg.data, self.env.unwrapped.engine, simulated_pairs=cfg.simulated_pairs,
                                     seed=cfg.seed or 0)
            self.train_pairs, self.eval_pairs = split_pairs(items, cfg.eval_fraction)
            if len(self.train_pairs) < cfg.batch_size // 2:
                raise DataError(f"{cfg.data}: {len(self.train_pairs)} training pairs ({ties} ties dropped, "
                                f"{len(self.eval_pairs)} held out), fewer than the {cfg.batch_size // 2} of one batch "
                                "(batch_size/2); give more pairs or lower batch_size or eval_fraction")
        self.sampler = PairSampler(len(self.train_pairs), self._shuffle_gen)

    def _pair_buffer(self, items: list[PairItem], ref_logprobs: torch.Tensor | None = None) -> PreferenceBuffer:
        """Pairs as a buffer of (chosen, rejected) rows with policy (and, unless given, reference) log-probs."""
        engine, device = self.env.unwrapped.engine, self.device
        prompt_ids, prompt_mask = left_pad([it.prompt_ids for it in items for _ in range(2)], engine.pad, device=device)
        sides = [side for it in items for side in (it.chosen_ids, it.rejected_ids)]
        width = max(len(s) for s in sides)
        tokens = torch.tensor([s + [engine.pad] * (width - len(s)) for s in sides], device=device)
        mask = torch.tensor([[j < len(s) for j in range(width)] for s in sides], device=device)
        zeros = torch.zeros(mask.shape, device=device)
        buf = PreferenceBuffer(prompt_ids, prompt_mask, tokens, mask, zeros.clone(), zeros.clone(), zeros.clone(),
                               zeros.clone(), torch.tensor([1.0, 0.0] * len(items), device=device),
                               group_ids=torch.arange(len(items), device=device).repeat_interleave(2),
                               weights=torch.tensor([float(it.weight) for it in items], device=device))
        with torch.no_grad():
            for start in range(0, len(buf), self.config.minibatch_size):
                rows = torch.arange(start, min(start + self.config.minibatch_size, len(buf)), device=device)
                mb = buf.select(rows)
                buf.logprobs[rows, : mb.n_tokens] = self.evaluate_actions(mb, with_entropy=False)[0] * mb.token_mask
                if ref_logprobs is None:
                    buf.ref_logprobs[rows, : mb.n_tokens] = token_logprobs(
                        engine.ref, mb.input_ids[:, : -mb.n_tokens], mb.attention_mask[:, : -mb.n_tokens],
                        mb.tokens, mb.token_mask).to(device)
        if ref_logprobs is not None:
            buf.ref_logprobs = ref_logprobs
        return buf

    def collect(self) -> tuple[PreferenceBuffer, dict[str, float]]:
        items = [self.train_pairs[i] for i in self.sampler.draw(self.config.batch_size // 2)]
        buf = self._pair_buffer(items)
        margin = self._pair_stats(buf)[1]["rewards/margins_per_pair"]
        self.last_rollout_texts = [(it.prompt, it.chosen, m) for it, m in zip(items, margin.tolist())]
        return buf, {"objective/length": float(buf.token_mask.sum(1).float().mean())}

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        return {}  # no advantages: the loss reads log-probs only

    def _pair_stats(self, buf: RolloutBuffer | object, logp: torch.Tensor | None = None,
                    weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """The loss and metrics of a buffer or minibatch (rows chosen, rejected, ...) from ``logp`` (default: stored)."""
        avg = self.config.loss == "ipo"
        pol = sequence_logps(buf.logprobs if logp is None else logp, buf.token_mask, avg)
        ref = sequence_logps(buf.ref_logprobs, buf.token_mask, avg)
        loss, stats = preference_loss(pol[0::2], pol[1::2], ref[0::2], ref[1::2], beta=self.config.beta,
                                      loss=self.config.loss, label_smoothing=self.config.label_smoothing,
                                      weights=weights)
        stats["rewards/margins_per_pair"] = self.config.beta * ((pol - ref)[0::2] - (pol - ref)[1::2]).detach()
        return loss, stats

    def update(self, buffer: PreferenceBuffer) -> dict[str, float]:
        sums: dict[str, list[float]] = {}
        for _ in range(self.config.n_epochs):
            for mb in buffer.minibatches(self.config.minibatch_size, self._shuffle_gen):
                logp = self.evaluate_actions(mb, with_entropy=False)[0]
                loss, stats = self._pair_stats(mb, logp, buffer.weights[mb.group_ids[0::2]])
                loss.backward()
                stats["policy/grad_norm"] = self.optimizer_step()
                for k, v in stats.items():
                    if k != "rewards/margins_per_pair":
                        sums.setdefault(k, []).append(v)
        # a minibatch of ties only has no rewards/* (nan): the rollout's figure is the mean of those that do
        out = {k: (sum(kept) / len(kept)) if (kept := [x for x in v if x == x]) else float("nan")
               for k, v in sums.items()}
        every = getattr(self.config, "eval_pairs_every", 0)
        if every and (self.num_rollouts + 1) % every == 0 and self.eval_pairs:
            out.update(self.evaluate_preferences())
        return out

    @torch.no_grad()
    def evaluate_preferences(self) -> dict[str, float]:
        """The current policy's implicit-reward accuracy, margin and loss on the held-out pairs (NaN if none)."""
        if not self.eval_pairs:
            return {"eval/implicit_accuracy": float("nan")}
        buf = self._pair_buffer(self.eval_pairs, self._eval_ref)
        self._eval_ref = buf.ref_logprobs  # the reference is frozen: its log-probs are computed once
        loss, stats = self._pair_stats(buf, weights=buf.weights)
        return {"eval/implicit_accuracy": stats["rewards/accuracies"], "eval/margins": stats["rewards/margins"],
                "eval/loss": float(loss)}

    def _extra_state(self, directory: object) -> dict:
        return {"pairs": self.sampler.state_dict()}

    def _load_extra_state(self, path: object, meta: dict) -> None:
        self.sampler.load_state_dict(meta.get("pairs") or {})


@dataclass
class IPOConfig(DPOConfig):
    """IPO: DPO's config with the squared loss (``beta`` is τ)."""

    loss: str = "ipo"
    """'ipo' (squared loss on per-token average log-probs)."""


class IPO(DPO):
    """Identity Preference Optimisation (Azar et al., 2023). ``IPO(env, policy=None, **IPOConfig fields)``."""

    config_class = IPOConfig
    algorithm = "IPO"
