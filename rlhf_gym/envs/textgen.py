"""``TextGenEnv``: text generation as a Gymnasium environment, one token per step.

Observation: ``{"input_ids", "attention_mask"}``, integer arrays of fixed length
``W = max_prompt_tokens + max_new_tokens``, **left-padded** — the newest token is always the last element,
so a policy reads its next-token distribution at position ``-1``. Action: ``Discrete(vocab_size)``, the next
token. An episode is one prompt and its continuation; it ends (``terminated``) on EOS or after
``max_new_tokens`` tokens. The length cap is ``terminated``, not ``truncated``: the reward model scores the
text at the cap, so the episode really is over and nothing should be bootstrapped past it. With
``min_new_tokens`` EOS is an invalid action until that many tokens exist (:meth:`TextGenEnv.action_masks`
leaves it out).

Reward on each step is ``β·log π_ref(a|s)``, the environment's share of the KL penalty ``−β·KL_t`` (see
:mod:`rlhf_gym.core.kl` for the split), or the full ``−β·KL_t`` under ``kl_estimator`` on a step whose
action's log-prob the agent gave first (:meth:`TextGenEnv.set_policy_logprobs`), plus the reward function's
score of the finished continuation on the last step. The reward is a Python float; ``info`` carries
``ref_logprob`` (an ``np.float32``) every step and ``rm_score`` (``np.float32``), ``prompt`` and
``completion`` (str) at the end. ``docs/env.md`` is the full contract.

>>> import gymnasium as gym, rlhf_gym
>>> env = gym.make("rlhf_gym/Sentiment-v0", max_new_tokens=4)
>>> obs, info = env.reset(seed=0)
>>> obs["input_ids"].shape == env.observation_space["input_ids"].shape
True
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> type(reward), info["ref_logprob"].dtype
(<class 'float'>, dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.core.checks import check, check_int, check_number, is_int, is_number, resolve_device
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.kl import check_estimator
from rlhf_gym.core.models import load_causal_lm, load_tokenizer, resolve_model_path
from rlhf_gym.envs.engine import MAX_BETA, EpisodeEngine, check_min_new_tokens
from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards import make_reward
from rlhf_gym.rewards.base import RewardFunction
from rlhf_gym.tasks import DEFAULT_TASK, Task, get_task

ModelArg = str | Path | PreTrainedModel | None


def build_engine(
    num_rows: int,
    model: ModelArg,
    tokenizer: str | PreTrainedTokenizerBase | None,
    prompts: str | Path | Sequence[str],
    reward: str | RewardFunction | Callable,
    beta: float,
    kl_estimator: str,
    max_new_tokens: int,
    max_prompt_tokens: int | None,
    device: str | torch.device | None,
    min_new_tokens: int = 0,
    task: str | Task | None = None,
) -> EpisodeEngine:
    """Resolves the environment's keyword arguments into an :class:`EpisodeEngine` (shared by both envs).

    ``task`` (default ``sentiment``) fills what is not given: ``model=None`` is its model (and tokenizer),
    ``prompts=None`` its training prompts, ``reward="gold"`` its gold judge; the engine keeps it as
    ``engine.task`` (evaluation reads its gold from there). Every argument is checked before a model is
    loaded, so a typo costs no loading time.
    """
    task = get_task(DEFAULT_TASK if task is None else task)
    if model is None:
        model, tokenizer = task.model, tokenizer if tokenizer is not None else task.tokenizer
    if prompts is None:
        prompts = task.train_prompts
    device = resolve_device(device, "device")
    check_number(beta, "beta", low=0, high=MAX_BETA)
    check_int(max_new_tokens, "max_new_tokens", low=1)
    check_min_new_tokens(min_new_tokens, max_new_tokens)
    if max_prompt_tokens is not None:
        check_int(max_prompt_tokens, "max_prompt_tokens", low=1)
    check(isinstance(kl_estimator, str), "kl_estimator", kl_estimator, "must be 'k1', 'k2' or 'k3'")
    check_estimator(kl_estimator)
    if not (model is None or isinstance(model, str | Path | PreTrainedModel)):
        raise ConfigError(f"model={model!r} is invalid: a hub name, a local directory, 'embedded' or a "
                          f"PreTrainedModel, not {type(model).__name__}")
    if not (tokenizer is None or isinstance(tokenizer, str | Path | PreTrainedTokenizerBase)):
        raise ConfigError(f"tokenizer={tokenizer!r} is invalid: a name, a directory or a tokenizer, "
                          f"not {type(tokenizer).__name__}")
    prompt_list = load_prompts(prompts)
    if isinstance(model, PreTrainedModel):
        ref = model.to(device) if device is not None else model  # used under no_grad; never modified
    else:
        ref = load_causal_lm(model, device=device)
    tok = load_tokenizer(tokenizer if tokenizer is not None else (
        resolve_model_path(model) if not isinstance(model, PreTrainedModel) else model.config.name_or_path))
    reward_fn = make_reward(reward, gold=task.make_gold)
    engine = EpisodeEngine(
        ref, tok, prompt_list, reward_fn, num_rows=num_rows, beta=beta, kl_estimator=kl_estimator,
        max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, min_new_tokens=min_new_tokens,
    )
    engine.task = task
    return engine


def observation_space(engine: EpisodeEngine) -> spaces.Dict:
    w, v = engine.width, engine.vocab_size
    return spaces.Dict({
        "input_ids": spaces.Box(0, v - 1, shape=(w,), dtype=np.int64),
        "attention_mask": spaces.Box(0, 1, shape=(w,), dtype=np.int64),
    })


def pick_prompt(engine: EpisodeEngine, rng: np.random.Generator, options: dict | None) -> int:
    """The prompt index for a reset: ``options["prompt_index"]`` or ``options["prompt"]`` if given, else random."""
    options = check_options(options)
    if "prompt_index" in options:
        return check_prompt_index(engine, options["prompt_index"])
    if "prompt" in options:
        return engine.add_prompt(options["prompt"])
    return int(rng.integers(len(engine.prompts)))


def check_options(options: object) -> dict:
    """``reset(options=...)`` as a dict with known keys only (``reset_mask`` is the vector env's)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"options={options!r} is invalid: a dict such as {{'prompt_index': 0}} or None")
    unknown = set(options) - {"prompt", "prompt_index", "reset_mask"}
    if unknown:
        raise ConfigError(f"unknown reset option(s) {sorted(map(str, unknown))}; valid: prompt, prompt_index")
    if "prompt" in options and not isinstance(options["prompt"], str):
        raise ConfigError(f"options['prompt']={options['prompt']!r} is invalid: must be a string")
    return dict(options)


def check_prompt_index(engine: EpisodeEngine, value: object) -> int:
    """``value`` as a prompt index, or a ConfigError naming it (not an integer, or out of range)."""
    if not is_int(value):
        raise ConfigError(f"options['prompt_index']={value!r} is invalid: must be an integer")
    if not 0 <= value < len(engine.prompts):
        raise ConfigError(f"prompt_index {int(value)} is out of range for {len(engine.prompts)} prompts")
    return int(value)


def check_seed(seed: object) -> int | None:
    """A reset seed: None or an integer >= 0 (Gymnasium's rule, as a one-line ConfigError)."""
    return None if seed is None else check_int(seed, "seed", low=0)


def check_policy_logprob(value: object) -> float | None:
    """The agent's log-prob of its next action: None (none given) or a finite real number."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 0:
        value = value.item()
    if not is_number(value):
        raise ConfigError(f"policy_logprob={value!r} is invalid: must be a finite number (the log-prob of "
                          "the next action) or None")
    return float(value)


def check_render_mode(render_mode: object, modes: Sequence[str], owner: str) -> None:
    if render_mode is not None and (not isinstance(render_mode, str) or render_mode not in modes):
        valid = " or ".join([repr(m) for m in modes] + ["None"])
        raise ConfigError(f"render_mode={render_mode!r} is invalid: {owner} supports {valid}")


TEXT_KEYS = ("prompt", "completion")


def check_text_info(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"text_info={value!r} is invalid: must be true or false (a bool)")
    return value


def without_text(info: dict) -> dict:
    """``info`` without its strings (``prompt``, ``completion`` and their ``_`` masks), also inside
    ``final_info``: for clients that turn every info value into a tensor (TorchRL)."""
    return {k: without_text(v) if isinstance(v, dict) else v for k, v in info.items()
            if k.lstrip("_") not in TEXT_KEYS}


class TextGenEnv(gym.Env):
    """Token-by-token text generation with a KL-shaped reward (see the module docstring for the contract).

    Args:
        model: the frozen reference model, which also fixes the action space: a hub name (``"gpt2"``), a
            local directory, ``"embedded"`` (the shipped tiny review GPT-2), a loaded model (used as is), or
            None (default): the task's model.
        tokenizer: defaults to the model's; it must not have more tokens than the model has embeddings.
        prompts: a list of strings or a source for :func:`rlhf_gym.core.data.load_prompts` (a
            ``.txt``/``.jsonl`` file, ``"hf:imdb"``, a dataset folder); None (default): the task's training
            prompts.
        reward: ``"gold"`` (the task's gold judge), a reward-model or classifier directory, a :class:`RewardFunction`, or a
            callable ``fn(prompts, completions) -> floats``.
        beta: KL coefficient β (>= 0).
        kl_estimator: ``"k1"``, ``"k2"`` or ``"k3"``, used on steps whose action's log-prob the agent gave
            (:meth:`set_policy_logprobs`); other steps pay the reference share of k1.
        max_new_tokens: length cap of a continuation.
        min_new_tokens: EOS is an invalid action before this many tokens (default 0: always allowed).
        max_prompt_tokens: longest allowed prompt (default: the longest prompt given); longer prompts are
            an error, not silently cut.
        device: where the reference model and the state live (default: the model's device, or CPU).
        render_mode: ``"ansi"`` returns the text so far from :meth:`render`.
        seed: seeds the first :meth:`reset` when it is called without a seed.
        action_mask_top_p: if set, :meth:`action_masks` allows only the reference's top-p tokens (NLPO-style).
        action_mask_min_tokens: the fewest tokens that mask keeps.
        min_new_tokens: EOS is not a valid action before this many tokens (it is left out of :meth:`action_masks`).
        text_info: put the texts (``prompt``, ``completion``) in ``info``; False for clients that need every
            info value to be numeric (TorchRL's info readers).
        task: a registered task's name or a :class:`~rlhf_gym.tasks.Task` (default ``"sentiment"``): the
            model, prompts and gold judge that ``None``/``"gold"`` stand for. Registered ids pass it.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        model: ModelArg = None,
        tokenizer: str | PreTrainedTokenizerBase | None = None,
        prompts: str | Path | Sequence[str] | None = None,
        reward: str | RewardFunction | Callable = "gold",
        beta: float = 0.05,
        kl_estimator: str = "k1",
        max_new_tokens: int = 24,
        max_prompt_tokens: int | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        seed: int | None = None,
        action_mask_top_p: float | None = None,
        action_mask_min_tokens: int = 100,
        min_new_tokens: int = 0,
        text_info: bool = True,
        task: str | Task | None = None,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"], "TextGenEnv")
        self.text_info = check_text_info(text_info)
        check_seed(seed)
        if action_mask_top_p is not None:
            check_number(action_mask_top_p, "action_mask_top_p", low=0, high=1, low_open=True)
        check_int(action_mask_min_tokens, "action_mask_min_tokens", low=1)
        self.engine = build_engine(1, model, tokenizer, prompts, reward, beta, kl_estimator, max_new_tokens,
                                   max_prompt_tokens, device, min_new_tokens, task)
        self.observation_space = observation_space(self.engine)
        self.action_space = spaces.Discrete(self.engine.vocab_size)
        self.render_mode, self._initial_seed, self._done = render_mode, seed, True
        self.action_mask_top_p, self.action_mask_min_tokens = action_mask_top_p, action_mask_min_tokens
        self._policy_logprob: float | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._initial_seed is not None:
            seed, self._initial_seed = self._initial_seed, None
        super().reset(seed=check_seed(seed))
        index = pick_prompt(self.engine, self.np_random, options)
        self.engine.reset_rows(np.array([0]), np.array([index]))
        self._done, self._policy_logprob = False, None
        return self._obs(), self._info({"prompt": self.engine.prompts[index]})

    def step(self, action):
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended: call reset() before step()")
        if np.ndim(action) != 0 or not np.issubdtype(np.asarray(action).dtype, np.integer):
            raise ConfigError(f"action {action!r} is not a token id (an integer)")
        action_t = torch.tensor([int(action)], device=self.engine.device)
        self.engine.check_actions(action_t)
        policy_logp, self._policy_logprob = self._policy_logprob, None  # the pending value is this step's only
        if policy_logp is not None:
            policy_logp = torch.tensor([policy_logp], dtype=torch.float32, device=action_t.device)
        ref_logp, terminated = self.engine.advance(action_t, torch.ones(1, dtype=torch.bool, device=action_t.device))
        reward = float(self.engine.kl_rewards(ref_logp, policy_logp)[0])
        info = {"ref_logprob": np.float32(ref_logp[0].item())}
        self._done = bool(terminated[0])
        if self._done:
            done = self.engine.score_rows(np.array([0]))
            reward += float(done.scores[0])
            info.update(rm_score=np.float32(done.scores[0].item()), prompt=done.prompts[0],
                        completion=done.completions[0])
        return self._obs(), reward, self._done, False, self._info(info)

    def _info(self, info: dict) -> dict:
        return info if self.text_info else without_text(info)

    def set_policy_logprobs(self, logprob: float | None) -> None:
        """Gives the agent's ``log π(a|s)`` of the action the next :meth:`step` takes, so that step pays the
        full ``−β·KL_t`` under ``kl_estimator`` instead of the reference share ``β·log π_ref``.

        Reach it through any wrapper stack as ``env.unwrapped.set_policy_logprobs(lp)``; a vector env of
        these (``SyncVectorEnv``/``AsyncVectorEnv``) sets one per sub-env with
        ``envs.set_attr("policy_logprob", [lp_0, lp_1, ...])``. The value is used by the next step only
        (``reset()`` discards it); None clears it.
        """
        self.policy_logprob = logprob

    @property
    def policy_logprob(self) -> float | None:
        """The pending agent log-prob for the next step (see :meth:`set_policy_logprobs`); None when none."""
        return self._policy_logprob

    @policy_logprob.setter
    def policy_logprob(self, value: float | None) -> None:
        self._policy_logprob = check_policy_logprob(value)

    def action_masks(self) -> np.ndarray:
        """Allowed next tokens ``(V,)`` bool, for sb3-contrib's ``MaskablePPO``: all of them by default, or the
        reference model's top-p nucleus (at least ``action_mask_min_tokens``) when ``action_mask_top_p`` is
        set; never EOS before ``min_new_tokens`` tokens. Before :meth:`reset` (or after the episode ended)
        there is no next token: ``ResetNeeded``."""
        if self._done:
            raise gym.error.ResetNeeded("no episode is running: call reset() before action_masks()")
        return self.engine.action_masks(self.action_mask_top_p, self.action_mask_min_tokens)[0].cpu().numpy()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        e = self.engine
        return e.prompts[e.prompt_index[0]] + e.decode_completions([0])[0]

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.engine.observation().items()}

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.engine.tok

    @property
    def ref_model(self) -> PreTrainedModel:
        return self.engine.ref
