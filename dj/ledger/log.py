"""The ledger: the station's system of record. Every play and aired line is an append-only list
of events (``ledger_events``), each written once under an id that makes writing it twice
harmless, never updated or deleted (triggers refuse it); a correction is a new event. The
current state of a play (started, how long it was heard, how it ended, whether it qualified) is
derived from its events by the ``plays`` view; ``airings`` and ``feedback`` are views too.

Event ids of a play derive from its play id, so that a play counts once however often its
listener reconnects or resumes, and a crash closes it at most once:

    play_started    <play_id>            rightsholders as they stood when it was heard
    play_heard      <play_id>:h<n>       the heard position, every CHECKPOINT_S (durable progress)
    play_qualified  <play_id>:q          QUALIFYING_PLAY_S heard: it counts for payouts
    play_ended      <play_id>:end        seconds heard and the outcome (first end wins)
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dj.store import Migration, Store, where_equal

logger = logging.getLogger(__name__)

QUALIFYING_PLAY_S = 30.0  # a play counts for payouts once this much of it was heard
CHECKPOINT_S = 10.0  # heard progress made durable this often: what a crash can lose of a play
#: a play open on another host with no event for this long is taken as orphaned (longer than
#: any track plus the resume window)
STALE_S = 6 * 3600.0

KINDS = ("play_started", "play_heard", "play_qualified", "play_ended", "line_aired",
         "like", "dislike", "skip")
OUTCOMES = ("completed", "skipped", "left", "interrupted")

_COLUMNS = ("event_id", "kind", "at", "listener_id", "session_id", "territory", "tier",
            "persona", "experiment", "arm", "play_id", "track_id", "line_id", "artist_id",
            "heard_s", "outcome", "detail")

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
    ),
    Migration(
        "ledger-0002-events",
        """
        CREATE TABLE ledger_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            listener_id TEXT NOT NULL,
            session_id TEXT NOT NULL DEFAULT '',
            territory TEXT NOT NULL DEFAULT '',
            tier TEXT NOT NULL DEFAULT '',
            persona TEXT NOT NULL DEFAULT '',
            experiment TEXT NOT NULL DEFAULT '',
            arm TEXT NOT NULL DEFAULT '',
            play_id TEXT, track_id TEXT, line_id TEXT, artist_id TEXT,
            heard_s REAL, outcome TEXT,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ledger_events_play ON ledger_events(play_id, kind);
        CREATE INDEX ledger_events_kind ON ledger_events(kind, at);
        CREATE INDEX ledger_events_listener ON ledger_events(listener_id, at);
        CREATE INDEX ledger_events_artist ON ledger_events(artist_id, kind, at);
        CREATE TRIGGER ledger_events_no_update BEFORE UPDATE ON ledger_events
        BEGIN SELECT RAISE(ABORT, 'ledger_events is append-only'); END;
        CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events
        BEGIN SELECT RAISE(ABORT, 'ledger_events is append-only'); END;

        INSERT INTO ledger_events (event_id, kind, at, listener_id, session_id, territory,
            tier, persona, arm, play_id, track_id, artist_id, detail)
        SELECT event_id, 'play_started', started_at, listener_id, session_id, territory, tier,
            persona, arm, event_id, track_id, artist_id,
            json_object('rightsholders', json(rightsholders))
        FROM plays ORDER BY started_at;
        INSERT INTO ledger_events (event_id, kind, at, listener_id, session_id, territory,
            tier, persona, arm, play_id, track_id, artist_id, heard_s, outcome)
        SELECT event_id || ':q', 'play_qualified', started_at, listener_id, session_id,
            territory, tier, persona, arm, event_id, track_id, artist_id, played_s, NULL
        FROM plays WHERE played_s >= 30;
        INSERT INTO ledger_events (event_id, kind, at, listener_id, session_id, territory,
            tier, persona, arm, play_id, track_id, artist_id, heard_s, outcome)
        SELECT event_id || ':end', 'play_ended', ended_at, listener_id, session_id, territory,
            tier, persona, arm, event_id, track_id, artist_id, played_s, outcome
        FROM plays WHERE ended_at IS NOT NULL;
        INSERT INTO ledger_events (event_id, kind, at, listener_id, session_id, persona,
            line_id, artist_id, detail)
        SELECT event_id, 'line_aired', aired_at, listener_id, session_id, persona, line_id,
            artist_id, json_object('engine', engine, 'text', text)
        FROM airings ORDER BY aired_at;
        INSERT INTO ledger_events (event_id, kind, at, listener_id, track_id)
        SELECT event_id, kind, at, listener_id, track_id FROM feedback ORDER BY at;
        DROP TABLE plays;
        DROP TABLE airings;
        DROP TABLE feedback;

        CREATE VIEW plays AS
        SELECT s.play_id AS event_id, s.listener_id, s.session_id, s.track_id, s.artist_id,
            s.territory, s.tier, s.persona, s.experiment, s.arm, s.at AS started_at,
            e.at AS ended_at,
            COALESCE(e.heard_s,
                     (SELECT MAX(h.heard_s) FROM ledger_events h
                      WHERE h.play_id = s.play_id AND h.kind IN ('play_heard', 'play_qualified')))
                AS played_s,
            e.outcome,
            EXISTS (SELECT 1 FROM ledger_events q WHERE q.event_id = s.play_id || ':q')
                AS qualified,
            COALESCE(json_extract(s.detail, '$.rightsholders'), '[]') AS rightsholders
        FROM ledger_events s
        LEFT JOIN ledger_events e ON e.event_id = s.play_id || ':end'
        WHERE s.kind = 'play_started';
        CREATE VIEW airings AS
        SELECT event_id, line_id, artist_id, persona, listener_id, session_id,
            COALESCE(json_extract(detail, '$.engine'), '') AS engine,
            COALESCE(json_extract(detail, '$.text'), '') AS text,
            COALESCE(json_extract(detail, '$.artists'), json_array(artist_id)) AS artists,
            territory, experiment, arm, at AS aired_at
        FROM ledger_events WHERE kind = 'line_aired';
        CREATE VIEW feedback AS
        SELECT event_id, listener_id, track_id, kind, at
        FROM ledger_events WHERE kind IN ('like', 'dislike', 'skip');
        """,
    ),
]


def now_iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Event:
    """One fact, as appended. ``detail`` holds what only some kinds carry (a play's
    rightsholders, a line's text and engine, the artists it names)."""

    event_id: str
    kind: str
    listener_id: str
    at: str = field(default_factory=now_iso)
    session_id: str = ""
    territory: str = ""
    tier: str = ""
    persona: str = ""
    experiment: str = ""
    arm: str = ""
    play_id: str | None = None
    track_id: str | None = None
    line_id: str | None = None
    artist_id: str | None = None
    heard_s: float | None = None
    outcome: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    def row(self) -> tuple[Any, ...]:
        values = asdict(self)
        values["detail"] = json.dumps(self.detail, ensure_ascii=False, sort_keys=True)
        return tuple(values[c] for c in _COLUMNS)


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
    """Appends are idempotent by ``event_id``: the same event recorded twice is stored once.

    The methods write at once (blocking, one transaction each); the stream batches its events
    through :class:`dj.ledger.writer.EventWriter`, which calls :meth:`append`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(MIGRATIONS)

    def append(self, events: Iterable[Event]) -> int:
        """Write ``events`` in one transaction; returns how many were new."""
        rows = [e.row() for e in events]
        if not rows:
            return 0
        with self.store.transaction() as db:
            before = db.total_changes
            db.executemany(
                f"INSERT OR IGNORE INTO ledger_events ({', '.join(_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_COLUMNS))})",
                rows,
            )
            return db.total_changes - before

    # -- the single-event helpers (tests, tools, the API's own writes) ------------------------
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
        experiment: str = "",
        rightsholders: list[dict] | None = None,
        at: str | None = None,
    ) -> None:
        self.append([Event(
            event_id, "play_started", listener_id, at=at or now_iso(), session_id=session_id,
            territory=territory, tier=tier, persona=persona, experiment=experiment, arm=arm,
            play_id=event_id, track_id=track_id, artist_id=artist_id,
            detail={"rightsholders": rightsholders or []},
        )])

    def play_ended(
        self, event_id: str, played_s: float, outcome: str, at: str | None = None
    ) -> None:
        """Close the play ``event_id`` (its play id); only its first end is kept."""
        start = self._start(event_id)
        if start is None:
            logger.warning("end of unknown play %s ignored", event_id)
            return
        self.append([ended(start, played_s, outcome, at=at)])

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
        artists: Iterable[str] = (),
        at: str | None = None,
    ) -> None:
        self.append([Event(
            event_id, "line_aired", listener_id, at=at or now_iso(), session_id=session_id,
            persona=persona, line_id=line_id, artist_id=artist_id,
            detail={"engine": engine, "text": text,
                    "artists": sorted(set(artists) | ({artist_id} if artist_id else set()))},
        )])

    def feedback(self, *, event_id: str, listener_id: str, track_id: str, kind: str) -> None:
        self.append([Event(event_id, kind, listener_id, track_id=track_id)])

    # -- reading ------------------------------------------------------------------------------
    def _start(self, play_id: str) -> Event | None:
        row = self.store.query_one(
            "SELECT * FROM ledger_events WHERE event_id = ? AND kind = 'play_started'",
            (play_id,))
        return None if row is None else _event(row)

    def events(self, play_id: str | None = None, kind: str | None = None) -> list[Event]:
        where, params = where_equal(play_id=play_id, kind=kind)
        return [_event(r) for r in
                self.store.query(f"SELECT * FROM ledger_events{where} ORDER BY seq", params)]

    def experiment_events(self, experiment: str) -> list[Event]:
        """Every event logged in ``experiment``, in order (its analysis reads these)."""
        return [_event(r) for r in self.store.query(
            "SELECT * FROM ledger_events WHERE experiment = ? ORDER BY seq", (experiment,))]

    def listening(self, listener_ids: Iterable[str], since: str, until: str,
                  exclude_experiment: str = "") -> list[Event]:
        """The play events of ``listener_ids`` from ``since`` to before ``until`` outside
        ``exclude_experiment``: what they heard before it (its CUPED covariate)."""
        ids, out = sorted(set(listener_ids)), []
        for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[i:i + 500]
            out += [_event(r) for r in self.store.query(
                "SELECT * FROM ledger_events WHERE kind IN ('play_started', 'play_heard',"
                " 'play_qualified', 'play_ended') AND experiment != ? AND at >= ? AND at < ?"
                f" AND listener_id IN ({', '.join('?' * len(chunk))}) ORDER BY seq",
                (exclude_experiment, since, until, *chunk))]
        return out

    def plays(self, listener_id: str | None = None, limit: int = 1000) -> list[Play]:
        where, params = where_equal(listener_id=listener_id)
        rows = self.store.query(
            f"SELECT * FROM plays{where} ORDER BY started_at DESC, event_id DESC LIMIT ?",
            (*params, limit),
        )
        return [Play(**{k: r[k] for k in Play.__slots__}) for r in rows]

    def airings(
        self, artist_id: str | None = None, listener_id: str | None = None, limit: int = 1000
    ) -> list[Airing]:
        """Newest first."""
        where, params = where_equal(artist_id=artist_id, listener_id=listener_id)
        rows = self.store.query(
            f"SELECT * FROM airings{where} ORDER BY aired_at DESC, event_id DESC LIMIT ?",
            (*params, limit),
        )
        return [Airing(**{k: r[k] for k in Airing.__slots__}) for r in rows]

    # -- after a crash ------------------------------------------------------------------------
    def close_orphans(self, now: datetime | None = None) -> list[Event]:
        """Close every play a crash left open: no end, and the process that started it is gone
        (same host, its pid not running) or, from another host, silent for STALE_S. Its length
        is the last heard position made durable (a checkpoint, or the qualifying mark), its
        outcome ``interrupted``, its end time that of its last event. Blocking."""
        rows = self.store.query(
            """
            SELECT s.*, MAX(COALESCE(h.heard_s, 0)) AS last_heard,
                   MAX(COALESCE(h.at, s.at)) AS last_at
            FROM ledger_events s
            LEFT JOIN ledger_events h
              ON h.play_id = s.play_id AND h.kind IN ('play_heard', 'play_qualified')
            WHERE s.kind = 'play_started'
              AND NOT EXISTS (SELECT 1 FROM ledger_events e WHERE e.event_id = s.play_id || ':end')
            GROUP BY s.event_id
            """
        )
        stale = now_iso((now or datetime.now(UTC)) - timedelta(seconds=STALE_S))
        closing = []
        for r in rows:
            start = _event(r)
            if _node_alive(start.detail.get("node")) and r["last_at"] >= stale:
                continue
            closing.append(ended(start, float(r["last_heard"]), "interrupted", at=r["last_at"],
                                 detail={"closed_by": "recovery"}))
        self.append(closing)
        for event in closing:
            logger.warning("play %s left open by a crash: closed at %.1f s heard",
                           event.play_id, event.heard_s)
        return closing


#: This process, as the plays it starts name it (``host:pid``), so that a restart can tell a
#: play orphaned by a crash from one a live process on the same database still plays.
NODE = f"{socket.gethostname()}:{os.getpid()}"


def _node_alive(node: Any) -> bool:
    """Whether the process that wrote ``node`` may still be running. Another host's cannot be
    seen: it counts as alive (until STALE_S of silence)."""
    if not isinstance(node, str) or ":" not in node:
        return False  # written before nodes were recorded, or by a tool: nobody holds it
    host, _, pid = node.rpartition(":")
    if host != socket.gethostname():
        return True
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _event(row: Any) -> Event:
    values = {c: row[c] for c in _COLUMNS}
    values["detail"] = json.loads(values["detail"] or "{}")
    return Event(**values)


def _play_event(start: Event, kind: str, event_id: str, **values: Any) -> Event:
    """An event of the play ``start`` began, carrying its listener, territory, persona, arm."""
    return Event(event_id, kind, start.listener_id, session_id=start.session_id,
                 territory=start.territory, tier=start.tier, persona=start.persona,
                 experiment=start.experiment, arm=start.arm, play_id=start.play_id,
                 track_id=start.track_id, artist_id=start.artist_id, **values)


def heard(start: Event, heard_s: float, n: int, at: str | None = None) -> Event:
    return _play_event(start, "play_heard", f"{start.play_id}:h{n}", heard_s=round(heard_s, 3),
                       at=at or now_iso())


def qualified(start: Event, heard_s: float, at: str | None = None) -> Event:
    return _play_event(start, "play_qualified", f"{start.play_id}:q", heard_s=round(heard_s, 3),
                       at=at or now_iso())


def ended(start: Event, heard_s: float, outcome: str, at: str | None = None,
          detail: dict[str, Any] | None = None) -> Event:
    return _play_event(start, "play_ended", f"{start.play_id}:end", heard_s=round(heard_s, 3),
                       outcome=outcome, at=at or now_iso(), detail=detail or {})
