"""Atomic writes leave either the complete new output or the old one, never a partial one."""

from __future__ import annotations

import pytest

from rlhf_gym.io import atomic_dir, write_text_atomic


def test_write_text_atomic_replaces_and_cleans_up(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "a.txt", "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_atomic_dir_success_replaces_old_folder(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "w.bin").write_text("v1")
    with atomic_dir(out) as tmp:
        (tmp / "w2.bin").write_text("v2")
    assert sorted(p.name for p in out.iterdir()) == ["w2.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_failure_leaves_nothing_or_the_old_folder(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "good.bin").write_text("ok")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        raise RuntimeError("crash")
    assert [p.name for p in out.iterdir()] == ["good.bin"] and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
