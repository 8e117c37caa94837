"""What the station counts as it runs, for ``/metrics`` and ``/healthz``, and the one log line per
session start and end.

The instruments are prometheus-client ones made without a registry: the station owns them and
every app that serves the station (tests make many) registers its own collector reading them, so
no two apps share or clash in a registry. Everything is counted per event (a session, a chunk of
half a second, a skip, a render), never per MP3 frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from dj.audio.plan import Marker

logger = logging.getLogger(__name__)

# how a session ended, for dj_sessions_closed_total{cause}
RELEASE_CAUSES = ("expired", "unheard", "replaced", "unstarted", "shutdown", "left")
# how a connection ended: Connection.run's reasons, folded to a few label values
CONNECTION_CAUSES = ("gone", "stalled", "taken_over", "server_stopping", "ended", "cancelled",
                     "error")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def connection_cause(why: str) -> str:
    """``Connection.run``'s reason as a label value ("gone: ClientConnectionResetError" is
    "gone")."""
    head = why.split(":", 1)[0].strip().replace(" ", "_")
    return head if head in CONNECTION_CAUSES else "ended"


@dataclass(slots=True)
class _Open:
    listener_id: str
    opened: float  # monotonic
    connections: int = 0
    last_cause: str = ""  # how the last connection ended
    last_end: float | None = None  # monotonic, when it did


class StationStats:
    def __init__(self) -> None:
        self.started_wall = time.time()
        self.listener_peak = 0
        self.last_dead_air: float | None = None  # monotonic, when dead air was last heard
        self.last_underrun: float | None = None  # monotonic, when a stream last ran dry
        self._open: dict[str, _Open] = {}
        self.sessions_opened = Counter(
            "dj_sessions_opened", "Listener sessions (programmes) opened", registry=None)
        self.sessions_closed = Counter(
            "dj_sessions_closed", "Listener sessions released, by cause", ["cause"],
            registry=None)
        self.connections = Counter(
            "dj_stream_connections", "Stream connections started: a new session, a resume"
            " within the window, or a takeover of a live one", ["kind"], registry=None)
        self.connections_ended = Counter(
            "dj_stream_connections_ended", "Stream connections ended, by cause", ["cause"],
            registry=None)
        self.bytes_sent = Counter(
            "dj_stream_sent_bytes", "Stream bytes written to clients (audio and ICY metadata)",
            registry=None)
        self.render_wait = Histogram(
            "dj_render_wait_seconds", "How long a connection waited for its next block to be"
            " rendered in the render pool (render lag)", buckets=LATENCY_BUCKETS, registry=None)
        self.underruns = Counter(
            "dj_stream_underruns", "Times a paced stream fell behind real time while waiting"
            " for the renderer: the listener's buffer ran dry", registry=None)
        self.underrun_seconds = Counter(
            "dj_stream_underrun_seconds", "Seconds paced streams fell behind real time while"
            " waiting for the renderer (silence the listener heard)", registry=None)
        self.dead_air_seconds = Counter(
            "dj_dead_air_seconds", "Seconds of silence heard before the dead-air guard cut"
            " them short", registry=None)
        self.actions = Counter(
            "dj_listener_actions", "Listener controls: skip, like, dislike", ["action"],
            registry=None)
        self.lines_aired = Counter(
            "dj_voice_lines_aired", "DJ lines heard to their end (credited airings)",
            registry=None)
        self.recommend_seconds = Histogram(
            "dj_recommend_seconds", "Recommender candidate latency, per pick",
            buckets=LATENCY_BUCKETS, registry=None)
        for cause in RELEASE_CAUSES:  # every series from zero: a rate needs its first sample
            self.sessions_closed.labels(cause)
        for cause in CONNECTION_CAUSES:
            self.connections_ended.labels(cause)
        for kind in ("new", "resumed", "takeover"):
            self.connections.labels(kind)
        for action in ("skip", "like", "dislike"):
            self.actions.labels(action)

    # -- sessions and connections -----------------------------------------------------------
    def session_opened(self, session_id: str, listener_id: str, detail: str) -> None:
        self.sessions_opened.inc()
        self._open[session_id] = _Open(listener_id, time.monotonic())
        logger.info("session start: listener=%s session=%s %s", listener_id, session_id[:8],
                    detail)

    def connection_started(self, session_id: str, kind: str, streaming: int) -> None:
        self.connections.labels(kind).inc()
        self.listener_peak = max(self.listener_peak, streaming)
        entry = self._open.get(session_id)
        if entry is not None:
            entry.connections += 1

    def connection_ended(self, session_id: str, why: str) -> None:
        self.connections_ended.labels(connection_cause(why)).inc()
        entry = self._open.get(session_id)
        if entry is not None:
            entry.last_cause, entry.last_end = why, time.monotonic()

    def session_ended(self, session_id: str, cause: str, heard_s: float, *,
                      resume_window_s: float = 0.0) -> None:
        """One line for the end of a session: why, how long from its opening to its last
        connection's end (not to the release, which waits out the resume window), and how much
        of it was heard."""
        label = cause if cause in RELEASE_CAUSES else "left"
        self.sessions_closed.labels(label).inc()
        entry = self._open.pop(session_id, None)
        if entry is None:
            return
        why = {
            "expired": f"{entry.last_cause or 'left'}, not back within {resume_window_s:.0f} s",
            "unheard": f"{entry.last_cause or 'left'}, nothing heard",
            "replaced": "a new session replaced it",
            "unstarted": "client gone before the first byte",
            "shutdown": "server stopping",
        }.get(cause, entry.last_cause or cause)
        end = entry.last_end if entry.last_end is not None else time.monotonic()
        logger.info("session end: listener=%s session=%s cause=%s duration=%.1fs heard=%.1fs"
                    " connections=%d", entry.listener_id, session_id[:8], why,
                    end - entry.opened, heard_s, entry.connections)

    # -- what was heard -----------------------------------------------------------------------
    def heard(self, markers: Iterable[Marker]) -> None:
        for marker in markers:
            if marker.kind == "dead_air":
                value = marker.value
                self.dead_air_seconds.inc(value if isinstance(value, int | float) else 0.0)
                self.last_dead_air = time.monotonic()

    def dead_air_within(self, seconds: float) -> bool:
        last = self.last_dead_air
        return last is not None and time.monotonic() - last <= seconds

    def underrun_within(self, seconds: float) -> bool:
        last = self.last_underrun
        return last is not None and time.monotonic() - last <= seconds
