"""SIGKILL a real `dj serve` while listeners play in real time: at the next start every play that
had qualified before the kill is in the ledger exactly once, closed at its last durable heard
position (a crash loses at most CHECKPOINT_S of a play in progress)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp

from dj.ledger import Ledger
from dj.ledger.log import CHECKPOINT_S, QUALIFYING_PLAY_S
from dj.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(data_dir: Path, port: int, pacing: bool = True) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(data_dir), "--port",
        str(port), *([] if pacing else ["--no-pacing"]), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    async with aiohttp.ClientSession() as client:
        deadline = time.monotonic() + 90
        while True:  # the server loads its model and voices first
            assert time.monotonic() < deadline, "dj serve did not come up"
            assert server.returncode is None, "dj serve exited"
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


def committed(db_path: Path, listeners: list[str]) -> dict[str, list[sqlite3.Row]]:
    """What is durable now, read by another connection: each listener's plays."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {who: db.execute("SELECT * FROM plays WHERE listener_id = ? ORDER BY started_at",
                                (who,)).fetchall() for who in listeners}
    finally:
        db.close()


async def _listen(client: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    """A real-time player: reads as the paced stream comes; returns the seconds connected."""
    t0 = time.monotonic()
    async with client.get(url) as resp:
        while not stop.is_set():
            try:
                if not await resp.content.read(16384):
                    break
            except aiohttp.ClientError:  # the server was killed
                break
    return time.monotonic() - t0


async def test_a_killed_server_keeps_every_qualified_play_once(long_tracks_dir):
    db_path = long_tracks_dir / "dj.sqlite3"
    port = free_port()
    tag = f"{os.getpid()}-{time.time_ns() % 10**8}"
    listeners = [f"crash-{tag}-{i}" for i in range(2)]
    server = await serve(long_tracks_dir, port, pacing=True)
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as client:
            readers = [asyncio.create_task(
                _listen(client, f"http://127.0.0.1:{port}/stream/{who}.mp3", stop))
                for who in listeners]
            # until a qualified play in progress is committed for each listener: what the
            # station has acknowledged, read by another connection
            deadline = time.monotonic() + 75
            while True:
                rows = committed(db_path, listeners)
                if all(any(r["qualified"] and r["ended_at"] is None for r in rows[who])
                       for who in listeners):
                    break
                assert time.monotonic() < deadline, "no play qualified"
                await asyncio.sleep(0.2)
            server.send_signal(signal.SIGKILL)
            await server.wait()
            stop.set()
            connected = dict(zip(listeners, await asyncio.gather(*readers), strict=True))
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    before = committed(db_path, listeners)
    qualified_before = {r["event_id"] for who in listeners for r in before[who] if r["qualified"]}
    open_before = {r["event_id"]: r["played_s"] for who in listeners for r in before[who]
                   if r["ended_at"] is None}
    assert qualified_before and set(open_before) >= qualified_before

    server = await serve(long_tracks_dir, port)  # the next start closes what was left open
    server.send_signal(signal.SIGTERM)
    await server.wait()
    stderr = (await server.stderr.read()).decode(errors="replace")
    assert "left open by a crash" in stderr

    ledger = Ledger(Store(db_path))
    for who in listeners:
        plays = ledger.plays(who)
        assert len({p.event_id for p in plays}) == len(plays)
        assert all(p.ended_at is not None for p in plays), "a play is still open"
        for p in plays:
            assert len(ledger.events(play_id=p.event_id, kind="play_ended")) == 1
            # closed at its last durable position: heard, never more than was connected
            assert p.outcome == "interrupted" and p.played_s == open_before[p.event_id]
            assert p.played_s <= connected[who]
            if p.event_id in qualified_before:
                assert QUALIFYING_PLAY_S <= p.played_s < QUALIFYING_PLAY_S + CHECKPOINT_S
    assert qualified_before <= {p.event_id for who in listeners for p in ledger.plays(who)}
    print(f"connected {connected}; plays closed by recovery: {open_before}")
