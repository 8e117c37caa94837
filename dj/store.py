"""SQLite persistence: a connection per thread, WAL mode, named migrations, one transaction helper.

Each package declares its own schema as a list of :class:`Migration` steps; a step runs once per
database and is recorded by name, so packages evolve their tables independently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def where_equal(**columns: Any) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (with its leading space) matching every column whose value is not
    ``None``, and its parameters; ``("", [])`` when every filter is ``None``. Column names come
    from the caller's code, never from input."""
    used = {name: value for name, value in columns.items() if value is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{name} = ?" for name in used), list(used.values())


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str


def change_counter(name: str, topic: str, tables: Sequence[str]) -> Migration:
    """A migration whose triggers count every write to ``tables`` under ``topic``.

    The triggers run inside the writing transaction, whichever connection or process writes, so
    a server polling :meth:`Store.change_versions` sees another process's change (``dj ingest``,
    a second node on the same file) as soon as it is committed, and only then.
    """
    bump = (f"INSERT INTO store_changes (topic, version) VALUES ('{topic}', 1)"
            " ON CONFLICT(topic) DO UPDATE SET version = version + 1;")
    sql = "\n".join(
        f"CREATE TRIGGER {table}_{event.lower()}_counts AFTER {event} ON {table}"
        f" BEGIN {bump} END;"
        for table in tables for event in ("INSERT", "UPDATE", "DELETE")
    )
    return Migration(name, sql)


class Store:
    """A SQLite database file shared by the packages, safe to use from executor threads.

    Writes go through :meth:`transaction`, which commits before returning, so anything written
    inside it is durable once the ``with`` block ends.
    """

    def __init__(self, path: Path | str, migrations: Iterable[Migration] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        # journal_mode cannot change inside a transaction
        self._connection().execute("PRAGMA journal_mode=WAL")
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT"
                " NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
            )
            db.execute("CREATE TABLE IF NOT EXISTS store_changes"
                       " (topic TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        self.migrate(migrations)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def migrate(self, migrations: Iterable[Migration]) -> list[str]:
        """Apply the steps not applied yet, in order; returns the names applied now."""
        applied: list[str] = []
        for step in migrations:
            with self.transaction() as db:
                done = db.execute("SELECT 1 FROM migrations WHERE name = ?", (step.name,))
                if done.fetchone():
                    continue
                for statement in _statements(step.sql):
                    db.execute(statement)
                db.execute("INSERT INTO migrations (name) VALUES (?)", (step.name,))
                applied.append(step.name)
        if applied:
            logger.info("applied migrations: %s", ", ".join(applied))
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) committed on exit, rolled back on error."""
        conn = self._connection()
        with self._write_lock:
            if conn.in_transaction:  # nested use joins the outer transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        return self._connection().execute(sql, params).fetchone()

    def change_versions(self) -> dict[str, int]:
        """How many writes each :func:`change_counter` topic has seen (one cheap read)."""
        return {r[0]: r[1] for r in self.query("SELECT topic, version FROM store_changes")}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _statements(sql: str) -> list[str]:
    parts: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            parts.append(buf.strip())
            buf = ""
    if buf.strip():
        parts.append(buf.strip())
    return parts
