"""CleanRL-style single-file PPO on ``rlhf_gym/Sentiment-v0``: the shipped tiny GPT-2 is the actor, a linear
value head on its last hidden state is the critic, and the env is the stock Gymnasium vector API.

    python scripts/examples/cleanrl_ppo.py                      # one seed, ~1 min on one CPU core
    python scripts/examples/cleanrl_ppo.py --num-seeds 3        # seeds 1..3, gain as mean ± sd

Things an RLHF env needs that CartPole does not (each marked below): Dict observations (one storage tensor
per key), the agent's share of the KL paid through the env (``set_policy_logprobs`` before each step),
NEXT_STEP autoreset (the step after a row's episode ends only resets that row: it is dropped from the
batch), and the held-out gold score before and after (:func:`rlhf_gym.agents.evaluation.evaluate`). The last
line is ``RESULT gold_gain=<mean> gold_gain_sd=<sd> seeds=<s1,s2,...>`` (VADER's -1..1 scale).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn
from torch.distributions.categorical import Categorical

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import rlhf_gym  # noqa: E402,F401  (registers the environments)
from rlhf_gym.agents.evaluation import evaluate  # noqa: E402
from rlhf_gym.core.generation import position_ids_from_mask, trim_left_padding  # noqa: E402
from rlhf_gym.core.models import load_causal_lm  # noqa: E402
from rlhf_gym.runner.config import field_docs  # noqa: E402


@dataclass
class Args:
    seed: int = 1
    """seed of the experiment (torch sampling and the env's prompt draws)"""
    num_seeds: int = 1
    """run seeds seed, seed+1, ...; the RESULT line gives the gain's mean and sd over them"""
    env_id: str = "rlhf_gym/Sentiment-v0"
    """the id of the environment"""
    total_timesteps: int = 4096
    """total env steps (generated tokens, over all envs)"""
    learning_rate: float = 3e-4
    """the learning rate of the optimizer"""
    num_envs: int = 16
    """the number of episodes generated in parallel (rows of the native vector env)"""
    num_steps: int = 32
    """the number of steps to run in each environment per policy rollout"""
    max_new_tokens: int = 16
    """the env's length cap of a continuation"""
    beta: float = 0.05
    """the KL coefficient: every token pays -beta * (log pi - log pi_ref)"""
    gamma: float = 1.0
    """the discount factor gamma (1: the score at the end is what counts)"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 4
    """the number of mini-batches"""
    update_epochs: int = 4
    """the K epochs to update the policy"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    vf_coef: float = 0.1
    """coefficient of the value function"""
    max_grad_norm: float = 1.0
    """the maximum norm for the gradient clipping"""
    eval_episodes: int = 64
    """held-out prompts (embedded:eval) sampled before and after training"""


def parse_args() -> Args:
    """tyro if installed (as CleanRL does), else argparse with the same ``--kebab-case`` flags and help."""
    try:
        import tyro
    except ImportError:
        docs = field_docs(Args)  # the docstring under each field, as every config in rlhf_gym documents them
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        for f in dataclasses.fields(Args):
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                                help=f"{docs[f.name]} (default: {f.default})")
        return Args(**vars(parser.parse_args()))
    return tyro.cli(Args)


class Agent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lm = load_causal_lm("embedded")  # a trainable copy of the env's frozen reference: KL starts at 0
        self.value_head = nn.Linear(self.lm.config.n_embd, 1)
        nn.init.zeros_(self.value_head.weight)  # V = 0 at the start
        nn.init.zeros_(self.value_head.bias)

    def get_action_and_value(self, obs, action=None):
        ids, mask = trim_left_padding(obs["input_ids"], obs["attention_mask"])  # left-padded: newest token last
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                      output_hidden_states=True, logits_to_keep=1)
        probs = Categorical(logits=out.logits[:, -1].float())
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.value_head(out.hidden_states[-1][:, -1]).squeeze(-1)


def main(args: Args) -> dict:
    batch_size = args.num_envs * args.num_steps
    num_iterations = args.total_timesteps // batch_size
    torch.manual_seed(args.seed)
    envs = gym.make_vec(args.env_id, num_envs=args.num_envs, max_new_tokens=args.max_new_tokens, beta=args.beta)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP, "the masking below is for NEXT_STEP"
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    agent = Agent()
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    gold_before = evaluate(agent.lm, envs, prompts="embedded:eval", n=args.eval_episodes, seed=0)

    # Storage: a Dict observation is one tensor per key
    space = envs.single_observation_space
    obs = {k: torch.zeros((args.num_steps, args.num_envs) + space[k].shape, dtype=torch.long) for k in space}
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs, rewards, dones, values = (torch.zeros((args.num_steps, args.num_envs)) for _ in range(4))

    global_step, start_time = 0, time.time()
    next_obs = {k: torch.as_tensor(v) for k, v in envs.reset(seed=args.seed)[0].items()}
    next_done = torch.zeros(args.num_envs)
    for iteration in range(1, num_iterations + 1):
        episode_returns, rm_scores = [], []
        for step in range(args.num_steps):
            global_step += args.num_envs
            for k in obs:
                obs[k][step] = next_obs[k]
            dones[step] = next_done  # NEXT_STEP: 1 = this row's step is a reset, not a transition
            with torch.no_grad():
                action, logprob, _, values[step] = agent.get_action_and_value(next_obs)
            actions[step], logprobs[step] = action, logprob
            envs.unwrapped.set_policy_logprobs(logprob)  # the env pays the full -beta*KL on this step
            next_obs_np, reward, terminations, truncations, infos = envs.step(action.numpy())
            next_obs = {k: torch.as_tensor(v) for k, v in next_obs_np.items()}
            next_done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32)
            rewards[step] = torch.as_tensor(reward)
            if "episode" in infos:  # RecordEpisodeStatistics: returns include every token's KL term
                episode_returns += infos["episode"]["r"][infos["_episode"]].tolist()
                rm_scores += infos["rm_score"][infos["_rm_score"]].tolist()

        # GAE. The env never truncates (the length cap is a termination), so done rows are not bootstrapped.
        with torch.no_grad():
            next_value = agent.get_action_and_value(next_obs)[3]
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                nextnonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        # Flatten the batch, keeping only real transitions (a reset step's action was ignored by the env)
        b_inds = torch.nonzero(dones.reshape(-1) == 0).squeeze(1).numpy()
        b_obs = {k: v.reshape((-1,) + space[k].shape) for k, v in obs.items()}
        b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape(-1)
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        minibatch_size = -(-len(b_inds) // args.num_minibatches)  # ceil: exactly num_minibatches
        for _epoch in range(args.update_epochs):
            np.random.default_rng(args.seed * 1000 + iteration).shuffle(b_inds)
            for start in range(0, len(b_inds), minibatch_size):
                mb = b_inds[start : start + minibatch_size]
                _, newlogprob, _, newvalue = agent.get_action_and_value({k: v[mb] for k, v in b_obs.items()},
                                                                        b_actions[mb])
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                mb_adv = (b_advantages[mb] - b_advantages[mb].mean()) / (b_advantages[mb].std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                loss = pg_loss + args.vf_coef * v_loss  # no entropy bonus: the KL term already pays for entropy
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        print(f"iteration={iteration} global_step={global_step} episodes={len(episode_returns)} "
              f"episodic_return={np.mean(episode_returns):.3f} rm_score={np.mean(rm_scores):.3f} "
              f"approx_kl={approx_kl.item():.4f} SPS={int(global_step / (time.time() - start_time))}", flush=True)

    gold_after = evaluate(agent.lm, envs, prompts="embedded:eval", n=args.eval_episodes, seed=0)
    envs.close()
    gain = gold_after["gold_reward"] - gold_before["gold_reward"]
    print(f"seed={args.seed} gold_before={gold_before['gold_reward']:.3f} gold_after={gold_after['gold_reward']:.3f} "
          f"gold_gain={gain:.3f} kl_after={gold_after['kl']:.2f} seconds={time.time() - start_time:.0f}", flush=True)
    return dict(gold_before=gold_before["gold_reward"], gold_after=gold_after["gold_reward"], gold_gain=gain,
                kl_after=gold_after["kl"])


if __name__ == "__main__":
    args = parse_args()
    torch.set_num_threads(1)  # the tiny model is fastest on one thread of a shared CPU
    seeds = list(range(args.seed, args.seed + args.num_seeds))
    gains = [main(dataclasses.replace(args, seed=s))["gold_gain"] for s in seeds]
    sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"RESULT gold_gain={statistics.mean(gains):.4f} gold_gain_sd={sd:.4f} seeds={','.join(map(str, seeds))}")
