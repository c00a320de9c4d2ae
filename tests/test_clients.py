"""Third-party clients on the stock Gymnasium API: TorchRL, a CleanRL-style PPO script, Gymnasium's wrappers.

docs/clients/*.md copy their code from here; each test says what its assertions mean.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from gymnasium.vector import AutoresetMode

import rlhf_gym  # noqa: F401  (registers the environments)

ENV_ID = "rlhf_gym/Sentiment-v0"
BETA = 0.05  # the env's default KL coefficient


# ----- TorchRL -------------------------------------------------------------------------------------------
def test_torchrl_gym_wrapper_over_the_single_env():
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    torch.manual_seed(0)  # rollout() without a policy samples random tokens from torch's generator
    env = GymWrapper(gym.make(ENV_ID, max_new_tokens=4), categorical_action_encoding=True)
    check_env_specs(env, seed=0)  # a rollout's tensors match the specs TorchRL built from the gym spaces
    td = env.rollout(8, break_when_any_done=False)  # TorchRL resets the env itself when an episode ends
    assert td.batch_size == (8,) and td["action"].dtype == torch.int64  # a token id per step
    width = env.observation_spec["input_ids"].shape[-1]
    assert td["input_ids"].shape == (8, width) and td["next", "attention_mask"].shape == (8, width)
    done = td["next", "done"].squeeze(-1)
    ends = done.nonzero().squeeze(-1).tolist()
    assert ends and all(b - a <= 4 for a, b in zip([-1] + ends, ends))  # no episode runs past 4 tokens
    for t in range(7):  # the next root state is the step's result, or a fresh prompt after an episode's end
        carried = torch.equal(td["input_ids"][t + 1], td["next", "input_ids"][t])
        assert carried != done[t].item()


def test_torchrl_info_dict_reader_on_the_single_env():
    from torchrl.envs import GymWrapper
    from torchrl.envs.gym_like import default_info_dict_reader
    from torchrl.envs.utils import check_env_specs

    env = GymWrapper(gym.make(ENV_ID, max_new_tokens=4, text_info=False), categorical_action_encoding=True)
    env.set_info_dict_reader(default_info_dict_reader(["ref_logprob", "rm_score"]))
    check_env_specs(env, seed=0)
    td = env.rollout(4)  # one episode (EOS may end it before 4 tokens)
    step = td["next"]
    assert step["done"][-1].item() and not step["done"][:-1].any()
    # The reward is the env's share of the KL on every token plus the judge's score on the last one.
    expected = BETA * step["ref_logprob"].float()
    expected[-1] += step["rm_score"][-1].float()
    torch.testing.assert_close(step["reward"].squeeze(-1), expected)


def test_torchrl_gym_wrapper_over_the_native_vector_env():
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    # SAME_STEP: TorchRL's own autoreset convention; text_info=False: TorchRL stacks final_info into tensors.
    venv = gym.make_vec(ENV_ID, num_envs=2, max_new_tokens=4, autoreset_mode=AutoresetMode.SAME_STEP,
                        text_info=False)
    env = GymWrapper(venv, categorical_action_encoding=True)
    check_env_specs(env, seed=0)
    td = env.rollout(8, break_when_any_done=False)
    assert td.batch_size == (2, 8)
    assert td["next", "done"].squeeze(-1).any(-1).all()  # each row finished at least one 4-token episode in 8 steps


def test_torchrl_gym_wrapper_over_a_same_step_sync_vector_env():
    """Gymnasium's SyncVectorEnv in SAME_STEP mode over single envs works the same way."""
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", max_new_tokens=4, text_info=False,
                        vector_kwargs=dict(autoreset_mode=AutoresetMode.SAME_STEP))
    env = GymWrapper(venv, categorical_action_encoding=True)
    check_env_specs(env, seed=0)
    td = env.rollout(8, break_when_any_done=False)
    assert td.batch_size == (2, 8) and td["next", "done"].squeeze(-1).any(-1).all()
    assert (td["next", "reward"] < 0).any()  # the env's KL share β·log π_ref is negative on most tokens


# ----- The CleanRL-style script --------------------------------------------------------------------------
def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "examples" / "cleanrl_ppo.py"
    spec = importlib.util.spec_from_file_location("cleanrl_ppo", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cleanrl_style_ppo_raises_the_gold_score(capsys):
    # This exact budget (4 rollouts of 16 envs x 32 steps, 8-token episodes, lr 5e-4, 32 held-out prompts),
    # measured over seeds 1-5 on the 2-core AMD machine: gold gain 0.51 ± 0.076 (min 0.414). The bar, 0.2, is
    # 4 sd below that mean; an untrained policy's gain is 0 (the same held-out prompts and sampling seed).
    # (Half this budget gave 0.27 ± 0.094, min 0.149: too close to any bar to be safe on another machine.)
    ppo = load_script()
    out = ppo.main(ppo.Args(seed=1, total_timesteps=2048, max_new_tokens=8, eval_episodes=32, learning_rate=5e-4))
    log = capsys.readouterr().out
    assert log.count("iteration=") == 4 and "gold_gain=" in log  # CleanRL-style per-iteration logging
    assert out["gold_gain"] > 0.2, out


# ----- Gymnasium's own wrappers -------------------------------------------------------------------------
# check_env warns that a wrapped env is not the raw one: checking the stack is the point here.
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version:UserWarning")
def test_gymnasium_wrappers_stacked_on_the_single_env():
    from gymnasium.utils.env_checker import check_env
    from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics, TimeLimit

    env = FlattenObservation(RecordEpisodeStatistics(TimeLimit(gym.make(ENV_ID, max_new_tokens=6), max_episode_steps=4)))
    check_env(env, skip_render_check=True)  # Gymnasium's API checks pass through the whole stack
    width = gym.make(ENV_ID, max_new_tokens=6).observation_space["input_ids"].shape[0]
    assert env.observation_space.shape == (2 * width,)  # the Dict's keys in order: attention_mask, input_ids
    eos = env.unwrapped.tokenizer.eos_token_id
    env.action_space.seed(0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done:
            action = eos if seed == 2 and steps == 1 else env.action_space.sample()  # episode 3: EOS 2nd
            obs, reward, terminated, truncated, info = env.step(action)
            assert obs in env.observation_space
            total, steps, done = total + reward, steps + 1, terminated or truncated
        # An episode ends on EOS (terminated, scored) or at TimeLimit's 4 steps (truncated, not scored).
        assert steps <= 4 and (terminated or steps == 4) and ("rm_score" in info) == terminated
        assert terminated == (seed == 2)  # random tokens rarely hit EOS (1 in 1,937): 1-2 truncate
        # RecordEpisodeStatistics' return is the sum of the step rewards (the KL share on each token, plus
        # the judge's score if the text was finished); its length counts the steps.
        assert info["episode"]["l"] == steps
        assert info["episode"]["r"] == pytest.approx(total, abs=1e-5)
