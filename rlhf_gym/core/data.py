"""Prompt sources: a list, a text or JSONL file, the embedded world, or an HF dataset (e.g. IMDB).

``load_prompts`` accepts:

* a list of strings;
* ``"embedded"`` / ``"embedded:train"`` / ``"embedded:eval"`` — review openings from the embedded world
  (train and eval draw from different seeds, so evaluation never sees training prompts);
* a path to ``.txt`` (one prompt per line) or ``.jsonl`` (objects with a ``prompt`` or ``text`` field);
* ``"hf:NAME"`` (a hub dataset, loaded with ``datasets.load_dataset``) or a local ``save_to_disk`` folder;
  long texts such as IMDB reviews are cut to their first ``prompt_words`` words, as in TRL's example.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_gym.errors import DataError

EMBEDDED_SEEDS = {"train": 100, "eval": 101}


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file; ``what`` names the file in errors ("prompt file", ...)."""
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{what} {path} is not UTF-8 text (byte {e.start})") from e


def read_jsonl_objects(path: Path, what: str) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; errors name ``file:line``."""
    rows = []
    for i, line in enumerate(read_lines(path, what), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        rows.append((i, obj))
    return rows


def _from_file(path: Path) -> list[str]:
    if path.suffix != ".jsonl":
        return [line for line in read_lines(path, "prompt file") if line.strip()]
    prompts = []
    for i, obj in read_jsonl_objects(path, "prompt file"):
        if not isinstance(obj.get("prompt", obj.get("text")), str):
            raise DataError(f"{path}:{i}: expected an object with a string 'prompt' or 'text' field")
        prompts.append(obj.get("prompt", obj.get("text")))
    return prompts


def _from_dataset(source: str, split: str, column: str | None, prompt_words: int | None) -> list[str]:
    import datasets

    try:
        if source.startswith("hf:"):
            ds = datasets.load_dataset(source[3:], split=split)
        else:
            ds = datasets.load_from_disk(source)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
    except (FileNotFoundError, ValueError, KeyError, ConnectionError) as e:
        raise DataError(f"cannot load prompt dataset {source!r} (split {split!r}): {str(e).splitlines()[0]}") from e
    column = column or next((c for c in ("prompt", "text", "query") if c in ds.column_names), None)
    if column is None or column not in ds.column_names:
        raise DataError(f"prompt dataset {source!r} has no column {column!r}; columns: {ds.column_names}")
    texts = [str(t) for t in ds[column]]
    if prompt_words:
        texts = [" ".join(t.split()[:prompt_words]) for t in texts]
    return texts


def load_prompts(
    source: str | Path | list[str],
    *,
    split: str = "train",
    n: int | None = None,
    column: str | None = None,
    prompt_words: int | None = None,
) -> list[str]:
    """Loads prompts from ``source`` (see the module doc); ``n`` keeps the first ``n``.

    Raises:
        DataError: a missing or malformed file, or a source with no prompts.
    """
    if isinstance(source, list | tuple):
        prompts = list(source)
        if not all(isinstance(p, str) for p in prompts):
            raise DataError("prompts must all be strings")
    elif str(source).startswith("embedded"):
        from rlhf_gym.core.world import ReviewWorld

        which = str(source).partition(":")[2] or split
        if which not in EMBEDDED_SEEDS:
            raise DataError(f"unknown embedded prompt split {which!r}; use embedded:train or embedded:eval")
        prompts = ReviewWorld(seed=EMBEDDED_SEEDS[which]).prompts(n or 2000)
    elif str(source).startswith("hf:") or (Path(source).is_dir()):
        prompts = _from_dataset(str(source), split, column, prompt_words)
    else:
        prompts = _from_file(Path(source))
    if n is not None:
        prompts = prompts[:n]
    if not prompts:
        raise DataError(f"prompt source {source if not isinstance(source, list) else 'list'} holds no prompts")
    return prompts
