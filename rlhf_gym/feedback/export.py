"""Labels out of the store, in the preference formats ``rlhf-gym reward train`` reads
(:mod:`rlhf_gym.rewards.preferences`).

* ``chosen_rejected``: ``{prompt, chosen, rejected}``; a kept tie or "both bad" is ``{..., "tie": true}``
  (chosen and rejected are then just candidate 1 and 2); a ranking of K becomes its K(K-1)/2 pairs, each
  with ``weight`` 1/(K(K-1)/2), as the trainer itself expands rankings.
* ``seed002``: ``{input_text, candidate1, candidate2, human_preference}`` with ``human_preference`` 1 or 2;
  a kept tie or "both bad" is ``"tie"``; rankings expand to weighted pairs as above.
* ``ranking``: ``{prompt, completions: [best, ..., worst]}``; a comparison is a ranking of two. A tie has
  no place in a ranking, so ``keep_ties``/``keep_both_bad`` are refused with this format.

Each label is one row: an item shown to three annotators gives three rows. With ``edits`` (pair formats
only), an annotator's edited better answer adds one pair per candidate, the edit preferred, each of weight
1/K, so an edit counts as much as a comparison; an edit gets a leading space when every candidate has one
and it has none (people do not type the space a continuation starts with).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from rlhf_gym.errors import ConfigError
from rlhf_gym.feedback.store import Label, LabelStore
from rlhf_gym.io import check_output, write_text_atomic

__all__ = ["FORMATS", "export_rows", "export_file"]

FORMATS = ("chosen_rejected", "seed002", "ranking")


def _pair_row(fmt: str, prompt: str, first: str, second: str, preferred: int, weight: float = 1.0) -> dict[str, Any]:
    """``preferred``: 1 or 2, or 0 for a tie."""
    extra = {"weight": weight} if weight != 1.0 else {}
    if fmt == "seed002":
        return {"input_text": prompt, "candidate1": first, "candidate2": second,
                "human_preference": preferred or "tie", **extra}
    if fmt == "ranking":
        return {"prompt": prompt, "completions": [first, second] if preferred == 1 else [second, first], **extra}
    chosen, rejected = (second, first) if preferred == 2 else (first, second)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **({"tie": True} if not preferred else {}), **extra}


def export_rows(store: LabelStore, fmt: str, *, keep_ties: bool = False, keep_both_bad: bool = False,
                annotator: str | None = None, edits: bool = False,
                item_ids: Collection[int] | None = None) -> list[dict[str, Any]]:
    """The rows of ``fmt`` for every label (or ``annotator``'s, or those of ``item_ids``), in the order given."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "ranking" and edits:
        raise ConfigError("--edits needs a pair format (chosen_rejected or seed002): an edit is compared with "
                          "each candidate, not ranked among them")
    if fmt == "ranking" and (keep_ties or keep_both_bad):
        raise ConfigError("--format ranking cannot hold a tie or 'both bad' (a ranking orders every text); "
                          "drop --keep-ties/--keep-both-bad or use chosen_rejected or seed002")
    who = store.annotator_named(annotator).id if annotator is not None else None
    items = {s.id: s.item for s in store.items()}
    rows: list[dict[str, Any]] = []
    for label in store.labels(who):
        if item_ids is not None and label.item_id not in item_ids:
            continue
        item = items[label.item_id]
        rows.extend(_rows(fmt, item.prompt, item.candidates, label, keep_ties, keep_both_bad))
        if edits and label.edited:
            edit = _as_continuation(label.edited, item.candidates)
            others = [c for c in item.candidates if c != edit]
            rows.extend(_pair_row(fmt, item.prompt, edit, c, 1, 1.0 / len(item.candidates)) for c in others)
    return rows


def _as_continuation(edit: str, candidates: tuple[str, ...]) -> str:
    """People type an answer without the leading space continuations have: add one when every candidate
    starts with whitespace and the edit does not."""
    if edit[:1].isspace() or not all(c[:1].isspace() for c in candidates):
        return edit
    return " " + edit


def _rows(fmt: str, prompt: str, candidates: tuple[str, ...], label: Label, keep_ties: bool,
          keep_both_bad: bool) -> list[dict[str, Any]]:
    if label.ranking is not None:
        order = list(label.ranking)
        if fmt == "ranking":
            return [{"prompt": prompt, "completions": [candidates[i] for i in order]}]
        k = len(order)
        rank = {c: r for r, c in enumerate(order)}
        weight = 1.0 / (k * (k - 1) // 2)
        return [_pair_row(fmt, prompt, candidates[i], candidates[j], 1 if rank[i] < rank[j] else 2, weight)
                for i in range(k) for j in range(i + 1, k)]
    one, two = candidates
    if label.choice in ("a", "b"):
        return [_pair_row(fmt, prompt, one, two, 1 if label.choice == "a" else 2)]
    if (label.choice == "tie" and keep_ties) or (label.choice == "both_bad" and keep_both_bad):
        return [_pair_row(fmt, prompt, one, two, 0)]
    return []


def export_file(store: LabelStore, fmt: str, out: str | Path, **kwargs: Any) -> tuple[Path, int]:
    """Writes :func:`export_rows` as JSONL to ``out`` atomically; returns the path and the row count."""
    out = check_output(out, "file")
    rows = export_rows(store, fmt, **kwargs)
    if not rows:
        raise ConfigError(f"nothing to export from {store.path}: no labels"
                          + (" that are not ties or 'both bad' (see --keep-ties)" if store.labels() else ""))
    write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out, len(rows)
