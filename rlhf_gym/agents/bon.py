r"""Best-of-n sampling (Nakano et al. 2021, WebGPT; Stiennon et al. 2020): a policy that trains nothing.

For a prompt x, draw n continuations y_1 … y_n ~ π(·|x) independently and return the one the env's reward
function (the reward model) scores highest, ``y* = argmax_i r(x, y_i)`` (the first of tied ones). π is the
agent's LM — a copy of the env's reference unless another ``policy`` is given — so this is the "best-of-n
front" other algorithms are compared with: reward bought by n forward samples instead of by gradient steps.

KL. Let ``F(t) = P_{y~π}(r(x, y) ≤ t)`` and ``F⁻(t) = P(r < t)``. The best of n has reward level t with
probability ``F(t)^n − F⁻(t)^n`` and, within a level, is distributed as π, so its density ratio is

    π_bon(y|x) / π(y|x) = (F^n − F⁻^n) / (F − F⁻)  at t = r(x, y)      (= n·F^{n−1} when there are no ties)

and, with no ties (a continuous reward distribution), ``KL(π_bon ‖ π) = log n − (n−1)/n`` exactly
(``kl_analytic``; Stiennon et al. 2020, App. G; Gao et al. 2022 use it as the KL axis of best-of-n). Beirami
et al. (2024) show this value is an **upper bound**: ties (a discrete reward, repeated completions) lower the
true KL. The **measured** ``kl`` is the plug-in of the exact ratio above: for each prompt, an independent pool
of m = ``kl_pool`` samples of π together with y* give the empirical ``F̂`` and ``F̂⁻`` (fractions of the m + 1
rewards ≤ and < r(y*)), and

    KL̂(x) = log[(F̂^n − F̂⁻^n) / (F̂ − F̂⁻)]      (≈ log n + (n−1)·log F̂ without ties; consistent as m → ∞)

averaged over the prompts (F̂ − F̂⁻ ≥ 1/(m+1) > 0, so it is always finite). A finite pool biases it low: on
a continuous reward (20 000 prompts) m = 16 gives 0.535 for n = 4 (analytic 0.636) and 1.42 for n = 16 (1.835);
m = 64 gives 0.615 and 1.72; m = 256 gives 0.627 and 1.80. Both measure KL to π, which is the env's reference
when the LM is its copy.

``learn`` trains nothing but runs like any agent (for ``rlhf-gym train``): each rollout draws ``batch_size``
prompts, samples n candidates each (all counted as timesteps; the KL pool is not) and logs the chosen
samples' ``objective/scores``, the measured ``objective/kl`` and ``bon/kl_analytic``. :func:`evaluate
<rlhf_gym.agents.evaluation.evaluate>` samples through :meth:`BestOfN.sample_for_evaluation`.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import BestOfN
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = BestOfN(env, n=4, kl_pool=8, seed=0).learn(16)
>>> last = agent.history[-1]
>>> round(last["bon/kl_analytic"], 4), last["objective/scores"] >= last["bon/candidate_scores"]
(0.6363, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlhf_gym.agents.buffer import RolloutBuffer
from rlhf_gym.agents.core import OnPolicyAgent
from rlhf_gym.agents.rollout import OnPolicyConfig
from rlhf_gym.core.checks import check, is_int
from rlhf_gym.core.sampler import Samples
from rlhf_gym.rewards.base import checked_scores


def analytic_kl(n: int) -> float:
    """``log n − (n−1)/n``: KL(best-of-n ‖ π) for a reward without ties, an upper bound otherwise.

    >>> analytic_kl(1), round(analytic_kl(2), 6)
    (0.0, 0.193147)
    """
    return math.log(n) - (n - 1) / n


def measured_kl(best: torch.Tensor, pool: torch.Tensor, n: int) -> torch.Tensor:
    """Per-prompt estimate ``log[(F̂^n − F̂⁻^n)/(F̂ − F̂⁻)]`` of KL(best-of-n ‖ π) (see the module docstring).

    ``best`` ``(B,)`` is the reward of each prompt's chosen sample, ``pool`` ``(B, m)`` the rewards of m
    independent samples of π per prompt; F̂, F̂⁻ are over the pool and the chosen sample together.
    """
    best, pool = best.double()[:, None], pool.double()
    total = pool.shape[1] + 1
    f = ((pool <= best).sum(1) + 1) / total
    f_below = (pool < best).sum(1) / total
    return torch.log((f.pow(n) - f_below.pow(n)) / (f - f_below)).float()


@dataclass
class BestOfNConfig(OnPolicyConfig):
    """Best-of-n's settings (``batch_size`` counts prompts per rollout; nothing is trained)."""

    batch_size: int | None = None
    """Prompts per rollout, each sampled n times (None: the env's ``num_envs``)."""
    n: int = 4
    """Candidates sampled per prompt; the reward function's favourite is returned."""
    kl_pool: int = 64
    """m: independent samples per prompt whose rewards estimate the CDF in the measured KL (its low bias grows like n/m)."""

    def validate(self) -> None:
        super().validate()
        check(is_int(self.n) and self.n >= 1, "n", self.n, "must be an integer >= 1")
        check(is_int(self.kl_pool) and self.kl_pool >= 1, "kl_pool", self.kl_pool, "must be an integer >= 1")
        check(self.samples_per_prompt == 1, "samples_per_prompt", self.samples_per_prompt,
              "must be 1: best-of-n samples n per prompt itself")
        check(self.ptx_coef == 0, "ptx_coef", self.ptx_coef, "must be 0: best-of-n trains nothing")


class BestOfN(OnPolicyAgent):
    """Best-of-n sampling from the agent's LM. ``BestOfN(env, policy=None, n=4, kl_pool=64, ...)``.

    Best-of-n is a policy over whole completions: ``predict`` and ``stepper`` (token by token) act with the LM.
    """

    config_class = BestOfNConfig
    algorithm = "BestOfN"
    uses_critic = False
    config: BestOfNConfig

    def _prompt_texts(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[str]:
        tok = self.env.unwrapped.engine.tok
        return tok.batch_decode([p[m.bool()].tolist() for p, m in zip(prompt_ids, prompt_mask)],
                                skip_special_tokens=True)

    def _score(self, prompts: list[str], s: Samples) -> tuple[torch.Tensor, list[str]]:
        """The env reward function's score of each sample (EOS dropped before decoding) and its text."""
        engine = self.env.unwrapped.engine
        completions = engine.tok.batch_decode([row[m & (row != engine.eos)].tolist() for row, m in
                                               zip(s.tokens.cpu(), s.mask.cpu())], skip_special_tokens=True)
        return checked_scores(engine.reward_fn, prompts, completions).float(), completions

    @torch.no_grad()
    def best_of_n(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int | None = None,
                  generator: torch.Generator | None = None, prompts: list[str] | None = None) -> dict:
        """Samples n candidates and ``kl_pool`` pool samples per prompt; returns ``candidates`` (Samples,
        ``B·n`` rows, groups of n), ``scores`` ``(B, n)``, ``best`` ``(B,)`` indices, ``kl`` ``(B,)``,
        ``completions`` (the candidates' texts) and ``prompts``."""
        self._require_env()
        cfg = self.config
        prompts = prompts if prompts is not None else self._prompt_texts(prompt_ids, prompt_mask)

        def draw(k: int) -> tuple[Samples, torch.Tensor, list[str]]:
            s = self.generate(prompt_ids.repeat_interleave(k, 0), prompt_mask.repeat_interleave(k, 0),
                              max_new_tokens, generator)
            scores, texts = self._score([p for p in prompts for _ in range(k)], s)
            return s, scores.reshape(len(prompts), k), texts

        candidates, scores, texts = draw(cfg.n)
        _, pool, _ = draw(cfg.kl_pool)
        best = scores.argmax(1)
        kl = measured_kl(scores.gather(1, best[:, None]).squeeze(1), pool, cfg.n)
        return dict(candidates=candidates, scores=scores, best=best, kl=kl, completions=texts, prompts=prompts)

    def sample_for_evaluation(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                              generator: torch.Generator) -> tuple[Samples, dict[str, torch.Tensor]]:
        """The hook :func:`~rlhf_gym.agents.evaluation.evaluate` samples through: the best of n per prompt, with
        its measured ``kl``, ``kl_analytic`` and ``rm_reward_candidates`` (the mean score of all n)."""
        out = self.best_of_n(prompt_ids, prompt_mask, max_new_tokens, generator)
        c, rows = out["candidates"], torch.arange(len(out["best"])) * self.config.n + out["best"].cpu()
        chosen = Samples(c.tokens[rows], c.logprobs[rows], c.mask[rows])
        return chosen, {"kl": out["kl"], "kl_analytic": torch.full_like(out["kl"], analytic_kl(self.config.n)),
                        "rm_reward_candidates": out["scores"].mean(1)}

    def collect(self) -> tuple[RolloutBuffer, dict[str, float]]:
        """One rollout: ``batch_size`` prompts, all n candidates of each stored as a group of rows."""
        env, cfg, device = self._require_env().unwrapped, self.config, self.device
        prompt_ids, prompt_mask, indices = env.sample_prompts(cfg.batch_size)
        prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
        out = self.best_of_n(prompt_ids, prompt_mask, generator=self._sample_gen,
                             prompts=[env.engine.prompts[i] for i in indices])
        c, n, best = out["candidates"], cfg.n, out["best"].cpu()
        width = int(c.mask.sum(1).max())
        mask, zeros = c.mask[:, :width], torch.zeros(c.mask[:, :width].shape, device=device)
        buf = RolloutBuffer(prompt_ids.repeat_interleave(n, 0), prompt_mask.repeat_interleave(n, 0), c.tokens[:, :width],
                            mask, c.logprobs[:, :width] * mask, zeros, zeros.clone(), zeros.clone(),
                            out["scores"].reshape(-1).to(device),
                            group_ids=torch.arange(len(best), device=device).repeat_interleave(n))
        rows = torch.arange(len(best)) * n + best
        chosen = out["scores"].gather(1, best[:, None]).squeeze(1)
        self.last_rollout_texts = [(out["prompts"][g], out["completions"][int(r)], float(chosen[g]))
                                   for g, r in enumerate(rows)]
        return buf, {"objective/scores": float(chosen.mean()), "objective/kl": float(out["kl"].mean()),
                     "bon/kl_analytic": analytic_kl(n), "bon/candidate_scores": float(out["scores"].mean()),
                     "objective/length": float(mask[rows.to(mask.device)].sum(1).float().mean())}

    def compute_advantages(self, batch: RolloutBuffer) -> dict[str, float]:
        return {}  # nothing is trained

    def update(self, batch: RolloutBuffer) -> dict[str, float]:
        return {}
