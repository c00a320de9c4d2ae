r"""Unmodified Stable-Baselines3 (and sb3-contrib) training on the text-generation environment.

Three pieces make stock ``stable_baselines3.PPO``/``A2C`` and ``sb3_contrib.MaskablePPO`` optimise the same
KL-regularised objective as the project's own agents (DESIGN §3):

* :class:`HFActorCriticPolicy` / :class:`HFMaskableActorCriticPolicy` — an SB3 actor-critic policy around
  any Hugging Face causal LM. The features are the LM's last hidden state at the last position of the
  left-padded observation, the LM head is the action net (its logits parametrise the ``Categorical``), and a
  small linear value head reads the same hidden state. Pretrained weights are never re-initialised.
* :class:`PolicyKLCallback` — the environment pays only ``β·log π_ref(a|s)`` (it cannot know π); the
  callback adds the agent's share ``−β·log π(a|s)`` to every reward in the rollout buffer, from the
  log-probs SB3 stored while sampling, and recomputes returns and advantages. Each token's reward is then
  exactly ``−β·k1`` (plus the score on the last token), propagated through the returns like any reward.
* :func:`make_sb3_agent` / :func:`train_sb3` — build the stock algorithm with both, with defaults that learn
  on ``rlhf_gym/Sentiment-v0`` in minutes on a CPU.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents.sb3 import make_sb3_agent
>>> env = gym.make("rlhf_gym/Sentiment-v0", max_new_tokens=4)
>>> model, kl_callback = make_sb3_agent("ppo", env, n_steps=16, batch_size=16, n_epochs=1, seed=0)
>>> model.learn(16, callback=kl_callback).num_timesteps  # a real run: learn(4096, ...)
16

See ``docs/sb3.md`` for where the KL term is exact and for the entropy-bonus alternative.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn
from transformers import PreTrainedModel

from rlhf_gym.core.generation import position_ids_from_mask, trim_left_padding
from rlhf_gym.core.models import load_causal_lm
from rlhf_gym.errors import ConfigError, ModelError

__all__ = [
    "SB3_DEFAULTS",
    "CausalLMFeatures",
    "HFActorCriticPolicy",
    "HFMaskableActorCriticPolicy",
    "PolicyKLCallback",
    "make_sb3_agent",
    "train_sb3",
]

ModelArg = str | Path | PreTrainedModel | None

#: Hyperparameters that make each stock algorithm learn on the embedded sentiment task in a few minutes on
#: 2 CPU cores (``n_envs=8``, 24-token episodes); anything passed to :func:`make_sb3_agent` overrides them.
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(learning_rate=1e-4, n_steps=64, batch_size=128, n_epochs=4, gamma=1.0, gae_lambda=0.95,
                clip_range=0.2, ent_coef=0.0, vf_coef=0.1, max_grad_norm=1.0, target_kl=None),
    "maskable_ppo": dict(learning_rate=1e-4, n_steps=64, batch_size=128, n_epochs=4, gamma=1.0, gae_lambda=0.95,
                         clip_range=0.2, ent_coef=0.0, vf_coef=0.1, max_grad_norm=1.0, target_kl=None),
    "a2c": dict(learning_rate=2e-4, n_steps=24, gamma=1.0, gae_lambda=0.95, ent_coef=0.0, vf_coef=0.1,
                max_grad_norm=1.0, normalize_advantage=True, use_rms_prop=False),
}
_OBS_KEYS = ("input_ids", "attention_mask")


# ----- the policy -------------------------------------------------------------------------------------


class CausalLMFeatures(BaseFeaturesExtractor):
    """Runs an HF causal LM's trunk on a left-padded observation; returns the last position's hidden state.

    SB3 hands observations over as floats (it preprocesses every ``Box`` that way); token ids are rounded
    back to integers here, which is exact for any vocabulary below 2**24. Columns that are padding in every
    row are dropped before the forward, so a batch costs its longest live sequence, not the full window.
    """

    def __init__(self, observation_space: spaces.Dict, model: PreTrainedModel):
        head = model.get_output_embeddings()
        if not isinstance(head, nn.Linear):
            raise ModelError(f"model {model.config.name_or_path!r} has no linear LM head to use as the action net")
        super().__init__(observation_space, features_dim=head.in_features)
        self.lm = model

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = observations["input_ids"].round().long()
        mask = observations["attention_mask"].round().long()
        ids, mask = trim_left_padding(ids, mask)
        out = self.lm.base_model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask))
        return out.last_hidden_state[:, -1]


# Arguments the adapter fixes: its trunk, its (empty) MLP and, above all, no orthogonal re-initialisation.
_FIXED_POLICY_ARGS = ("net_arch", "activation_fn", "features_extractor_class", "features_extractor_kwargs",
                      "share_features_extractor", "normalize_images")


class _HFLanguageModelPolicy:
    """What both adapters share; mixed in before SB3's ``ActorCriticPolicy`` or sb3-contrib's maskable one.

    Args:
        observation_space, action_space, lr_schedule: as SB3 passes them.
        model: the policy's LM — a hub name, a local directory, ``"embedded"``/``None`` (the shipped tiny
            model) or a loaded ``PreTrainedModel`` (trained in place; never pass the environment's reference).
        dropout: keep the LM's dropout active during updates. Off by default: with dropout on, PPO's ratio
            compares a noisy update-time policy with the noise-free policy that sampled the rollout.
        **kwargs: the base policy's other arguments (``optimizer_class``, ``optimizer_kwargs``, ...).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule,
                 model: ModelArg = None, dropout: bool = False, **kwargs: Any):
        if kwargs.pop("ortho_init", False):
            raise ConfigError("ortho_init=True would overwrite the pretrained LM's weights; the adapter never "
                              "re-initialises them")
        for key in set(_FIXED_POLICY_ARGS) & set(kwargs):
            raise ConfigError(f"policy argument {key!r} is fixed by the LM adapter and cannot be set")
        if not isinstance(observation_space, spaces.Dict) or set(_OBS_KEYS) - set(observation_space.spaces):
            raise ConfigError(f"the LM policy needs a Dict observation with {list(_OBS_KEYS)}, got {observation_space}")
        if not isinstance(action_space, spaces.Discrete):
            raise ConfigError(f"the LM policy needs a Discrete action space (the vocabulary), got {action_space}")
        lm = load_causal_lm(model)
        n_logits = lm.get_output_embeddings().out_features
        if int(action_space.n) != n_logits:
            raise ModelError(f"the environment has {int(action_space.n)} actions but the policy LM "
                             f"{lm.config.name_or_path!r} has {n_logits} logits: they must use the same vocabulary")
        self._model_arg, self.dropout = model, dropout
        super().__init__(  # type: ignore[call-arg]
            observation_space, action_space, lr_schedule, net_arch=[], activation_fn=nn.Identity, ortho_init=False,
            features_extractor_class=CausalLMFeatures, features_extractor_kwargs=dict(model=lm),
            share_features_extractor=True, normalize_images=False, **kwargs,
        )

    @property
    def lm(self) -> PreTrainedModel:
        """The wrapped causal LM; its parameters are the policy's (sampling from it samples the policy)."""
        return self.features_extractor.lm

    def _build(self, lr_schedule) -> None:
        """Replaces SB3's freshly initialised action net by the LM head and adds a zero-initialised value head."""
        self._build_mlp_extractor()  # net_arch=[]: an identity, so the latent is the hidden state itself
        self.action_net = self.lm.get_output_embeddings()
        hidden = self.features_dim
        self.value_net = nn.Linear(hidden, 1, dtype=self.action_net.weight.dtype)
        nn.init.zeros_(self.value_net.weight)  # V = 0 at first: the value loss does not jolt the shared trunk
        nn.init.zeros_(self.value_net.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)  # type: ignore[misc]
        self.lm.train(mode and self.dropout)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        for key in (*_FIXED_POLICY_ARGS, "ortho_init"):
            data.pop(key, None)
        data.update(model=self._model_arg, dropout=self.dropout)
        return data


class HFActorCriticPolicy(_HFLanguageModelPolicy, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` over an HF causal LM, for stock ``PPO`` and ``A2C``.

    ``PPO(HFActorCriticPolicy, env, policy_kwargs=dict(model="embedded"))``. The action distribution at an
    observation is the LM's next-token softmax at its last position: ``lm_head(final hidden state)``, which is
    the model's own logits for every LM whose head is a plain projection (GPT-2, Llama, Mistral, Qwen, ...).
    """


class HFMaskableActorCriticPolicy(_HFLanguageModelPolicy, MaskableActorCriticPolicy):
    """The same adapter for sb3-contrib's ``MaskablePPO`` (masks from the environment's ``action_masks()``)."""


# ----- the agent's share of the KL penalty -----------------------------------------------------------


def env_engines(vec_env: VecEnv) -> list:
    """The episode engines behind an SB3 ``VecEnv`` of :class:`~rlhf_gym.envs.TextGenEnv` (empty if it has none)."""
    try:
        return list(vec_env.get_attr("engine"))
    except AttributeError:
        return []


class PolicyKLCallback(BaseCallback):
    r"""Adds the agent's share of the KL penalty, ``−β·log π(a|s)``, to every reward of each rollout.

    The environment already paid ``β·log π_ref(a|s)``, so after this callback each token's reward is
    ``−β·(log π(a|s) − log π_ref(a|s)) = −β·k1`` plus the reward-model score on the last token — exactly the
    reward of DESIGN §3, with π the policy that sampled the rollout (as in TRL and in this project's agents).

    SB3 calls ``on_rollout_end`` after ``compute_returns_and_advantage``, before the update. The callback
    then subtracts ``β·log_probs`` (the rollout buffer's stored log-probs of the sampled actions) from
    ``rollout_buffer.rewards`` and recomputes returns and advantages with the buffer's own method, from the
    value of the observation after the last step (``model._last_obs``) and the last step's ``dones``. It does
    not rely on ``self.locals`` there: sb3-contrib's ``MaskablePPO`` does not refresh them before
    ``on_rollout_end``.

    β is the environment's (``env.engine.beta``), read at every rollout, so both halves always agree.
    Logged per rollout (TRL's names): ``objective/kl`` (mean per-episode sum of k1), ``objective/entropy``
    (mean per-episode sum of ``−log π``), ``objective/scores`` (mean reward-model score),
    ``objective/rlhf_reward`` (scores − β·kl) and ``objective/beta``, over the episodes that ended in it.
    SB3's own ``rollout/ep_rew_mean`` keeps showing the environment's reward alone.
    """

    def __init__(self, beta: float | None = None, verbose: int = 0):
        super().__init__(verbose)
        if beta is not None and not beta >= 0:
            raise ConfigError(f"kl beta must be >= 0, got {beta}")
        self._beta = beta
        self._episode_k1 = self._episode_neg_logp = np.zeros(0)
        self._finished: list[tuple[float, float, float]] = []

    def current_beta(self) -> float:
        """The environments' β (checked to be one value, and the callback's own if it was given one)."""
        engines = env_engines(self.training_env)
        if engines:
            beta = engines[0].beta
            if any(e.beta != beta for e in engines) or (self._beta is not None and self._beta != beta):
                raise ConfigError(f"the callback's beta {self._beta} differs from the environments' "
                                  f"{sorted({e.beta for e in engines})}: the KL split is only exact with one β")
            return float(beta)
        if self._beta is None:
            raise ConfigError("PolicyKLCallback needs beta= for an environment without an rlhf_gym engine")
        return self._beta

    def _init_callback(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            raise ConfigError(f"PolicyKLCallback works with on-policy algorithms, not {type(self.model).__name__}")
        normalizer = self.model.get_vec_normalize_env()
        if normalizer is not None and normalizer.norm_reward:
            raise ConfigError("VecNormalize(norm_reward=True) rescales the environment's rewards, so adding "
                              "-β·log π to them would not give -β·KL; use norm_reward=False")
        self.current_beta()  # fail now, not after the first rollout, if β is missing or inconsistent
        n = self.training_env.num_envs
        self._episode_k1, self._episode_neg_logp = np.zeros(n), np.zeros(n)

    def _on_step(self) -> bool:
        log_probs = self.locals["log_probs"].detach().cpu().numpy().reshape(-1)
        infos, dones = self.locals["infos"], self.locals["dones"]
        ref = np.array([info.get("ref_logprob", np.nan) for info in infos])
        self._episode_k1 += log_probs - ref
        self._episode_neg_logp -= log_probs
        for i in np.flatnonzero(dones):
            score = infos[i].get("rm_score", np.nan)
            self._finished.append((self._episode_k1[i], self._episode_neg_logp[i], score))
            self._episode_k1[i] = self._episode_neg_logp[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        beta, buffer = self.current_beta(), self.model.rollout_buffer
        buffer.rewards -= beta * buffer.log_probs
        with torch.no_grad():
            last_values = self.model.policy.predict_values(obs_as_tensor(self.model._last_obs, self.model.device))
        buffer.compute_returns_and_advantage(last_values=last_values, dones=self.model._last_episode_starts)
        if self._finished:
            kl, entropy, scores = (float(np.nanmean(x)) for x in zip(*self._finished))
            self.logger.record("objective/kl", kl)
            self.logger.record("objective/entropy", entropy)
            self.logger.record("objective/scores", scores)
            self.logger.record("objective/rlhf_reward", scores - beta * kl)
        self.logger.record("objective/beta", beta)
        self._finished = []


# ----- building and training ------------------------------------------------------------------------


def _algorithm_class(algo: str) -> tuple[type[OnPolicyAlgorithm], type[ActorCriticPolicy]]:
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO, HFActorCriticPolicy
    if algo == "a2c":
        from stable_baselines3 import A2C

        return A2C, HFActorCriticPolicy
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO, HFMaskableActorCriticPolicy
    raise ConfigError(f"unknown SB3 algorithm {algo!r}; choose ppo, a2c or maskable_ppo")


def _policy_model_for(engines: list, model: ModelArg) -> ModelArg:
    """The policy's LM: ``model`` if given, else a fresh copy of the environment's reference model."""
    ref = engines[0].ref if engines else None
    if model is None:
        if ref is None:
            raise ConfigError("pass model= for an environment without an rlhf_gym reference model")
        source = ref.config.name_or_path
        return source if source and Path(source).is_dir() else copy.deepcopy(ref)
    if any(model is e.ref for e in engines):
        raise ConfigError("the policy model is the environment's reference model: training would move the "
                          "reference too; pass a copy (or the same name/path, which loads a new one)")
    return model


def make_sb3_agent(
    algo: str,
    env: gym.Env | VecEnv | str,
    model: ModelArg = None,
    beta: float | None = None,
    *,
    kl_penalty: str = "reward",
    n_envs: int = 8,
    env_kwargs: dict | None = None,
    seed: int | None = None,
    policy_kwargs: dict | None = None,
    **sb3_kwargs: Any,
) -> tuple[OnPolicyAlgorithm, BaseCallback | None]:
    """Builds stock SB3 ``PPO``/``A2C`` or sb3-contrib ``MaskablePPO`` on the LM adapter; returns ``(model, callback)``.

    Train with ``model.learn(total_timesteps, callback=callback)``.

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"maskable_ppo"``.
        env: a Gymnasium env, an SB3 ``VecEnv``, or an env id (then ``n_envs`` copies in a ``DummyVecEnv``,
            made with ``env_kwargs`` and ``seed``).
        model: the policy LM (default: a new copy of the environment's reference model).
        beta: sets the KL coefficient of the environment(s) (default: keep theirs); the environment and the
            callback then use the same β.
        kl_penalty: ``"reward"`` (default, exact: :class:`PolicyKLCallback` adds ``−β·log π`` per token) or
            ``"entropy"`` (the per-state identity: ``ent_coef=β``, no callback returned; see ``docs/sb3.md``).
        policy_kwargs: extra arguments of the policy (``dropout``, ``optimizer_kwargs``, ...).
        **sb3_kwargs: the algorithm's hyperparameters, over :data:`SB3_DEFAULTS` (``verbose``, ``device``, ...).
    """
    algo_cls, policy_cls = _algorithm_class(algo)
    if kl_penalty not in ("reward", "entropy"):
        raise ConfigError(f"unknown kl_penalty {kl_penalty!r}; choose reward or entropy")
    if isinstance(env, str):
        # make_vec_env asks for render_mode="rgb_array" unless told otherwise; the text env renders "ansi" only.
        env_kwargs = {"render_mode": None, **(env_kwargs or {})}
        env = make_vec_env(env, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    vec_env = env if isinstance(env, VecEnv) else None
    if vec_env is not None:
        engines = env_engines(vec_env)
    else:
        engines = [env.unwrapped.engine] if hasattr(env.unwrapped, "engine") else []
    if beta is not None:
        if not beta >= 0:
            raise ConfigError(f"kl beta must be >= 0, got {beta}")
        for engine in engines:
            engine.beta = float(beta)
    policy_kwargs = {"model": _policy_model_for(engines, model), **(policy_kwargs or {})}
    kwargs = {**SB3_DEFAULTS[algo], **sb3_kwargs}
    env_beta = engines[0].beta if engines else beta
    if kl_penalty == "entropy":
        if env_beta is None:
            raise ConfigError("kl_penalty='entropy' needs beta= for an environment without an rlhf_gym engine")
        kwargs["ent_coef"] = float(env_beta)
    elif kwargs.get("ent_coef", 0.0):
        raise ConfigError("ent_coef > 0 adds an entropy bonus on top of the exact per-token KL penalty "
                          "(kl_penalty='reward'); set it to 0 or use kl_penalty='entropy'")
    if "batch_size" in kwargs:
        n_rollout = kwargs["n_steps"] * (vec_env.num_envs if vec_env is not None else 1)
        if "batch_size" not in sb3_kwargs:  # the default minibatch, capped at the rollout's size
            kwargs["batch_size"] = min(kwargs["batch_size"], n_rollout)
        if n_rollout % kwargs["batch_size"]:
            raise ConfigError(f"n_steps*n_envs = {n_rollout} is not divisible by batch_size {kwargs['batch_size']}")
    agent = algo_cls(policy_cls, env, policy_kwargs=policy_kwargs, seed=seed, **kwargs)
    callback = PolicyKLCallback(beta=env_beta if not engines else None) if kl_penalty == "reward" else None
    return agent, callback


def train_sb3(
    env_id: str = "rlhf_gym/Sentiment-v0",
    algo: str = "ppo",
    total_timesteps: int = 6_144,
    seed: int = 0,
    *,
    n_envs: int = 8,
    env_kwargs: dict | None = None,
    model: ModelArg = None,
    beta: float | None = None,
    kl_penalty: str = "reward",
    callback: BaseCallback | list[BaseCallback] | None = None,
    **sb3_kwargs: Any,
) -> OnPolicyAlgorithm:
    """Trains stock SB3 on ``n_envs`` copies of ``env_id`` with the LM adapter and the KL callback; returns the model.

    Seeded end to end (environments, SB3, torch). Evaluate with
    :func:`rlhf_gym.agents.evaluation.evaluate_sb3`. Other arguments are :func:`make_sb3_agent`'s.
    """
    agent, kl_callback = make_sb3_agent(algo, env_id, model=model, beta=beta, kl_penalty=kl_penalty, n_envs=n_envs,
                                        env_kwargs=env_kwargs, seed=seed, **sb3_kwargs)
    callbacks = [c for c in (kl_callback, *(callback if isinstance(callback, list) else [callback])) if c is not None]
    agent.learn(total_timesteps=total_timesteps, callback=callbacks)
    return agent
