"""``OnPolicyAgent``: the Stable-Baselines3-shaped shell every algorithm in this package shares.

An algorithm file subclasses it, names its config dataclass and writes :meth:`OnPolicyAgent.train`, the
update from one rollout. Everything else lives here once: building and checking the policy, the learn loop
(rollout → update → metrics → callbacks), ``predict``, ``generate``, and checkpoints (safetensors for
tensors, JSON for the rest; no pickles).

Units: ``total_timesteps`` and the ``step`` of every metric count **generated tokens** (each one is an
env step of the token-level MDP), so runs with different batch sizes share an x-axis.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from transformers import PreTrainedModel

from rlhf_gym.agents.buffer import Minibatch, RolloutBuffer
from rlhf_gym.agents.policy import ActorCritic, vocab_size
from rlhf_gym.agents.ptx import PtxMixin
from rlhf_gym.agents.rollout import Callback, OnPolicyConfig, Rollouts, run_callbacks
from rlhf_gym.agents.saving import Checkpointing
from rlhf_gym.agents.stepping import PolicyStepper
from rlhf_gym.core.checks import resolve_device
from rlhf_gym.core.generation import sample_categorical, trim_left_padding
from rlhf_gym.core.kl import make_kl_controller
from rlhf_gym.core.models import load_causal_lm, load_tokenizer
from rlhf_gym.core.sampler import LockstepMask, Samples, sample
from rlhf_gym.envs.vector import TextGenVecEnv
from rlhf_gym.errors import ConfigError, ModelError

PolicyArg = str | Path | PreTrainedModel | None
CallbackArg = Callback | Callable[[dict], bool | None] | list | None


class OnPolicyAgent(Rollouts, PtxMixin, Checkpointing):
    """Base of every native algorithm. ``Agent(env, policy=None, **hyperparams)``.

    Args:
        env: a :class:`~rlhf_gym.envs.TextGenVecEnv` (or a wrapper of one), an env id such as
            ``"rlhf_gym/Sentiment-v0"`` (built with ``gymnasium.make_vec``), or None for a prediction-only
            agent (``policy`` is then required).
        policy: the causal LM to train: None (a trainable copy of the env's reference model), a hub name or
            local directory, or a loaded model (used as is).
        logger: called with every update's metrics dict (e.g. to write ``metrics.jsonl`` or to W&B).
        env_kwargs: keyword arguments for ``gymnasium.make_vec`` when ``env`` is an id.
        **hyperparams: fields of the algorithm's config dataclass (see ``Agent.config_class``).
    """

    config_class: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig
    algorithm: ClassVar[str] = "OnPolicy"
    #: Whether the policy has a value head (critic-free algorithms set False: no value head is built).
    uses_critic: ClassVar[bool] = True

    def __init__(self, env: Any, policy: PolicyArg = None, *, logger: Callable[[dict], Any] | None = None,
                 env_kwargs: dict | None = None, **hyperparams: Any):
        self.config = self._make_config(hyperparams)
        self.env, self._env_spec = self._resolve_env(env, env_kwargs)
        cfg = self.config
        if cfg.batch_size is None:
            cfg.batch_size = self.env.unwrapped.num_envs if self.env is not None else 1
        if cfg.minibatch_size is None:
            cfg.minibatch_size = cfg.batch_size
        cfg.validate()
        ref = self.env.unwrapped.engine.ref if self.env is not None else None
        self.device = resolve_device(cfg.device, "device") or (
            next(ref.parameters()).device if ref is not None else torch.device("cpu"))
        lm = self._resolve_policy(policy, ref)
        self._check_models(lm, policy)
        if cfg.separate_value_model and not self.uses_critic:
            raise ConfigError(f"separate_value_model=True is invalid: {self.algorithm} has no critic")
        value_model = copy.deepcopy(lm).requires_grad_(True) if cfg.separate_value_model else None
        self.policy = ActorCritic(lm, value_model, critic=self.uses_critic).to(self.device)
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, eps=1e-5)
        beta = cfg.kl_coef if cfg.kl_coef is not None else (self.env.unwrapped.engine.beta if self.env else 0.0)
        self.kl_controller = make_kl_controller(beta, cfg.adaptive_kl_target, cfg.adaptive_kl_horizon)
        seed = cfg.seed if cfg.seed is not None else secrets.randbits(62)
        self._sample_gen = torch.Generator(device=self.device).manual_seed(seed)
        self._shuffle_gen = torch.Generator().manual_seed(seed + 1)
        if cfg.seed is not None and self.env is not None:
            self.env.unwrapped.np_random = np.random.default_rng(cfg.seed)
        self.num_timesteps = self.num_rollouts = self.num_episodes = 0
        self.logger, self.history = logger, []
        self.last_rollout_texts: list[tuple[str, str, float]] = []
        self._setup_ptx()
        self._setup()

    # ----- construction --------------------------------------------------------------------------------
    def _make_config(self, hyperparams: dict) -> OnPolicyConfig:
        base = hyperparams.pop("config", None)
        if base is not None and not isinstance(base, self.config_class):
            raise ConfigError(f"config must be a {self.config_class.__name__}, got {type(base).__name__}")
        if base is not None:
            hyperparams = {**asdict(base), **hyperparams}
        valid = {f.name for f in fields(self.config_class)}
        unknown = sorted(set(hyperparams) - valid)
        if unknown:
            raise ConfigError(f"unknown {self.algorithm} hyperparameter(s) {unknown}; valid: {sorted(valid)}")
        return self.config_class(**hyperparams)

    def _resolve_env(self, env: Any, env_kwargs: dict | None) -> tuple[Any, dict | None]:
        if env is None:
            return None, None
        spec = None
        if isinstance(env, str):
            kwargs = dict(env_kwargs or {})
            kwargs.setdefault("num_envs", self.config.batch_size or 8)
            try:
                env = gym.make_vec(env, **kwargs)
            except gym.error.Error as e:
                raise ConfigError(f"cannot make env {env!r}: {e}") from e
            try:
                spec = {"id": env.spec.id if env.spec else None, "kwargs": json.loads(json.dumps(kwargs))}
            except TypeError:
                spec = None  # kwargs that are not JSON (a model object, a callable) are not recorded
        if not isinstance(getattr(env, "unwrapped", env), TextGenVecEnv):
            raise ConfigError(f"{self.algorithm} trains on a TextGenVecEnv (gymnasium.make_vec('rlhf_gym/...')), "
                              f"got {type(env).__name__}")
        return env, spec

    def _resolve_policy(self, policy: PolicyArg, ref: PreTrainedModel | None) -> PreTrainedModel:
        if self.config.lora is not None and ref is not None and (policy is None or policy is ref):
            from rlhf_gym.envs.lora import lora_on_reference  # the policy shares the reference's weights

            return lora_on_reference(self.env.unwrapped.engine, self.config.lora).to(self.device).eval()
        if policy is None:
            if ref is None:
                raise ConfigError(f"{self.algorithm} needs an env or a policy")
            lm = copy.deepcopy(ref).requires_grad_(True)
        elif isinstance(policy, PreTrainedModel):
            lm = copy.deepcopy(policy).requires_grad_(True) if policy is ref else policy
        else:
            lm = load_causal_lm(policy).requires_grad_(True)
        if self.config.lora is not None:
            from rlhf_gym.core.lora import add_lora

            lm = add_lora(lm, self.config.lora)
        if not any(p.requires_grad for p in lm.parameters()):
            raise ModelError("the policy model has no trainable parameters")
        return lm.to(self.device).eval()

    def _check_models(self, lm: PreTrainedModel, policy: PolicyArg) -> None:
        if self.env is None:
            return
        env = self.env.unwrapped
        n, n_ref, n_actions = vocab_size(lm), vocab_size(env.engine.ref), int(env.single_action_space.n)
        if n != n_ref:
            raise ModelError(f"the policy has a {n}-token vocabulary but the reference model has {n_ref}: "
                             "policy and reference must share one tokenizer")
        if n != n_actions:
            raise ModelError(f"the env's action space Discrete({n_actions}) does not match the policy's "
                             f"{n}-token vocabulary")
        if isinstance(policy, str | Path):
            try:
                tok = load_tokenizer(policy)
            except ModelError:
                return  # no tokenizer next to the weights: the size check above is all we can do
            if tok.get_vocab() != env.engine.tok.get_vocab():
                raise ModelError(f"policy {str(policy)!r} has a different vocabulary from the env's tokenizer "
                                 f"{env.engine.tok.name_or_path!r}")

    def _setup(self) -> None:
        """Algorithm hook run at the end of ``__init__`` (NLPO builds its masking policy here)."""

    @property
    def lm(self) -> PreTrainedModel:
        """The policy's causal LM (what is deployed, evaluated and saved as ``policy/``)."""
        return self.policy.lm

    def _require_env(self) -> Any:
        if self.env is None:
            raise ConfigError(f"this {self.algorithm} agent has no env; pass env= to {self.algorithm}.load() to train")
        return self.env

    # ----- hooks an algorithm may override ---------------------------------------------------------------
    def sampling_mask_fn(self) -> LockstepMask | None:
        """``logits_mask`` for :func:`~rlhf_gym.core.sampler.sample` (None: all tokens allowed)."""
        return None

    def action_mask(self, mb: Minibatch) -> torch.Tensor | None:
        """Allowed tokens ``(n, T, V)`` at every completion position of a minibatch (None: all)."""
        return None

    def next_token_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Allowed next tokens ``(N, V)`` for :meth:`predict` (None: all)."""
        return None

    def update(self, batch: RolloutBuffer) -> dict[str, float]:
        """The algorithm: update the policy from one batch (advantages computed) and return its metrics."""
        raise NotImplementedError

    # ----- the shared pieces of an update ------------------------------------------------------------------
    def evaluate_actions(self, mb: Minibatch, with_entropy: bool = True
                         ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One teacher-forced forward: ``(log π(a_t|s_t), entropy of π(·|s_t), V(s_t))``, each ``(n, T)``.

        ``with_entropy=False`` skips the entropy (returns None). With ``ent_coef == 0`` the entropy is only a
        metric, so it is computed outside the autograd graph: its three ``(n, T, V)`` intermediates are neither
        kept for the backward pass nor differentiated (``scripts/bench_update.py`` measures the difference).
        """
        logits, values = self.policy(mb.input_ids, mb.attention_mask, mb.n_tokens)
        if self.config.temperature != 1.0:
            logits = logits / self.config.temperature
        allowed = self.action_mask(mb)
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        logp_all = logits.log_softmax(-1)
        logp = logp_all.gather(-1, mb.tokens[..., None]).squeeze(-1)
        if not with_entropy:
            return logp, None, values
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.ent_coef != 0):
            entropy = -(logp_all.exp() * logp_all.clamp(min=torch.finfo(logp_all.dtype).min)).sum(-1)
        return logp, entropy, values

    def optimizer_step(self) -> float:
        """Adds the PPO-ptx gradient (if ``ptx_coef`` > 0), clips the accumulated gradient, takes one optimizer
        step and clears it; returns the gradient norm."""
        self._add_ptx_gradient()
        self.reduce_gradients()
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def reduce_gradients(self) -> None:
        """Hook run after every backward pass of a step and before clipping (data-parallel training
        all-reduces the gradients here, see :mod:`rlhf_gym.agents.distributed`); nothing by default."""

    # ----- SB3-shaped API ------------------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: CallbackArg = None, progress_bar: bool = False) -> OnPolicyAgent:
        """Trains until ``total_timesteps`` more tokens have been generated (whole rollouts, so it may overshoot).

        After each rollout's update the metrics dict (``step`` = tokens so far, TRL-style keys) goes to
        ``self.logger``, to ``self.history`` and to every callback; a callback returning False stops.
        """
        self._require_env()
        if not isinstance(total_timesteps, int) or isinstance(total_timesteps, bool) or total_timesteps < 1:
            raise ConfigError(f"total_timesteps={total_timesteps!r} is invalid: must be an integer >= 1")
        callbacks = callback if isinstance(callback, list | tuple) else ([] if callback is None else [callback])
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_timesteps, unit="tok", desc=self.algorithm)
        done = 0
        try:
            while done < total_timesteps:
                start = time.perf_counter()
                buffer, metrics = self.collect()
                metrics.update(self.compute_advantages(buffer) or {})
                metrics.update(self.update(buffer))
                metrics.update(self._ptx_metrics())
                self.num_timesteps += buffer.n_tokens
                self.num_rollouts += 1
                self.num_episodes += len(buffer)
                metrics = {"step": self.num_timesteps, "rollout": self.num_rollouts, "episodes": self.num_episodes,
                           **metrics, "time/tokens_per_second": buffer.n_tokens / (time.perf_counter() - start)}
                self.history.append(metrics)
                if self.logger is not None:
                    self.logger(metrics)
                if bar is not None:
                    bar.update(min(buffer.n_tokens, total_timesteps - done))
                    bar.set_postfix(score=f"{metrics.get('objective/scores', float('nan')):.3f}",
                                    kl=f"{metrics.get('objective/kl', float('nan')):.2f}")
                done += buffer.n_tokens
                if not run_callbacks(callbacks, metrics):
                    break
        finally:
            if bar is not None:
                bar.close()
        return self

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int | None = None,
                 generator: torch.Generator | None = None) -> Samples:
        """Samples continuations of left-padded prompts as the agent acts (temperature, NLPO's mask, and no EOS
        before the env's ``min_new_tokens``)."""
        engine = self._require_env().unwrapped.engine
        max_new_tokens = max_new_tokens or engine.max_new_tokens
        return sample(self.policy.lm, prompt_ids.to(self.device), prompt_mask.to(self.device),
                      max_new_tokens=max_new_tokens, eos_token_id=engine.eos,
                      pad_token_id=engine.pad, temperature=self.config.temperature,
                      generator=generator or self._sample_gen, logits_mask=self.sampling_mask_fn(),
                      min_new_tokens=min(getattr(engine, "min_new_tokens", 0), max_new_tokens),
                      slots=getattr(self.config, "rollout_slots", None))

    @torch.no_grad()
    def predict(self, observation: dict, state: Any = None, episode_start: Any = None,
                deterministic: bool = False, action_masks: Any = None) -> tuple[np.ndarray, None]:
        """Next tokens for env observations (one obs or a batch; left-padded ``input_ids``/``attention_mask``).

        Reads the policy's next-token distribution at the last position; samples from it (with the agent's
        temperature and mask) or takes the argmax when ``deterministic``. Returns ``(actions, None)``.
        With ``state`` from :meth:`stepper` it keeps a KV cache across calls instead of re-encoding the
        observation (``episode_start`` marks new episodes) and returns ``(actions, state)``; that state counts
        each row's tokens and keeps EOS out until the env's ``min_new_tokens``. An observation alone does not
        say how many of its tokens were generated, so without a state pass ``action_masks=env.action_masks()``
        (bool ``(V,)`` or ``(N, V)``, as sb3-contrib's ``MaskablePPO.predict`` takes them) to respect it.
        """
        if isinstance(state, PolicyStepper):
            return state.act(observation, episode_start, deterministic)[0], state
        try:
            ids = torch.as_tensor(np.asarray(observation["input_ids"]), device=self.device).long()
            mask = torch.as_tensor(np.asarray(observation["attention_mask"]), device=self.device).long()
        except (KeyError, TypeError, IndexError) as e:
            raise ConfigError("predict() takes an observation dict with 'input_ids' and 'attention_mask'") from e
        single = ids.ndim == 1
        ids, mask = (ids[None], mask[None]) if single else (ids, mask)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ConfigError(f"observation input_ids {tuple(ids.shape)} and attention_mask {tuple(mask.shape)} "
                              "must have the same shape (W,) or (N, W)")
        ids, mask = trim_left_padding(ids, mask)
        logits = self.policy.next_token_logits(ids, mask) / self.config.temperature
        allowed = self.next_token_mask(ids, mask)
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        if action_masks is not None:
            given = torch.as_tensor(np.asarray(action_masks), device=logits.device)
            if given.dtype != torch.bool or given.reshape(-1, logits.shape[-1]).shape != logits.shape:
                raise ConfigError(f"action_masks of shape {tuple(given.shape)} is invalid: expected booleans of "
                                  f"shape {tuple(logits.shape[1:]) if single else tuple(logits.shape)}")
            logits = logits.masked_fill(~given.reshape(logits.shape), float("-inf"))
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = sample_categorical(logits.softmax(-1), self._sample_gen)
        actions = actions.cpu().numpy()
        return (actions[0] if single else actions), None

    def stepper(self, num_envs: int | None = None) -> PolicyStepper:
        """A KV-cached recurrent state for stepping the vector env token by token with :meth:`predict`."""
        engine = self._require_env().unwrapped.engine
        return PolicyStepper(self.policy.lm, num_envs or engine.n, engine.width, engine.pad,
                             temperature=self.config.temperature, mask_fn=self.next_token_mask,
                             generator=self._sample_gen, eos_token_id=engine.eos,
                             min_new_tokens=getattr(engine, "min_new_tokens", 0))

    def __repr__(self) -> str:
        return f"{self.algorithm}({self.config})"
