r"""Evaluating a policy on held-out prompts: gold and reward-model reward, KL, perplexity, diversity.

:func:`evaluate` samples one continuation per prompt with the KV-cached batched sampler
(:func:`rlhf_gym.core.sampler.sample`) and reports:

* ``gold_reward`` — mean gold-judge score: the environment's task's gold (:attr:`rlhf_gym.tasks.Task.gold`;
  VADER compound sentiment for ``sentiment``, the embedded world's stand-in for the human);
* ``gold_<part>`` — for a gold made of several judges (a :class:`~rlhf_gym.rewards.base.WeightedSum`, as
  in the two-objective ``sentiment-readability`` task), the mean score of each part;
* ``rm_reward`` — mean score of the environment's reward function (the learned reward model, or gold);
* ``kl`` — mean over samples of ``Σ_t log π(a_t|s_t) − log π_ref(a_t|s_t)`` (k1, summed over the tokens of
  each sample) with π the sampling distribution (the policy at ``temperature``) and π_ref the environment's
  reference model, both from teacher-forced log-probs: an unbiased estimate of ``KL(π ‖ π_ref)`` per sequence;
* ``perplexity`` — ``exp`` of the mean negative log-likelihood of the generated tokens under the reference;
* ``distinct_1``/``distinct_2`` — unique n-grams / all n-grams, over the tokens of all samples together
  (n-grams never cross samples; EOS is not counted);
* ``mean_length`` — generated tokens per sample, EOS included (the episode length in environment steps);
* ``samples`` — one dict per sample: ``prompt``, ``completion``, ``gold``, ``rm``, ``kl``, ``tokens``.

Generated tokens run up to and including EOS (or the length cap); they are what the KL, the perplexity and
``mean_length`` count. The same seed gives the same samples and the same numbers.

**Sampling hook.** A policy that is more than its LM (best-of-n: sample n, keep the reward model's favourite)
defines ``sample_for_evaluation(prompt_ids, prompt_mask, max_new_tokens, generator)``; evaluate then samples
through it (with the policy's own sampling settings; ``temperature`` is not passed) instead of sampling the LM.
It returns :class:`~rlhf_gym.core.generation.Samples`, or ``(Samples, info)`` with ``info`` a dict of
per-sample tensors ``(N,)``: ``info["kl"]`` replaces the per-sample KL (the k1 above measures the LM, which is
not then the sampling distribution), and every other key is reported as the mean over samples. Policies without
the hook are evaluated exactly as described above.

>>> import gymnasium as gym, rlhf_gym
>>> from rlhf_gym.agents.evaluation import evaluate
>>> env = gym.make("rlhf_gym/Sentiment-v0")
>>> task = env.unwrapped.engine.task
>>> metrics = evaluate(env.unwrapped.engine.ref, env, prompts=task.eval_prompts, n=8)
>>> metrics["kl"]  # the reference evaluated against itself
0.0
>>> sorted(k for k in metrics if k != "samples")
['distinct_1', 'distinct_2', 'gold_reward', 'kl', 'mean_length', 'n', 'perplexity', 'rm_reward']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from rlhf_gym.core.checks import check_int, check_number, is_int
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.generation import left_pad, token_logprobs
from rlhf_gym.core.sampler import sample
from rlhf_gym.errors import ConfigError
from rlhf_gym.rewards.base import RewardFunction, as_reward_function, checked_scores
from rlhf_gym.tasks import DEFAULT_TASK, Task, get_task

__all__ = ["causal_lm_of", "distinct_n", "engine_of", "evaluate", "evaluate_sb3", "task_of"]

_LM_ATTRIBUTES = ("lm", "policy", "model")


def causal_lm_of(obj: Any) -> PreTrainedModel:
    """The HF causal LM inside ``obj``: ``obj`` itself, or found through its ``.lm``, ``.policy`` or ``.model``.

    That covers a ``PreTrainedModel``, the SB3 adapter policy (``.lm``), an SB3 algorithm (``.policy.lm``)
    and agents that keep their LM under one of those names.
    """
    seen: set[int] = set()
    stack = [obj]
    while stack:
        current = stack.pop(0)
        if isinstance(current, PreTrainedModel):
            return current
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        stack.extend(getattr(current, name, None) for name in _LM_ATTRIBUTES)
    raise ConfigError(f"cannot find a Hugging Face causal LM in {type(obj).__name__} (looked for .lm, .policy, .model)")


def engine_of(env: Any):
    """The :class:`~rlhf_gym.envs.engine.EpisodeEngine` of a (wrapped) env, a vector env or an SB3 ``VecEnv``."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        if hasattr(candidate, "engine"):
            return candidate.engine
    if hasattr(env, "get_attr"):  # SB3 VecEnv
        try:
            return env.get_attr("engine", indices=[0])[0]
        except AttributeError:
            pass
    raise ConfigError(f"{type(env).__name__} is not an rlhf_gym text-generation environment (it has no engine)")


def task_of(engine: Any) -> Task:
    """The task an engine was built for (``engine.task``), or the default task for one built without."""
    task = getattr(engine, "task", None)
    return task if isinstance(task, Task) else get_task(DEFAULT_TASK)


def distinct_n(sequences: Sequence[Sequence[int]], n: int) -> float:
    """Unique n-grams / total n-grams over all sequences (n-grams within each sequence); 0 if there are none.

    >>> distinct_n([[1, 2, 3], [1, 2, 4]], 1), distinct_n([[1, 2, 3], [1, 2, 4]], 2)
    (0.6666666666666666, 0.75)
    """
    grams = [tuple(seq[i : i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _resolve_prompts(prompts: str | Sequence[str] | None, engine, n: int) -> list[str]:
    if not is_int(n) or n < 1:
        raise ConfigError(f"evaluation needs n >= 1 samples, got {n!r}")
    source = list(engine.prompts) if prompts is None else load_prompts(prompts)
    return [source[i % len(source)] for i in range(n)]  # the first n, cycled if there are fewer


@torch.no_grad()
def evaluate(
    policy: Any,
    env: Any,
    prompts: str | Sequence[str] | None = None,
    n: int = 64,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    reward_fn: RewardFunction | Callable | None = None,
    gold_fn: RewardFunction | Callable | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Samples ``n`` continuations and measures them (see the module docstring for every metric).

    Args:
        policy: an HF causal LM, or anything holding one (see :func:`causal_lm_of`): an SB3 model trained with
            the adapter, its policy, one of this project's agents.
        env: the environment whose reference model, tokenizer, reward function and length cap are used
            (a Gymnasium env, wrapped or not, a ``TextGenVecEnv`` or an SB3 ``VecEnv``).
        prompts: ``None`` (the environment's own prompts), a list of strings, or a source for
            :func:`~rlhf_gym.core.data.load_prompts` such as the task's ``eval_prompts`` (held out). The
            first ``n`` are used, cycled if there are fewer.
        max_new_tokens: defaults to the environment's length cap.
        temperature: sampling temperature; the KL is that of the tempered sampling distribution.
        seed: seeds the sampler; the same seed gives the same samples.
        reward_fn: replaces the environment's reward function for ``rm_reward``.
        gold_fn: the gold judge (default: the gold of the environment's task, see :func:`task_of`).
        batch_size: prompts sampled per batch.
    """
    lm, engine = causal_lm_of(policy), engine_of(env)
    check_number(temperature, "temperature", low=0, low_open=True)
    check_int(batch_size, "batch_size", low=1)
    check_int(seed, "seed")
    if max_new_tokens is not None:
        check_int(max_new_tokens, "max_new_tokens", low=1)
    max_new_tokens = max_new_tokens or engine.max_new_tokens
    reward = as_reward_function(reward_fn) if reward_fn is not None else engine.reward_fn
    gold = as_reward_function(gold_fn) if gold_fn is not None else task_of(engine).make_gold()
    prompt_list = _resolve_prompts(prompts, engine, n)
    start = engine.tok.bos_token_id if engine.tok.bos_token_id is not None else engine.eos
    prompt_ids = [p or [start] for p in engine.tok(prompt_list, add_special_tokens=False)["input_ids"]]

    device = next(lm.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    hook = getattr(policy, "sample_for_evaluation", None)  # see "Sampling hook" in the module docstring
    extras: dict[str, list[float]] = {}
    was_training = lm.training
    lm.eval()
    try:
        rows: list[dict[str, Any]] = []
        for lo in range(0, n, batch_size):
            ids, mask = left_pad(prompt_ids[lo : lo + batch_size], engine.pad)
            info: dict[str, torch.Tensor] = {}
            if hook is not None:
                out = hook(ids.to(device), mask.to(device), max_new_tokens, generator)
                out, info = out if isinstance(out, tuple) else (out, {})
            else:
                out = sample(lm, ids.to(device), mask.to(device), max_new_tokens=max_new_tokens,
                             eos_token_id=engine.eos, pad_token_id=engine.pad, temperature=temperature,
                             generator=generator,
                             min_new_tokens=min(getattr(engine, "min_new_tokens", 0), max_new_tokens))
            tokens, token_mask = out.tokens.cpu(), out.mask.cpu()
            ref_logp = token_logprobs(engine.ref, ids, mask, tokens, token_mask)
            logp = None if "kl" in info else token_logprobs(lm, ids, mask, tokens, token_mask, temperature)
            for key, value in info.items():
                extras.setdefault(key, []).extend(value.detach().cpu().double().tolist())
            for r in range(len(tokens)):
                generated = tokens[r, token_mask[r]].tolist()
                kl = float(info["kl"][r]) if logp is None else float((logp[r] - ref_logp[r]).sum())
                rows.append(dict(prompt=prompt_list[lo + r], tokens=generated,
                                 kl=kl, ref_nll=-float(ref_logp[r].sum())))
    finally:
        lm.train(was_training)

    content = [[t for t in row["tokens"] if t != engine.eos] for row in rows]
    completions = engine.tok.batch_decode(content, skip_special_tokens=True)
    rm_scores = checked_scores(reward, prompt_list, completions).tolist()
    parts = gold.components(prompt_list, completions) if hasattr(gold, "components") else {}
    gold_scores = (gold.combine(parts) if parts else checked_scores(gold, prompt_list, completions)).tolist()
    n_tokens = sum(len(row["tokens"]) for row in rows)
    samples = [dict(prompt=row["prompt"], completion=c, gold=g, rm=s, kl=row["kl"], tokens=row["tokens"])
               for row, c, g, s in zip(rows, completions, gold_scores, rm_scores)]
    return dict(
        gold_reward=float(np.mean(gold_scores)),
        rm_reward=float(np.mean(rm_scores)),
        kl=float(np.mean([row["kl"] for row in rows])),
        perplexity=float(np.exp(sum(row["ref_nll"] for row in rows) / n_tokens)),
        distinct_1=distinct_n(content, 1),
        distinct_2=distinct_n(content, 2),
        mean_length=n_tokens / n,
        n=n,
        **{f"gold_{k}": float(v.mean()) for k, v in parts.items()},
        **{k: float(np.mean(v)) for k, v in extras.items() if k != "kl"},
        samples=samples,
    )


def evaluate_sb3(model: Any, env: Any = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate` for an SB3 algorithm trained with the LM adapter: samples through ``model.policy.lm``.

    ``env`` defaults to the model's own training environment; keyword arguments are :func:`evaluate`'s.
    """
    env = env if env is not None else model.get_env()
    if env is None:
        raise ConfigError("the SB3 model has no environment: pass env=")
    return evaluate(model.policy, env, **kwargs)
