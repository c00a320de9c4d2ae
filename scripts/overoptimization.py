"""Reward over-optimisation per task: gold and proxy against d = sqrt(KL) for best-of-n and PPO, with the fits
of Gao, Schulman & Hilton (2022), and PPO with the KL penalty against PPO without it at equal proxy score.

    python scripts/overoptimization.py --quick                              # a few minutes on 2 cores
    python scripts/overoptimization.py --tasks concise,sentiment --comparisons 250 1000 5000 --seeds 0 1 2

For each task (its shipped tiny GPT-2, held-out prompts, gold judge):

* **proxies** — one Bradley–Terry reward model per ``--comparisons`` count, trained on that many comparisons
  by the task's simulated annotators (``concise``'s also prefer length, which its gold charges for) and
  cached (:func:`rlhf_gym.runner.proxy.cached_proxy`, ``$RLHF_GYM_CACHE``);
* **best-of-n** — a fixed pool of ``--pool`` samples on each of ``--pool-prompts`` held-out prompts from the
  starting policy (temperature 1), scored by the gold and by every proxy; for each ``n`` in ``--ns`` the
  unbiased estimate of the gold and proxy of best-of-n by that proxy, at ``KL = log n − (n − 1)/n``;
* **RL** — PPO on each proxy with no KL penalty (β = 0), ``--timesteps`` generated tokens per seed; every
  ``--eval-every`` updates the live policy is evaluated on ``--eval-episodes`` held-out prompts (gold, proxy,
  the *measured* KL to the reference, perplexity, distinct-2): those evaluations are the RL curves;
* **fits** — least squares of the gold gained over the starting policy: best-of-n ``d(α − βd)``, RL
  ``d(α − β log d)`` (all seeds' evaluations of one proxy together), with R²; per curve the KL at which the
  gold peaks and the gold lost from the peak to the end;
* **KL penalty vs none** — PPO with ``β = --kl-beta`` on the ``--kl-proxy`` proxy (default: the one with the
  most comparisons), same seeds, against the β = 0 runs on that proxy, compared where each run's proxy first
  reaches the highest score that every run of both arms reaches (``at equal proxy``): gold, perplexity,
  distinct-2 and KL, mean ± sd over seeds. ``--kl-beta 0`` skips it.

Writes ``OUT/results.json``, ``OUT/overopt-<task>.png`` (atomically) and the PPO run directories under
``OUT/runs/`` (a finished run with the same config is reused when the script is run again). Prints a fit
table; the last line is ``RESULT bon_r2=<min over proxies> rl_r2=<min over proxies>
gold_peak_before_end=<fraction of β = 0 RL curves whose gold peaks before their last evaluation while the
proxy still rises>`` (min over every task and proxy; nan when no fit had data).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from rlhf_gym.errors import RLHFGymError  # noqa: E402
from rlhf_gym.runner import overopt  # noqa: E402
from rlhf_gym.runner.proxy import ProxyConfig, cached_proxy  # noqa: E402
from rlhf_gym.tasks import get_task, list_tasks  # noqa: E402

#: PPO learning rate per task (1e-4 for the others; the arithmetic model is fragile, see task_learning.py).
LEARNING_RATES = {"arithmetic": 3e-5}
DEFAULT_NS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
QUICK = dict(tasks="concise", comparisons=[250, 1000], pool=32, pool_prompts=16, timesteps=3000, seeds=[0, 1],
             eval_every=2, eval_episodes=32)
ARM_KEYS = ("gold_reward", "perplexity", "distinct_2", "kl")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="concise,sentiment", help="comma-separated offline tasks")
    p.add_argument("--comparisons", type=int, nargs="+", default=[250, 1000, 5000],
                   help="simulated comparisons of each proxy reward model")
    p.add_argument("--pool", type=int, default=256, help="best-of-n pool: samples per prompt (the largest n)")
    p.add_argument("--pool-prompts", type=int, default=64, help="held-out prompts in the best-of-n pool")
    p.add_argument("--ns", default=None, help="comma-separated n of the best-of-n curve, or 'all' (1..pool); "
                   "default: 1,2,3,4,6,8,12,...,256 up to --pool")
    p.add_argument("--timesteps", type=int, default=20_000, help="generated tokens per PPO run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="PPO seeds")
    p.add_argument("--eval-every", type=int, default=2, help="PPO updates between held-out evaluations")
    p.add_argument("--eval-episodes", type=int, default=64, help="held-out prompts per evaluation")
    p.add_argument("--lr", type=float, default=None, help="PPO learning rate for every task (default: per task)")
    p.add_argument("--kl-beta", type=float, default=0.05, help="β of the KL-penalty arm (0: no comparison)")
    p.add_argument("--kl-proxy", type=int, default=None, help="comparisons of the proxy the KL arms train on "
                   "(default: the largest of --comparisons)")
    p.add_argument("--out", type=Path, default=Path("runs/overoptimization"), help="output folder")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest for the tiny models on a busy 2-core machine)")
    p.add_argument("--quick", action="store_true", help="a few minutes on 2 cores: " +
                   ", ".join(f"{k.replace('_', '-')}={v}" for k, v in QUICK.items()))
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    check_args(p, args)
    return args


def check_args(p: _Parser, args: argparse.Namespace) -> None:
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    known = {t.name: t for t in list_tasks()}
    for name in names:
        if name not in known:
            p.error(f"--tasks: unknown task {name!r} (registered: {', '.join(sorted(known))})")
    from rlhf_gym.runner.task_figures import offline

    remote = [n for n in names if not offline(known[n])]
    if not names or remote:
        p.error(f"--tasks: {'no task given' if not names else f'{remote} need a download'}; choose from "
                f"{', '.join(sorted(n for n, t in known.items() if offline(t)))}")
    args.tasks = list(dict.fromkeys(names))
    bad = {"--comparisons": any(c < 10 for c in args.comparisons), "--pool": args.pool < 2,
           "--pool-prompts": args.pool_prompts < 1, "--timesteps": args.timesteps < 1,
           "--seeds": any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds),
           "--eval-every": args.eval_every < 1, "--eval-episodes": args.eval_episodes < 1,
           "--lr": args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0),
           "--kl-beta": not (math.isfinite(args.kl_beta) and args.kl_beta >= 0), "--threads": args.threads < 1}
    rule = {"--comparisons": "each >= 10", "--seeds": "distinct integers >= 0", "--pool": ">= 2",
            "--lr": "> 0", "--kl-beta": ">= 0"}
    for flag, wrong in bad.items():
        if wrong:
            p.error(f"{flag}={getattr(args, flag[2:].replace('-', '_'))} is invalid: must be {rule.get(flag, '>= 1')}")
    args.comparisons = sorted(set(args.comparisons))
    if args.kl_proxy is None:
        args.kl_proxy = args.comparisons[-1]
    elif args.kl_proxy not in args.comparisons:
        p.error(f"--kl-proxy={args.kl_proxy} is invalid: must be one of --comparisons {args.comparisons}")
    try:
        ns = (list(range(1, args.pool + 1)) if args.ns == "all" else
              [n for n in DEFAULT_NS if n <= args.pool] if args.ns is None else
              [int(x) for x in args.ns.split(",") if x.strip()])
    except ValueError:
        p.error(f"--ns={args.ns!r} is invalid: comma-separated integers or 'all'")
    if not ns or 1 not in ns or any(not 1 <= n <= args.pool for n in ns):
        p.error(f"--ns={args.ns!r} is invalid: must include 1 and lie in 1..{args.pool} (--pool)")
    args.ns = sorted(set(ns))
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out={args.out} is invalid: it is a file, not a folder")


class Clock:
    """Progress lines: ``[elapsed] message``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.0f} s] {message}", flush=True)


def mean_sd(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def run_task(name: str, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    task = get_task(name)
    lr = args.lr if args.lr is not None else LEARNING_RATES.get(name, 1e-4)
    proxies = {}
    for c in args.comparisons:
        clock.say(f"{name}: proxy reward model from {c} comparisons (cached after the first time)")
        proxies[c] = cached_proxy(task, ProxyConfig(comparisons=c))
    total = args.pool_prompts * args.pool
    clock.say(f"{name}: best-of-n pool, {args.pool} samples on each of {args.pool_prompts} held-out prompts")
    done = [0]

    def sampled(k: int) -> None:
        done[0] += k
        if done[0] == total or done[0] % max(total // 4, 1) < k:
            clock.say(f"{name}: pool {done[0]}/{total} samples")

    pool = overopt.sample_pool(task, args.pool_prompts, args.pool, on_progress=sampled)
    out: dict[str, Any] = {"task": name, "learning_rate": lr, "pool_gold_mean": float(pool.gold.mean()),
                           "proxies": {}, "kl_penalty": None}
    runs = args.out / "runs" / name
    for c, rm_dir in proxies.items():
        proxy = overopt.score_pool(rm_dir, pool)
        bon = overopt.bon_curve(proxy, pool.gold, args.ns)
        clock.say(f"{name} c={c}: best-of-{args.ns[-1]} gold gain {bon['gold_gain'][-1]:+.3f}, proxy gain "
                  f"{bon['proxy_gain'][-1]:+.3f}")
        curves = []
        for seed in args.seeds:
            clock.say(f"{name} c={c} seed={seed}: PPO, β=0, {args.timesteps} tokens")
            curves.append(overopt.rl_curve(rl(task, rm_dir, runs / f"c{c}-b0-s{seed}", 0.0, seed, lr, args)))
        out["proxies"][str(c)] = {"reward_model": str(rm_dir), "bon": bon, "rl": {
            "curves": curves, "fit": overopt.rl_fit(curves),
            "peaks": [overopt.peak(cv["kl"], cv["gold_reward"], cv["rm_reward"]) for cv in curves]}}
    if args.kl_beta > 0:
        out["kl_penalty"] = kl_compare(task, proxies[args.kl_proxy], out["proxies"][str(args.kl_proxy)]["rl"]["curves"],
                                       runs, lr, args, clock)
    return out


def rl(task: Any, rm_dir: Path, run_dir: Path, beta: float, seed: int, lr: float, args: argparse.Namespace) -> Path:
    return overopt.rl_run(task, rm_dir, run_dir, beta=beta, timesteps=args.timesteps, seed=seed, learning_rate=lr,
                          eval_every=args.eval_every, eval_episodes=args.eval_episodes, progress=sys.stderr.isatty())


def kl_compare(task: Any, rm_dir: Path, none_curves: list[dict], runs: Path, lr: float, args: argparse.Namespace,
               clock: Clock) -> dict[str, Any]:
    kl_curves = []
    for seed in args.seeds:
        clock.say(f"{task.name} c={args.kl_proxy} seed={seed}: PPO, β={args.kl_beta}, {args.timesteps} tokens")
        kl_curves.append(overopt.rl_curve(rl(task, rm_dir, runs / f"c{args.kl_proxy}-b{args.kl_beta}-s{seed}",
                                             args.kl_beta, seed, lr, args)))
    arms = {"kl": kl_curves, "none": none_curves}
    target = min(max(c["rm_reward"]) for cs in arms.values() for c in cs)
    out: dict[str, Any] = {"beta": args.kl_beta, "proxy_comparisons": args.kl_proxy, "target_rm_reward": target,
                           "kl_curves": kl_curves}
    for arm, curves in arms.items():
        at = [overopt.at_proxy(c, target) for c in curves]
        out[arm] = {"at_equal_proxy": {k: mean_sd([a[k] for a in at if a is not None]) for k in ARM_KEYS},
                    "end": {k: mean_sd([c[k][-1] for c in curves]) for k in (*ARM_KEYS, "rm_reward")}}
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from rlhf_gym.runner.report import save_figure

    panels = 3 if result["kl_penalty"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (c, pr) in enumerate(result["proxies"].items()):
        col, bon, rlr = colors[i % len(colors)], pr["bon"], pr["rl"]
        ax = axes[0]
        ax.plot(bon["d"], bon["gold_gain"], "-o", ms=3, color=col, label=f"gold, {c} cmp")
        ax.plot(bon["d"], bon["proxy_gain"], "--", color=col, alpha=0.6, label=f"proxy, {c} cmp")
        if bon["fit"] and bon["fit"]["alpha"] is not None:
            d = np.linspace(0, max(bon["d"]), 50)
            ax.plot(d, d * (bon["fit"]["alpha"] - bon["fit"]["beta"] * d), ":", color=col)
        ax = axes[1]
        d, g, p = overopt.rl_points(rlr["curves"])
        ax.scatter(d, g, s=8, color=col, label=f"gold, {c} cmp")
        ax.scatter(d, p, s=8, color=col, marker="x", alpha=0.5, label=f"proxy, {c} cmp")
        if rlr["fit"] and rlr["fit"]["alpha"] is not None and d.max() > 0:
            x = np.linspace(1e-3, d.max(), 80)
            ax.plot(x, x * (rlr["fit"]["alpha"] - rlr["fit"]["beta"] * np.log(x)), ":", color=col)
    for ax, title in zip(axes[:2], ("best-of-n (fit: d(α − βd))", "PPO, β = 0 (fit: d(α − β log d))")):
        ax.set(title=title, xlabel="d = sqrt(KL) (nats^½)", ylabel="gain over the initial policy")
        ax.axhline(0, color="gray", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if result["kl_penalty"]:
        kp, ax = result["kl_penalty"], axes[2]
        none = result["proxies"][str(kp["proxy_comparisons"])]["rl"]["curves"]
        for arm, curves, col in ((f"β = {kp['beta']}", kp["kl_curves"], colors[0]), ("β = 0", none, colors[1])):
            for j, cv in enumerate(curves):
                ax.plot(cv["rm_reward"], cv["gold_reward"], "-o", ms=2, color=col, alpha=0.7,
                        label=arm if j == 0 else None)
        ax.axvline(kp["target_rm_reward"], color="gray", ls=":", label="equal proxy")
        ax.set(title=f"KL penalty vs none ({kp['proxy_comparisons']} cmp)", xlabel="proxy (rm_reward)",
               ylabel="gold")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"reward over-optimisation: {result['task']}")
    save_figure(fig, path)


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def print_tables(results: list[dict[str, Any]]) -> None:
    print("\n| task | proxy cmp | form | α | β | R² | fit peak KL | data peak KL | gold lost from peak | "
          "peaks early, proxy rising |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for c, pr in r["proxies"].items():
            for form, fit, peaks in (("BoN", pr["bon"]["fit"], [pr["bon"]["peak"]]),
                                     ("RL", pr["rl"]["fit"], pr["rl"]["peaks"])):
                fit = fit or {}
                kl_peak = statistics.mean(pk["kl_at_peak"] for pk in peaks)
                lost = statistics.mean(pk["gold_lost"] for pk in peaks)
                over = sum(pk["overoptimised"] for pk in peaks)
                print(f"| {r['task']} | {c} | {form} | {fmt(fit.get('alpha'))} | {fmt(fit.get('beta'))} | "
                      f"{fmt(fit.get('r2'))} | {fmt(fit.get('peak_kl'), '.2f')} | {kl_peak:.2f} | {lost:.3f} | "
                      f"{over}/{len(peaks)} |")
    rows = [r for r in results if r["kl_penalty"]]
    if rows:
        print("\n| task | arm | proxy reached | gold | perplexity | distinct-2 | KL |  (at equal proxy, mean ± sd)")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            kp = r["kl_penalty"]
            for arm, label in (("kl", f"β = {kp['beta']}"), ("none", "β = 0")):
                a = kp[arm]["at_equal_proxy"]
                cells = " | ".join(f"{fmt(a[k]['mean'])} ± {fmt(a[k]['sd'])}" for k in ARM_KEYS)
                print(f"| {r['task']} | {label} | {kp['target_rm_reward']:.3f} | {cells} |")


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    def low(values: list[float | None]) -> float:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return min(finite) if finite else math.nan

    prs = [pr for r in results for pr in r["proxies"].values()]
    peaks = [pk for pr in prs for pk in pr["rl"]["peaks"]]
    return {"bon_r2": low([(pr["bon"]["fit"] or {}).get("r2") for pr in prs]),
            "rl_r2": low([(pr["rl"]["fit"] or {}).get("r2") for pr in prs]),
            "gold_peak_before_end": sum(pk["overoptimised"] for pk in peaks) / len(peaks) if peaks else math.nan}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from rlhf_gym.io import write_text_atomic
    from rlhf_gym.runner.tracking import jsonable

    clock, results = Clock(), []
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    try:
        for name in args.tasks:
            results.append(run_task(name, args, clock))
            plot(results[-1], args.out / f"overopt-{name}.png")
            clock.say(f"{name}: wrote {args.out / f'overopt-{name}.png'}")
    except RLHFGymError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = summary(results)
    write_text_atomic(args.out / "results.json", json.dumps(jsonable(
        {"settings": settings, "tasks": results, "result": result, "wall_time": time.perf_counter() - clock.start}),
        indent=1) + "\n")
    print_tables(results)
    print(f"\nwrote {args.out / 'results.json'} in {time.perf_counter() - clock.start:.0f} s")
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
