"""Atomic writes and guarded reads of the files the toolkit makes.

Writing: an output is either complete or absent, never half-written. Everything the toolkit writes to disk —
checkpoints, reward models, preference files, metrics rewrites, reports — goes through
:func:`write_text_atomic`, :func:`write_bytes_atomic` or :func:`atomic_dir`: write beside the destination
under a temporary name, then rename into place (a rename within one folder is atomic on POSIX). An
operating-system error on an output (its parent is a file, a read-only folder, a full disk) is one
:class:`~rlhf_gym.errors.ConfigError` line naming the path, and :func:`check_output` finds the common ones
before any work starts. An existing file is never silently replaced by a folder, nor a folder by a file.

Reading: :func:`read_tensors` (safetensors), :func:`expect` (the shape of a JSON value read with
:func:`rlhf_gym.core.jsonio.read_json`) and :func:`reading` (any other loader) turn every failure to read a
run file — truncated, empty, of the wrong shape — into one :class:`~rlhf_gym.errors.ModelError` line naming
the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlhf_gym.errors import ConfigError, ModelError, RLHFGymError

__all__ = ["atomic_dir", "check_output", "expect", "output_error", "read_tensors", "reading", "write_bytes_atomic",
           "write_text_atomic"]


# ----- writing -----------------------------------------------------------------------------------------------
def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    for p in (path, *path.parents):
        if _exists(p):
            return p
    return Path(path.anchor or "/")


def output_error(path: str | Path, error: OSError) -> ConfigError:
    """The one-line error for an operating-system failure writing ``path``: which part of it is at fault."""
    path = Path(path)
    anc = _nearest_existing(path.parent)
    if not anc.is_dir():
        return ConfigError(f"cannot write {path}: {anc} is a file, not a folder")
    reason = error.strerror or str(error) or type(error).__name__
    return ConfigError(f"cannot write {path}: {reason}")


def _mkdir_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e) from e


def check_output(path: str | Path, kind: str = "folder", what: str = "--out") -> Path:
    """Checks before any work that ``path`` can become an output ``kind`` ("folder" or "file").

    Refuses an existing file where a folder goes (and vice versa), a parent that is a file, and a parent
    folder this process may not write into (``os.access``; root may write anywhere).
    """
    path = Path(path)
    if _exists(path):
        if kind == "folder" and not path.is_dir():
            raise ConfigError(f"{what} {path} is a file, not a folder; refusing to replace it")
        if kind == "file" and path.is_dir():
            raise ConfigError(f"{what} {path} is a folder, not a file; refusing to replace it")
    anc = _nearest_existing(path if not _exists(path) else path.parent)
    if not anc.is_dir():
        raise ConfigError(f"{what} {path}: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {anc} is not writable")
    return path


def _write_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder; refusing to replace it with a file")
    _mkdir_parent(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise output_error(path, e) from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to a temporary file beside ``path``, syncs it and renames it into place."""
    return _write_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """:func:`write_text_atomic` for bytes (images)."""
    return _write_atomic(path, bytes(data))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; when the block succeeds it becomes ``path``.

    An existing ``path`` folder is moved aside, replaced, then deleted, so readers see the old or the new
    folder, never a mix; an existing *file* there is refused (never replaced by a folder). If the block raises,
    the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    if _exists(path) and not path.is_dir():
        raise ConfigError(f"cannot write folder {path}: a file of that name exists; refusing to replace it")
    _mkdir_parent(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
    except OSError as e:
        raise output_error(path, e) from e
    try:
        yield tmp
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise output_error(path, e) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}") if path.exists() else None
    try:
        if old is not None:
            path.rename(old)
        tmp.rename(path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            old.rename(path)
        raise output_error(path, e) from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----- reading -----------------------------------------------------------------------------------------------
def read_text(path: str | Path, what: str = "file", error: type[RLHFGymError] = ModelError) -> str:
    """The UTF-8 text of ``path`` with leading byte-order marks dropped; a missing, unreadable or non-UTF-8
    file is an ``error`` naming it as ``what`` ("config file", "prompt file", ...)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    try:
        return path.read_text(encoding="utf-8").lstrip("\ufeff")  # files concatenated can hold several
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise error(f"{what} {path} cannot be read ({e.strerror})") from e


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file", error: type[RLHFGymError] = ModelError) -> Iterator[None]:
    """Any failure inside the block (but a package error, passed on as is) becomes ``error`` naming ``path``."""
    try:
        yield
    except RLHFGymError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 — a file that cannot be read is the file's fault, whatever the loader says
        text = str(e).strip().splitlines()
        raise error(f"{what} {path} cannot be read ({type(e).__name__}{': ' + text[0] if text else ''})") from e


def read_tensors(path: str | Path, what: str = "tensor file", device: str = "cpu",
                 error: type[RLHFGymError] = ModelError) -> dict[str, Any]:
    """The tensors of a safetensors file; a missing, empty, truncated or corrupt file is ``error`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist" if not _exists(path) else f"{what} {path} is not a file")
    from safetensors.torch import load_file

    with reading(path, what, error):
        return load_file(path, device=device)


_KINDS = {"int": "an integer", "number": "a number", "str": "a string", "dict": "an object", "list": "a list",
          "bool": "true or false"}


def _is(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "dict": dict, "list": list, "bool": bool}[kind])


def expect(data: Any, spec: dict[str, str], where: str, error: type[RLHFGymError] = ModelError) -> dict[str, Any]:
    """Checks that ``data`` is a JSON object holding each key of ``spec`` with a value of that kind.

    Kinds: ``int``, ``number``, ``str``, ``dict``, ``list``, ``bool``; a trailing ``?`` also allows null,
    a leading ``~`` makes the key optional. Returns ``data``; anything else is ``error`` naming ``where`` and
    the key.
    """
    if not isinstance(data, dict):
        raise error(f"{where} must hold a JSON object, not {type(data).__name__}")
    for key, kind in spec.items():
        optional, kind = kind.startswith("~"), kind.lstrip("~")
        nullable, kind = kind.endswith("?"), kind.rstrip("?")
        if key not in data:
            if optional:
                continue
            raise error(f"{where} has no {key!r}")
        value = data[key]
        if value is None and nullable:
            continue
        if not _is(value, kind):
            raise error(f"{where}: {key!r} must be {_KINDS[kind]}{' or null' if nullable else ''}, "
                        f"not {type(value).__name__}")
    return data
