"""The ledger: every play and every aired line, written once (idempotency id), committed before
the caller goes on, never edited. Payout reports are computed from it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from dj.store import Migration, Store, where_equal

logger = logging.getLogger(__name__)

MIGRATIONS = [
    Migration(
        "ledger-0001-initial",
        """
        CREATE TABLE plays (
            event_id TEXT PRIMARY KEY, listener_id TEXT NOT NULL, session_id TEXT NOT NULL,
            track_id TEXT NOT NULL, artist_id TEXT NOT NULL, territory TEXT NOT NULL,
            tier TEXT NOT NULL, persona TEXT NOT NULL DEFAULT '', arm TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL, ended_at TEXT, played_s REAL, outcome TEXT,
            rightsholders TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX plays_listener ON plays(listener_id, started_at);
        CREATE TABLE airings (
            event_id TEXT PRIMARY KEY, line_id TEXT NOT NULL, artist_id TEXT,
            persona TEXT NOT NULL, listener_id TEXT NOT NULL, session_id TEXT NOT NULL,
            engine TEXT NOT NULL DEFAULT '', text TEXT NOT NULL DEFAULT '', aired_at TEXT NOT NULL
        );
        CREATE INDEX airings_artist ON airings(artist_id, aired_at);
        CREATE TABLE feedback (
            event_id TEXT PRIMARY KEY, listener_id TEXT NOT NULL, track_id TEXT NOT NULL,
            kind TEXT NOT NULL, at TEXT NOT NULL
        );
        """,
    )
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Play:
    event_id: str
    listener_id: str
    session_id: str
    track_id: str
    artist_id: str
    territory: str
    tier: str
    persona: str
    arm: str
    started_at: str
    ended_at: str | None
    played_s: float | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class Airing:
    event_id: str
    line_id: str
    artist_id: str | None
    persona: str
    listener_id: str
    session_id: str
    engine: str
    text: str
    aired_at: str


class Ledger:
    """Writes are idempotent by ``event_id``: the same event recorded twice is stored once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(MIGRATIONS)

    def play_started(
        self,
        *,
        event_id: str,
        listener_id: str,
        session_id: str,
        track_id: str,
        artist_id: str,
        territory: str,
        tier: str,
        persona: str = "",
        arm: str = "",
        rightsholders: list[dict] | None = None,
        at: str | None = None,
    ) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO plays (event_id, listener_id, session_id, track_id,"
                " artist_id,"
                " territory, tier, persona, arm, started_at, rightsholders)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    event_id,
                    listener_id,
                    session_id,
                    track_id,
                    artist_id,
                    territory,
                    tier,
                    persona,
                    arm,
                    at or _now(),
                    json.dumps(rightsholders or []),
                ),
            )

    def play_ended(
        self, event_id: str, played_s: float, outcome: str, at: str | None = None
    ) -> None:
        """``outcome`` is ``completed`` or ``skipped``; only the first end of a play is kept."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE plays SET ended_at = ?, played_s = ?, outcome = ?"
                " WHERE event_id = ? AND ended_at IS NULL",
                (at or _now(), played_s, outcome, event_id),
            )

    def line_aired(
        self,
        *,
        event_id: str,
        line_id: str,
        artist_id: str | None,
        persona: str,
        listener_id: str,
        session_id: str,
        engine: str = "",
        text: str = "",
        at: str | None = None,
    ) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO airings (event_id, line_id, artist_id, persona, listener_id,"
                " session_id, engine, text, aired_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    event_id,
                    line_id,
                    artist_id,
                    persona,
                    listener_id,
                    session_id,
                    engine,
                    text,
                    at or _now(),
                ),
            )

    def feedback(self, *, event_id: str, listener_id: str, track_id: str, kind: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO feedback (event_id, listener_id, track_id, kind, at)"
                " VALUES (?,?,?,?,?)",
                (event_id, listener_id, track_id, kind, _now()),
            )

    def plays(self, listener_id: str | None = None, limit: int = 1000) -> list[Play]:
        sql = "SELECT * FROM plays"
        params: tuple = ()
        if listener_id is not None:
            sql += " WHERE listener_id = ?"
            params = (listener_id,)
        rows = self.store.query(
            sql + " ORDER BY started_at DESC, rowid DESC LIMIT ?", (*params, limit)
        )
        return [Play(**{k: r[k] for k in Play.__slots__}) for r in rows]

    def airings(
        self, artist_id: str | None = None, listener_id: str | None = None, limit: int = 1000
    ) -> list[Airing]:
        """Newest first."""
        where, params = where_equal(artist_id=artist_id, listener_id=listener_id)
        rows = self.store.query(
            f"SELECT * FROM airings{where} ORDER BY aired_at DESC, rowid DESC LIMIT ?",
            (*params, limit),
        )
        return [Airing(**{k: r[k] for k in Airing.__slots__}) for r in rows]
