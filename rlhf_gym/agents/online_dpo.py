r"""Online DPO (Guo et al., 2024, "Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792).

Each round samples two completions per prompt from the **current** policy (the shared rollout of
:mod:`rlhf_gym.agents.rollout` with ``samples_per_prompt=2``; the env pays no KL, ``reward_beta() = 0``: the
loss's β keeps the policy near the reference), labels each pair, orders it (chosen, rejected), and takes the
DPO or IPO step of :class:`~rlhf_gym.agents.dpo.DPO` (the same :func:`~rlhf_gym.agents.dpo.preference_loss`)::

    labeler="reward":      y_w = argmax of the env's reward function (its reward model, or the gold judge)
    labeler="annotators":  y_w drawn from the task's simulated annotators (Bradley-Terry with flips) over its
                           annotator judge, P(A ≻ B) = Annotator.p_first(judge(A), judge(B))

Ties (equal scores under "reward", identical completions under either labeler) carry no preference: they
keep their rows (so every batch has the same shape and their tokens count) with loss weight 0, i.e. they are
dropped from the loss and from the reward metrics. Annotator draws use the agent's shuffling generator, so a
resumed run is exact.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents import OnlineDPO
>>> env = gym.make_vec("rlhf_gym/Sentiment-v0", num_envs=4, max_new_tokens=4)
>>> agent = OnlineDPO(env, seed=0).learn(32)  # a real run: learn(8_000)
>>> agent.num_timesteps >= 32, "rewards/accuracies" in agent.history[-1]
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from rlhf_gym.agents.dpo import DPO, PreferenceBuffer, PreferenceLossConfig
from rlhf_gym.agents.preference_data import PairSampler
from rlhf_gym.agents.rollout import Rollouts
from rlhf_gym.core.checks import check
from rlhf_gym.rewards.annotators import parse_annotators
from rlhf_gym.rewards.base import checked_scores


@dataclass
class OnlineDPOConfig(PreferenceLossConfig):
    """Online DPO's hyperparameters (the loss's on :class:`~rlhf_gym.agents.dpo.PreferenceLossConfig`)."""

    learning_rate: float = 1e-4
    """Adam step size."""
    labeler: str = "reward"
    """Who orders each pair: 'reward' (the env's reward function) or 'annotators' (the task's simulated ones)."""

    def validate(self) -> None:
        super().validate()
        check(self.labeler in ("reward", "annotators"), "labeler", self.labeler, "must be 'reward' or 'annotators'")


class OnlineDPO(DPO):
    """DPO on pairs sampled from the current policy. ``OnlineDPO(env, policy=None, **OnlineDPOConfig fields)``."""

    config_class = OnlineDPOConfig
    algorithm = "OnlineDPO"
    config: OnlineDPOConfig

    def _setup(self) -> None:
        self.train_pairs, self.eval_pairs = [], []  # no pair data: the env's evaluation applies
        self.sampler = PairSampler(0, self._shuffle_gen)
        if self.env is not None and self.config.labeler == "annotators":
            task = self.env.unwrapped.engine.task
            self._judge = task.make_annotator_judge()
            self._annotators = parse_annotators(task.annotators, temperature=task.annotator_temperature)

    def reward_beta(self) -> float:
        return 0.0  # the KL to the reference is in the loss, not in the reward

    def labels(self, prompts: list[str], completions: list[str], scores: torch.Tensor) -> torch.Tensor:
        """Per pair (rows 2g, 2g+1): 1 if the first row is preferred, −1 if the second is, 0 for a tie."""
        first, second = scores[0::2].float(), scores[1::2].float()
        same = torch.tensor([a == b for a, b in zip(completions[0::2], completions[1::2])], device=scores.device)
        if self.config.labeler == "reward":
            return torch.sign(first - second).masked_fill(same, 0.0)
        judged = checked_scores(self._judge, prompts, completions).tolist()
        who = torch.randint(len(self._annotators), (len(first),), generator=self._shuffle_gen).tolist()
        u = torch.rand(len(first), generator=self._shuffle_gen, dtype=torch.float64).tolist()
        p = [self._annotators[w].p_first(judged[2 * g], judged[2 * g + 1]) for g, w in enumerate(who)]
        return torch.tensor([1.0 if ug < pg else -1.0 for ug, pg in zip(u, p)], device=scores.device).masked_fill(same, 0.0)

    def collect(self) -> tuple[PreferenceBuffer, dict[str, float]]:
        buf, metrics = Rollouts.collect(self)
        prompts, completions, _ = zip(*self.last_rollout_texts)
        label = self.labels(list(prompts), list(completions), buf.scores)
        pair = torch.arange(len(label), device=buf.tokens.device)
        swap = (label < 0).long()  # the second row was preferred: it goes first
        order = torch.stack([2 * pair + swap, 2 * pair + 1 - swap], 1).reshape(-1)
        rows = {f.name: getattr(buf, f.name)[order] for f in fields(buf) if f.name not in ("group_ids", "advantages",
                                                                                           "returns")}
        out = PreferenceBuffer(**rows, group_ids=buf.group_ids, weights=(label != 0).float())
        scores = out.scores
        kept = label != 0
        metrics["objective/beta"] = 0.0  # what the env paid per token; the loss's β is config.beta
        metrics["online/tie_fraction"] = float((~kept).float().mean())
        metrics["online/score_margin"] = float((scores[0::2] - scores[1::2])[kept].mean()) if kept.any() else 0.0
        return out, metrics
