"""What the ear reached, turned into durable events: plays started and ended with the seconds
heard, lines aired, completions for the recommender, and the now-playing state.

Events leave through small sinks (Protocols), so the stream never knows the ledger's tables or
the recommender's internals. Every marker kind has one handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from dj.audio.plan import Marker
from dj.config import HOUSE_SAMPLE_RATE
from dj.ledger.log import CHECKPOINT_S, QUALIFYING_PLAY_S
from dj.stream.session import OpenPlay, Session

logger = logging.getLogger(__name__)



def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class PlaySink(Protocol):
    def play_started(self, session: Session, play: OpenPlay) -> None: ...

    def play_heard(self, session: Session, play: OpenPlay, heard_s: float, n: int) -> None:
        """The ``n``-th checkpoint of heard progress (every CHECKPOINT_S): what survives a
        crash of a play in progress."""

    def play_qualified(self, session: Session, play: OpenPlay, heard_s: float) -> None: ...

    def play_ended(self, session: Session, play: OpenPlay, heard_s: float, outcome: str) -> None:
        ...


class AiringSink(Protocol):
    def line_aired(self, session: Session, key: str, event_id: str) -> None: ...


class HeardEvents:
    """Applies the markers a session's ear has reached (on the event loop).

    What they show (now playing, the AI-voice flag, failure counts) changes at once; what they
    credit (plays, airings) is held while the connection is provisional (see
    :data:`dj.stream.ear.PROVISIONAL_S`) and applied, in order, once it is confirmed. Held
    credits of a session that is released unconfirmed are dropped: nobody heard them.
    """

    def __init__(
        self,
        *,
        catalog_track: Callable[[str], object],
        plays: PlaySink,
        airings: AiringSink,
        on_failure: Callable[[str], None],
    ) -> None:
        self._track = catalog_track
        self._plays = plays
        self._airings = airings
        self._failure = on_failure
        self._show: dict[str, Callable[[Session, Marker], None]] = {
            "track_start": self._show_track,
            "voice_start": self._show_voice,
            "voice_end": self._hide_voice,
            "voice_dropped": self._voice_dropped,
            "skipped": self._unreadable,
            "dead_air": self._dead_air,
        }
        self._credit: dict[str, Callable[[Session, Marker], None]] = {
            "track_start": self._track_start,
            "track_end": self._track_end,
            "track_cut": self._track_cut,
            "voice_start": self._voice_start,
            "voice_end": self._voice_end,
        }

    def apply(self, session: Session, markers: list[Marker], confirmed: bool = True) -> None:
        for marker in markers:
            self._run(self._show.get(marker.kind), session, marker)
        credits = [m for m in markers if m.kind in self._credit]
        if not confirmed:
            session.held.extend(credits)
            return
        if session.held:
            credits, session.held = [*session.held, *credits], []
        for marker in credits:
            self._run(self._credit[marker.kind], session, marker)

    def progress(self, session: Session) -> None:
        """The ear moved on (confirmed): each open play qualifies once QUALIFYING_PLAY_S of it
        was heard, and its heard position is made durable every CHECKPOINT_S."""
        for play in list(session.open_plays.values()):
            heard_s = session.heard_s - play.start_s
            if not play.qualified and heard_s >= QUALIFYING_PLAY_S:
                play.qualified = True
                self._plays.play_qualified(session, play, heard_s)
            n = int(heard_s // CHECKPOINT_S)
            if n > play.checkpoints:
                play.checkpoints = n
                self._plays.play_heard(session, play, heard_s, n)

    def _run(self, handler, session: Session, marker: Marker) -> None:
        if handler is None:
            return
        try:
            handler(session, marker)
        except Exception:
            logger.exception("handling %s for %s failed", marker.kind, session.listener.id)
            self._failure("events")

    def end_all(self, session: Session, outcome: str = "left") -> None:
        """The listener left for good (or the server stops): close every open play with the
        seconds heard; credits still held were never confirmed and are dropped."""
        session.held.clear()
        for play in list(session.open_plays.values()):
            self._end(session, play, max(0.0, session.heard_s - play.start_s), outcome)

    # -- what the listener sees -------------------------------------------------------------
    def _show_track(self, session: Session, marker: Marker) -> None:
        track = self._track(marker.key)
        if track is None:
            return
        now = session.now
        now.track, now.play_id, now.started_at = track, _play_id(session, marker), now_iso()
        now.history.append(track.id)

    def _show_voice(self, session: Session, marker: Marker) -> None:
        utt = session.programme.utterance(marker.key)
        now = session.now
        now.speaking = True
        now.voice_text = utt.text if utt else ""
        now.voice_line = utt.line_id if utt else ""

    def _hide_voice(self, session: Session, marker: Marker) -> None:
        session.now.speaking = False

    def _voice_dropped(self, session: Session, marker: Marker) -> None:
        logger.info("voice %s dropped for %s", marker.key, session.listener.id)
        self._failure("voice_dropped")

    def _unreadable(self, session: Session, marker: Marker) -> None:
        logger.warning("track %s skipped for %s: %s", marker.key, session.listener.id,
                       marker.value)
        self._failure("track_unreadable")

    def _dead_air(self, session: Session, marker: Marker) -> None:
        logger.warning("dead air cut short in %s for %s", marker.key, session.listener.id)
        self._failure("dead_air")
        # on the play it interrupted (the latest open one), for the experiments' guardrail
        play = session.open_plays.get(marker.play or "") or next(
            reversed(session.open_plays.values()), None)
        if play is not None and isinstance(marker.value, int | float):
            play.dead_air_s += float(marker.value)

    # -- what is credited -------------------------------------------------------------------
    def _track_start(self, session: Session, marker: Marker) -> None:
        track = self._track(marker.key)
        if track is None:
            return
        play_id = _play_id(session, marker)
        heard_at = session.now.started_at if session.now.play_id == play_id else None
        play = OpenPlay(play_id, track, marker.frame / HOUSE_SAMPLE_RATE, heard_at or now_iso())
        session.open_plays[play.play_id] = play
        self._plays.play_started(session, play)

    def _end(self, session: Session, play: OpenPlay, heard_s: float, outcome: str) -> None:
        session.open_plays.pop(play.play_id, None)
        if play.play_id in session.skipped_plays:
            session.skipped_plays.discard(play.play_id)
            outcome = "skipped"
        if not play.qualified and heard_s >= QUALIFYING_PLAY_S:  # crossed and ended in one go
            play.qualified = True
            self._plays.play_qualified(session, play, heard_s)
        self._plays.play_ended(session, play, heard_s, outcome)

    def _track_end(self, session: Session, marker: Marker) -> None:
        play = session.open_plays.get(marker.play)
        if play is not None:
            self._end(session, play, float(marker.value or 0.0), "completed")

    def _track_cut(self, session: Session, marker: Marker) -> None:
        play = session.open_plays.get(marker.play)
        if play is not None:
            self._end(session, play, float(marker.value or 0.0), "interrupted")

    def _voice_start(self, session: Session, marker: Marker) -> None:
        session.voice_heard[marker.key] = f"{session.id}:{marker.frame}"

    def _voice_end(self, session: Session, marker: Marker) -> None:
        event_id = session.voice_heard.pop(marker.key, None)
        if event_id is not None:  # heard from its first word to its end: it aired
            self._airings.line_aired(session, marker.key, event_id)


def _play_id(session: Session, marker: Marker) -> str:
    return marker.play or f"{session.id}:{marker.frame}"
