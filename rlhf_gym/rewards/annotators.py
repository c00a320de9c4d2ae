"""Simulated annotators: preference data for a task, labelled from its gold judge.

:func:`simulate_preferences` takes prompts (the task's training prompts; the default task's when none are
given), samples several continuations of each with a causal LM (the shipped tiny GPT-2 by default) at
several temperatures (KV-cached, batched), scores them with the gold judge (``SimulationConfig.gold``: the
task's, e.g. ``rlhf_gym.tasks.get_task("sentiment").make_gold``; the default task's when None) and has
annotators (:class:`Annotator`) compare them. An
annotator follows a Bradley–Terry model of the gold score with temperature ``T`` and flips its answer with
probability ``f``::

    P(A preferred over B) = (1 - f) · σ((gold(A) - gold(B)) / T) + f · σ((gold(B) - gold(A)) / T)

Several annotators with different ``T`` and ``f`` model disagreement; each comparison is labelled by one of
them. Pairs whose gold scores differ by less than ``tie_threshold`` are ties. A K-way ranking follows the
Plackett–Luce model with the same scores (sort by ``gold / T`` plus Gumbel noise, reverse with probability
``f``), whose pairwise marginals are exactly the formula above.

Records come in the three formats :mod:`rlhf_gym.rewards.preferences` reads and are validated by its
``parse_record``, so what :func:`write_records` writes loads back; the extra fields (``annotator``, gold
scores) are ignored by the loader. Everything is deterministic for a seed. :mod:`rlhf_gym.rewards.agreement`
measures how well any reward function ranks fresh continuations the way the gold judge does.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_gym.core.checks import check_fields, check_int, device_name, is_blank, resolve_device
from rlhf_gym.core.data import DEFAULT_TRAIN_PROMPTS
from rlhf_gym.errors import ConfigError
from rlhf_gym.io import write_text_atomic
from rlhf_gym.rewards.base import RewardFunction, as_reward_function
from rlhf_gym.rewards.preferences import PreferencePair, parse_record

FORMATS = ("pairs", "candidates", "rankings")

Progress = Callable[..., None]  # called with the number of continuations just generated


@dataclass(frozen=True)
class Annotator:
    """A simulated annotator: Bradley–Terry on the gold score, with temperature and flip noise.

    Args:
        name: written to each record it labels.
        temperature: gold-score units; small means decisive (0 = always the higher gold score).
        flip_rate: probability of giving the opposite answer (0.5 = random labels).
        seed: seeds its private random stream.

    >>> round(Annotator("alice", temperature=0.1).p_first(0.5, 0.3), 4)  # σ(2)
    0.8808
    >>> Annotator("coin", temperature=0.1, flip_rate=0.5).p_first(0.9, -0.9)
    0.5
    """

    name: str
    temperature: float = 0.05
    flip_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "annotator: ")
        if is_blank(self.name) or any(c in self.name for c in ":,"):
            raise ConfigError(f"annotator name {self.name!r} must be non-empty, without ':' or ','")
        if not self.temperature >= 0:
            raise ConfigError(f"annotator {self.name}: temperature must be >= 0, got {self.temperature}")
        if not 0 <= self.flip_rate <= 1:
            raise ConfigError(f"annotator {self.name}: flip_rate must be in [0, 1], got {self.flip_rate}")

    def p_first(self, gold_a: float, gold_b: float) -> float:
        """Probability that this annotator prefers A over B."""
        diff = gold_a - gold_b
        if self.temperature == 0:
            p = 0.5 if diff == 0 else float(diff > 0)
        else:
            p = 1 / (1 + math.exp(-max(min(diff / self.temperature, 700.0), -700.0)))
        return (1 - self.flip_rate) * p + self.flip_rate * (1 - p)

    def compare(self, gold_a: float, gold_b: float, rng: random.Random) -> int:
        """1 if A is preferred, 2 if B is, drawn from :meth:`p_first` with ``rng``."""
        return 1 if rng.random() < self.p_first(gold_a, gold_b) else 2

    def rank(self, golds: Sequence[float], rng: random.Random) -> list[int]:
        """Indices of ``golds`` best first: Plackett–Luce (Gumbel-max), reversed with probability flip_rate."""
        keys = []
        for i, gold in enumerate(golds):
            gumbel = -math.log(-math.log(rng.random() or 1e-300))
            keys.append((gold / self.temperature + gumbel, i) if self.temperature else (gold, rng.random(), i))
        order = [key[-1] for key in sorted(keys, reverse=True)]
        return order[::-1] if rng.random() < self.flip_rate else order


def parse_annotators(
    spec: str | int, *, temperature: float = 0.05, flip_rate: float = 0.0, seed: int = 0
) -> list[Annotator]:
    """Annotators from a spec: a count ``"3"``, or ``"NAME[:TEMPERATURE[:FLIP_RATE]],..."``.

    Missing temperatures and flip rates take the given defaults; annotator ``i`` gets seed ``seed + 1000 i``.

    >>> [(a.name, a.temperature, a.flip_rate) for a in parse_annotators("careful:0.02,sloppy:0.2:0.1")]
    [('careful', 0.02, 0.0), ('sloppy', 0.2, 0.1)]
    >>> [a.name for a in parse_annotators(2)]
    ['annotator1', 'annotator2']
    """
    text = str(spec).strip()
    if text.isdigit():
        if int(text) < 1:
            raise ConfigError("need at least one annotator")
        items = [(f"annotator{i + 1}", temperature, flip_rate) for i in range(int(text))]
    else:
        items = []
        for part in text.split(","):
            name, *values = part.strip().split(":")
            if len(values) > 2:
                raise ConfigError(f"annotator spec {part!r}: expected NAME[:TEMPERATURE[:FLIP_RATE]]")
            try:
                numbers = [float(v) for v in values]
            except ValueError:
                raise ConfigError(f"annotator spec {part!r}: temperature and flip rate must be numbers") from None
            numbers += [temperature, flip_rate][len(numbers):]
            items.append((name, *numbers))
    names = [name for name, *_ in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"annotator names must be unique, got {', '.join(names)}")
    return [Annotator(n, t, f, seed + 1000 * i) for i, (n, t, f) in enumerate(items)]


def resolve_gold(gold: Any = None) -> RewardFunction:
    """The gold judge from what a task gives: a RewardFunction (used as is), a factory ``() -> RewardFunction``
    (a task's ``gold`` or ``make_gold``), or None (the default task's judge)."""
    if gold is None:
        from rlhf_gym.rewards.gold import named_judge

        return named_judge()
    if hasattr(gold, "score") and not isinstance(gold, type):
        return gold
    if not callable(gold):
        raise ConfigError(f"gold={gold!r} is invalid: a reward function or a factory () -> reward function")
    return as_reward_function(gold())


@dataclass
class SimulationConfig:
    """What :func:`simulate_preferences` generates and how it is labelled."""

    n_comparisons: int = 1000  # labelled records: pairs, or rankings in the "rankings" format
    annotators: Sequence[Annotator] = (Annotator("annotator"),)
    format: str = "pairs"  # "pairs" {prompt, chosen, rejected}, "candidates" or "rankings"
    prompts: Any = DEFAULT_TRAIN_PROMPTS  # anything load_prompts accepts (the default task's training prompts)
    model: Any = None  # policy generating candidates: HF name, local dir, or None = the shipped tiny GPT-2
    temperatures: Sequence[float] = (0.7, 1.0, 1.4)  # sampling temperatures, cycled over candidates
    candidates_per_prompt: int = 4  # continuations sampled per prompt (K in the rankings format)
    pairs_per_prompt: int = 2  # comparisons drawn per prompt from its candidates ("pairs"/"candidates")
    max_new_tokens: int = 24  # length cap of a continuation, in tokens
    tie_threshold: float = 0.0  # label a tie when |gold(A) - gold(B)| < this ("pairs"/"candidates")
    batch_size: int = 64  # prompts per generation batch
    seed: int = 0
    device: str | None = None  # None = CUDA when available
    gold: Any = None  # the gold judge: a RewardFunction or a factory () -> one (a task's make_gold); None = default task's

    def __post_init__(self) -> None:
        self.device = device_name(self.device, "simulation config: device")
        check_fields(self, "simulation config: ")
        if self.format not in FORMATS:
            raise ConfigError(f"unknown preference format {self.format!r}; choose one of {', '.join(FORMATS)}")
        checks = {
            "n_comparisons": self.n_comparisons >= 1,
            "annotators": len(self.annotators) >= 1,
            "temperatures": len(self.temperatures) >= 1 and all(t > 0 for t in self.temperatures),
            "candidates_per_prompt": self.candidates_per_prompt >= 2,
            "pairs_per_prompt": 1 <= self.pairs_per_prompt <= math.comb(self.candidates_per_prompt, 2),
            "max_new_tokens": self.max_new_tokens >= 1,
            "tie_threshold": self.tie_threshold >= 0,
            "batch_size": self.batch_size >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"simulation config: invalid {name}={getattr(self, name)!r}")
        if self.format == "rankings" and self.tie_threshold > 0:
            raise ConfigError("the rankings format cannot express ties; use tie_threshold=0 or another format")


@dataclass
class Simulation:
    """What :func:`simulate_preferences` returns: file records, the pairs they expand to, and statistics."""

    records: list[dict[str, Any]]
    pairs: list[PreferencePair]
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One sampled continuation of a prompt and its gold score."""

    text: str
    gold: float
    temperature: float


class CandidateGenerator:
    """Samples continuations with a causal LM (KV-cached, batched) and scores them with the gold judge."""

    def __init__(self, model: Any = None, *, device: str | None = None, max_new_tokens: int = 24,
                 batch_size: int = 64, seed: int = 0, gold: Any = None):
        from rlhf_gym.core.models import load_causal_lm, load_tokenizer

        device = resolve_device(device, "device") or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        check_int(max_new_tokens, "max_new_tokens", low=1)
        check_int(batch_size, "batch_size", low=1)
        check_int(seed, "seed")
        self.model = load_causal_lm(model, device=device)
        self.tokenizer = load_tokenizer(model)
        self.tokenizer.padding_side = "left"  # sample() wants the newest token in the last column
        self.gold = resolve_gold(gold)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def continuations(self, prompts: Sequence[str], temperature: float,
                      on_progress: Progress | None = None) -> list[str]:
        """One sampled continuation per prompt (special tokens dropped, possibly empty)."""
        from rlhf_gym.core.sampler import sample

        tok, texts = self.tokenizer, []
        for start in range(0, len(prompts), self.batch_size):
            chunk = list(prompts[start : start + self.batch_size])
            batch = tok(chunk, return_tensors="pt", padding=True).to(self.model.device)
            out = sample(self.model, batch["input_ids"], batch["attention_mask"],
                         max_new_tokens=self.max_new_tokens, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, temperature=temperature, generator=self.generator)
            texts += tok.batch_decode(out.tokens.masked_fill(~out.mask, tok.pad_token_id), skip_special_tokens=True)
            if on_progress is not None:
                on_progress(len(chunk))
        return texts

    def candidates(self, prompts: Sequence[str], temperatures: Sequence[float], per_prompt: int,
                   on_progress: Progress | None = None) -> list[list[Candidate]]:
        """``per_prompt`` distinct, non-empty candidates per prompt (fewer when samples coincide)."""
        columns = []
        for k in range(per_prompt):
            temperature = temperatures[k % len(temperatures)]
            columns.append((temperature, self.continuations(prompts, temperature, on_progress)))
        flat = [(i, t, text) for t, texts in columns for i, text in enumerate(texts) if text.strip()]
        golds = self.gold.score([prompts[i] for i, _, _ in flat], [text for _, _, text in flat]).tolist()
        result: list[list[Candidate]] = [[] for _ in prompts]
        seen: list[set[str]] = [set() for _ in prompts]
        for (i, temperature, text), gold in zip(flat, golds, strict=True):
            if text not in seen[i]:  # identical sides make no comparison
                seen[i].add(text)
                result[i].append(Candidate(text, round(gold, 4), temperature))
        return result


def simulate_preferences(
    config: SimulationConfig | None = None,
    *,
    generator: CandidateGenerator | None = None,
    progress: bool = True,
) -> Simulation:
    """Generates candidates and has the annotators label them; see the module docstring.

    Args:
        config: what to generate (defaults to :class:`SimulationConfig()`).
        generator: reuse an already loaded :class:`CandidateGenerator` (its own seed then applies).
        progress: show a progress bar.
    """
    from rlhf_gym.core.data import load_prompts

    cfg = config or SimulationConfig()
    started = time.perf_counter()
    gen = generator or CandidateGenerator(cfg.model, device=cfg.device, max_new_tokens=cfg.max_new_tokens,
                                          batch_size=cfg.batch_size, seed=cfg.seed, gold=cfg.gold)
    rng = random.Random(cfg.seed)
    streams = {a.name: random.Random(a.seed) for a in cfg.annotators}
    per_prompt = 1 if cfg.format == "rankings" else cfg.pairs_per_prompt
    records: list[dict[str, Any]] = []
    used, generated = 0, 0
    with progress_bar(progress, "generating and labelling candidates") as bar:
        while len(records) < cfg.n_comparisons:
            need = math.ceil((cfg.n_comparisons - len(records)) / per_prompt * 1.05)
            prompts = load_prompts(cfg.prompts, n=used + need)[used:]
            if not prompts:
                break  # the prompt source is exhausted
            used += len(prompts)
            bar(0, total=cfg.candidates_per_prompt * used)
            candidates = gen.candidates(prompts, cfg.temperatures, cfg.candidates_per_prompt, bar)
            generated += len(prompts) * cfg.candidates_per_prompt
            for prompt, cands in zip(prompts, candidates, strict=True):
                if len(cands) >= 2:
                    records += _label(prompt, cands, cfg, rng, streams, per_prompt)
    records = records[: cfg.n_comparisons]
    if not records:
        raise ConfigError("no comparisons could be made: every prompt got fewer than two distinct continuations")
    pairs = [p for i, r in enumerate(records) for p in parse_record(r, f"simulated[{i}]")]
    stats = _stats(records, cfg)
    stats.update({"sim/n_prompts": used, "sim/n_generated": generated, "sim/n_pairs": len(pairs),
                  "sim/seconds": time.perf_counter() - started})
    return Simulation(records, pairs, stats)


def write_records(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Writes records as JSONL, or as CSV (lists as JSON arrays) for a ``.csv`` path, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for r in records for k in r)))
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in records)
    return write_text_atomic(path, buffer.getvalue())


def _label(prompt: str, cands: list[Candidate], cfg: SimulationConfig, rng: random.Random,
           streams: dict[str, random.Random], per_prompt: int) -> list[dict[str, Any]]:
    """Records for one prompt: ``per_prompt`` random pairs, or one ranking of all its candidates."""
    records = []
    if cfg.format == "rankings":
        annotator = rng.choice(cfg.annotators)
        order = annotator.rank([c.gold for c in cands], streams[annotator.name])
        return [{"prompt": prompt, "completions": [cands[i].text for i in order],
                 "annotator": annotator.name, "gold": [cands[i].gold for i in order]}]
    for i, j in rng.sample(list(combinations(range(len(cands)), 2)), min(per_prompt, math.comb(len(cands), 2))):
        a, b = (cands[i], cands[j]) if rng.random() < 0.5 else (cands[j], cands[i])
        annotator = rng.choice(cfg.annotators)
        tie = abs(a.gold - b.gold) < cfg.tie_threshold
        label = 0 if tie else annotator.compare(a.gold, b.gold, streams[annotator.name])
        if cfg.format == "candidates":
            records.append({"input_text": prompt, "candidate1": a.text, "candidate2": b.text,
                            "human_preference": label or "tie", "annotator": annotator.name,
                            "gold1": a.gold, "gold2": b.gold})
            continue
        chosen, rejected = (b, a) if label == 2 else (a, b)
        records.append({"prompt": prompt, "chosen": chosen.text, "rejected": rejected.text, **({"tie": True} if tie else {}),
                        "annotator": annotator.name, "gold_chosen": chosen.gold, "gold_rejected": rejected.gold})
    return records


def _stats(records: list[dict[str, Any]], cfg: SimulationConfig) -> dict[str, float]:
    """Label agreement with the gold judge (pairs with different gold scores), overall and per annotator."""
    agree: dict[str, list[bool]] = {a.name: [] for a in cfg.annotators}
    for r in records:
        if "gold" in r:  # a ranking, best first
            ordered = list(combinations(r["gold"], 2))
        elif "gold_chosen" in r:
            ordered = [] if r.get("tie") else [(r["gold_chosen"], r["gold_rejected"])]
        else:
            ordered = {1: [(r["gold1"], r["gold2"])], 2: [(r["gold2"], r["gold1"])]}.get(r["human_preference"], [])
        agree[r["annotator"]] += [g > h for g, h in ordered if g != h]
    everything = [x for xs in agree.values() for x in xs]
    ties = sum(r.get("tie", False) or r.get("human_preference") == "tie" for r in records)
    return {"sim/n_records": len(records), "sim/n_ties": ties,
            "sim/gold_agreement": float(np.mean(everything)) if everything else math.nan,
            **{f"sim/gold_agreement/{name}": float(np.mean(xs)) if xs else math.nan for name, xs in agree.items()}}


@contextmanager
def progress_bar(enabled: bool, description: str, total: int | None = None) -> Iterator[Progress]:
    """A transient rich progress bar; yields ``update(advance, total=None)`` (a no-op when disabled)."""
    if not enabled:
        yield lambda advance, total=None: None
        return
    from rich.progress import Progress as RichProgress

    with RichProgress(transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda advance, total=None: bar.update(task, advance=advance, total=total)
