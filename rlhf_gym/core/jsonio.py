"""Strict JSON reading: every file the toolkit reads back (run files, JSONL data, stats) goes through here.

Python's ``json`` accepts duplicate keys (the last one wins silently) and the non-standard ``NaN`` and
``Infinity``; both are nonsense in a config or a run file, so both are errors here. Every failure is one
:class:`~rlhf_gym.errors.RLHFGymError` line naming the file (and line, for JSONL).

>>> parse_json('{"a": 1}', "x.json")
{'a': 1}
>>> parse_json('{"a": 1, "a": 2}', "x.json")
Traceback (most recent call last):
...
rlhf_gym.errors.DataError: x.json: not valid JSON (duplicate key 'a')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhf_gym.errors import DataError, RLHFGymError
from rlhf_gym.io import read_text

__all__ = ["parse_json", "read_json"]


class _Invalid(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not JSON")


def parse_json(text: str, where: str, error: type[RLHFGymError] = DataError) -> Any:
    """``json.loads`` without duplicate keys or NaN/Infinity; failures raise ``error`` naming ``where``."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except (_Invalid, RecursionError) as e:
        raise error(f"{where}: not valid JSON ({e if isinstance(e, _Invalid) else 'nested too deeply'})") from e


def read_json(path: str | Path, what: str = "JSON file", error: type[RLHFGymError] = DataError,
              expect: type | None = dict) -> Any:
    """The JSON value in ``path`` (which must be a UTF-8 file holding an ``expect``, if given).

    ``what`` names the file in errors ("checkpoint state", "reward-model stats", ...).
    """
    path = Path(path)
    text = read_text(path, what, error)
    if not text.strip():
        raise error(f"{what} {path} is empty")
    value = parse_json(text, f"{what} {path}", error)
    if expect is not None and not isinstance(value, expect):
        raise error(f"{what} {path} must hold a JSON {'object' if expect is dict else expect.__name__}, "
                    f"not {type(value).__name__}")
    return value
