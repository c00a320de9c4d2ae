"""An arena between policies: battles on a task's prompts, judged by simulated annotators or by people, rated
with Bradley–Terry and bootstrap intervals (Chatbot Arena's method, :func:`rlhf_gym.rewards.elo.bootstrap_elo`).

A **battle** is one prompt and two policies' continuations of it, sides in random order. :func:`sample_battles`
samples one continuation per policy and prompt (temperature 1, the policies' own sampler) and pairs every two
policies on every prompt; :func:`judge_battles` has a task's simulated annotators pick the winner from the
gold judge's scores (a tie when both texts are the same); :func:`battles_to_pairs` writes them as the
``{prompt, candidate1, candidate2}`` rows ``rlhf-gym label serve`` shows people, with the policies' names kept
under ``"meta"``, and :func:`matches_from_labels` reads people's verdicts on them back from the label store. :func:`arena_board` turns matches into a leaderboard; :func:`to_html` is a static page with
every string escaped (policy names and model text come from users).
"""

from __future__ import annotations

import html
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.feedback.store import LabelStore
from rlhf_gym.rewards.annotators import Annotator, CandidateGenerator
from rlhf_gym.rewards.base import RewardFunction
from rlhf_gym.rewards.elo import Match, bootstrap_elo

__all__ = ["Battle", "sample_battles", "sample_pairs", "judge_battles", "battles_to_pairs", "matches_from_labels", "arena_board", "to_markdown", "to_html"]


@dataclass(frozen=True)
class Battle:
    """One prompt, two policies' continuations (``a`` is shown first)."""

    prompt: str
    policy_a: str
    policy_b: str
    text_a: str
    text_b: str


def sample_battles(policies: Mapping[str, Any], prompts: Sequence[str], *, max_new_tokens: int, seed: int = 0,
                   device: str | None = None) -> tuple[list[Battle], dict[str, list[str]]]:
    """Every pair of ``policies`` (name -> model directory or hub name) on every prompt; also returns each
    policy's continuations, in prompt order."""
    if len(policies) < 2:
        raise ConfigError(f"an arena needs at least two policies, got {len(policies)}")
    if not prompts:
        raise ConfigError("an arena needs at least one prompt")
    texts = {}
    for i, (name, model) in enumerate(policies.items()):
        gen = CandidateGenerator(model, device=device, max_new_tokens=max_new_tokens, seed=seed * 1000 + i)
        texts[name] = gen.continuations(list(prompts), temperature=1.0)
    rng = random.Random(seed)
    battles = []
    for a, b in combinations(policies, 2):
        for k, prompt in enumerate(prompts):
            first, second = (a, b) if rng.random() < 0.5 else (b, a)  # no side is always the same policy
            battles.append(Battle(prompt, first, second, texts[first][k], texts[second][k]))
    return battles, texts


def sample_pairs(model: Any, prompts: Sequence[str], *, max_new_tokens: int, seed: int = 0, task: str | None = None,
                 meta: Mapping[str, Any] | None = None, device: str | None = None) -> list[dict[str, Any]]:
    """Pairs-file rows of one policy: two continuations of each prompt (temperature 1); a prompt whose two
    texts came out the same is dropped (nothing to compare)."""
    gen = CandidateGenerator(model, device=device, max_new_tokens=max_new_tokens, seed=seed)
    first, second = gen.continuations(list(prompts), temperature=1.0), gen.continuations(list(prompts), temperature=1.0)
    return [{"prompt": p, "candidate1": a, "candidate2": b, **({"task": task} if task else {}), "meta": dict(meta or {})}
            for p, a, b in zip(prompts, first, second, strict=True) if a != b]


def judge_battles(battles: Sequence[Battle], annotators: Sequence[Annotator], gold: RewardFunction) -> list[Match]:
    """``(policy_a, policy_b, result)`` per battle: 1 if the annotator prefers a, 0 if b, 0.5 for equal texts.

    Annotator ``i % len(annotators)`` judges battle ``i`` from the gold scores, with its own noise."""
    if not annotators:
        raise ConfigError("judging battles needs at least one annotator")
    prompts = [b.prompt for b in battles]
    gold_a = gold.score(prompts, [b.text_a for b in battles]).tolist()
    gold_b = gold.score(prompts, [b.text_b for b in battles]).tolist()
    streams = [random.Random(a.seed) for a in annotators]
    matches: list[Match] = []
    for i, (battle, ga, gb) in enumerate(zip(battles, gold_a, gold_b, strict=True)):
        if battle.text_a == battle.text_b:
            matches.append((battle.policy_a, battle.policy_b, 0.5))
            continue
        k = i % len(annotators)
        matches.append((battle.policy_a, battle.policy_b, 1.0 if annotators[k].compare(ga, gb, streams[k]) == 1 else 0.0))
    return matches


def battles_to_pairs(battles: Sequence[Battle], task: str | None = None, *, drop_identical: bool = False) -> list[dict[str, Any]]:
    """Rows for ``rlhf-gym label serve --pairs``; the policies travel in ``meta`` (people do not see them).

    ``drop_identical`` leaves out battles whose two texts are the same (nothing for a person to compare; the
    labelling app refuses such rows)."""
    return [{"prompt": b.prompt, "candidate1": b.text_a, "candidate2": b.text_b,
             **({"task": task} if task else {}), "meta": {"policy1": b.policy_a, "policy2": b.policy_b}}
            for b in battles if not (drop_identical and b.text_a == b.text_b)]


def matches_from_labels(store: LabelStore) -> tuple[list[Match], list[Battle]]:
    """People's verdicts on arena battles (items whose ``meta`` names ``policy1`` and ``policy2``): A or B
    better is a win, a tie or "both bad" half a win each. Returns the matches and the battles labelled."""
    items = {s.id: s.item for s in store.items()}
    matches: list[Match] = []
    battles: list[Battle] = []
    for label in store.labels():
        item = items[label.item_id]
        a, b = item.meta.get("policy1"), item.meta.get("policy2")
        if item.kind != "pair" or not isinstance(a, str) or not isinstance(b, str) or label.choice is None:
            continue
        matches.append((a, b, {"a": 1.0, "b": 0.0}.get(label.choice, 0.5)))
        battles.append(Battle(item.prompt, a, b, *item.candidates))
    if not matches:
        raise DataError(f"{store.path}: no labels of arena battles (pairs written by rlhf-gym arena --pairs-only)")
    return matches, battles


def arena_board(matches: Sequence[Match], gold: Mapping[str, float] | None = None, *, n_boot: int = 200,
                seed: int = 0) -> dict[str, Any]:
    """Bradley–Terry ratings with 95% bootstrap intervals, win rates and (if given) each policy's mean gold."""
    table = bootstrap_elo(matches, n_boot=n_boot, seed=seed)
    wins: dict[str, float] = {}
    for a, b, result in matches:
        wins[a] = wins.get(a, 0.0) + result
        wins[b] = wins.get(b, 0.0) + 1 - result
    rows = [{"policy": str(p), "rating": r, "lower": table.lower[p], "upper": table.upper[p],
             "matches": table.matches[p], "win_rate": wins[p] / table.matches[p],
             **({"gold": gold[p]} if gold and p in gold else {})} for p, r in table.ranking()]
    return {"rows": rows, "matches": len(matches), "n_boot": n_boot, "ci": table.ci}


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["policy"], f"{row['rating']:.0f}", f"[{row['lower']:.0f}, {row['upper']:.0f}]", str(row["matches"]),
            f"{row['win_rate']:.1%}", f"{row['gold']:.3f}" if "gold" in row else "—"]


HEAD = ["policy", "rating (BT)", "95% CI", "battles", "win rate", "mean gold"]


def to_markdown(board: dict[str, Any], title: str) -> str:
    """The ratings as a markdown table (``|`` in a name is escaped)."""
    lines = [f"# {title}", "", f"{board['matches']} battles; Bradley–Terry on the Elo scale, "
             f"{board['n_boot']} bootstrap resamples.", "", "| rank | " + " | ".join(HEAD) + " |",
             "|---|" + "---|" * len(HEAD)]
    for rank, row in enumerate(board["rows"], 1):
        lines.append(f"| {rank} | " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def to_html(board: dict[str, Any], title: str, samples: Sequence[Battle] = ()) -> str:
    """A static page (no script): the ratings with their intervals drawn as bars, then sample battles."""
    esc = html.escape
    lo = min(r["lower"] for r in board["rows"])
    span = max(max(r["upper"] for r in board["rows"]) - lo, 1e-9)
    body = []
    for rank, row in enumerate(board["rows"], 1):
        left, width = 100 * (row["lower"] - lo) / span, max(100 * (row["upper"] - row["lower"]) / span, 0.5)
        bar = f'<div class="ci"><span style="left:{left:.1f}%;width:{width:.1f}%"></span></div>'
        body.append(f"<tr><td>{rank}</td>" + "".join(f"<td>{esc(c)}</td>" for c in _cells(row)) + f"<td>{bar}</td></tr>")
    shown = "".join(f"<article><p class=\"prompt\">{esc(b.prompt)}</p><div class=\"pair\"><div><h3>{esc(b.policy_a)}"
                    f"</h3><p>{esc(b.text_a)}</p></div><div><h3>{esc(b.policy_b)}</h3><p>{esc(b.text_b)}</p></div>"
                    "</div></article>\n" for b in samples)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em}"
            ".ci{position:relative;width:16em;height:.8em;background:#f3f3f3}.ci span{position:absolute;top:0;"
            "height:100%;background:#4a7fb5}.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}"
            "article{border-top:1px solid #ddd;margin-top:1em}.prompt{font-weight:600;white-space:pre-wrap}"
            "p{white-space:pre-wrap}</style></head><body>\n"
            f"<h1>{esc(title)}</h1>\n<p>{board['matches']} battles; Bradley–Terry ratings on the Elo scale with "
            f"{board['ci']:.0%} bootstrap intervals ({board['n_boot']} resamples).</p>\n<table><thead><tr><th>rank</th>"
            + "".join(f"<th>{esc(h)}</th>" for h in HEAD) + "<th>interval</th></tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table>\n"
            + (f"<h2>Sample battles</h2>\n{shown}" if samples else "") + "</body></html>\n")
