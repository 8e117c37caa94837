"""The sinks heard events leave through: the ledger for plays, the narrator for airings, the
recommender for completions. Every write runs on one ordered worker, off the event loop; a
failing database is logged and counted while the music plays on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dj.stream.credit import QUALIFYING_PLAY_S
from dj.stream.session import OpenPlay, Session

if TYPE_CHECKING:
    from dj.catalog import Catalog
    from dj.ledger import Ledger
    from dj.narrate import Narrator
    from dj.recommend import LiveRecommender

logger = logging.getLogger(__name__)


class Writer:
    """One worker thread: keeps each session's events in order and the database single-writer."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="dj-ledger")
        self._failure = on_failure

    def submit(self, fn: Callable[..., Any], *args: Any, failure: str = "database",
               **kwargs: Any) -> None:
        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                logger.exception("%s failed", getattr(fn, "__name__", fn))
                self._failure(failure)

        self.pool.submit(run)

    def flush(self) -> None:
        """Wait for every write queued so far (blocking)."""
        self.pool.submit(lambda: None).result()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class LedgerPlays:
    """PlaySink: plays into the ledger with their rightsholders; completions to the
    recommender."""

    def __init__(self, ledger: Ledger, catalog: Catalog, recommender: LiveRecommender,
                 writer: Writer) -> None:
        self._ledger = ledger
        self._catalog = catalog
        self._recommender = recommender
        self._writer = writer

    def play_started(self, session: Session, play: OpenPlay) -> None:
        self._writer.submit(
            self._started,
            event_id=play.play_id,
            listener_id=session.listener.id,
            session_id=session.id,
            track_id=play.track.id,
            artist_id=play.track.artist_id,
            territory=session.listener.territory,
            tier=session.listener.tier,
            persona=session.persona,
            arm=session.arm,
            at=play.started_at,
        )

    def _started(self, **play: Any) -> None:
        # the rightsholders as they stand when the play is heard
        rightsholders = [
            {"party": s.party, "role": s.role, "share_pct": s.share_pct}
            for s in self._catalog.shares(play["track_id"])
        ]
        self._ledger.play_started(rightsholders=rightsholders, **play)

    def play_ended(self, session: Session, play: OpenPlay, heard_s: float, outcome: str) -> None:
        self._writer.submit(self._ledger.play_ended, play.play_id, round(heard_s, 3), outcome)
        if outcome == "completed" and heard_s >= QUALIFYING_PLAY_S:
            self._writer.submit(self._recommender.feedback, session.listener.id, play.track.id,
                                "complete", failure="recommender")


class NarratorAirings:
    """AiringSink: the narrator records the airing with the line's artist and text."""

    def __init__(self, narrator: Narrator | None, writer: Writer) -> None:
        self._narrator = narrator
        self._writer = writer

    def line_aired(self, session: Session, key: str, event_id: str) -> None:
        utt = session.programme.utterance(key)
        if utt is None or self._narrator is None:
            return
        self._writer.submit(
            self._narrator.record_airing,
            utt,
            listener_id=session.listener.id,
            session_id=session.id,
            event_id=event_id,
        )
