"""Seed-to-seed spread of the metrics that the learning and threshold tests assert (issue 9).

Each check reruns one test's procedure, with the test's settings, over several seeds (and, where it matters,
another initialisation of the tiny test LM) and prints the metric per seed and its range, mean and sd; the
comments next to the tests quote these numbers. Run from the repository root, one check at a time:

    PYTHONPATH=. python scripts/audit_learning_tests.py sb3 --seeds 12
    PYTHONPATH=. python scripts/audit_learning_tests.py agents eval-kl lora rm embedded stats

Checks: sb3, agents, eval-kl, lora, rm, embedded (float-path dependent) and stats (the pure-Python seeded
statistics of test_annotators, test_elo and test_world, for completeness).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from conftest import build_tiny_lm  # noqa: E402

PROMPTS = ["the movie was", "the food", "i loved this", "this hotel was dirty and", "a"]  # conftest's
TMP = Path(tempfile.mkdtemp(prefix="audit-"))


def tiny_lm(seed: int = 0) -> str:
    path = TMP / f"tiny_lm{seed}"
    if not (path / "config.json").is_file():
        build_tiny_lm(path, seed=seed)
    return str(path)


def report(name: str, values: list[float]) -> None:
    v = np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else float("nan")
    print(f"== {name}: n={len(v)} min={v.min():.4f} max={v.max():.4f} mean={v.mean():.4f} sd={sd:.4f}", flush=True)


def sb3(seeds, lm_seeds):
    import test_sb3 as t

    from rlhf_gym.agents.sb3 import make_sb3_agent

    for lm_seed in lm_seeds:
        ratios = []
        for s in seeds:  # test_stock_ppo_with_the_callback_learns_a_toy_reward
            env = t.make_env(tiny_lm(lm_seed), PROMPTS, max_new_tokens=1)
            model, cb = make_sb3_agent("ppo", env, seed=s, n_steps=64, batch_size=32, n_epochs=4, learning_rate=1e-2)
            start = t.e_token_mass(model.policy, env)
            model.learn(640, callback=cb)
            end = t.e_token_mass(model.policy, env)
            ratios.append(end / start)
            print(f"lm={lm_seed} seed={s} start={start:.4f} end={end:.4f} end/start={end / start:.2f}", flush=True)
        report(f"sb3 ppo end/start, lm {lm_seed} (assert > 5)", ratios)


def agents(seeds, lm_seeds):
    import test_agents as t

    for lm_seed in lm_seeds:
        for cls, kw, budget in t.test_short_seeded_run_raises_the_reward.pytestmark[0].args[1]:
            gains = []
            for s in seeds:
                env = t.make_env(tiny_lm(lm_seed), PROMPTS, max_new_tokens=3)
                scores = [m["objective/scores"] for m in cls(env, seed=s, **kw).learn(budget).history]
                gains.append(np.mean(scores[-2:]) - np.mean(scores[:2]))
                print(f"{cls.__name__} lm={lm_seed} seed={s} first={np.mean(scores[:2]):.3f} "
                      f"last={np.mean(scores[-2:]):.3f} gain={gains[-1]:.3f}", flush=True)
            report(f"{cls.__name__} score gain, lm {lm_seed} (assert > 0.3)", gains)


def eval_kl(seeds, lm_seeds):
    import test_evaluation as t

    from rlhf_gym.agents.evaluation import evaluate
    from rlhf_gym.envs import TextGenEnv

    kls = []
    for lm_seed in lm_seeds:  # test_kl_is_positive_for_another_policy, with evaluate()'s seed varied
        env = TextGenEnv(model=tiny_lm(lm_seed), prompts=PROMPTS, reward=t.length_reward, max_new_tokens=6)
        policy = copy.deepcopy(env.engine.ref)
        with torch.no_grad():
            policy.get_output_embeddings().weight.mul_(10.0)
        kls += [evaluate(policy, env, n=16, seed=s)["kl"] for s in seeds]
    report("sharpened-policy kl (assert > 1)", kls)


def lora(seeds, lm_seeds):
    import test_lora as t

    from rlhf_gym.agents import PPO
    from rlhf_gym.core.models import load_causal_lm

    moved, b_max = [], []
    for lm_seed in lm_seeds:
        base = load_causal_lm(tiny_lm(lm_seed))
        for s in seeds:  # trained_lora_agent with seed s; the two LoRA learning checks
            env = t.make_env(tiny_lm(lm_seed), PROMPTS)
            agent = PPO(env, lora={"r": 4, "alpha": 32}, learning_rate=5e-3, minibatch_size=4, seed=s).learn(80)
            ids, mask, _ = env.sample_prompts(8)
            out = agent.generate(ids, mask)
            with torch.no_grad():
                want = t.token_logprobs(base, ids, mask, out.tokens, out.mask)
                got = t.token_logprobs(agent.policy.lm, ids, mask, out.tokens, out.mask)
            moved.append(float((got - want).abs().max()))
            b_max.append(max(float(p.abs().max()) for n, p in agent.policy.named_parameters() if "lora_B" in n))
    report("lora max |dlogp| (assert > 1e-3)", moved)
    report("lora max |B| (assert > 0)", b_max)


def rm(seeds, lm_seeds):
    import test_rm_train as t

    from rlhf_gym.rewards.learned import LearnedReward
    from rlhf_gym.rewards.preferences import PreferencePair
    from rlhf_gym.rewards.rm_train import evaluate_reward_model, train_reward_model

    class Factory:  # what the module-scoped fixtures want of pytest's tmp_path_factory
        def mktemp(self, name):
            return Path(tempfile.mkdtemp(prefix=name, dir=TMP))

    base = t.tiny_lm.__wrapped__(Factory())
    rows = []
    for s in seeds:
        logged, out = [], Factory().mktemp("rm") / "rm"
        _, _, m = train_reward_model(t.synthetic_pairs(240), t.config(base, seed=s), out_dir=out,
                                     callback=logged.append, progress=False)
        fresh = evaluate_reward_model(LearnedReward(out, normalize=False, device="cpu"), t.synthetic_pairs(60, seed=11))
        rng = random.Random(s)
        coin = [PreferencePair(p.prompt, *rng.sample([p.chosen, p.rejected], 2)) for p in t.synthetic_pairs(64)]
        stopped: list[dict] = []
        train_reward_model(coin, t.config(base, epochs=12, early_stopping_patience=1, seed=s), callback=stopped.append,
                           progress=False)
        first, last = logged[0], logged[-1]
        rows.append((m["rm/val_accuracy"], first["rm/train_loss"] / last["rm/train_loss"],
                     first["rm/val_loss"] / last["rm/val_loss"], fresh["accuracy"], fresh["mean_margin"], len(stopped)))
        print(f"seed={s} val_acc={rows[-1][0]:.3f} train_loss {first['rm/train_loss']:.3f}->{last['rm/train_loss']:.3f}"
              f" val_loss {first['rm/val_loss']:.3f}->{last['rm/val_loss']:.3f} fresh_acc={fresh['accuracy']:.3f}"
              f" margin={fresh['mean_margin']:.2f} early_stop_epochs={len(stopped)}", flush=True)
    names = ["val accuracy (>= 0.9)", "train loss first/last (> 2)", "val loss first/last (> 2)",
             "fresh accuracy (>= 0.9)", "fresh margin (> 0)", "early-stopping epochs (< 12)"]
    for i, name in enumerate(names):
        report(f"rm {name}", [r[i] for r in rows])


def embedded(seeds, lm_seeds):
    import test_annotators as t

    from rlhf_gym.rewards.annotators import (
        Annotator,
        CandidateGenerator,
        SimulationConfig,
        simulate_preferences,
    )

    agree, hi, lo = [], [], []
    for s in seeds:  # test_embedded_world_candidates_are_diverse
        gen = CandidateGenerator(device="cpu", max_new_tokens=24, seed=s)
        cfg = SimulationConfig(n_comparisons=64, annotators=[Annotator("a", temperature=0.01, seed=s)], device="cpu",
                               seed=s)
        sim = simulate_preferences(cfg, generator=gen, progress=False)
        golds = [g for r in sim.records for g in t.gold_of(r)]
        agree.append(sim.stats["sim/gold_agreement"])
        hi.append(max(golds))
        lo.append(min(golds))
    report("embedded gold agreement (> 0.9)", agree)
    report("embedded max gold (> 0.5)", hi)
    report("embedded min gold (< -0.3)", lo)


def stats(seeds, lm_seeds):
    import test_annotators as ta
    import test_elo as te
    import test_kl as tk
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from rlhf_gym.core.kl import kl_estimate
    from rlhf_gym.core.world import SENTIMENTS, ReviewWorld
    from rlhf_gym.rewards.annotators import Annotator
    from rlhf_gym.rewards.elo import bootstrap_elo, elo_ratings

    exact, errors = tk.exact_kl(tk.PI.log(), tk.REF.log()).item(), []
    for s in seeds:  # test_sampled_monte_carlo_matches_exact_kl (torch's sampler, so not bit-stable across versions)
        a = torch.multinomial(tk.PI, 1_000_000, replacement=True, generator=torch.Generator().manual_seed(s))
        errors.append(kl_estimate(tk.PI.log()[a], tk.REF.log()[a], "k3").mean().item() / exact - 1)
    report("kl Monte-Carlo relative error (|.| < 0.02)", errors)
    sigma = 1 / (1 + math.exp(-1))
    freq = []
    for s in seeds:
        a, rng = Annotator("a", temperature=0.1, flip_rate=0.1), random.Random(s)
        freq.append(sum(a.compare(0.1, 0.0, rng) == 1 for _ in range(20000)) / 20000 - (0.9 * sigma + 0.1 * (1 - sigma)))
    report("annotators label frequency - Bradley-Terry (|.| < 0.01)", freq)
    coin = [ta.simulate(n_comparisons=2000, seed=s, annotators=[Annotator("coin", 1e-4, 0.5, seed=s)])
            .stats["sim/gold_agreement"] for s in seeds]
    report("annotators coin-flip agreement (0.5 +- 0.05)", coin)
    teams = [ta.simulate(n_comparisons=2000, seed=s, annotators=[Annotator("careful", 0.01, seed=s),
                                                                 Annotator("sloppy", 0.5, 0.2, seed=s + 100)]).stats
             for s in seeds]
    report("annotators careful agreement (> 0.95)", [st["sim/gold_agreement/careful"] for st in teams])
    report("annotators sloppy agreement (< 0.8)", [st["sim/gold_agreement/sloppy"] for st in teams])
    streak = [("a", "b", 1)] * 50 + [("a", "b", 0)] * 50
    report("elo order-averaged rating - 1000 (|.| < 15)", [elo_ratings(streak, n_orders=200, seed=s)["a"] - 1000
                                                           for s in seeds])

    def width(n, s):
        table = bootstrap_elo(te.simulate(n, seed=n + 1000 * s), n_boot=100, seed=s)
        return sum(table.upper[p] - table.lower[p] for p in te.STRENGTH) / len(te.STRENGTH)

    report("elo CI width 1600/100 matches (< 0.6)", [width(1600, s) / width(100, s) for s in seeds])
    vader, share, agree = SentimentIntensityAnalyzer(), [], []
    for s in seeds:
        held = ReviewWorld(10_000 + s).reviews(400)
        share.append(min(Counter(r.sentiment for r in held)[x] for x in SENTIMENTS) / len(held))
        ok = {"positive": lambda c: c > 0.05, "negative": lambda c: c < -0.05, "neutral": lambda c: abs(c) <= 0.05}
        agree.append(min(np.mean([ok[x](vader.polarity_scores(r.continuation)["compound"]) for r in held
                                  if r.sentiment == x]) for x in SENTIMENTS))
    report("world smallest sentiment share (>= 0.15)", share)
    report("world worst vader agreement with labels (> 0.8)", agree)


CHECKS = {"sb3": sb3, "agents": agents, "eval-kl": eval_kl, "lora": lora, "rm": rm, "embedded": embedded,
          "stats": stats}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checks", nargs="+", choices=sorted(CHECKS))
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 (default 8)")
    parser.add_argument("--lm-seeds", type=int, nargs="+", default=[0, 1], help="tiny-LM initialisations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for check in args.checks:
        CHECKS[check](range(args.seeds), args.lm_seeds)
