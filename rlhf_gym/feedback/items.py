"""The items people label: rows of a pairs file, validated with line-numbered errors.

A row is ``{"prompt", "candidate1", "candidate2"}`` (a comparison) or ``{"prompt", "candidates": [...]}``
(a ranking of 2 to 9 texts), with optional ``"task"`` (a registered task whose gold judge
``rlhf-gym label stats`` compares annotators with) and ``"meta"`` (any JSON object, kept and never shown:
the arena's battles carry their policies' names there).

>>> item = parse_item({"prompt": "Q:", "candidate1": " a", "candidate2": " b"}, "pairs.jsonl:1")
>>> item.kind, item.candidates
('pair', (' a', ' b'))
>>> parse_item({"prompt": "Q:", "candidate1": " a"}, "pairs.jsonl:3")
Traceback (most recent call last):
...
rlhf_gym.errors.DataError: pairs.jsonl:3: missing field 'candidate2' (a row is {prompt, candidate1, candidate2} or {prompt, candidates: [...]})
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_gym.core.jsonio import parse_json
from rlhf_gym.errors import DataError

__all__ = ["Item", "parse_item", "read_items", "MAX_CANDIDATES"]

MAX_CANDIDATES = 9  # each has a number key in the ranking page
_SHAPE = "a row is {prompt, candidate1, candidate2} or {prompt, candidates: [...]}"
_FIELDS = {"prompt", "candidate1", "candidate2", "candidates", "task", "meta"}


@dataclass(frozen=True)
class Item:
    """One thing to label: a prompt and 2 (``kind="pair"``) or more (``kind="ranking"``) continuations."""

    prompt: str
    candidates: tuple[str, ...]
    kind: str = "pair"
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """A content digest: loading the same row twice gives one item."""
        blob = json.dumps([self.prompt, list(self.candidates), self.kind, self.task], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _text(row: Mapping, name: str, where: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def parse_item(row: Any, where: str) -> Item:
    """One row as an :class:`Item`; bad rows raise :class:`DataError` starting with ``where``."""
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object ({_SHAPE}), got {type(row).__name__}")
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r} ({_SHAPE}, optional task and meta)")
    if "prompt" not in row:
        raise DataError(f"{where}: missing field 'prompt' ({_SHAPE})")
    prompt = _text(row, "prompt", where)
    if "candidates" in row:
        if "candidate1" in row or "candidate2" in row:
            raise DataError(f"{where}: give either 'candidates' or 'candidate1'/'candidate2', not both")
        values = row["candidates"]
        if not isinstance(values, list) or not 2 <= len(values) <= MAX_CANDIDATES:
            raise DataError(f"{where}: field 'candidates' must be a list of 2 to {MAX_CANDIDATES} strings")
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise DataError(f"{where}: candidates[{i}] must be a string, got {type(value).__name__}")
        candidates, kind = tuple(values), "ranking"
    else:
        for name in ("candidate1", "candidate2"):
            if name not in row:
                raise DataError(f"{where}: missing field {name!r} ({_SHAPE})")
        candidates, kind = (_text(row, "candidate1", where), _text(row, "candidate2", where)), "pair"
    if len(set(candidates)) < len(candidates):
        raise DataError(f"{where}: two candidates are the same text ({candidates[0][:40]!r}...); nothing to compare")
    task = row.get("task")
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise DataError(f"{where}: field 'task' must be a task name (a string), got {task!r}")
    meta = row.get("meta", {})
    if not isinstance(meta, Mapping):
        raise DataError(f"{where}: field 'meta' must be a JSON object, got {type(meta).__name__}")
    return Item(prompt, candidates, kind, task, dict(meta))


def read_items(path: str | Path) -> list[Item]:
    """Every row of a JSONL pairs file; the first bad row raises a :class:`DataError` naming ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"--pairs {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"--pairs {path}: cannot read it ({e})") from e
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            where = f"{path}:{number}"
            items.append(parse_item(parse_json(line, where), where))
    if not items:
        raise DataError(f"--pairs {path}: no rows (expected JSONL, {_SHAPE})")
    return items
