"""From a resolved config to live objects: seeds, prompts, the batched environment, the gold judge, the agent.

Everything here raises :class:`~rlhf_gym.errors.RLHFGymError` subclasses for bad input, and nothing here
writes files, so commands build everything before they create an output directory.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_gym.agents.registry import algo_spec
from rlhf_gym.core.checks import resolve_device as check_device
from rlhf_gym.core.data import load_prompts
from rlhf_gym.envs import TextGenVecEnv
from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards import make_reward
from rlhf_gym.rewards.base import RewardFunction
from rlhf_gym.runner.config import EnvConfig, ResolvedConfig, RunConfig


def seed_everything(run: RunConfig) -> None:
    """Seeds Python, NumPy and torch, and fixes torch's thread count if ``run.torch_threads`` is set."""
    if run.torch_threads:
        torch.set_num_threads(run.torch_threads)
    random.seed(run.seed)
    np.random.seed(run.seed)
    torch.manual_seed(run.seed)


def resolve_device(device: str | None) -> str:
    """``None`` -> ``"cuda"`` when available, else ``"cpu"``; anything else is checked by
    :func:`rlhf_gym.core.checks.resolve_device` (a device this machine does not have is an error)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(check_device(device, "run.device"))


def env_prompts(env: EnvConfig, which: str = "train") -> list[str]:
    """The training (``which="train"``) or evaluation prompts of an env config."""
    if which == "train":
        return load_prompts(env.prompts, split=env.split, n=env.n_prompts, column=env.prompt_column,
                            prompt_words=env.prompt_words)
    return load_prompts(env.eval_prompts, split=env.eval_split, n=env.n_eval_prompts, column=env.prompt_column,
                        prompt_words=env.prompt_words)


def check_prompts_fit(env: TextGenVecEnv, prompts: list[str], where: str) -> None:
    """Raises a ConfigError naming ``where`` unless every prompt plus ``max_new_tokens`` fits the model's context.

    The env checks its own (training) prompts when it is built; evaluation prompts are checked here, before
    a run starts, rather than when the first evaluation reaches a prompt that is too long.
    """
    from rlhf_gym.envs.engine import model_context

    engine = env.unwrapped.engine
    context = model_context(engine.ref)
    if context is None or not prompts:
        return
    lengths = [len(ids) for ids in engine.tok(list(prompts), add_special_tokens=False)["input_ids"]]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] + engine.max_new_tokens > context:
        raise ConfigError(f"{where}: prompt {longest + 1} has {lengths[longest]} tokens, and with max_new_tokens "
                          f"{engine.max_new_tokens} that exceeds the model's context of {context} tokens")


def check_buildable(cfg: ResolvedConfig) -> None:
    """Builds and drops what a run of ``cfg`` needs first (environment, prompts, gold judge, ptx text), so a plan
    of many runs (``rlhf-gym bench``) fails on bad input before the first one trains."""
    init_agent_path(cfg)
    env = make_env(cfg)
    try:
        check_prompts_fit(env, env_prompts(cfg.env, "eval"), f"env.eval_prompts {cfg.env.eval_prompts}")
        make_gold(cfg, env)
        if getattr(cfg.agent.config, "ptx_coef", 0) > 0:
            from rlhf_gym.agents.ptx import load_ptx_texts

            load_ptx_texts(cfg.agent.config.ptx_data)
    finally:
        env.close()


def make_env(cfg: ResolvedConfig, prompts: list[str] | None = None, reward: Any = None) -> TextGenVecEnv:
    """The batched environment of a run (``prompts``/``reward`` replace the config's when given)."""
    e = cfg.env
    return TextGenVecEnv(
        num_envs=e.num_envs, model=e.model, tokenizer=e.tokenizer,
        prompts=prompts if prompts is not None else env_prompts(e),
        reward=reward if reward is not None else e.reward, beta=e.beta, kl_estimator=e.kl_estimator,
        max_new_tokens=e.max_new_tokens, max_prompt_tokens=e.max_prompt_tokens, min_new_tokens=e.min_new_tokens,
        device=resolve_device(cfg.run.device), seed=cfg.run.seed, task=e.task_spec(),
    )


def make_gold(cfg: ResolvedConfig, env: TextGenVecEnv) -> RewardFunction | None:
    """The gold judge reported at evaluation (the env's reward object itself when both name the same spec)."""
    if cfg.env.gold is None:
        return None
    if cfg.env.gold == cfg.env.reward:
        return env.engine.reward_fn
    return make_reward(cfg.env.gold, gold=cfg.env.task_spec().make_gold)


def agent_class(cfg: ResolvedConfig) -> Any:
    """The agent class of ``cfg.agent.algo`` (:mod:`rlhf_gym.agents.registry`), data-parallel when launched on
    several ranks (:mod:`rlhf_gym.agents.distributed`)."""
    from rlhf_gym.agents.distributed import with_data_parallel
    from rlhf_gym.core.dist import world_size

    spec = algo_spec(cfg.agent.algo)
    if spec.kind != "native":
        raise ConfigError(f"agent.algo={cfg.agent.algo!r} is a Stable-Baselines3 algorithm; it is trained by "
                          "rlhf_gym.runner.sb3_run, not as a native agent")
    return with_data_parallel(spec.agent_class()) if world_size() > 1 else spec.agent_class()


def agent_kwargs(cfg: ResolvedConfig) -> dict[str, Any]:
    """The agent's hyperparameters as keyword arguments, with the device resolved."""
    kwargs = dict(vars(cfg.agent.config))
    if "device" in kwargs:
        kwargs["device"] = resolve_device(kwargs["device"])
    return kwargs


def make_agent(cfg: ResolvedConfig, env: TextGenVecEnv, policy: str | Path | None = None) -> Any:
    """A fresh agent for ``env`` (``policy`` defaults to a trainable copy of the env's reference model)."""
    return agent_class(cfg)(env, policy=policy, **agent_kwargs(cfg))


def initial_agent(cfg: ResolvedConfig, env: TextGenVecEnv) -> Any:
    """The agent a new run starts from: :func:`make_agent`, or ``run.init_agent``'s checkpoint with the run's own
    hyperparameters (its weights, optimizer, KL controller and counters continue; the env is this run's)."""
    path = init_agent_path(cfg)
    return make_agent(cfg, env) if path is None else agent_class(cfg).load(path, env=env, **agent_kwargs(cfg))


def init_agent_path(cfg: ResolvedConfig) -> Path | None:
    """``run.init_agent`` as an agent checkpoint directory (a run directory stands for its newest checkpoint)."""
    from rlhf_gym.runner.checkpoint import latest_checkpoint

    if cfg.run.init_agent is None:
        return None
    if algo_spec(cfg.agent.algo).kind == "sb3":
        raise ConfigError(f"run.init_agent: agent.algo={cfg.agent.algo!r} (stock SB3) cannot start from a checkpoint")
    path = Path(cfg.run.init_agent)
    if (path / "agent.json").is_file():
        return path
    newest = latest_checkpoint(path) if path.is_dir() else None
    if newest is None:
        raise ConfigError(f"run.init_agent {path}: neither an agent checkpoint (agent.json) nor a run directory "
                          "with a checkpoint")
    return newest / "agent"


def load_agent(cfg: ResolvedConfig, env: TextGenVecEnv, path: str | Path) -> Any:
    """An agent restored from its checkpoint directory ``path`` (``agent/`` inside a run checkpoint)."""
    return agent_class(cfg).load(path, env=env, device=agent_kwargs(cfg).get("device"))
