"""The ledger as the system of record: append-only events, written once, batched off the caller's
thread, held (never dropped) while another process locks the database, and plays left open by a
crash closed at the next start from their last durable heard position. Real SQLite files and
real processes."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dj.ledger.log import NODE, Event, Ledger, ended, heard, now_iso, qualified
from dj.ledger.writer import EventWriter
from dj.store import Store


def start(play_id: str, node: str | None = NODE, at: str | None = None) -> Event:
    return Event(play_id, "play_started", "l1", at=at or now_iso(), session_id="s1",
                 territory="US", tier="ad-supported", persona="nova", experiment="exp",
                 arm="a", play_id=play_id, track_id="t1", artist_id="nova-lake",
                 detail={"rightsholders": [{"party": "P", "role": "master", "share_pct": 100}],
                         **({"node": node} if node else {})})


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Store(tmp_path / "ledger.sqlite3"))


def test_events_are_appended_once_and_never_changed(ledger: Ledger) -> None:
    s = start("p1")
    events = [s, heard(s, 10.0, 1), qualified(s, 30.2), ended(s, 41.5, "skipped")]
    assert ledger.append(events) == 4
    assert ledger.append(events) == 0  # the same events again: harmless
    assert ledger.append([ended(s, 99.0, "completed")]) == 0  # the first end stands
    (play,) = ledger.plays("l1")
    assert (play.played_s, play.outcome, play.arm) == (41.5, "skipped", "a")
    row = ledger.store.query_one("SELECT qualified, experiment FROM plays")
    assert row["qualified"] == 1 and row["experiment"] == "exp"
    for sql in ("UPDATE ledger_events SET heard_s = 1", "DELETE FROM ledger_events"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), \
                ledger.store.transaction() as db:
            db.execute(sql)
    assert len(ledger.events(play_id="p1")) == 4


def test_an_open_play_shows_its_last_durable_position(ledger: Ledger) -> None:
    s = start("p2")
    ledger.append([s, heard(s, 10.1, 1), heard(s, 20.3, 2)])
    (play,) = ledger.plays("l1")
    assert play.ended_at is None and play.played_s == 20.3


def test_the_writer_batches_and_acknowledges_once_committed(ledger: Ledger) -> None:
    writer = EventWriter(ledger)
    try:
        futures = [writer.append(Event(uuid.uuid4().hex, "like", f"l{i}", track_id="t"))
                   for i in range(300)]
        assert all(f.result(timeout=10) for f in futures)
        assert writer.depth == 0 and writer.written == 300
        assert ledger.store.query_one("SELECT COUNT(*) FROM feedback")[0] == 300
    finally:
        writer.close()


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def test_nothing_is_dropped_while_another_process_holds_the_write_lock(ledger: Ledger) -> None:
    failed = threading.Event()
    writer = EventWriter(ledger, on_failure=lambda kind: failed.set(), busy_timeout_s=0.2)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(ledger.store.path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        futures = [writer.append(Event(f"e{i}", "dislike", "l1", track_id="t"))
                   for i in range(50)]
        assert failed.wait(10), "the locked database was never reported"
        assert not any(f.done() for f in futures)
        assert writer.depth == 50 and writer.errors >= 1
        # readers are not blocked by the writer's lock (WAL): nothing is there yet
        assert ledger.store.query_one("SELECT COUNT(*) FROM ledger_events")[0] == 0
        locker.stdin.write("release\n")
        locker.stdin.flush()
        assert locker.wait(10) == 0
        assert writer.flush(timeout=15)
        assert all(f.result() for f in futures)
        assert ledger.store.query_one("SELECT COUNT(*) FROM ledger_events")[0] == 50
    finally:
        if locker.poll() is None:
            locker.kill()
        writer.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_crash_leaves_plays_that_the_next_start_closes(ledger: Ledger) -> None:
    host = socket.gethostname()
    long_ago = now_iso(datetime.now(UTC) - timedelta(hours=7))
    orphan = start("orphan", node=f"{host}:{_dead_pid()}")
    mine = start("mine")  # this process is alive: its play is not an orphan
    remote = start("remote", node="another-host:1")  # another node, recently heard
    remote_gone = start("remote-gone", node="another-host:2", at=long_ago)
    legacy = start("legacy", node=None)
    ledger.append([orphan, heard(orphan, 10.0, 1), heard(orphan, 20.0, 2),
                   qualified(orphan, 30.0), heard(orphan, 30.0, 3),
                   mine, heard(mine, 10.0, 1), remote, remote_gone, legacy])
    closed = ledger.close_orphans()
    assert {e.play_id for e in closed} == {"orphan", "remote-gone", "legacy"}
    plays = {p.event_id: p for p in ledger.plays("l1")}
    assert plays["orphan"].played_s == 30.0 and plays["orphan"].outcome == "interrupted"
    assert plays["orphan"].ended_at == ledger.events(play_id="orphan")[-2].at
    assert plays["legacy"].played_s == 0.0
    assert plays["mine"].ended_at is None and plays["remote"].ended_at is None
    assert ledger.close_orphans() == []  # closed once
    end = ledger.events(play_id="orphan", kind="play_ended")
    assert len(end) == 1 and end[0].detail == {"closed_by": "recovery"}
