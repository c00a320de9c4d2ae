"""The update's forward: at ``ent_coef == 0`` the entropy is only a metric and stays out of the autograd graph.

The reference below is the forward as it was written before (the entropy always in the graph): the new one
must give the same numbers and the same parameters after a whole update, while keeping less for the backward.
"""

from __future__ import annotations

import pytest
import torch
from test_agents import make_env

from rlhf_gym.agents import A2C, PPO
from rlhf_gym.agents.buffer import Minibatch


def reference_evaluate(agent, mb: Minibatch, with_entropy: bool = True):
    logits, values = agent.policy(mb.input_ids, mb.attention_mask, mb.n_tokens)
    logits = logits / agent.config.temperature
    logp_all = logits.log_softmax(-1)
    logp = logp_all.gather(-1, mb.tokens[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all.clamp(min=torch.finfo(logp_all.dtype).min)).sum(-1)
    return logp, entropy if with_entropy else None, values


@pytest.fixture
def rollout(tiny_lm_dir, prompts):
    def make(cls, **kw):
        agent = cls(make_env(tiny_lm_dir, prompts, n=8), seed=0, batch_size=8, minibatch_size=4, **kw)
        buffer, _ = agent.collect()
        agent.compute_advantages(buffer)
        return agent, buffer
    return make


@pytest.mark.parametrize("ent_coef", [0.0, 0.05])
def test_evaluate_actions_matches_the_reference_and_keeps_entropy_out_of_the_graph_at_ent_coef_0(rollout, ent_coef):
    agent, buffer = rollout(PPO, ent_coef=ent_coef, temperature=0.8)
    mb = buffer.select(torch.arange(4))
    logp, entropy, values = agent.evaluate_actions(mb)
    ref_logp, ref_entropy, ref_values = reference_evaluate(agent, mb)
    mask = mb.token_mask
    torch.testing.assert_close(logp[mask], ref_logp[mask])
    torch.testing.assert_close(entropy[mask], ref_entropy[mask])  # the logged metric is unchanged
    torch.testing.assert_close(values, ref_values)
    assert logp.requires_grad
    assert entropy.requires_grad == (ent_coef != 0)  # only a bonus needs the entropy's gradient


@pytest.mark.parametrize("cls", [PPO, A2C])
@pytest.mark.parametrize("ent_coef", [0.0, 0.05])
def test_an_update_moves_the_parameters_exactly_as_the_reference_update(rollout, monkeypatch, cls, ent_coef):
    """Same rollout, same initial weights: the new forward and the reference give the same parameters after
    a whole update (every epoch and minibatch), with and without an entropy bonus, and the same metrics."""
    agent, buffer = rollout(cls, ent_coef=ent_coef)
    start = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    optim = {k: v for k, v in agent.optimizer.state_dict().items()}
    shuffle = agent._shuffle_gen.get_state()

    metrics = agent.update(buffer)
    after = {k: v.clone() for k, v in agent.policy.state_dict().items()}

    agent.policy.load_state_dict(start)
    agent.optimizer.load_state_dict(optim)
    agent._shuffle_gen.set_state(shuffle)
    monkeypatch.setattr(agent, "evaluate_actions", lambda mb, with_entropy=True: reference_evaluate(
        agent, mb, with_entropy))
    ref_metrics = agent.update(buffer)

    moved = [k for k in after if not torch.equal(after[k], start[k])]
    assert moved, "the update changed no parameter: the comparison would be empty"
    for k in after:
        torch.testing.assert_close(after[k], agent.policy.state_dict()[k], rtol=1e-5, atol=1e-6, msg=k)
    for k in ("loss/policy", "loss/value", "policy/entropy"):
        assert metrics[k] == pytest.approx(ref_metrics[k], rel=1e-4, abs=1e-6), k


def test_loading_fuses_gpt2_gelu_to_the_same_function_and_a_saved_model_keeps_it(tiny_lm_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    from transformers.activations import NewGELUActivation

    from rlhf_gym.core.models import load_causal_lm

    plain = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    assert any(isinstance(m, NewGELUActivation) for m in plain.modules())  # the config asks for gelu_new
    fused = load_causal_lm(tiny_lm_dir)
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert sum(isinstance(m, torch.nn.GELU) for m in fused.modules()) == fused.config.n_layer
    ids = torch.randint(0, fused.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fused(ids).logits, plain(ids).logits, rtol=1e-5, atol=1e-5)
    fused.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.config.activation_function == "gelu_pytorch_tanh"
    assert not any(isinstance(m, NewGELUActivation) for m in again.modules())
