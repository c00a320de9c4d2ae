"""Prompt sources: a list, a text or JSONL file, the embedded world, or an HF dataset (e.g. IMDB).

``load_prompts`` accepts:

* a list of strings (or any non-string sequence of them, such as a tuple or a 1-D NumPy array);
* ``"embedded"`` / ``"embedded:train"`` / ``"embedded:eval"`` — review openings from the embedded world
  (train and eval draw from different seeds, so evaluation never sees training prompts);
* a path to ``.txt`` (one prompt per line) or ``.jsonl`` (objects with a ``prompt`` or ``text`` field);
* ``"SCHEME:SPLIT"`` for a scheme registered with :func:`register_prompt_source` — how a task's procedural
  prompts (``"arithmetic:eval"``) are named in configs without this floor knowing the task;
* ``"hf:NAME"`` (a hub dataset, loaded with ``datasets.load_dataset``) or a local ``save_to_disk`` folder;
  long texts such as IMDB reviews are cut to their first ``prompt_words`` words, as in TRL's example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlhf_gym.core.checks import check_int, is_blank
from rlhf_gym.core.jsonio import parse_json
from rlhf_gym.errors import DataError
from rlhf_gym.io import read_text

#: The prompt sources used when a lower floor (rewards) is given none: the default task's train/eval splits.
DEFAULT_TRAIN_PROMPTS = "embedded:train"
DEFAULT_EVAL_PROMPTS = "embedded:eval"
EMBEDDED_SEEDS = {"train": 100, "eval": 101}

#: Procedural prompt generators by scheme: ``fn(split, n) -> n prompts`` (see :func:`register_prompt_source`).
_SOURCES: dict[str, tuple[Callable[[str, int], list[str]], tuple[str, ...]]] = {}


def register_prompt_source(scheme: str, generate: Callable[[str, int], list[str]],
                           splits: Sequence[str] = ("train", "eval")) -> None:
    """Makes ``"SCHEME:SPLIT"`` a prompt source: ``generate(split, n)`` returns ``n`` prompts of that split
    (train and eval must never share prompts). Tasks register theirs; a scheme is registered once."""
    if not isinstance(scheme, str) or not scheme.isidentifier() or not scheme.islower():
        raise DataError(f"prompt source scheme {scheme!r} is invalid: a lower-case name such as 'arithmetic'")
    if not callable(generate):
        raise DataError(f"prompt source {scheme!r}: generate={generate!r} is not a callable (split, n) -> prompts")
    if scheme in _SOURCES or scheme in ("embedded", "hf"):
        raise DataError(f"prompt source scheme {scheme!r} is already registered")
    _SOURCES[scheme] = (generate, tuple(splits))


def _from_scheme(source: str, split: str, n: int | None) -> list[str] | None:
    scheme, colon, which = source.partition(":")
    if scheme not in _SOURCES:
        return None
    generate, splits = _SOURCES[scheme]
    which = which if colon else split
    if which not in splits:
        raise DataError(f"unknown {scheme} prompt split {which!r}; use " + " or ".join(f"{scheme}:{s}" for s in splits))
    return generate(which, n or 2000)


def read_lines(path: Path, what: str, *, jsonl: bool = False) -> list[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark is dropped); ``what`` names the file in
    errors ("prompt file", ...). ``jsonl`` splits on newlines only: JSON strings may hold U+2028."""
    path = Path(path)
    text = read_text(path, what, DataError)
    if "\x00" in text:
        raise DataError(f"{what} {path} holds binary data (a NUL byte), not text")
    if jsonl:
        return [line.removesuffix("\r") for line in text.split("\n")]
    return text.splitlines()


def read_jsonl_objects(path: Path, what: str) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; errors name ``file:line``
    (duplicate keys and NaN/Infinity are errors, see :mod:`rlhf_gym.core.jsonio`)."""
    rows = []
    for i, line in enumerate(read_lines(path, what, jsonl=True), 1):
        if is_blank(line):
            continue
        obj = parse_json(line, f"{path}:{i}")
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        rows.append((i, obj))
    return rows


def _from_file(path: Path) -> list[str]:
    if path.suffix != ".jsonl":
        return [line for line in read_lines(path, "prompt file") if not is_blank(line)]
    prompts = []
    for i, obj in read_jsonl_objects(path, "prompt file"):
        if not isinstance(obj.get("prompt", obj.get("text")), str):
            raise DataError(f"{path}:{i}: expected an object with a string 'prompt' or 'text' field")
        prompts.append(obj.get("prompt", obj.get("text")))  # "" is a prompt: the episode starts from BOS
    return prompts


def as_prompt_list(source: object) -> list[str] | None:
    """``source`` as a list of prompts if it is a collection of strings (a list, a tuple, a 1-D NumPy array,
    any non-string sequence), None if it names a source (a string or path); anything else is a DataError."""
    if isinstance(source, str | Path):
        return None
    if isinstance(source, np.ndarray):
        if source.ndim != 1:
            raise DataError(f"prompts: a NumPy array of prompts must be 1-D, got shape {source.shape}")
        source = source.tolist()
    if not isinstance(source, Sequence) or isinstance(source, bytes | bytearray):
        raise DataError(f"prompts={source!r} is invalid: a list of strings, or a source such as "
                        "'embedded:train', a .txt/.jsonl path or 'hf:NAME'; not "
                        f"{type(source).__name__}")
    prompts = list(source)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise DataError(f"prompts[{i}]={p!r} is invalid: prompts must all be strings")
    return [str(p) for p in prompts]  # np.str_ -> str


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
    source: str | Path | Sequence[str],
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
    listed = as_prompt_list(source)
    if n is not None:
        n = check_int(n, "n", low=1, error=DataError)
    if listed is not None:
        prompts = listed
    elif (generated := _from_scheme(str(source), split, n)) is not None:
        prompts = generated
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
        raise DataError(f"prompt source {source if listed is None else 'list'} holds no prompts")
    return prompts
