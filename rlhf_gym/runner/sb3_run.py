"""Training stock Stable-Baselines3 (``agent.algo: sb3-ppo | sb3-a2c | sb3-maskable-ppo``) as a run.

The env config becomes ``env.num_envs`` single :class:`~rlhf_gym.envs.TextGenEnv` copies in an SB3
``DummyVecEnv`` that share one reference model and one reward function; the policy is the LM adapter of
:mod:`rlhf_gym.agents.sb3` and :class:`~rlhf_gym.agents.sb3.PolicyKLCallback` pays the agent's share of the
KL penalty. The run directory has the same files as a native run: a metrics row per rollout (the
``objective/*`` keys the KL callback records, ``step`` = environment steps = generated tokens), evaluation
at step 0, every ``run.eval_every`` rollouts and at the end, and a final checkpoint whose ``agent/policy``
is an HF model directory (what ``rlhf-gym eval`` reads).

Limitation: SB3 keeps its optimizer and rollout state in pickles, so sb3 runs are not resumable exactly;
``--resume`` restarts an unfinished sb3 run from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf_gym.agents.registry import algo_spec
from rlhf_gym.errors import ConfigError
from rlhf_gym.runner import checkpoint as ckpt
from rlhf_gym.runner.build import env_prompts, make_gold, resolve_device, seed_everything
from rlhf_gym.runner.config import ResolvedConfig


def make_sb3_env(cfg: ResolvedConfig) -> Any:
    """``env.num_envs`` TextGenEnv copies sharing one reference model and reward, in a DummyVecEnv."""
    from stable_baselines3.common.env_util import make_vec_env

    from rlhf_gym.core.models import load_causal_lm, load_tokenizer, resolve_model_path
    from rlhf_gym.envs import TextGenEnv
    from rlhf_gym.rewards import make_reward

    e, device = cfg.env, resolve_device(cfg.run.device)
    if e.min_new_tokens and cfg.agent.algo != "sb3-maskable-ppo":  # stock PPO/A2C sample EOS freely
        raise ConfigError(f"env.min_new_tokens={e.min_new_tokens} needs an agent that masks EOS: "
                          f"this project's agents or sb3-maskable-ppo, not {cfg.agent.algo}")
    ref = load_causal_lm(e.model, device=device)
    tok = load_tokenizer(e.tokenizer if e.tokenizer is not None else resolve_model_path(e.model))
    task = e.task_spec()
    prompts, reward = env_prompts(e), make_reward(e.reward, gold=task.make_gold)
    mask_top_p = 0.9 if cfg.agent.algo == "sb3-maskable-ppo" else None

    def one_env() -> TextGenEnv:
        return TextGenEnv(model=ref, tokenizer=tok, prompts=prompts, reward=reward, beta=e.beta,
                          max_new_tokens=e.max_new_tokens, max_prompt_tokens=e.max_prompt_tokens,
                          action_mask_top_p=mask_top_p, min_new_tokens=e.min_new_tokens, task=task)

    return make_vec_env(one_env, n_envs=e.num_envs, seed=cfg.run.seed)


def build_sb3(cfg: ResolvedConfig) -> tuple[Any, Any, Any]:
    """``(model, kl_callback, vec_env)``: the stock SB3 algorithm on the LM adapter, built before any file is written."""
    from rlhf_gym.agents.sb3 import make_sb3_agent

    seed_everything(cfg.run)
    vec_env = make_sb3_env(cfg)
    a = cfg.agent.config
    model, kl_callback = make_sb3_agent(algo_spec(cfg.agent.algo).attr, vec_env, kl_penalty=a.kl_penalty,
                                        seed=a.seed, device=resolve_device(a.device), **a.sb3_kwargs())
    return model, kl_callback, vec_env


def _eval_keys(result: dict[str, Any]) -> dict[str, float]:
    return {f"eval/{k}": v for k, v in result.items() if isinstance(v, int | float) and k != "n"}


def learn_sb3(built: tuple[Any, Any, Any], cfg: ResolvedConfig, out: Path, tracker: Any, bar: Any,
              evaluate_policy: Any) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """Trains; returns ``(initial_eval, final_eval, steps, rollouts)`` (``tracker``/``bar`` come from train())."""
    from stable_baselines3.common.callbacks import BaseCallback

    model, kl_callback, vec_env = built
    env = vec_env.envs[0].unwrapped  # evaluation uses its engine: reference model, tokenizer, reward
    eval_prompts, gold, run = env_prompts(cfg.env, "eval"), make_gold(cfg, env), cfg.run
    initial = evaluate_policy(model, env, eval_prompts, gold, cfg)
    tracker.log({"step": 0, **_eval_keys(initial)})
    task = bar.add_task(f"{cfg.agent.algo} on {cfg.env.task}", total=run.total_timesteps, status="")
    rows: list[dict] = []  # the newest row is written when the next rollout ends (or with the final eval)

    class RunCallback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if rows:
                tracker.log(rows[-1])
            row = {"step": int(self.model.num_timesteps), "rollout": len(rows) + 1,
                   **{k: v for k, v in self.model.logger.name_to_value.items() if k.startswith("objective/")}}
            if run.eval_every and row["rollout"] % run.eval_every == 0 and row["step"] < run.total_timesteps:
                row.update(_eval_keys(evaluate_policy(model, env, eval_prompts, gold, cfg)))
            rows.append(row)
            bar.update(task, completed=min(row["step"], run.total_timesteps),
                       status=f"score {row.get('objective/scores', float('nan')):+.3f}")

    model.learn(run.total_timesteps, callback=[c for c in (kl_callback, RunCallback()) if c is not None])
    final = evaluate_policy(model, env, eval_prompts, gold, cfg)
    last = rows[-1] if rows else {"step": int(model.num_timesteps), "rollout": 0}
    tracker.log({**last, **_eval_keys(final)})
    tracker.log_samples(last["step"], [{k: s[k] for k in ("prompt", "completion", "gold", "rm", "kl")}
                                       for s in final["samples"][: run.samples_per_update]], kind="eval")

    def save_agent(path: Path) -> None:
        path.mkdir(parents=True)
        model.policy.lm.save_pretrained(path / "policy")
        env.engine.tok.save_pretrained(path / "policy")

    ckpt.save_checkpoint(out, last["step"], save_agent, {"updates": last["rollout"], "wall_time": 0.0, "sb3": True},
                         keep=run.keep_checkpoints)
    return initial, final, int(model.num_timesteps), int(last["rollout"])
