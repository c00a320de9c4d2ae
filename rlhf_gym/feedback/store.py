"""The label store: one SQLite file in WAL mode holding annotators, items and labels.

Every label is committed (``synchronous=FULL``) before :meth:`LabelStore.add_label` returns, so a label the
app acknowledged survives the server being killed. Tokens are kept only as SHA-256 digests; the token itself
is printed once, by ``rlhf-gym label annotators add``.

Tables: ``annotators(id, name, token_sha256, created)``; ``items(id, key, kind, prompt, candidates, task,
meta, source)`` where ``source`` says where the item came from (``pairs`` for a pairs file; an arena can
add its battles with another source and find their policies in ``meta``); ``labels(id, item_id,
annotator_id, choice, ranking, feedback, edited, seconds, created)``, one row per item and annotator (a
second answer replaces the first).

>>> import tempfile
>>> from rlhf_gym.feedback.items import Item
>>> store = LabelStore(tempfile.mkdtemp() + "/labels.sqlite")
>>> token = store.add_annotator("ann")
>>> store.annotator_for(token).name
'ann'
>>> store.add_items([Item("Q:", (" a", " b"))])
1
>>> store.add_label(1, store.annotator_for(token).id, choice="a")
>>> [label.choice for label in store.labels()]
['a']
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_gym.errors import ConfigError, DataError
from rlhf_gym.feedback.items import Item

__all__ = ["LabelStore", "Annotator", "StoredItem", "Label", "CHOICES"]

#: Answers to a comparison: the first text, the second, a tie, or both bad.
CHOICES = ("a", "b", "tie", "both_bad")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS annotators (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_sha256 TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, prompt TEXT NOT NULL,
  candidates TEXT NOT NULL, task TEXT, meta TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
  id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id),
  annotator_id INTEGER NOT NULL REFERENCES annotators(id), choice TEXT, ranking TEXT,
  feedback TEXT NOT NULL DEFAULT '', edited TEXT NOT NULL DEFAULT '', seconds REAL, created REAL NOT NULL,
  UNIQUE (item_id, annotator_id));
"""


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    created: float


@dataclass(frozen=True)
class StoredItem:
    id: int
    item: Item
    source: str


@dataclass(frozen=True)
class Label:
    """One annotator's answer on one item: ``choice`` (a comparison) or ``ranking`` (candidate indices,
    best first)."""

    id: int
    item_id: int
    annotator: str
    choice: str | None
    ranking: tuple[int, ...] | None
    feedback: str
    edited: str
    seconds: float | None
    created: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LabelStore:
    """Opens (and creates) the SQLite file at ``path``. Each call opens its own connection, so one store
    can be shared by the web server's threads."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"--db {self.path}: no such label database")
        if self.path.is_dir():
            raise ConfigError(f"--db {self.path} is a folder, not a SQLite file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"--db {self.path}: not a label database ({e})") from e

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as e:
            raise ConfigError(f"--db {self.path}: cannot open it ({e})") from e
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the page answers
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        db = self._connect()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    # ------------------------------------------------------------------------------------------ annotators

    def add_annotator(self, name: str) -> str:
        """Creates annotator ``name`` and returns their new token (shown once; only its digest is kept)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"annotator name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
        token = secrets.token_urlsafe(24)
        db = self._connect()
        try:
            with db:
                db.execute("INSERT INTO annotators (name, token_sha256, created) VALUES (?, ?, ?)",
                           (name, _digest(token), time.time()))
        except sqlite3.IntegrityError:
            raise ConfigError(f"annotator {name!r} already exists in {self.path}") from None
        finally:
            db.close()
        return token

    def annotators(self) -> list[Annotator]:
        return [Annotator(*row) for row in self._query("SELECT id, name, created FROM annotators ORDER BY name")]

    def annotator_for(self, token: str | None) -> Annotator | None:
        """The annotator whose token this is, or None."""
        if not token or not isinstance(token, str) or len(token) > 200:
            return None
        rows = self._query("SELECT id, name, created FROM annotators WHERE token_sha256 = ?", (_digest(token),))
        return Annotator(*rows[0]) if rows else None

    def annotator_named(self, name: str) -> Annotator:
        rows = self._query("SELECT id, name, created FROM annotators WHERE name = ?", (name,))
        if not rows:
            known = ", ".join(a.name for a in self.annotators()) or "none yet"
            raise ConfigError(f"--annotator {name!r}: no such annotator in {self.path} (known: {known})")
        return Annotator(*rows[0])

    # ----------------------------------------------------------------------------------------------- items

    def add_items(self, items: Iterable[Item], source: str = "pairs") -> int:
        """Adds items not stored yet (by content); returns how many were new."""
        db = self._connect()
        try:
            with db:
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO items (key, kind, prompt, candidates, task, meta, source) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(it.key, it.kind, it.prompt, json.dumps(list(it.candidates), ensure_ascii=False), it.task,
                      json.dumps(it.meta, ensure_ascii=False), source) for it in items])
                return db.total_changes - before
        finally:
            db.close()

    def items(self) -> list[StoredItem]:
        rows = self._query("SELECT id, kind, prompt, candidates, task, meta, source FROM items ORDER BY id")
        return [StoredItem(i, Item(p, tuple(json.loads(c)), k, t, json.loads(m)), s) for i, k, p, c, t, m, s in rows]

    def item(self, item_id: int) -> StoredItem | None:
        rows = self._query("SELECT id, kind, prompt, candidates, task, meta, source FROM items WHERE id = ?",
                           (item_id,))
        if not rows:
            return None
        i, k, p, c, t, m, s = rows[0]
        return StoredItem(i, Item(p, tuple(json.loads(c)), k, t, json.loads(m)), s)

    def label_counts(self) -> dict[int, int]:
        """Item id -> how many annotators labelled it."""
        return dict(self._query("SELECT item_id, COUNT(*) FROM labels GROUP BY item_id"))

    # ---------------------------------------------------------------------------------------------- labels

    def add_label(self, item_id: int, annotator_id: int, *, choice: str | None = None,
                  ranking: Sequence[int] | None = None, feedback: str = "", edited: str = "",
                  seconds: float | None = None) -> None:
        """Stores (or replaces) one annotator's answer on one item; committed to disk when this returns."""
        stored = self.item(item_id)
        if stored is None:
            raise DataError(f"no item {item_id}")
        if stored.item.kind == "pair":
            if choice not in CHOICES or ranking is not None:
                raise DataError(f"item {item_id}: choice must be one of {', '.join(CHOICES)}, got {choice!r}")
            ranking_json = None
        else:
            k = len(stored.item.candidates)
            if choice is not None or ranking is None or sorted(ranking) != list(range(k)):
                raise DataError(f"item {item_id}: a ranking must order all {k} candidates once, got {ranking!r}")
            ranking_json = json.dumps([int(r) for r in ranking])
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT INTO labels (item_id, annotator_id, choice, ranking, feedback, edited, seconds, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, annotator_id) DO UPDATE SET "
                    "choice = excluded.choice, ranking = excluded.ranking, feedback = excluded.feedback, "
                    "edited = excluded.edited, seconds = excluded.seconds, created = excluded.created",
                    (item_id, annotator_id, choice, ranking_json, feedback, edited, seconds, time.time()))
        finally:
            db.close()

    def labels(self, annotator_id: int | None = None) -> list[Label]:
        """Every label, or only ``annotator_id``'s, in the order they were first given."""
        sql = ("SELECT l.id, l.item_id, a.name, l.choice, l.ranking, l.feedback, l.edited, l.seconds, l.created "
               "FROM labels l JOIN annotators a ON a.id = l.annotator_id")
        rows = self._query(sql + (" WHERE l.annotator_id = ?" if annotator_id is not None else "") + " ORDER BY l.id",
                           () if annotator_id is None else (annotator_id,))
        return [Label(i, it, a, c, tuple(json.loads(r)) if r else None, f, e, s, t) for i, it, a, c, r, f, e, s, t in rows]

    def label_of(self, item_id: int, annotator_id: int) -> Label | None:
        return next((lab for lab in self.labels(annotator_id) if lab.item_id == item_id), None)
