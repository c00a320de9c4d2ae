"""Bad input through the Python API: every malformed argument, config field, file or reward model is one
:class:`~rlhf_gym.errors.RLHFGymError` line naming the culprit (or Gymnasium's ``ResetNeeded`` where its
contract says so) — never a traceback from torch, NumPy or json, never silent acceptance — and nothing is
left behind where outputs would go."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlhf_gym.agents import A2C, NLPO, PPO
from rlhf_gym.agents.a2c import A2CConfig
from rlhf_gym.agents.evaluation import evaluate
from rlhf_gym.agents.nlpo import NLPOConfig
from rlhf_gym.agents.ppo import PPOConfig
from rlhf_gym.core.data import load_prompts
from rlhf_gym.core.lora import LoraSpec
from rlhf_gym.envs import TextGenEnv, TextGenVecEnv
from rlhf_gym.errors import ConfigError, DataError, ModelError, RLHFGymError
from rlhf_gym.rewards.annotators import Annotator, SimulationConfig
from rlhf_gym.rewards.learned import LearnedReward
from rlhf_gym.rewards.preferences import PreferencePair, load_preferences
from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model
from rlhf_gym.runner.config import RunConfig
from rlhf_gym.runner.sft import Demonstration, SFTConfig, load_demonstrations, train_sft

PROMPTS = ["the movie was", "the food", "i loved this"]
INF, NAN = math.inf, math.nan
ResetNeeded = gym.error.ResetNeeded


def length_reward(prompts, completions):
    return [len(c) / 10 for c in completions]


class Ctx:
    """What a row's call needs: the tiny model, shared (already reset) envs, a reward-model folder, tmp_path."""

    def __init__(self, tiny: str, tmp: Path, vec: TextGenVecEnv, env: TextGenEnv, rm_dir: Path):
        self.tiny, self.tmp, self.vec, self.env, self.rm_dir = tiny, tmp, vec, env, rm_dir
        self.inputs: set[Path] = set()  # files a row writes as its (bad) input

    def env_kw(self, **kw):
        return TextGenEnv(**{"model": self.tiny, "prompts": PROMPTS, "reward": length_reward, "max_new_tokens": 4,
                             **kw})

    def vec_kw(self, **kw):
        return TextGenVecEnv(**{"num_envs": 2, "model": self.tiny, "prompts": PROMPTS, "reward": length_reward,
                                "max_new_tokens": 4, **kw})

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        self.inputs.add(path)
        return path

    def rm_with_stats(self, stats_text: str) -> Path:
        """A copy of the reward model whose reward_stats.json holds ``stats_text``."""
        import shutil

        out = self.tmp / "rm"
        shutil.copytree(self.rm_dir, out)
        (out / "reward_stats.json").write_text(stats_text, encoding="utf-8")
        self.inputs |= {out, *out.rglob("*")}
        return out

    def rm_model(self):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        return AutoModelForSequenceClassification.from_pretrained(self.rm_dir), AutoTokenizer.from_pretrained(self.rm_dir)


PAIR = {"prompt": "p", "chosen": " a", "rejected": " b"}
DEMOS = [Demonstration("the movie", " was great")] * 4
PAIRS = [PreferencePair("the movie", " was great", " was awful")] * 4

# (id, call, expected error class, part of the message naming the culprit)
CASES = [
    # ----- class 1: devices, wherever they are given
    ("env-device-bogus", lambda c: c.env_kw(device="bogus"), ConfigError, "device='bogus'"),
    ("env-device-cuda-x", lambda c: c.env_kw(device="cuda:x"), ConfigError, "device='cuda:x'"),
    ("env-device-float", lambda c: c.env_kw(device=3.5), ConfigError, "device=3.5"),
    ("env-device-int", lambda c: c.env_kw(device=0), ConfigError, "device=0"),
    ("env-device-absent-gpu", lambda c: c.env_kw(device="cuda:99"), ConfigError, "device='cuda:99'"),
    ("env-device-meta", lambda c: c.env_kw(device="meta"), ConfigError, "device type 'meta'"),
    ("vec-device-bogus", lambda c: c.vec_kw(device="bogus"), ConfigError, "device='bogus'"),
    ("agent-config-device-bogus", lambda c: PPOConfig(device="bogus"), ConfigError, "device='bogus'"),
    ("agent-config-device-float", lambda c: PPOConfig(device=3.5), ConfigError, "device=3.5"),
    ("agent-device-absent-gpu", lambda c: PPO(c.vec, device="cuda:99"), ConfigError, "device='cuda:99'"),
    ("run-config-device", lambda c: RunConfig(device="cuda:x"), ConfigError, "device='cuda:x'"),
    ("sft-config-device", lambda c: SFTConfig(device="bogus"), ConfigError, "sft: device='bogus'"),
    ("sft-train-absent-gpu", lambda c: train_sft(DEMOS, SFTConfig(model=c.tiny, device="cuda:99"), c.tmp / "out"),
     ConfigError, "device='cuda:99'"),
    ("rm-config-device", lambda c: RewardModelConfig(device=["cpu"]), ConfigError, "device=['cpu']"),
    ("rm-train-absent-gpu", lambda c: train_reward_model(PAIRS, RewardModelConfig(base_model=c.tiny, device="cuda:99"),
                                                         c.tmp / "out", progress=False), ConfigError, "device='cuda:99'"),
    ("simulation-device", lambda c: SimulationConfig(device="gpu"), ConfigError, "device='gpu'"),
    ("learned-reward-device", lambda c: LearnedReward(c.rm_dir, device="cuda:x"), ConfigError, "device='cuda:x'"),
    # ----- class 2: env and vec-env arguments
    ("env-beta-string", lambda c: c.env_kw(beta="0.1"), ConfigError, "beta='0.1'"),
    ("env-beta-nan", lambda c: c.env_kw(beta=NAN), ConfigError, "beta=nan"),
    ("env-beta-inf", lambda c: c.env_kw(beta=INF), ConfigError, "beta=inf"),
    ("env-beta-bool", lambda c: c.env_kw(beta=True), ConfigError, "beta=True"),
    ("vec-beta-negative", lambda c: c.vec_kw(beta=-0.1), ConfigError, "beta=-0.1"),
    ("env-tokens-float", lambda c: c.env_kw(max_new_tokens=2.5), ConfigError, "max_new_tokens=2.5"),
    ("env-tokens-string", lambda c: c.env_kw(max_new_tokens="8"), ConfigError, "max_new_tokens='8'"),
    ("env-tokens-bool", lambda c: c.env_kw(max_new_tokens=True), ConfigError, "max_new_tokens=True"),
    ("vec-tokens-zero", lambda c: c.vec_kw(max_new_tokens=0), ConfigError, "max_new_tokens=0"),
    ("env-prompt-tokens-float", lambda c: c.env_kw(max_prompt_tokens=2.5), ConfigError, "max_prompt_tokens=2.5"),
    ("env-prompt-tokens-zero", lambda c: c.env_kw(max_prompt_tokens=0), ConfigError, "max_prompt_tokens=0"),
    ("vec-num-envs-float", lambda c: c.vec_kw(num_envs=2.5), ConfigError, "num_envs=2.5"),
    ("vec-num-envs-string", lambda c: c.vec_kw(num_envs="2"), ConfigError, "num_envs='2'"),
    ("vec-num-envs-zero", lambda c: c.vec_kw(num_envs=0), ConfigError, "num_envs=0"),
    ("env-prompts-2d-array", lambda c: c.env_kw(prompts=np.array([["a", "b"]])), DataError, "shape (1, 2)"),
    ("env-prompts-int-array", lambda c: c.env_kw(prompts=np.array([1, 2])), DataError, "prompts[0]=1"),
    ("env-prompts-mixed-list", lambda c: c.env_kw(prompts=["a", 3]), DataError, "prompts[1]=3"),
    ("env-prompts-dict", lambda c: c.env_kw(prompts={"a": 1}), DataError, "prompts={'a': 1}"),
    ("env-prompts-number", lambda c: c.env_kw(prompts=5), DataError, "prompts=5"),
    ("env-top-p-nan", lambda c: c.env_kw(action_mask_top_p=NAN), ConfigError, "action_mask_top_p=nan"),
    ("env-top-p-zero", lambda c: c.env_kw(action_mask_top_p=0), ConfigError, "action_mask_top_p=0"),
    ("env-min-tokens-float", lambda c: c.env_kw(action_mask_min_tokens=2.5), ConfigError, "action_mask_min_tokens=2.5"),
    ("env-kl-estimator-int", lambda c: c.env_kw(kl_estimator=1), ConfigError, "kl_estimator=1"),
    ("env-kl-estimator-list", lambda c: c.vec_kw(kl_estimator=["k1"]), ConfigError, "kl_estimator=['k1']"),
    ("env-render-junk", lambda c: c.env_kw(render_mode="human"), ConfigError, "render_mode='human'"),
    ("vec-render-ansi", lambda c: c.vec_kw(render_mode="ansi"), ConfigError, "render_mode='ansi'"),
    ("env-seed-negative", lambda c: c.env_kw(seed=-1), ConfigError, "seed=-1"),
    ("env-model-int", lambda c: c.env_kw(model=5), ConfigError, "model=5"),
    ("env-tokenizer-int", lambda c: c.env_kw(tokenizer=3), ConfigError, "tokenizer=3"),
    # ----- class 2: stepping and resetting
    ("vec-step-before-reset", lambda c: c.vec_kw().step(np.array([1, 2])), ResetNeeded, "reset()"),
    ("env-step-before-reset", lambda c: c.env_kw().step(1), ResetNeeded, "reset()"),
    ("vec-actions-float", lambda c: c.vec.step([2.7, 3.0]), ConfigError, "actions=[2.7, 3.0]"),
    ("vec-actions-2d", lambda c: c.vec.step(np.array([[3], [4]])), ConfigError, "shape (2, 1)"),
    ("vec-actions-short", lambda c: c.vec.step([3]), ConfigError, "shape (1,)"),
    ("vec-actions-torch-float", lambda c: c.vec.step(torch.tensor([1.0, 2.0])), ConfigError, "non-integers"),
    ("vec-actions-bool", lambda c: c.vec.step(np.array([True, False])), ConfigError, "non-integers"),
    ("vec-actions-strings", lambda c: c.vec.step(["a", "b"]), ConfigError, "actions=['a', 'b']"),
    ("vec-actions-ragged", lambda c: c.vec.step([[1], [2, 3]]), ConfigError, "actions=[[1], [2, 3]]"),
    ("vec-actions-out-of-vocab", lambda c: c.vec.step([3, 10**6]), ConfigError, "action 1000000 is outside"),
    ("vec-logprobs-shape", lambda c: c.vec.step([3, 4], logprobs=np.zeros(3)), ConfigError, "shape (3,)"),
    ("vec-logprobs-nan", lambda c: c.vec.step([3, 4], logprobs=[NAN, -1.0]), ConfigError, "must be finite"),
    ("vec-logprobs-inf", lambda c: c.vec.step([3, 4], logprobs=torch.tensor([-INF, -1.0])), ConfigError,
     "must be finite"),
    ("vec-logprobs-strings", lambda c: c.vec.step([3, 4], logprobs=["a", "b"]), ConfigError, "logprobs=['a', 'b']"),
    ("vec-reset-index-wrong-length", lambda c: c.vec.reset(options={"prompt_index": [0]}), ConfigError,
     "options['prompt_index']=[0]"),
    ("vec-reset-index-out-of-range", lambda c: c.vec.reset(options={"prompt_index": [0, 99]}), ConfigError,
     "prompt_index 99 is out of range"),
    ("vec-reset-index-float-rows", lambda c: c.vec.reset(options={"prompt_index": [0.0, 1.0]}), ConfigError,
     "options['prompt_index']=[0.0, 1.0]"),
    ("vec-reset-index-float", lambda c: c.vec.reset(options={"prompt_index": 1.5}), ConfigError,
     "options['prompt_index']=1.5"),
    ("vec-reset-index-string", lambda c: c.vec.reset(options={"prompt_index": "0"}), ConfigError,
     "options['prompt_index']='0'"),
    ("vec-reset-mask-ints", lambda c: c.vec.reset(options={"reset_mask": [1, 0]}), ConfigError, "reset_mask"),
    ("vec-reset-unknown-option", lambda c: c.vec.reset(options={"prompt_idx": 0}), ConfigError, "prompt_idx"),
    ("vec-reset-options-list", lambda c: c.vec.reset(options=[1]), ConfigError, "options=[1]"),
    ("vec-reset-seed-float", lambda c: c.vec.reset(seed=1.5), ConfigError, "seed=1.5"),
    ("vec-reset-seed-list-length", lambda c: c.vec.reset(seed=[1, 2, 3]), ConfigError, "seed=[1, 2, 3]"),
    ("env-reset-prompt-int", lambda c: c.env.reset(options={"prompt": 5}), ConfigError, "options['prompt']=5"),
    ("env-reset-index-negative", lambda c: c.env.reset(options={"prompt_index": -1}), ConfigError,
     "prompt_index -1 is out of range"),
    ("env-reset-seed-string", lambda c: c.env.reset(seed="1"), ConfigError, "seed='1'"),
    ("env-step-float", lambda c: (c.env.reset(seed=0), c.env.step(2.7)), ConfigError, "action 2.7"),
    ("env-step-2d", lambda c: (c.env.reset(seed=0), c.env.step(np.array([[3]]))), ConfigError, "not a token id"),
    # ----- class 3: booleans (and other types) of config dataclasses
    ("ppo-normalize-advantage-string", lambda c: PPOConfig(normalize_advantage="no"), ConfigError,
     "normalize_advantage='no'"),
    ("ppo-separate-value-int", lambda c: PPOConfig(separate_value_model=1), ConfigError, "separate_value_model=1"),
    ("a2c-normalize-advantage-false-string", lambda c: A2C(c.vec, normalize_advantage="false"), ConfigError,
     "normalize_advantage='false'"),
    ("ppo-batch-size-bool", lambda c: PPOConfig(batch_size=True), ConfigError, "batch_size=True"),
    ("ppo-n-epochs-float", lambda c: PPOConfig(n_epochs=2.5), ConfigError, "n_epochs=2.5"),
    ("ppo-seed-string", lambda c: PPO(c.vec, seed="0"), ConfigError, "seed='0'"),
    ("nlpo-min-tokens-float", lambda c: NLPOConfig(min_tokens=10.5), ConfigError, "min_tokens=10.5"),
    ("ptx-batch-size-string", lambda c: PPOConfig(ptx_batch_size="8"), ConfigError,
     "ptx_batch_size='8'"),
    ("lora-r-float", lambda c: LoraSpec(r=2.5), ConfigError, "lora.r=2.5"),
    ("rm-epochs-float", lambda c: RewardModelConfig(epochs=1.5), ConfigError, "epochs=1.5"),
    ("rm-patience-string", lambda c: RewardModelConfig(early_stopping_patience="2"), ConfigError,
     "early_stopping_patience='2'"),
    ("sft-epochs-string", lambda c: SFTConfig(epochs="2"), ConfigError, "sft: epochs='2'"),
    ("annotator-seed-float", lambda c: Annotator("a", seed=0.5), ConfigError, "seed=0.5"),
    ("annotator-name-invisible", lambda c: Annotator("\u200b"), ConfigError, "annotator name"),
    ("simulation-tokens-bool", lambda c: SimulationConfig(max_new_tokens=True), ConfigError, "max_new_tokens=True"),
    ("learned-normalize-string", lambda c: LearnedReward(*c.rm_model(), normalize="no"), ConfigError,
     "normalize='no'"),
    # ----- class 4: non-finite hyperparameters, temperatures, reward statistics
    ("ppo-lr-inf", lambda c: PPOConfig(learning_rate=INF), ConfigError, "learning_rate=inf"),
    ("ppo-temperature-inf", lambda c: PPOConfig(temperature=INF), ConfigError, "temperature=inf"),
    ("ppo-temperature-nan", lambda c: PPOConfig(temperature=NAN), ConfigError, "temperature=nan"),
    ("ppo-temperature-negative", lambda c: PPO(c.vec, temperature=-1.0), ConfigError, "temperature=-1.0"),
    ("ppo-clip-range-inf", lambda c: PPOConfig(clip_range=INF), ConfigError, "clip_range=inf"),
    ("ppo-gamma-nan", lambda c: PPOConfig(gamma=NAN), ConfigError, "gamma=nan"),
    ("ppo-gae-lambda-inf", lambda c: PPOConfig(gae_lambda=INF), ConfigError, "gae_lambda=inf"),
    ("nlpo-top-p-inf", lambda c: NLPO(c.vec, top_p=INF), ConfigError, "top_p=inf"),
    ("a2c-ent-coef-inf", lambda c: A2CConfig(ent_coef=INF), ConfigError, "ent_coef=inf"),
    ("ptx-coef-nan", lambda c: PPOConfig(ptx_coef=NAN), ConfigError, "ptx_coef=nan"),
    ("lora-alpha-inf", lambda c: LoraSpec(alpha=INF), ConfigError, "lora.alpha=inf"),
    ("evaluate-temperature-inf", lambda c: evaluate(c.vec.engine.ref, c.vec, n=2, temperature=INF), ConfigError,
     "temperature=inf"),
    ("evaluate-temperature-zero", lambda c: evaluate(c.vec.engine.ref, c.vec, n=2, temperature=0), ConfigError,
     "temperature=0"),
    ("evaluate-temperature-string", lambda c: evaluate(c.vec.engine.ref, c.vec, n=2, temperature="1"), ConfigError,
     "temperature='1'"),
    ("rm-lr-inf", lambda c: RewardModelConfig(lr=INF), ConfigError, "lr=inf"),
    ("rm-max-grad-norm-nan", lambda c: RewardModelConfig(max_grad_norm=NAN), ConfigError, "max_grad_norm=nan"),
    ("rm-train-lr-inf-writes-nothing", lambda c: train_reward_model(PAIRS, RewardModelConfig(lr=INF), c.tmp / "out"),
     ConfigError, "lr=inf"),
    ("sft-lr-inf", lambda c: SFTConfig(learning_rate=INF), ConfigError, "learning_rate=inf"),
    ("annotator-temperature-inf", lambda c: Annotator("a", temperature=INF), ConfigError, "temperature=inf"),
    ("annotator-flip-rate-nan", lambda c: Annotator("a", flip_rate=NAN), ConfigError, "flip_rate=nan"),
    ("simulation-temperatures-inf", lambda c: SimulationConfig(temperatures=(1.0, INF)), ConfigError,
     "temperatures=(1.0, inf)"),
    ("rm-stats-std-zero", lambda c: LearnedReward(c.rm_with_stats('{"mean": 0.5, "std": 0}')), ModelError,
     "reward_stats.json: std=0"),
    ("rm-stats-std-negative", lambda c: LearnedReward(c.rm_with_stats('{"mean": 0.5, "std": -1.0}')), ModelError,
     "std=-1.0"),
    ("rm-stats-mean-nan", lambda c: LearnedReward(c.rm_with_stats('{"mean": NaN, "std": 1.0}')), ModelError,
     "reward_stats.json: not valid JSON (NaN is not JSON)"),
    ("rm-stats-mean-string", lambda c: LearnedReward(c.rm_with_stats('{"mean": "0", "std": 1.0}')), ModelError,
     "mean='0'"),
    ("rm-stats-duplicate-key", lambda c: LearnedReward(c.rm_with_stats('{"mean": 0, "std": 1, "std": 0}')),
     ModelError, "duplicate key 'std'"),
    ("rm-stats-not-object", lambda c: LearnedReward(c.rm_with_stats("[0, 1]")), ModelError, "must hold a JSON object"),
    ("rm-stats-bad-max-length", lambda c: LearnedReward(c.rm_with_stats('{"mean": 0, "std": 1, "max_length": 1.5}')),
     ModelError, "max_length=1.5"),
    ("learned-stats-arg-std-zero", lambda c: LearnedReward(*c.rm_model(), stats={"mean": 0.0, "std": 0.0}),
     ModelError, "stats: std=0.0"),
    ("learned-batch-size-zero", lambda c: LearnedReward(c.rm_dir, batch_size=0), ConfigError, "batch_size=0"),
    # ----- class 5: data files
    ("prompts-jsonl-duplicate-key", lambda c: load_prompts(c.write("p.jsonl", '{"prompt": "a", "prompt": "b"}\n')),
     DataError, "p.jsonl:1: not valid JSON (duplicate key 'prompt')"),
    ("prompts-jsonl-nan", lambda c: load_prompts(c.write("p.jsonl", '{"prompt": "a"}\n{"prompt": "b", "w": NaN}\n')),
     DataError, "p.jsonl:2: not valid JSON (NaN is not JSON)"),
    ("prompts-txt-invisible-only", lambda c: load_prompts(c.write("p.txt", "\u200b\n\u00a0\u2060\n\ufeff\n")),
     DataError, "holds no prompts"),
    ("prompts-txt-bom-only", lambda c: load_prompts(c.write("p.txt", "\ufeff")), DataError, "holds no prompts"),
    ("prompts-txt-nul", lambda c: load_prompts(c.write("p.txt", "a\x00b\n")), DataError, "binary data"),
    ("prompts-n-float", lambda c: load_prompts(PROMPTS, n=2.5), DataError, "n=2.5"),
    ("prompts-dir-missing", lambda c: load_prompts(c.tmp / "nope.txt"), DataError, "nope.txt does not exist"),
    ("prefs-duplicate-key", lambda c: load_preferences(c.write("prefs.jsonl", json.dumps(PAIR)[:-1] + ', "chosen": "x"}\n')),
     DataError, "prefs.jsonl:1: not valid JSON (duplicate key 'chosen')"),
    ("prefs-nan-margin", lambda c: load_preferences(c.write("prefs.jsonl", json.dumps(PAIR)[:-1] + ', "margin": NaN}\n')),
     DataError, "prefs.jsonl:1: not valid JSON (NaN is not JSON)"),
    ("prefs-array-duplicate-key", lambda c: load_preferences(c.write("prefs.json", '[{"prompt": "p", "prompt": "q"}]')),
     DataError, "prefs.json: not valid JSON (duplicate key 'prompt')"),
    ("prefs-invisible-chosen", lambda c: load_preferences(c.write("prefs.jsonl", json.dumps({**PAIR, "chosen": "\u200b\u200c"}))),
     DataError, "prefs.jsonl:1: column 'chosen' is empty"),
    ("prefs-nbsp-prompt", lambda c: load_preferences([{**PAIR, "prompt": "\u00a0\u3000"}]), DataError,
     "records[0]: column 'prompt' is empty"),
    ("demos-duplicate-key", lambda c: load_demonstrations(c.write("d.jsonl", '{"prompt": "p", "completion": "a", "completion": "b"}\n')),
     DataError, "d.jsonl:1: not valid JSON (duplicate key 'completion')"),
    ("demos-invisible-completion", lambda c: load_demonstrations(c.write("d.jsonl", json.dumps({"prompt": "p", "completion": "\ufeff\u200d"}))),
     DataError, "d.jsonl:1: the completion is empty"),
]


def test_the_table_is_big_and_ids_are_unique():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.fixture(scope="session")
def shared(tiny_lm_dir, tmp_path_factory):
    """Envs built once (every row leaves them usable) and a saved reward model (with normal stats)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(1)
    vec = TextGenVecEnv(num_envs=2, model=tiny_lm_dir, prompts=PROMPTS, reward=length_reward, max_new_tokens=4)
    vec.reset(seed=0)
    env = TextGenEnv(model=tiny_lm_dir, prompts=PROMPTS, reward=length_reward, max_new_tokens=4)
    rm_dir = tmp_path_factory.mktemp("rm") / "rm"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_lm_dir, num_labels=1)
    model.config.pad_token_id = model.config.eos_token_id
    model.save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(rm_dir)
    (rm_dir / "reward_stats.json").write_text('{"mean": 0.0, "std": 1.0, "max_length": 32}', encoding="utf-8")
    return tiny_lm_dir, vec, env, rm_dir


@pytest.mark.parametrize("name, call, error, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_clear_line(name, call, error, expected, shared, tmp_path):
    tiny, vec, env, rm_dir = shared
    ctx = Ctx(tiny, tmp_path, vec, env, rm_dir)
    vec.reset(seed=0)
    before = set(tmp_path.rglob("*"))

    with pytest.raises(error) as info:
        call(ctx)

    message = str(info.value)
    assert isinstance(info.value, RLHFGymError if error is not ResetNeeded else ResetNeeded)
    assert "\n" not in message and len(message) <= 600, message
    assert expected in message, message
    left = set(tmp_path.rglob("*")) - before - ctx.inputs
    assert not left, f"left behind: {sorted(map(str, left))}"
