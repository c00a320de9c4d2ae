"""Pairwise preference data: load it from JSONL, CSV or HF ``datasets``, validate it, save it.

Every record becomes one or more :class:`PreferencePair`. Three record formats are recognised, per record:

* **pairs** ``{prompt, chosen, rejected}`` with optional ``margin`` (used by the loss), ``weight`` and ``tie``
  (``tie: true`` means neither side is preferred; ``chosen``/``rejected`` are then just the two sides);
* **candidates** ``{input_text, candidate1, candidate2, human_preference}`` where ``human_preference`` is
  ``1``/``2``, ``"candidate1"``/``"candidate2"``, or ``"tie"``/``0``;
* **rankings** ``{prompt, completions: [best, ..., worst]}`` (or ``ranking`` instead of ``completions``; in
  CSV the cell holds a JSON array). K completions expand into K(K-1)/2 pairs of weight 1/(K(K-1)/2), so every
  prompt counts once in the loss, as in InstructGPT.

Bad input raises :class:`~rlhf_gym.errors.DataError` with a one-line message that starts with where the
record is: ``prefs.jsonl:7`` (1-based line), ``prefs.csv:7`` (1-based line of the file, the header is line 1)
or ``dataset[6]`` (0-based row index).

>>> pairs = load_preferences([{"prompt": "Q:", "completions": [" a", " b", " c"]}])
>>> [(p.chosen, p.rejected, round(p.weight, 3)) for p in pairs]
[(' a', ' b', 0.333), (' a', ' c', 0.333), (' b', ' c', 0.333)]
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_gym.core.checks import is_blank
from rlhf_gym.core.jsonio import parse_json
from rlhf_gym.errors import DataError
from rlhf_gym.io import write_text_atomic

_JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_FORMATS = "{prompt, chosen, rejected}, {input_text, candidate1, candidate2, human_preference} or {prompt, completions}"
_PREFERENCE_LABELS = {"1": 1, "candidate1": 1, "2": 2, "candidate2": 2, "0": 0, "tie": 0}
_KNOWN_COLUMNS = {
    "prompt",
    "chosen",
    "rejected",
    "input_text",
    "candidate1",
    "candidate2",
    "human_preference",
    "completions",
    "ranking",
}
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: ``chosen`` was preferred over ``rejected`` as a continuation of ``prompt``.

    For a tie (``tie=True``) neither side is preferred and the two names are just labels for the two sides.
    """

    prompt: str
    chosen: str
    rejected: str
    weight: float = 1.0  # relative weight in the loss (K-way rankings give each pair 1/(K(K-1)/2))
    margin: float = 0.0  # required reward gap: the loss is -log σ(r⁺ - r⁻ - margin)
    tie: bool = False  # neither side preferred


def load_preferences(source: Any, *, split: str | None = None) -> list[PreferencePair]:
    """Loads preference pairs from a file, a dataset directory, a ``datasets`` object or a list of dicts.

    Args:
        source: a path to a ``.jsonl``/``.json`` file (one object per line) or a ``.csv`` file; a directory
            written by ``Dataset.save_to_disk``; a ``datasets.Dataset`` or ``DatasetDict``; a list of dicts;
            or, if no such path exists, the name of a dataset on the Hugging Face hub.
        split: which split of a ``DatasetDict`` or hub dataset to use (default ``"train"``, or the only one).

    Raises:
        DataError: one line naming the file and line (or dataset row) of the first bad record.

    >>> load_preferences([{"prompt": "Hi", "chosen": " there", "rejected": " you"}])[0].chosen
    ' there'
    """
    import datasets

    if isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        return _from_dataset(source, split, name="dataset")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _from_dataset(_load_from_disk(path), split, name=str(path))
        if path.is_file():
            return _from_file(path)
        if path.suffix.lower() in _JSONL_SUFFIXES | {".csv"} or str(source).startswith((".", "/", "~")):
            raise DataError(f"{source}: no such preference file")
        return _from_hub(str(source), split)
    if isinstance(source, Sequence) and all(isinstance(r, Mapping) for r in source):
        return _collect(((f"records[{i}]", r) for i, r in enumerate(source)), "records")
    raise DataError(
        f"cannot read preferences from {type(source).__name__}; expected a path, a dataset or dicts"
    )


def save_preferences(pairs: Iterable[PreferencePair], path: str | os.PathLike) -> Path:
    """Writes pairs as JSONL in the ``{prompt, chosen, rejected}`` format, atomically.

    ``weight``, ``margin`` and ``tie`` are written only where they differ from their defaults, so the file
    loads back into equal pairs. The file is written to a temporary name in the same folder and renamed into
    place, so an error never leaves a half-written file behind.
    """
    lines = []
    for pair in pairs:
        record = {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
        if pair.weight != 1.0:
            record["weight"] = pair.weight
        if pair.margin != 0.0:
            record["margin"] = pair.margin
        if pair.tie:
            record["tie"] = True
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    path = write_text_atomic(path, "".join(lines))
    return path


# ---------------------------------------------------------------------------------------------- sources


def _from_file(path: Path) -> list[PreferencePair]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: empty file, no preference records")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: binary data, not a JSONL or CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        ) from e

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _collect(_csv_records(path, text), str(path))
    if suffix in _JSONL_SUFFIXES or text.lstrip().startswith(("{", "[")):
        return _collect(_jsonl_records(path, text), str(path))
    raise DataError(f"{path}: not a JSONL or CSV file (name it .jsonl or .csv; it does not start with '{{')")


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    if text.lstrip().startswith("["):  # a whole-file JSON array is common enough to accept too
        items = parse_json(text, str(path))  # duplicate keys and NaN are errors too
        yield from ((f"{path}[{i}]", item) for i, item in enumerate(items))
        return
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON strings may hold U+2028
        if is_blank(line):
            continue
        yield f"{path}:{lineno}", parse_json(line, f"{path}:{lineno}")


def _csv_records(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not set(reader.fieldnames or ()) & _KNOWN_COLUMNS:
            found = ", ".join(reader.fieldnames or ()) or "nothing"
            raise DataError(
                f"{path}:1: not a preference CSV, no known column in the header (found: {found}); expected {_FORMATS}"
            )
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}:{start}: more fields than the {len(reader.fieldnames)} header columns"
                )
            yield f"{path}:{start}", {k: v for k, v in row.items() if v is not None}
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({e})") from e


def _load_from_disk(path: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"{path}: not a dataset saved with save_to_disk ({_first_line(e)})") from e


def _from_hub(name: str, split: str | None) -> list[PreferencePair]:
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as e:  # network, missing dataset, bad split: all one-line user errors here
        raise DataError(
            f"{name}: no such file, and cannot load it as a hub dataset ({_first_line(e)})"
        ) from e
    return _from_dataset(dataset, None, name=name)


def _from_dataset(dataset: Any, split: str | None, *, name: str) -> list[PreferencePair]:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in dataset or len(dataset) != 1 else next(iter(dataset))
        if split not in dataset:
            raise DataError(f"{name}: no split {split!r} (splits: {', '.join(dataset)})")
        dataset, name = dataset[split], f"{name}:{split}"
    return _collect(((f"{name}[{i}]", row) for i, row in enumerate(dataset)), name)


def _collect(records: Iterable[tuple[str, Any]], name: str) -> list[PreferencePair]:
    pairs: list[PreferencePair] = []
    for where, record in records:
        pairs.extend(parse_record(record, where))
    if not pairs:
        raise DataError(f"{name}: no preference records (empty)")
    return pairs


# ---------------------------------------------------------------------------------------------- records


def parse_record(record: Any, where: str) -> list[PreferencePair]:
    """Turns one record (a dict in any of the three formats) into pairs; ``where`` prefixes every error."""
    if not isinstance(record, Mapping):
        raise DataError(
            f"{where}: expected a JSON object with fields {_FORMATS}, got {type(record).__name__}"
        )
    record = {k: v for k, v in record.items() if v is not None}
    if "completions" in record or "ranking" in record:
        return _parse_ranking(record, where)
    if {"input_text", "candidate1", "candidate2", "human_preference"} & record.keys():
        return [_parse_candidates(record, where)]
    _require(record, ("prompt", "chosen", "rejected"), where)
    pair = PreferencePair(
        prompt=_text(record, "prompt", where),
        chosen=_text(record, "chosen", where),
        rejected=_text(record, "rejected", where),
        weight=_number(record, "weight", where, default=1.0, positive=True),
        margin=_number(record, "margin", where, default=0.0),
        tie=_boolean(record, "tie", where),
    )
    return [_checked(pair, where)]


def _parse_candidates(record: Mapping, where: str) -> PreferencePair:
    _require(record, ("input_text", "candidate1", "candidate2", "human_preference"), where)
    prompt = _text(record, "input_text", where)
    one, two = _text(record, "candidate1", where), _text(record, "candidate2", where)
    preferred = _preference_label(record["human_preference"], where)
    chosen, rejected = (two, one) if preferred == 2 else (one, two)
    weight = _number(record, "weight", where, default=1.0, positive=True)
    margin = _number(record, "margin", where, default=0.0)
    return _checked(PreferencePair(prompt, chosen, rejected, weight, margin, tie=preferred == 0), where)


def _parse_ranking(record: Mapping, where: str) -> list[PreferencePair]:
    key = "completions" if "completions" in record else "ranking"
    _require(record, ("prompt", key), where)
    prompt = _text(record, "prompt", where)
    ranked = record[key]
    if isinstance(ranked, str):  # CSV cells hold the ranking as a JSON array
        try:
            ranked = parse_json(ranked, where)
        except DataError:
            ranked = None
    if not isinstance(ranked, Sequence) or isinstance(ranked, str) or len(ranked) < 2:
        raise DataError(
            f"{where}: column {key!r} must be a list of at least 2 texts, best first (in CSV: a JSON array)"
        )
    texts = [_as_text(text, f"{key}[{i}]", where) for i, text in enumerate(ranked)]
    n_pairs = len(texts) * (len(texts) - 1) // 2
    weight = _number(record, "weight", where, default=1.0, positive=True) / n_pairs
    return [
        _checked(PreferencePair(prompt, texts[i], texts[j], weight=weight), f"{where}: {key}[{i}] and [{j}]")
        for i in range(len(texts))
        for j in range(i + 1, len(texts))
    ]


def _require(record: Mapping, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in record]
    if missing:
        found = ", ".join(map(str, record)) or "nothing"
        hint = f"; expected {_FORMATS}" if len(missing) == len(columns) else ""
        raise DataError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(found: {found}){hint}"
        )


def _preference_label(label: Any, where: str) -> int:
    """1 or 2 for the preferred candidate, 0 for a tie."""
    key = label.strip().lower() if isinstance(label, str) else label
    if isinstance(label, (int, float)) and not isinstance(label, bool) and float(label).is_integer():
        key = str(int(label))
    if key not in _PREFERENCE_LABELS:
        raise DataError(
            f"{where}: unknown preference label {label!r} in column 'human_preference' "
            "(expected 1, 2, 'candidate1', 'candidate2', 'tie' or 0)"
        )
    return _PREFERENCE_LABELS[key]


def _text(record: Mapping, column: str, where: str) -> str:
    return _as_text(record[column], column, where)


def _as_text(value: Any, column: str, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: column {column!r} must be text, got {type(value).__name__} {value!r}")
    if is_blank(value):
        raise DataError(f"{where}: column {column!r} is empty (or only invisible characters)")
    return value


def _number(record: Mapping, column: str, where: str, *, default: float, positive: bool = False) -> float:
    value = record.get(column, "")
    if isinstance(value, str) and not value.strip():  # absent, or an empty CSV cell
        return default
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        kind = "a positive number" if positive else "a number"
        raise DataError(f"{where}: column {column!r} must be {kind}, got {value!r}")
    return number


def _boolean(record: Mapping, column: str, where: str) -> bool:
    value = record.get(column, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (value.strip() == "" or value.strip().lower() in _BOOLEANS):
        return _BOOLEANS.get(value.strip().lower(), False)
    raise DataError(f"{where}: column {column!r} must be true or false, got {value!r}")


def _checked(pair: PreferencePair, where: str) -> PreferencePair:
    if pair.chosen == pair.rejected and not pair.tie:
        raise DataError(
            f"{where}: both sides of the pair are the same text ({pair.chosen[:40]!r}); mark it a tie or drop it"
        )
    return pair


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
