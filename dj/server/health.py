"""``GET /healthz``: whether the station can play, and whether its audio is flowing.

* ``error`` (HTTP 503): nothing can play: the catalog is empty, no track is licensed today in
  the operator's territories (``default_territory``, ``[access] anonymous_territory``), or none
  of the licensed tracks' audio is on disk.
* ``degraded`` (200): it plays, but listeners hear a fault: a live stream has waited longer
  than its burst for the renderer (its buffer is running dry now), a paced stream ran dry or
  dead air was heard in the last :data:`RECENT_S` seconds.
* ``ok`` otherwise. ``problems`` says what, in words.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dj.server.keys import STATION
from dj.server.workers import WORKER
from dj.stream import Station

RECENT_S = 10.0  # how long an underrun or dead air keeps the station degraded


def catalog_state(station: Station) -> tuple[int, int, list[str]]:
    """(tracks, tracks playable today in the operator's territories, problems). Blocking: it
    may read the database and looks for audio files."""
    config = station.config
    catalog = station.catalog
    tracks = catalog.tracks()
    if not tracks:
        return 0, 0, ["the catalog is empty: add music with dj ingest"]
    territories = sorted({config.default_territory.upper(),
                          config.access.anonymous_territory.upper()})
    today = datetime.now(UTC).date()
    playable: set[str] = set()
    for territory in territories:
        playable |= catalog.playable_ids(territory, config.default_tier, today)
    if not playable:
        return len(tracks), 0, [f"no track is licensed for radio today in"
                                f" {', '.join(territories)}"]
    on_disk = (catalog.track(track_id) for track_id in sorted(playable))
    if not any(t is not None and t.audio_path is not None and t.audio_path.exists()
               for t in on_disk):  # stops at the first track found
        return len(tracks), len(playable), ["no licensed track's audio file is on disk"]
    return len(tracks), len(playable), []


def audio_state(station: Station, now: float) -> tuple[dict[str, Any], list[str]]:
    """What the live streams are doing (on the loop): how many wait on the renderer longer
    than their burst, and recent underruns and dead air."""
    lag_s = station.config.stream.burst_s
    streaming = waiting = 0
    for session in station.sessions:
        conn = session.owner
        if conn is None:
            continue
        streaming += 1
        since = conn.waiting_since
        if since is not None and now - since > lag_s:
            waiting += 1
    stats = station.stats
    underrun = stats.underrun_within(RECENT_S)
    dead_air = stats.dead_air_within(RECENT_S)
    problems = []
    if waiting:
        problems.append(f"{waiting} of {streaming} streams waited over {lag_s:g} s for the"
                        " renderer: their listeners' buffers are running dry")
    if underrun:
        problems.append(f"a stream ran dry (behind real time) in the last {RECENT_S:g} s")
    if dead_air:
        problems.append(f"dead air was heard in the last {RECENT_S:g} s")
    return {"streaming": streaming, "flowing": streaming - waiting,
            "waiting_for_render": waiting, "underrun_recent": underrun,
            "dead_air_recent": dead_air}, problems


def _workers(request: web.Request) -> dict[str, Any]:
    """With several workers: which one answered, and every worker's numbers."""
    board = request.app.get(WORKER)
    if board is None:
        return {}
    return {"worker": board.index, "workers": board.workers()}


async def health(request: web.Request) -> web.Response:
    station = request.app[STATION]
    loop = asyncio.get_running_loop()
    tracks, playable, fatal = await loop.run_in_executor(None, catalog_state, station)
    audio, faults = audio_state(station, loop.time())
    board = request.app.get(WORKER)
    if board is not None:
        down = [str(w["worker"]) for w in board.workers() if not w["alive"]]
        if down:
            faults.append(f"worker {', '.join(down)} not running: its listeners are being"
                          " moved to a restarted one")
    status = "error" if fatal else "degraded" if faults else "ok"
    return web.json_response(
        {
            "status": status,
            "problems": fatal + faults,
            "audio": audio,
            "sessions": station.sessions.streaming,
            "resumable": station.sessions.resumable,
            "tracks": tracks,
            "playable": playable,
            "narrator": station.narrator is not None,
            # engines in use, fall backs, stand-ins aired, the speech queue's depth
            "speech": station.narrator.speech_state() if station.narrator is not None else None,
            "failures": dict(station.failures),
            "ledger": {"queued": station.ledger_writer.depth,
                       "written": station.ledger_writer.written,
                       "write_errors": station.ledger_writer.errors},
            "path": station.config.stream.path,
            **_workers(request),
            "shared": {  # what every listener shares on the spliced path
                "bodies": len(station.bodies),
                "body_mb": round(station.bodies.nbytes / 2**20, 1),
                "transition_mb": round(station.pieces.nbytes / 2**20, 1),
                "transition_hits": station.pieces.hits,
                "transition_renders": station.pieces.misses,
            },
        },
        status=503 if fatal else 200,
    )
