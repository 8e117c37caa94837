"""The station: every live session, the shared parts they use, and the event handling that turns
what was sent to a listener into durable plays, airings and feedback."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dj.catalog import Catalog, Listener, Track
from dj.config import HOUSE_SAMPLE_RATE, Config
from dj.experiments import Experiments
from dj.ledger import Ledger
from dj.program import Programme, RadioRules
from dj.stream.session import Chunk, Session

if TYPE_CHECKING:
    from dj.narrate import Narrator
    from dj.recommend import LiveRecommender

logger = logging.getLogger(__name__)

LISTENER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
TERRITORY = re.compile(r"^[A-Z]{2}$")
QUALIFYING_PLAY_S = 30.0  # a play counts for payouts once this much of it was heard


class BadRequest(ValueError):
    """A request the station cannot serve as asked; the message is for the client."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Station:
    def __init__(
        self,
        *,
        config: Config,
        catalog: Catalog,
        ledger: Ledger,
        recommender: LiveRecommender,
        narrator: Narrator | None,
        experiments: Experiments,
        render_workers: int = 4,
        trainer: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.ledger = ledger
        self.recommender = recommender
        self.narrator = narrator
        self.experiments = experiments
        self.trainer = trainer
        self.render_pool = ThreadPoolExecutor(render_workers, thread_name_prefix="dj-render")
        # one writer keeps each session's events in order and the database single-writer
        self.io_pool = ThreadPoolExecutor(1, thread_name_prefix="dj-ledger")
        self.sessions: dict[str, Session] = {}
        self.failures: Counter[str] = Counter()
        self.rules = RadioRules(
            repeat_window_s=config.recommend.repeat_window_s,
            exploration=config.recommend.exploration,
        )
        # (session, track) -> (play event id, programme second it became audible)
        self._open_plays: dict[tuple[str, str], tuple[str, float]] = {}
        if narrator is not None:
            narrator.on_revoke(self._line_revoked)

    # -- sessions ---------------------------------------------------------------------------
    def listener(self, listener_id: str, territory: str | None = None) -> Listener:
        """The stored listener, or a new one in ``territory`` (default from config). Blocking."""
        if not LISTENER_ID.match(listener_id):
            raise BadRequest(
                "listener id must be 1-64 characters of letters, digits, '_', '-' or '.'"
            )
        if territory is not None and not TERRITORY.match(territory.upper()):
            raise BadRequest("territory must be an ISO 3166-1 alpha-2 code, e.g. US")
        listener = self.catalog.listener(listener_id)
        if listener is None:
            listener = Listener(
                listener_id,
                (territory or self.config.default_territory).upper(),
                self.config.default_tier,
            )
            self.catalog.add_listener(listener)
        elif territory is not None and territory.upper() != listener.territory:
            listener = Listener(
                listener.id, territory.upper(), listener.tier, listener.display_name, listener.tags
            )
        return listener

    def open_session(self, listener: Listener, persona: str | None = None) -> Session:
        """Start a listener's programme (blocking: runs in an executor). A listener has one live
        session; a new connection replaces the old one."""
        chosen, experiment, arm = self.experiments.persona_for(
            listener.id, self.config.narrate.default_persona
        )
        if persona:
            if self.narrator is not None and persona not in self.narrator.personas:
                raise BadRequest(
                    f"unknown persona {persona!r}; known: "
                    + ", ".join(sorted(self.narrator.personas))
                )
            chosen, experiment, arm = persona, "", ""
        if self.narrator is not None and chosen not in self.narrator.personas:
            chosen = self.narrator.persona(None).name
        programme = Programme(
            listener=listener,
            persona=chosen,
            catalog=self.catalog,
            recommender=self.recommender,
            narrator=self.narrator,
            rules=self.rules,
            crossfade_s=self.config.audio.crossfade_s,
            on_failure=self.count_failure,
        )
        voice_source: Callable[[str], Any] = (
            self.narrator.audio_for if self.narrator is not None else (lambda key: None)
        )
        session = Session(
            listener=listener,
            persona=chosen,
            experiment=experiment,
            arm=arm,
            programme=programme,
            config=self.config,
            voice_source=voice_source,
            on_failure=self.count_failure,
        )
        old = self.sessions.get(listener.id)
        if old is not None:
            old.closed = True
        self.sessions[listener.id] = session
        try:
            self.experiments.record_exposure(session.id, experiment, arm, listener.id)
        except Exception:
            logger.exception("could not record exposure for %s", listener.id)
            self.count_failure("database")
        try:
            self.recommender.warm(listener.id, ())
        except Exception:
            logger.exception("recommender warm-up failed for %s", listener.id)
            self.count_failure("recommender")
        programme.prepare_ahead()
        return session

    def close_session(self, session: Session) -> None:
        session.closed = True
        self.render_pool.submit(session.close)  # waits for a block in progress: off the loop
        if self.sessions.get(session.listener.id) is session:
            del self.sessions[session.listener.id]
        for (sid, track_id), (event_id, start_s) in list(self._open_plays.items()):
            if sid == session.id:
                del self._open_plays[(sid, track_id)]
                played = max(0.0, session.sent_s - start_s)  # the listener left during it
                self._write(self.ledger.play_ended, event_id, played, "left")
        logger.info(
            "session %s of %s closed after %.1f s", session.id, session.listener.id, session.sent_s
        )

    def count_failure(self, kind: str) -> None:
        self.failures[kind] += 1

    # -- the stream -------------------------------------------------------------------------
    async def chunks(self, session: Session, *, paced: bool) -> AsyncIterator[Chunk]:
        """Rendered chunks, paced to real time after a burst (or as fast as the client reads)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        burst = self.config.stream.burst_s
        while not session.closed:
            if paced:
                ahead = session.sent_s - (loop.time() - t0)
                if ahead > burst:
                    await asyncio.sleep(ahead - burst)
                    if session.closed:
                        break
            chunk = await loop.run_in_executor(self.render_pool, session.render_chunk)
            yield chunk

    def on_sent(self, session: Session, chunk: Chunk, set_title: Callable[[str], None]) -> None:
        """Apply the chunk's markers now that its audio is on its way to the listener."""
        session.sent_s = chunk.start_s + chunk.duration_s
        for marker in chunk.markers:
            try:
                self._marker(session, marker, set_title)
            except Exception:
                logger.exception("handling %s for %s failed", marker.kind, session.listener.id)
                self.count_failure("events")

    def _marker(self, session: Session, marker: Any, set_title: Callable[[str], None]) -> None:
        kind = marker.kind
        if kind == "track_start":
            track = self.catalog.track(marker.key)
            if track is None:
                return
            now = session.now
            event_id = uuid.uuid4().hex
            now.track, now.started_at, now.play_event = track, _now(), event_id
            now.skip_requested = False
            now.history.append(track.id)
            self._open_plays[(session.id, track.id)] = (event_id, marker.frame / HOUSE_SAMPLE_RATE)
            set_title(f"{track.artist_name} - {track.title}")
            self._write(
                self._play_started,
                event_id=event_id,
                listener_id=session.listener.id,
                session_id=session.id,
                track_id=track.id,
                artist_id=track.artist_id,
                territory=session.listener.territory,
                tier=session.listener.tier,
                persona=session.persona,
                arm=session.arm,
                at=now.started_at,
            )
            self.render_pool.submit(self._prepare, session)
        elif kind == "track_end":
            opened = self._open_plays.pop((session.id, marker.key), None)
            if opened is None:
                return
            event_id = opened[0]
            played = float(marker.value or 0.0)
            skipped = session.now.skip_requested and session.now.play_event == event_id
            self._write(
                self.ledger.play_ended, event_id, played, "skipped" if skipped else "completed"
            )
            if not skipped and played >= QUALIFYING_PLAY_S:
                self.render_pool.submit(self._feedback, session.listener.id, marker.key, "complete")
        elif kind == "voice_start":
            utt = session.programme.utterance(marker.key)
            session.now.speaking = True
            session.now.voice_text = utt.text if utt else ""
            session.now.voice_line = utt.line_id if utt else ""
            if utt is not None and self.narrator is not None:
                self._write(
                    self.narrator.record_airing,
                    utt,
                    listener_id=session.listener.id,
                    session_id=session.id,
                    event_id=f"{session.id}:{marker.frame}",
                )
        elif kind == "voice_end":
            session.now.speaking = False
        elif kind == "voice_dropped":
            logger.info("voice %s dropped for %s", marker.key, session.listener.id)
            self.count_failure("voice_dropped")
        elif kind == "skipped":
            logger.warning(
                "track %s skipped for %s: %s", marker.key, session.listener.id, marker.value
            )
            self.count_failure("track_unreadable")
        elif kind == "dead_air":
            logger.warning("dead air cut short in %s for %s", marker.key, session.listener.id)
            self.count_failure("dead_air")

    def _play_started(self, **play: Any) -> None:
        """Write a play with the track's rightsholders as they stand now (on the ledger worker)."""
        rightsholders = [
            {"party": s.party, "role": s.role, "share_pct": s.share_pct}
            for s in self.catalog.shares(play["track_id"])
        ]
        self.ledger.play_started(rightsholders=rightsholders, **play)

    def _prepare(self, session: Session) -> None:
        try:
            session.programme.prepare_ahead()
        except Exception:
            logger.exception("preparing the next item for %s failed", session.listener.id)
            self.count_failure("programme")

    def _feedback(self, listener_id: str, track_id: str, kind: str) -> None:
        try:
            self.recommender.feedback(listener_id, track_id, kind)
        except Exception:
            logger.exception("recommender feedback %s failed", kind)
            self.count_failure("recommender")

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A durable write, off the event loop and in order; a failing database is counted."""

        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                logger.exception("ledger write %s failed", getattr(fn, "__name__", fn))
                self.count_failure("database")

        self.io_pool.submit(run)

    # -- listener actions ---------------------------------------------------------------------
    def skip(self, listener_id: str) -> Track | None:
        session = self.sessions.get(listener_id)
        if session is None:
            return None
        track = session.skip()
        if track is not None:
            session.programme.skipped(track)
            self._write(
                self.ledger.feedback,
                event_id=uuid.uuid4().hex,
                listener_id=listener_id,
                track_id=track.id,
                kind="skip",
            )
            self._feedback(listener_id, track.id, "skip")
        return track

    def like(self, listener_id: str, kind: str = "like") -> Track | None:
        session = self.sessions.get(listener_id)
        if session is None or session.now.track is None:
            return None
        track = session.now.track
        if kind == "like":
            session.programme.liked(track)
        else:
            session.programme.skipped(track)
        self._write(
            self.ledger.feedback,
            event_id=uuid.uuid4().hex,
            listener_id=listener_id,
            track_id=track.id,
            kind=kind,
        )
        self._feedback(listener_id, track.id, kind)
        return track

    def retrain(self) -> bool:
        """Train on the histories and everything logged since, and swap the new model in while
        the sessions play on (blocking). A failure keeps the current model."""
        if self.trainer is None:
            return False
        try:
            model = self.trainer()
        except Exception:
            logger.exception("retraining failed; the current model stays")
            self.count_failure("retrain")
            return False
        self.recommender.swap(model)
        logger.info("recommender retrained and swapped in (version %s)",
                    getattr(self.recommender, "version", "?"))
        return True

    def _line_revoked(self, line_id: str) -> None:
        for session in list(self.sessions.values()):
            session.revoke_voice(line_id)

    def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.closed = True
        self.render_pool.shutdown(wait=True, cancel_futures=True)
        self.io_pool.shutdown(wait=True)
