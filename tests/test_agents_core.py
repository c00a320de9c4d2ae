"""The opened core every algorithm shares: groups of K samples per prompt, the optional critic, the one registry,
the Trainer protocol, and PPO-ptx / data parallelism composed with any algorithm."""

from __future__ import annotations

import pytest
import torch
from test_agents import comparable, make_env

from rlhf_gym.agents import (
    ALGORITHMS,
    PPO,
    OnPolicyAgent,
    RolloutBuffer,
    Trainer,
    algorithm_class,
    register_algorithm,
)
from rlhf_gym.agents.distributed import with_data_parallel
from rlhf_gym.agents.registry import algo_spec
from rlhf_gym.errors import ConfigError

NATIVE = sorted(name for name, spec in ALGORITHMS.items() if spec.kind == "native")


@pytest.fixture
def ptx_file(tmp_path, prompts):
    path = tmp_path / "ptx.txt"
    path.write_text("\n".join(prompts) + "\n")
    return str(path)


def test_the_registry_names_every_algorithm_the_docs_promise():
    assert set(NATIVE) == {"ppo", "a2c", "nlpo", "grpo", "rloo", "reinforce_pp", "bon", "raft", "dpo", "ipo",
                           "online_dpo"}
    assert {"sb3-ppo", "sb3-a2c", "sb3-maskable-ppo"} <= set(ALGORITHMS)
    with pytest.raises(ConfigError, match="unknown algorithm 'ppo2'; choose one of ppo, a2c"):
        algo_spec("ppo2")
    with pytest.raises(ConfigError, match="already registered"):
        register_algorithm("ppo", "somewhere.else", "PPO")
    register_algorithm("ppo", "rlhf_gym.agents.ppo", "PPO")  # the same registration again is harmless


@pytest.mark.parametrize("name", NATIVE)
def test_every_algorithm_is_a_trainer_on_the_core_and_composes(name, tiny_lm_dir, prompts, ptx_file):
    """Each registered class is an OnPolicyAgent whose instances satisfy the runner's Trainer protocol, takes the
    PPO-ptx fields in the Python API, and can be made data-parallel."""
    cls = algorithm_class(name)
    assert issubclass(cls, OnPolicyAgent) and cls.__doc__
    assert {"ptx_coef", "ptx_data", "samples_per_prompt"} <= set(cls.config_class.__dataclass_fields__)
    dp = with_data_parallel(cls)
    assert issubclass(dp, cls) and dp.config_class is cls.config_class
    ptx = dict(ptx_coef=0.5, ptx_data=ptx_file, ptx_batch_size=2)
    if name == "bon":  # best-of-n takes no optimizer step, so a pretraining mix is refused, not ignored
        with pytest.raises(ConfigError, match="ptx_coef"):
            cls(make_env(tiny_lm_dir, prompts, n=4), **ptx)
        ptx = {}
    agent = cls(make_env(tiny_lm_dir, prompts, n=4), seed=0, **ptx)
    assert isinstance(agent, Trainer)
    assert (agent._ptx_ids is not None) == bool(ptx)  # the text is loaded: every optimizer step will mix it in
    assert (agent.policy.value_head is not None) == cls.uses_critic


def test_k_samples_per_prompt_are_contiguous_groups_and_minibatches_keep_them(tiny_lm_dir, prompts):
    agent = PPO(make_env(tiny_lm_dir, prompts, n=8), seed=0, samples_per_prompt=4, minibatch_size=4)
    buf, _ = agent.collect()
    assert buf.group_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and buf.n_groups == 2
    for g in buf.group_view(buf.prompt_ids):  # the K rows of a group continue one prompt ...
        assert (g == g[0]).all()
    assert len({tuple(r.tolist()) for r in buf.tokens}) > 2  # ... with different samples
    agent.compute_advantages(buf)
    for mb in buf.minibatches(4, torch.Generator().manual_seed(0)):
        assert mb.group_ids.unique().numel() == 1  # a minibatch of K rows is one whole group
        torch.testing.assert_close(mb.ref_logprobs, buf.ref_logprobs[mb.group_ids[0] * 4:][:4, : mb.n_tokens])
    with pytest.raises(ConfigError, match="samples_per_prompt=3 is invalid: must divide batch_size=8"):
        PPO(make_env(tiny_lm_dir, prompts, n=8), samples_per_prompt=3)


def test_one_sample_per_prompt_shuffles_rows_as_before():
    """K = 1 groups are rows: the minibatch order is torch.randperm(N) with the same generator, as it always was."""
    n = 6
    buf = RolloutBuffer(torch.ones(n, 2, dtype=torch.long), torch.ones(n, 2, dtype=torch.long),
                        torch.arange(n)[:, None].repeat(1, 3), torch.ones(n, 3, dtype=torch.bool),
                        *(torch.zeros(n, 3) for _ in range(4)), scores=torch.zeros(n))
    order = torch.cat([mb.tokens[:, 0] for mb in buf.minibatches(2, torch.Generator().manual_seed(5))])
    assert order.tolist() == torch.randperm(n, generator=torch.Generator().manual_seed(5)).tolist()


class _CriticFree(PPO):
    """PPO without a critic: with λ = 1 and no values its advantages are Monte-Carlo returns."""

    uses_critic = False


def test_a_critic_free_agent_has_no_value_head_and_round_trips(tmp_path, tiny_lm_dir, prompts):
    agent = _CriticFree(make_env(tiny_lm_dir, prompts, n=8), seed=1, minibatch_size=4, gae_lambda=1.0, vf_coef=0.0)
    assert agent.policy.value_head is None and not any(p is None for p in agent.params)
    agent.learn(8 * 12)
    buf, _ = agent.collect()
    assert (buf.values == 0).all()
    loaded = _CriticFree.load(agent.save(tmp_path / "ck"), env=make_env(tiny_lm_dir, prompts, n=8))
    agent.learn(2 * 48)
    loaded.learn(2 * 48)
    assert comparable(loaded.history) == comparable(agent.history[-len(loaded.history):])
    with pytest.raises(ConfigError, match="separate_value_model=True is invalid: PPO has no critic"):
        _CriticFree(make_env(tiny_lm_dir, prompts, n=8), separate_value_model=True)


def test_ptx_in_the_python_api_mixes_into_every_step(tiny_lm_dir, prompts, ptx_file):
    """``PPO(env, ptx_coef=...)`` — the field agents/ppo.yaml sets — works without the runner and changes the update."""
    plain = PPO(make_env(tiny_lm_dir, prompts, n=8), seed=0, minibatch_size=4).learn(8 * 6)
    mixed = PPO(make_env(tiny_lm_dir, prompts, n=8), seed=0, minibatch_size=4, ptx_coef=1.0, ptx_data=ptx_file,
                ptx_batch_size=4).learn(8 * 6)
    assert "loss/ptx" not in plain.history[-1] and mixed.history[-1]["loss/ptx"] > 0
    assert mixed.history[0]["objective/scores"] == plain.history[0]["objective/scores"]  # same first rollout ...
    assert mixed.history[0]["policy/grad_norm"] != plain.history[0]["policy/grad_norm"]  # ... another gradient
