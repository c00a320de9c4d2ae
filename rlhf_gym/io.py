"""Atomic writes: an output is either complete or absent, never half-written.

Everything the toolkit writes to disk — checkpoints, reward models, preference files, metrics rewrites —
goes through these two functions: write beside the destination under a temporary name, then rename into
place (a rename within one folder is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to a temporary file beside ``path``, syncs it and renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; when the block succeeds it becomes ``path``.

    An existing ``path`` is moved aside, replaced, then deleted, so readers see the old or the new folder,
    never a mix. If the block raises, the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}") if path.exists() else None
    if old is not None:
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
