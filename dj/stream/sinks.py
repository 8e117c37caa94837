"""The sinks heard events leave through: the ledger for plays and airings (batched by its event
writer, off the event loop), the recommender for completions (on one ordered worker). A failing
database is retried and counted while the music plays on."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dj.ledger.log import NODE, QUALIFYING_PLAY_S, Event, ended, heard, now_iso, qualified
from dj.stream.session import OpenPlay, Session
from dj.threads import named_pool

if TYPE_CHECKING:
    from dj.catalog import Catalog
    from dj.ledger.writer import EventWriter
    from dj.narrate import Narrator
    from dj.recommend import LiveRecommender

logger = logging.getLogger(__name__)


class Writer:
    """One worker thread for work that must stay in order but is not the ledger's (the
    recommender's completions)."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self.pool = named_pool(1, "dj-learn")
        self._failure = on_failure

    def submit(self, fn: Callable[..., Any], *args: Any, failure: str = "recommender",
               **kwargs: Any) -> None:
        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                logger.exception("%s failed", getattr(fn, "__name__", fn))
                self._failure(failure)

        self.pool.submit(run)

    def flush(self) -> None:
        """Wait for every task queued so far (blocking)."""
        self.pool.submit(lambda: None).result()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def listener_context(session: Session) -> dict[str, str]:
    """What every event of a session carries about who heard it, and in which arm."""
    return {"session_id": session.id, "territory": session.listener.territory,
            "tier": session.listener.tier, "persona": session.persona,
            "experiment": session.experiment, "arm": session.arm}


class LedgerPlays:
    """PlaySink: a play's start (with its rightsholders as they stand), its heard progress, its
    qualification and its end, into the ledger; completions to the recommender."""

    def __init__(self, events: EventWriter, catalog: Catalog, recommender: LiveRecommender,
                 writer: Writer) -> None:
        self._events = events
        self._catalog = catalog
        self._recommender = recommender
        self._writer = writer

    @staticmethod
    def _start(session: Session, play: OpenPlay) -> Event:
        return Event(play.play_id, "play_started", session.listener.id, at=play.started_at,
                     play_id=play.play_id, track_id=play.track.id,
                     artist_id=play.track.artist_id, **listener_context(session))

    def play_started(self, session: Session, play: OpenPlay) -> None:
        start = self._start(session, play)

        def with_rightsholders() -> Event:  # on the writer's thread: it reads the database
            rightsholders = [{"party": s.party, "role": s.role, "share_pct": s.share_pct}
                             for s in self._catalog.shares(play.track.id)]
            return dataclasses.replace(start, detail={"rightsholders": rightsholders,
                                                      "node": NODE})

        self._events.append(with_rightsholders)

    def play_heard(self, session: Session, play: OpenPlay, heard_s: float, n: int) -> None:
        self._events.append(heard(self._start(session, play), heard_s, n))

    def play_qualified(self, session: Session, play: OpenPlay, heard_s: float) -> None:
        self._events.append(qualified(self._start(session, play), heard_s))

    def play_ended(self, session: Session, play: OpenPlay, heard_s: float, outcome: str) -> None:
        # at the moment the ear stopped, not when a left session is released minutes later
        at = now_iso(datetime.fromtimestamp(session.heard_wall, UTC))
        self._events.append(ended(self._start(session, play), heard_s, outcome, at=at,
                                  detail={"dead_air_s": play.dead_air_s} if play.dead_air_s
                                  else None))
        if outcome == "completed" and heard_s >= QUALIFYING_PLAY_S:
            self._writer.submit(self._recommender.feedback, session.listener.id, play.track.id,
                                "complete")


class NarratorAirings:
    """AiringSink: a line heard to its end is an airing, crediting its artist and every artist
    its words name."""

    def __init__(self, narrator: Narrator | None, events: EventWriter,
                 on_aired: Callable[[], object] = lambda: None) -> None:
        self._narrator = narrator
        self._events = events
        self._on_aired = on_aired  # counts airings for /metrics

    def line_aired(self, session: Session, key: str, event_id: str) -> None:
        utt = session.programme.utterance(key)
        if utt is None or self._narrator is None:
            return
        context = listener_context(session)
        context.pop("persona")  # the utterance's own persona spoke it
        # the rendering this session was served (its own, or a stand-in), not another's
        self._events.append(self._narrator.airing_event(
            utt, listener_id=session.listener.id, event_id=event_id,
            served=session.served_voice(key), **context))
        self._on_aired()
