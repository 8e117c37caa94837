"""A listener's controls on their live stream: skip, like, dislike. Each acts on what the listener
hears now, teaches the programme and the recommender, and is logged."""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Executor

from dj.catalog import Track
from dj.ledger.log import Event
from dj.stream.sinks import listener_context
from dj.stream.station import Station

logger = logging.getLogger(__name__)

FEEDBACK_KINDS = ("like", "dislike")
ACK_WAIT_S = 2.0  # how long a control's answer waits for its event to be committed


class Controls:
    """Call on the event loop; the blocking parts run in ``executor`` (the default one: the
    prepare pool may be busy with speech for seconds)."""

    def __init__(self, station: Station, executor: Executor | None = None) -> None:
        self.station = station
        self._executor = executor

    async def skip(self, listener_id: str) -> Track | None:
        session = self.station.sessions.live(listener_id)
        if session is None:
            return None
        session.hear_now()
        track = session.skip()
        if track is not None:
            await self._learn(listener_id, track, "skip", session.programme.skipped)
        return track

    async def feedback(self, listener_id: str, kind: str) -> Track | None:
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}")
        session = self.station.sessions.live(listener_id)
        if session is None:
            return None
        session.hear_now()
        track = session.now.track
        if track is None:
            return None
        programme = session.programme
        await self._learn(listener_id, track, kind,
                          programme.liked if kind == "like" else programme.skipped)
        return track

    async def _learn(self, listener_id: str, track: Track, kind: str, programme_hook) -> None:
        """Logged, and learnt by the programme and the recommender before the caller answers."""
        station = self.station
        station.stats.actions.labels(kind).inc()
        session = station.sessions.live(listener_id)
        context = listener_context(session) if session is not None else {}
        written = station.ledger_writer.append(
            Event(uuid.uuid4().hex, kind, listener_id, track_id=track.id,
                  artist_id=track.artist_id, **context))

        def teach() -> None:
            try:
                programme_hook(track)
                station.recommender.feedback(listener_id, track.id, kind)
            except Exception:
                logger.exception("recommender feedback %s failed", kind)
                station.count_failure("recommender")

        await asyncio.get_running_loop().run_in_executor(self._executor, teach)
        try:  # answered once it is durable, unless the database is too slow to wait for
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(written)), ACK_WAIT_S)
        except TimeoutError:
            logger.warning("%s of %s queued, not yet written (database slow)", kind, listener_id)
