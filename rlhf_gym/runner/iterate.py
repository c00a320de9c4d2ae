"""``rlhf-gym iterate``: iterated online RLHF (Bai et al. 2022, §4.5) on a registered task.

Each round ``r`` (folder ``OUT/round-r/``):

1. **sample** — ``labels_per_round`` comparisons of the *current* policy's continuations (the task's model in
   round 0, the previous round's final PPO policy after that) on a fresh slice of the task's training prompts;
2. **label** — by the task's simulated annotators (its annotator judge plus their noise and bias), or, with
   ``humans``, by people: the round's pairs (``pairs.jsonl``) are queued in that label store, which
   ``rlhf-gym label serve --db`` shows, and the round waits until each has ``overlap`` labels; either way
   ``labels.jsonl`` holds them in the chosen/rejected format ``rlhf-gym reward train`` reads;
3. **reward model** — retrained from the task's model on *all* labels so far (``rm/``), so early labels of the
   starting policy and late ones of the optimised policy both count;
4. **RL** — PPO continues from the previous round's final checkpoint (``run.init_agent``: weights, optimizer,
   KL controller and token counter carry on; the KL reference stays the task's model) against the new reward
   model for ``timesteps_per_round`` more tokens (``ppo/``, an ordinary run directory), and its held-out gold
   is measured.

Every step writes its output atomically and is skipped when present, and an interrupted PPO run resumes
exactly, so a killed ``iterate`` continues where it stopped. ``rounds=1`` with the whole label and token
budget is one-shot RLHF, the baseline of ``scripts/iterated_rlhf.py``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlhf_gym.core.checks import check_fields
from rlhf_gym.core.jsonio import read_json
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import check_output, write_text_atomic
from rlhf_gym.runner.config import preset_config, read_yaml_mapping
from rlhf_gym.runner.rundir import CONFIG_FILE, RESULT_FILE, prepare_run, read_result
from rlhf_gym.runner.suite import task_env_preset
from rlhf_gym.runner.task_figures import offline
from rlhf_gym.tasks import get_task

__all__ = ["IterateConfig", "iterate", "ROUND_FILE"]

ROUND_FILE = "round.json"
PAIRS_PER_PROMPT = 2  # comparisons drawn per prompt from its 4 sampled candidates (SimulationConfig's default)


@dataclass(frozen=True)
class IterateConfig:
    """One iterated-RLHF experiment."""

    task: str = "sentiment"  # a registered task whose model ships with the package
    rounds: int = 3  # sample -> label -> reward model -> PPO cycles
    labels_per_round: int = 500  # new comparisons of the current policy per round
    timesteps_per_round: int = 6000  # PPO tokens per round
    agent: str = "agents/ppo.yaml"  # the agent preset (an on-policy native agent: PPO, A2C, RLOO, ...)
    seed: int = 0  # seeds the sampling, the annotators, the reward models and PPO (offset per round)
    rm_epochs: int = 2  # reward-model epochs per round
    humans: str | None = None  # a label store (``rlhf-gym label serve --db``) whose people label each round; None = simulated
    overlap: int = 1  # with humans: labels per pair before a round goes on
    poll_seconds: float = 5.0  # with humans: how often the store is checked for new labels
    overrides: tuple[str, ...] = field(default=())  # --set for every round's PPO run (env., agent., run.)

    def __post_init__(self) -> None:
        check_fields(self, "iterate: ")
        if self.humans is not None and not Path(self.humans).is_file():
            raise ConfigError(f"iterate: --humans {self.humans}: no such label store (create it with rlhf-gym label "
                              "annotators add NAME --db FILE)")
        if not self.poll_seconds > 0:
            raise ConfigError(f"iterate: poll_seconds={self.poll_seconds} is invalid: must be > 0")
        for name in ("rounds", "labels_per_round", "timesteps_per_round", "rm_epochs", "overlap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"iterate: {name}={getattr(self, name)} is invalid: must be >= 1")
        if self.seed < 0:
            raise ConfigError(f"iterate: seed={self.seed} is invalid: must be >= 0")
        task = get_task(self.task)
        if not offline(task):
            raise ConfigError(f"iterate: task {task.name}'s model {task.model!r} is not shipped; choose an offline task")
        if not Path(self.agent).is_file():
            raise ConfigError(f"iterate: agent preset {self.agent} not found")


def _round_seed(cfg: IterateConfig, r: int) -> int:
    return cfg.seed * 1000 + r


def _policy_of(round_dir: Path) -> Path:
    """The final PPO policy of a finished round: a plain HF model directory."""
    from rlhf_gym.runner.checkpoint import latest_checkpoint

    last = latest_checkpoint(round_dir / "ppo")
    if last is None:
        raise ConfigError(f"{round_dir / 'ppo'} has no checkpoint: delete {round_dir} to redo that round")
    return last / "agent" / "policy"


def _round_prompts(cfg: IterateConfig, r: int, per_prompt: int) -> list[str]:
    """The task's training prompts, starting at a fresh slice for round ``r``."""
    from rlhf_gym.core.data import load_prompts

    prompts = load_prompts(get_task(cfg.task).train_prompts)
    offset = (r * math.ceil(cfg.labels_per_round / per_prompt * 1.1)) % len(prompts)
    return prompts[offset:] + prompts[:offset]


def _sample_labels(cfg: IterateConfig, r: int, policy: str, path: Path) -> None:
    from rlhf_gym.rewards.annotators import (
        SimulationConfig,
        parse_annotators,
        simulate_preferences,
        write_records,
    )

    task = get_task(cfg.task)
    seed = _round_seed(cfg, r)
    sim = simulate_preferences(SimulationConfig(
        n_comparisons=cfg.labels_per_round, prompts=_round_prompts(cfg, r, PAIRS_PER_PROMPT), model=policy,
        annotators=parse_annotators(task.annotators, temperature=task.annotator_temperature, seed=seed),
        gold=task.make_annotator_judge, max_new_tokens=task.max_new_tokens, pairs_per_prompt=PAIRS_PER_PROMPT,
        seed=seed), progress=False)
    write_records(sim.records, path)


def _human_labels(cfg: IterateConfig, r: int, policy: str, path: Path, say: Callable[[str], None]) -> None:
    """Queues ``labels_per_round`` pairs of the policy's samples in the label store, waits until each has
    ``overlap`` labels, and writes the people's verdicts (ties and "both bad" dropped) to ``path``."""
    from rlhf_gym.feedback.arena import sample_pairs
    from rlhf_gym.feedback.export import export_rows
    from rlhf_gym.feedback.items import read_items
    from rlhf_gym.feedback.store import LabelStore

    task, store = get_task(cfg.task), LabelStore(cfg.humans, create=False)
    pairs = path.with_name("pairs.jsonl")
    if not pairs.is_file():
        rows = sample_pairs(policy, _round_prompts(cfg, r, 1)[: cfg.labels_per_round], max_new_tokens=task.max_new_tokens,
                            seed=_round_seed(cfg, r), task=task.name, meta={"iterate_round": r})
        write_text_atomic(pairs, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    items = read_items(pairs)
    store.add_items(items, source=f"iterate round {r}")
    keys, shown = {it.key for it in items}, -1
    while True:
        ids = {s.id for s in store.items() if s.item.key in keys}
        counts = store.label_counts()
        done = sum(counts.get(i, 0) >= cfg.overlap for i in ids)
        if done == len(ids):
            break
        if done != shown:
            say(f"round {r}: {done}/{len(ids)} pairs labelled by {cfg.overlap} people; serve them with "
                f"rlhf-gym label serve --db {cfg.humans} --overlap {cfg.overlap}")
            shown = done
        time.sleep(cfg.poll_seconds)
    records = export_rows(store, "chosen_rejected", item_ids=ids)
    if not records:
        raise ConfigError(f"round {r}: every label in {cfg.humans} was a tie or 'both bad': no comparison to train on")
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in records))


def _train_rm(cfg: IterateConfig, r: int, label_files: list[Path], out: Path) -> None:
    from rlhf_gym.rewards.preferences import load_preferences
    from rlhf_gym.rewards.rm_train import RewardModelConfig, train_reward_model

    pairs = [p for f in label_files for p in load_preferences(f)]
    train_reward_model(pairs, RewardModelConfig(base_model=get_task(cfg.task).model, epochs=cfg.rm_epochs,
                                                seed=_round_seed(cfg, r)), out_dir=out, progress=False)


def _ppo(cfg: IterateConfig, r: int, round_dir: Path, previous: Path | None, wandb_mode: str | None) -> dict[str, Any]:
    from rlhf_gym.runner.train import train

    run_dir = round_dir / "ppo"
    if (run_dir / RESULT_FILE).is_file():
        return read_result(run_dir)
    task = get_task(cfg.task)
    env_file = round_dir / "env.yaml"
    if not env_file.is_file():
        write_text_atomic(env_file, yaml.safe_dump(task_env_preset(task, round_dir / "rm"), sort_keys=False))
    before = read_result(previous / "ppo")["steps"] if previous else 0  # a rollout may overshoot its budget
    own = [f"run.total_timesteps={before + cfg.timesteps_per_round}", f"run.seed={_round_seed(cfg, r)}",
           "run.checkpoint_every=0", *([f"run.init_agent={previous / 'ppo'}"] if previous else [])]
    resume = (run_dir / CONFIG_FILE).is_file()
    run_cfg = prepare_run(run_dir, None if resume else str(env_file), None if resume else cfg.agent,
                          None if resume else [*cfg.overrides, *own], resume)
    train(run_cfg, run_dir, resume=resume, wandb_mode=wandb_mode, progress=False)
    return read_result(run_dir)


def iterate(cfg: IterateConfig, out: str | Path, *, say: Callable[[str], None] = lambda _: None,
            wandb_mode: str | None = "disabled") -> list[dict[str, Any]]:
    """Runs (or continues) every round of ``cfg`` in ``out``; returns each round's summary (``round.json``)."""
    out = check_output(out)
    _check_plan(cfg, out)
    summaries: list[dict[str, Any]] = []
    for r in range(cfg.rounds):
        round_dir = out / f"round-{r}"
        if (round_dir / ROUND_FILE).is_file():
            summaries.append(read_json(round_dir / ROUND_FILE, "iterate round summary", ConfigError))
            say(f"round {r}: done (gold {summaries[-1]['gold_reward']:.3f})")
            continue
        round_dir.mkdir(parents=True, exist_ok=True)
        previous = out / f"round-{r - 1}" if r else None
        policy = str(_policy_of(previous)) if previous else get_task(cfg.task).model
        labels = round_dir / "labels.jsonl"
        if not labels.is_file():
            say(f"round {r}: {cfg.labels_per_round} comparisons of {'the starting policy' if r == 0 else f'round {r - 1} policy'}")
            if cfg.humans is None:
                _sample_labels(cfg, r, policy, labels)
            else:
                _human_labels(cfg, r, policy, labels, say)
        label_files = [out / f"round-{i}" / "labels.jsonl" for i in range(r + 1)]
        if not (round_dir / "rm" / "reward_stats.json").is_file():
            say(f"round {r}: reward model on the comparisons of rounds 0-{r}")
            _train_rm(cfg, r, label_files, round_dir / "rm")
        say(f"round {r}: PPO for {cfg.timesteps_per_round} more tokens")
        result = _ppo(cfg, r, round_dir, previous, wandb_mode)
        n_labels = sum(len(f.read_text().splitlines()) for f in label_files)
        summary = {"round": r, "labels": n_labels, "tokens": result["steps"],
                   **{k: result["eval"][k] for k in ("gold_reward", "rm_reward", "kl", "perplexity", "distinct_2")
                      if k in result["eval"]},
                   **{f"start_{k}": v for k, v in (result.get("initial_eval") or {}).items()},  # the round's policy before PPO
                   "rm_val_accuracy": _rm_accuracy(round_dir / "rm")}
        write_text_atomic(round_dir / ROUND_FILE, json.dumps(summary, indent=2))
        summaries.append(summary)
        say(f"round {r}: gold {summary['gold_reward']:.3f}  proxy {summary['rm_reward']:.3f}  kl {summary['kl']:.2f}")
    return summaries


def _rm_accuracy(rm_dir: Path) -> float:
    stats = read_json(rm_dir / "reward_stats.json", "reward-model stats", ConfigError)
    return float(stats.get("metrics", stats).get("rm/val_accuracy", float("nan")))


def _check_plan(cfg: IterateConfig, out: Path) -> None:
    """Validates round 0's PPO config before anything trains, and that ``out`` holds this experiment (or nothing)."""
    plan_file = out / "iterate.json"
    saved = {**asdict(cfg), "overrides": list(cfg.overrides)}
    if plan_file.is_file():
        before = read_json(plan_file, "iterate settings", ConfigError)
        changed = [k for k in saved if k not in ("rounds", "poll_seconds") and before.get(k) != saved[k]]
        if changed:
            raise ConfigError(f"{out} holds an iterate run with other settings ({', '.join(changed)}: "
                              f"{before.get(changed[0])!r} there); choose a new --out or the same settings")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds files that are not an iterate run; choose a new --out")
    env = {**task_env_preset(get_task(cfg.task), "gold"), "reward": "gold"}  # the reward models do not exist yet
    preset_config(env, read_yaml_mapping(cfg.agent), [*cfg.overrides, f"run.total_timesteps={cfg.timesteps_per_round}"],
                  f"task {cfg.task}'s env", cfg.agent)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(plan_file, json.dumps(saved, indent=2))
