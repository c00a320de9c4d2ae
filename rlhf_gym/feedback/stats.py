"""Agreement statistics over the store: counts and time per annotator, Krippendorff's alpha, pairwise
Cohen's kappa, and each annotator's agreement with a task's gold judge.

Alpha and kappa are over comparisons (nominal: A, B, tie, both bad). Gold agreement counts only decisive
answers (A or B; for rankings, every ordered pair) on items whose row named a ``task``, and skips pairs the
gold scores equal.

>>> round(cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "a"]), 3)
0.5
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from rlhf_gym.errors import ConfigError
from rlhf_gym.feedback.store import CHOICES, LabelStore

__all__ = ["cohen_kappa", "krippendorff_alpha", "label_stats"]


def cohen_kappa(x: Sequence[str], y: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' answers on the same units; None when chance agreement is certain."""
    if len(x) != len(y) or not x:
        return None
    n = len(x)
    observed = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    expected = sum(cx[c] * cy[c] for c in cx) / n**2
    return None if expected == 1 else (observed - expected) / (1 - expected)


def krippendorff_alpha(matrix: list[list[float]]) -> float | None:
    """Nominal alpha of a raters × units matrix (NaN where a rater gave no answer); None if undefined."""
    import krippendorff

    data = np.array(matrix, dtype=float)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    if data.shape[0] < 2 or not pairable.any() or len(np.unique(data[:, pairable][~np.isnan(data[:, pairable])])) < 2:
        return None
    try:
        return float(krippendorff.alpha(reliability_data=data[:, pairable], level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None


def _gold_scores(items: dict[int, Any]) -> tuple[dict[int, list[float]], list[str]]:
    """Item id -> gold score per candidate, for items naming a task; and the tasks that could not be used."""
    from rlhf_gym.tasks import get_task

    by_task: dict[str, list[int]] = defaultdict(list)
    for item_id, item in items.items():
        if item.task:
            by_task[item.task].append(item_id)
    scores: dict[int, list[float]] = {}
    unknown = []
    for task_name, ids in by_task.items():
        try:
            gold = get_task(task_name).make_gold()
        except ConfigError:
            unknown.append(task_name)
            continue
        prompts = [items[i].prompt for i in ids for _ in items[i].candidates]
        texts = [c for i in ids for c in items[i].candidates]
        values = [float(v) for v in gold.score(prompts, texts)]
        at = 0
        for i in ids:
            k = len(items[i].candidates)
            scores[i], at = values[at:at + k], at + k
    return scores, unknown


def label_stats(store: LabelStore, *, gold: bool = True) -> dict[str, Any]:
    """Everything ``rlhf-gym label stats`` prints, as plain data."""
    items = {s.id: s.item for s in store.items()}
    labels = store.labels()
    names = sorted({lab.annotator for lab in labels})
    per: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [lab for lab in labels if lab.annotator == name]
        seconds = [lab.seconds for lab in mine if lab.seconds is not None]
        counts = Counter(lab.choice or "ranking" for lab in mine)
        per[name] = {"labels": len(mine), "median_seconds": statistics.median(seconds) if seconds else None,
                     **{c: counts.get(c, 0) for c in (*CHOICES, "ranking")}, "feedback": sum(bool(lab.feedback) for lab in mine),
                     "edited": sum(bool(lab.edited) for lab in mine)}
    answers: dict[int, dict[str, str]] = defaultdict(dict)
    for lab in labels:
        if lab.choice is not None:
            answers[lab.item_id][lab.annotator] = lab.choice
    code = {c: float(i) for i, c in enumerate(CHOICES)}
    units = sorted(answers)
    matrix = [[code[answers[u][n]] if n in answers[u] else float("nan") for u in units] for n in names]
    kappas = []
    for a, b in combinations(names, 2):
        shared = [u for u in units if a in answers[u] and b in answers[u]]
        if shared:
            kappas.append({"a": a, "b": b, "shared": len(shared),
                           "kappa": cohen_kappa([answers[u][a] for u in shared], [answers[u][b] for u in shared])})
    result: dict[str, Any] = {"items": len(items), "labels": len(labels), "annotators": per,
                              "alpha": krippendorff_alpha(matrix) if units else None, "kappa": kappas,
                              "gold": {}, "unknown_tasks": []}
    if gold and any(item.task for item in items.values()):
        scores, result["unknown_tasks"] = _gold_scores(items)
        for name in names:
            agree = total = 0
            for lab in labels:
                if lab.annotator != name or lab.item_id not in scores:
                    continue
                s = scores[lab.item_id]
                if lab.ranking is not None:
                    pairs = list(combinations(lab.ranking, 2))  # (better, worse) by this annotator
                elif lab.choice in ("a", "b"):
                    pairs = [(0, 1) if lab.choice == "a" else (1, 0)]
                else:
                    continue
                for better, worse in pairs:
                    if s[better] != s[worse]:
                        total += 1
                        agree += s[better] > s[worse]
            if total:
                result["gold"][name] = {"agreement": agree / total, "compared": total}
    return result
