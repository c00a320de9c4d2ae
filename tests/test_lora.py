"""LoRA policies: the reference is the adapter-disabled base (no second copy), only the adapter trains, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.agents import NLPO, PPO
from rlhf_gym.core.generation import position_ids_from_mask
from rlhf_gym.core.lora import LoraSpec
from rlhf_gym.core.models import load_causal_lm
from rlhf_gym.envs import TextGenVecEnv
from rlhf_gym.envs.lora import AdapterDisabledLM
from rlhf_gym.errors import ConfigError

pytest.importorskip("peft")


def vowel_reward(prompts, completions):
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


def make_env(tiny_lm_dir, prompts, n=8):
    return TextGenVecEnv(num_envs=n, model=tiny_lm_dir, prompts=prompts, reward=vowel_reward, max_new_tokens=5,
                         beta=0.01)


def trained_lora_agent(tiny_lm_dir, prompts, cls=PPO, **kw):
    env = make_env(tiny_lm_dir, prompts)
    agent = cls(env, lora={"r": 4, "alpha": 32}, learning_rate=5e-3, minibatch_size=4, seed=0, **kw)
    return agent.learn(80)


def token_logprobs(model, ids, mask, tokens, token_mask):
    full_ids, full_mask = torch.cat([ids, tokens], 1), torch.cat([mask, token_mask.long()], 1)
    logits = model(input_ids=full_ids, attention_mask=full_mask,
                   position_ids=position_ids_from_mask(full_mask)).logits[:, ids.shape[1] - 1 : -1]
    return logits.float().log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1) * token_mask


def test_reference_logprobs_under_lora_equal_the_base_model(tiny_lm_dir, prompts):
    agent = trained_lora_agent(tiny_lm_dir, prompts)
    env, base = agent.env, load_causal_lm(tiny_lm_dir)
    assert isinstance(env.engine.ref, AdapterDisabledLM)
    ids, mask, idx = env.sample_prompts(8)
    samples = agent.generate(ids, mask)
    with torch.no_grad():
        expected = token_logprobs(base, ids, mask, samples.tokens, samples.mask)
        policy = token_logprobs(agent.policy.lm, ids, mask, samples.tokens, samples.mask)
    scored = env.score_episodes(ids, mask, samples.tokens, samples.mask, idx)
    torch.testing.assert_close(scored.ref_logprobs, expected, atol=1e-5, rtol=1e-5)
    # The adapter did learn something: the policy moved. 6 seeds x 2 LM inits on AMD EPYC
    # (scripts/audit_learning_tests.py lora): max |Δ log p| 0.18-0.38, over 100x the 1e-3 asserted.
    assert (policy - expected).abs().max() > 1e-3

    # The token-by-token path (the reference's sliding-window KV cache) reads the same base model.
    obs, _ = env.reset(seed=0)
    actions = np.full(8, 7)
    _, _, _, _, info = env.step(actions)
    ids_t = torch.as_tensor(obs["input_ids"])
    mask_t = torch.as_tensor(obs["attention_mask"])
    with torch.no_grad():
        want = token_logprobs(base, ids_t, mask_t, torch.full((8, 1), 7), torch.ones(8, 1, dtype=torch.bool))
    np.testing.assert_allclose(info["ref_logprob"], want[:, 0].numpy(), atol=1e-5)


def test_only_the_adapter_and_value_head_train_and_the_base_is_shared(tiny_lm_dir, prompts):
    env = make_env(tiny_lm_dir, prompts)
    base_weights = {k: v.clone() for k, v in env.engine.ref.state_dict().items()}
    agent = PPO(env, lora={"r": 4}, learning_rate=5e-3, minibatch_size=4, seed=0)
    trainable = [n for n, p in agent.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert {id(p) for p in agent.params} == {id(p) for n, p in agent.policy.named_parameters() if p.requires_grad}
    # No second copy: the policy's base and the env's reference are the same module and the same storage.
    assert env.engine.ref.base is agent.policy.lm.get_base_model()
    assert sum(p.numel() for p in agent.policy.parameters()) < 1.05 * sum(v.numel() for v in base_weights.values())
    agent.learn(80)
    after = agent.policy.lm.get_base_model().state_dict()
    for key, value in base_weights.items():  # peft renames adapted layers' weights to *.base_layer.*
        name = key if key in after else key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(after[name], value), key
    lora_b = [p for n, p in agent.policy.named_parameters() if "lora_B" in n]
    assert any(p.abs().max() > 0 for p in lora_b)  # B starts at 0; training moved it (max |B| 0.07 on 12 runs)


def test_save_writes_the_adapter_as_safetensors_and_load_resumes(tmp_path, tiny_lm_dir, prompts):
    agent = trained_lora_agent(tiny_lm_dir, prompts)
    path = agent.save(tmp_path / "ckpt")
    files = {p.name for p in (path / "policy").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert "model.safetensors" not in files  # the base is not duplicated into the checkpoint
    loaded = PPO.load(path, env=make_env(tiny_lm_dir, prompts))
    assert isinstance(loaded.env.engine.ref, AdapterDisabledLM)
    want, got = agent.policy.state_dict(), loaded.policy.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    # A LoRA checkpoint's policy/ loads on its own too (e.g. for rlhf-gym eval): base + adapter.
    standalone = load_causal_lm(path / "policy")
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(standalone(input_ids=ids).logits, agent.policy.lm(input_ids=ids).logits)
    agent.learn(40)
    loaded.learn(40)  # same RNG states, optimizer and weights: the same next update
    assert agent.history[-1]["objective/scores"] == loaded.history[-1]["objective/scores"]


def test_nlpo_with_lora_saves_and_loads(tmp_path, tiny_lm_dir, prompts):
    agent = trained_lora_agent(tiny_lm_dir, prompts, cls=NLPO, mask_update_every=1)
    loaded = NLPO.load(agent.save(tmp_path / "nlpo"), env=make_env(tiny_lm_dir, prompts))
    want, got = agent.mask_policy.state_dict(), loaded.mask_policy.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.parametrize("lora, message", [
    ({"rank": 4}, "unknown key"), ({"r": 0}, "lora.r"), ({"alpha": -1}, "lora.alpha"),
    ({"dropout": 1.5}, "lora.dropout"), ({"target_modules": []}, "target_modules"), ("r=4", "mapping"),
    ({"target_modules": ["no_such_layer"]}, "cannot add LoRA"),
])
def test_bad_lora_settings_are_one_line_config_errors(tiny_lm_dir, prompts, lora, message):
    with pytest.raises(ConfigError, match=message):
        PPO(make_env(tiny_lm_dir, prompts), lora=lora)


def test_lora_conflicts_are_config_errors(tiny_lm_dir, prompts):
    with pytest.raises(ConfigError, match="separate_value_model"):
        PPO(make_env(tiny_lm_dir, prompts), lora={}, separate_value_model=True)
    env = make_env(tiny_lm_dir, prompts)
    PPO(env, lora={})
    with pytest.raises(ConfigError, match="already serves a LoRA policy"):
        PPO(env, lora={})


def test_lora_in_a_run_config_is_validated_and_round_trips():
    from rlhf_gym.runner.config import dump_config, load_run_config, parse_yaml

    cfg = load_run_config("envs/sentiment.yaml", "agents/ppo.yaml", ["agent.lora={r: 4, alpha: 8}"])
    assert cfg.agent.config.lora == LoraSpec(r=4, alpha=8).to_dict()
    assert parse_yaml(dump_config(cfg), "config")["agent"]["lora"]["r"] == 4
    with pytest.raises(ConfigError, match="lora"):
        load_run_config("envs/sentiment.yaml", "agents/ppo.yaml", ["agent.lora.rank=4"])
