"""The station: the shared parts every session uses (catalog, recommender, narrator, pools), how a
session is opened and released, and the failure counters."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dj.audio.bodies import BodyStore
from dj.audio.encode import FRAME_SAMPLES
from dj.audio.source import FullSource, Source
from dj.audio.splice import SplicedPlayer
from dj.audio.window import PieceCache
from dj.audio.window_disk import WindowDisk
from dj.catalog import Catalog, Listener
from dj.config import HOUSE_SAMPLE_RATE, Config
from dj.experiments import Experiments
from dj.ledger import Ledger
from dj.ledger.writer import EventWriter
from dj.program import Programme, RadioRules
from dj.program.programme import track_cue
from dj.stream.credit import HeardEvents
from dj.stream.registry import SessionRegistry
from dj.stream.session import Chunk, Session
from dj.stream.sinks import LedgerPlays, NarratorAirings, Writer
from dj.stream.stats import StationStats
from dj.stream.watch import NowWatch
from dj.threads import named_pool

if TYPE_CHECKING:
    from dj.narrate import Narrator, Persona
    from dj.recommend import LiveRecommender

logger = logging.getLogger(__name__)

LISTENER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


PREPARE_WORKERS = 4  # threads preparing sessions' next items (each programme has its own lock)
AHEAD_WORKERS = 2  # threads rendering transitions seconds before they are due


class BadRequest(ValueError):
    """A request the station cannot serve as asked; the message is for the client."""


def check_listener_id(listener_id: str) -> str:
    if not LISTENER_ID.fullmatch(listener_id):
        raise BadRequest(
            "listener id must be 1-64 characters of letters, digits, '_', '-' or '.'"
        )
    return listener_id


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
        self.failures: Counter[str] = Counter()
        self.stats = StationStats()  # read by /metrics and /healthz
        if hasattr(recommender, "on_latency"):
            recommender.on_latency = self.stats.recommend_seconds.observe
        self.render_pool = named_pool(render_workers, "dj-render")
        # picks and speech for the next item: never in the render pool's way. Several threads:
        # listeners who tuned in together reach their transitions together, and one thread
        # preparing every session's next item in turn left some renderers waiting on it
        self.prepare_pool = named_pool(PREPARE_WORKERS, "dj-prepare")
        self.writer = Writer(self.count_failure)
        self.ledger_writer = EventWriter(ledger, self.count_failure)
        self.watch = NowWatch()  # players waiting for what a listener hears to change
        self.sessions = SessionRegistry(config.stream.resume_window_s,
                                        on_change=self.watch.notify)
        self.bodies = BodyStore.for_config(config)
        self.pieces = PieceCache(
            config.stream.window_cache_mb << 20,
            WindowDisk(config.cache_dir / "windows", config.stream.window_disk_mb << 20),
        )
        # transitions planned ahead are rendered here, so the render pool is free for what a
        # stream needs now (a skip, an opening)
        self.ahead_pool = named_pool(AHEAD_WORKERS, "dj-ahead")
        # bodies are made one at a time, out of the render pool's and the prepare pool's way
        self.body_pool = named_pool(1, "dj-bodies")
        self._closing = threading.Event()
        self.events = HeardEvents(
            catalog_track=catalog.track,
            plays=LedgerPlays(self.ledger_writer, catalog, recommender, self.writer),
            airings=NarratorAirings(narrator, self.ledger_writer,
                                    on_aired=self.stats.lines_aired.inc),
            on_failure=self.count_failure,
        )
        self.rules = RadioRules(
            repeat_window_s=config.recommend.repeat_window_s,
            exploration=config.recommend.exploration,
        )
        if narrator is not None:
            narrator.on_revoke(self._line_revoked)

    def make_source(self, next_item, voice_source, failed: Source | None) -> Source:
        """A session's audio source, on the configured path (after a fault, a fresh one; the
        full path keeps its encoder so the stream has no gap)."""
        audio = self.config.audio
        if self.config.stream.path == "spliced":
            frames = max(1, round(audio.block_s * HOUSE_SAMPLE_RATE / FRAME_SAMPLES))
            return SplicedPlayer(audio, next_item, voice_source, self.bodies, block_frames=frames,
                                 pieces=self.pieces, ahead=self._render_ahead)
        return FullSource(
            audio, next_item, voice_source,
            block_frames=int(audio.block_s * HOUSE_SAMPLE_RATE),
            encoder=failed.encoder if isinstance(failed, FullSource) else None,
        )

    def _render_ahead(self, job: Callable[[], None]) -> None:
        if self._closing.is_set():
            return  # the window is rendered when due, if the stream lasts that long
        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self.ahead_pool.submit(job)

    def flush_writes(self) -> None:
        """Wait until every event heard so far is in the ledger and every completion learnt
        (blocking)."""
        self.writer.flush()
        self.ledger_writer.flush()

    def count_failure(self, kind: str) -> None:
        self.failures[kind] += 1

    # -- opening ------------------------------------------------------------------------------
    def check_persona(self, persona: str | None) -> None:
        if persona and self.narrator is not None and persona not in self.narrator.personas:
            raise BadRequest(
                f"unknown persona {persona!r}; known: " + ", ".join(sorted(self.narrator.personas))
            )

    def persona_for(self, listener_id: str, persona: str | None,
                    territory: str | None = None) -> tuple[str, str, str]:
        """(persona, experiment, arm) for a new session; no side effects. A listener an
        experiment enrols hears their arm's persona for its duration: a ``persona`` asked for is
        not taken, or their listening would no longer be their arm's."""
        chosen, experiment, arm = self.experiments.persona_for(
            listener_id, self.config.narrate.default_persona, territory
        )
        if persona and not experiment:
            chosen = persona
        if self.narrator is not None and chosen not in self.narrator.personas:
            chosen = self.narrator.persona(None).name
        return chosen, experiment, arm

    def session_persona(self, persona: str, experiment: str, arm: str) -> Persona | None:
        """The copy of ``persona`` a session in ``arm`` of ``experiment`` talks with when the arm
        overrides some of its settings (the loaded persona is shared by every session and never
        changed); None when it talks as loaded."""
        overriding = self.experiments.arm(experiment, arm)
        if self.narrator is None or overriding is None or not overriding.overrides:
            return None
        return overriding.apply(self.narrator.persona(persona))

    def listener(self, listener_id: str) -> Listener:
        """The stored listener, or an anonymous one (never stored) in the operator's anonymous
        territory. Blocking. Who may act as whom is the server's to decide."""
        check_listener_id(listener_id)
        listener = self.catalog.listener(listener_id)
        if listener is None:
            listener = Listener(listener_id, self.config.access.anonymous_territory.upper(),
                                self.config.default_tier)
        return listener

    def open_session(self, listener: Listener, persona: str | None = None) -> Session:
        """A new programme for ``listener`` (blocking: runs in an executor)."""
        self.check_persona(persona)
        chosen, experiment, arm = self.persona_for(listener.id, persona, listener.territory)
        programme = Programme(
            listener=listener,
            persona=chosen,
            catalog=self.catalog,
            recommender=self.recommender,
            narrator=self.narrator,
            rules=self.rules,
            crossfade_s=self.config.audio.crossfade_s,
            on_failure=self.count_failure,
            session_persona=self.session_persona(chosen, experiment, arm),
        )
        narrator = self.narrator
        session = Session(
            listener=listener,
            persona=chosen,
            experiment=experiment,
            arm=arm,
            programme=programme,
            config=self.config,
            # consent and scope are checked again as the line airs, in this listener's territory
            voice_source=(
                (lambda key: narrator.serve(key, territory=listener.territory))
                if narrator is not None
                else (lambda key: None)
            ),
            make_source=self.make_source,
            on_failure=self.count_failure,
        )
        try:
            self.recommender.warm(listener.id, ())
        except Exception:
            logger.exception("recommender warm-up failed for %s", listener.id)
            self.count_failure("recommender")
        programme.prepare_ahead()
        self.stats.session_opened(
            session.id, listener.id, f"persona={chosen} territory={listener.territory}"
            f" tier={listener.tier}" + (f" arm={experiment}/{arm}" if experiment else ""))
        return session

    # -- running ------------------------------------------------------------------------------
    def rendered(self, session: Session, chunk: Chunk) -> None:
        """A chunk was rendered (on the loop): keep it, and prepare the next item as soon as
        the renderer has taken one."""
        session.add_chunk(chunk)
        if any(m.kind == "track_start" for m in chunk.markers):
            self.prepare_pool.submit(self._prepare, session)

    def heard(self, session: Session, heard_s: float, confirmed: bool = True) -> None:
        """The listener's ear reached ``heard_s`` (on the loop); credits wait for
        ``confirmed``."""
        shown = _shown(session)
        markers = session.hear(heard_s)
        if markers:
            self.stats.heard(markers)
        self.events.apply(session, markers, confirmed)
        if _shown(session) != shown:
            self.watch.notify(session.listener.id)
        if confirmed:
            self.events.progress(session)

    def _prepare(self, session: Session) -> None:
        if session.closed:
            return
        try:
            session.programme.prepare_ahead()
        except Exception:
            logger.exception("preparing the next item for %s failed", session.listener.id)
            self.count_failure("programme")
        if self.config.stream.path == "spliced":
            self._warm_bodies(session)

    def _warm_bodies(self, session: Session) -> None:
        """Have the body of the track prepared next made, so the render thread need not wait."""
        cues = session.programme.prepared_tracks()
        if cues:
            self.body_pool.submit(self.bodies.warm_all, cues, stop=self._closing)

    def warm_bodies(self) -> None:
        """Make every catalog track's body that is not on disk yet, in the background."""
        if self.config.stream.path != "spliced":
            return
        cues = [track_cue(t) for t in self.catalog.tracks()]
        self.body_pool.submit(self.bodies.warm_all, cues, stop=self._closing)

    # -- releasing ----------------------------------------------------------------------------
    def release(self, session: Session, outcome: str = "left", cause: str = "left") -> None:
        """The listener has left for good (on the loop): close every play with the seconds
        heard, free the renderer and encoder, and drop their live state. ``cause`` is for the
        log and metrics (dj.stream.stats.RELEASE_CAUSES)."""
        self.sessions.remove(session)
        session.closed = True
        self.watch.notify(session.listener.id)
        self.events.end_all(session, outcome)
        self.render_pool.submit(session.close)  # waits for a block in progress: off the loop
        listener_id = session.listener.id
        if self.sessions.get(listener_id) is None:
            self.prepare_pool.submit(self._forget, listener_id)
        self.stats.session_ended(session.id, cause, session.heard_s,
                                 resume_window_s=self.sessions.resume_window_s)

    def _forget(self, listener_id: str) -> None:
        for part in (self.recommender, self.narrator):
            forget = getattr(part, "forget", None)
            if forget is None:
                continue
            try:
                forget(listener_id)
            except Exception:
                logger.exception("forgetting %s failed", listener_id)
                self.count_failure("events")

    def release_expired(self, now: float) -> int:
        gone = self.sessions.expired(now)
        for session in gone:
            self.release(session, cause="expired")
        return len(gone)

    def _line_revoked(self, line_id: str) -> None:
        for session in self.sessions:
            session.revoke_voice(line_id)
            self.watch.notify(session.listener.id)  # the AI-voice flag may have gone off

    def shutdown(self) -> None:
        """End every session, recording each play in progress, and wait for the writes
        (blocking; call once the streams have stopped)."""
        for session in self.sessions.drain():
            session.owner = None
            self.events.end_all(session, "left")
            session.close()
            self.stats.session_ended(session.id, "shutdown", session.heard_s)
        self._closing.set()
        self.render_pool.shutdown(wait=True, cancel_futures=True)
        self.prepare_pool.shutdown(wait=True, cancel_futures=True)
        # the renders running finish (a fraction of a second): a thread still encoding as
        # the interpreter exits aborts the process
        self.ahead_pool.shutdown(wait=True, cancel_futures=True)
        # a body being made is not waited for: it is made again at the next start
        self.body_pool.shutdown(wait=False, cancel_futures=True)
        self.writer.shutdown()
        self.ledger_writer.close()


def _shown(session: Session) -> tuple[str | None, bool, str]:
    """What a player shows of a session's now-playing state, to tell when it changed."""
    now = session.now
    return now.play_id, now.speaking, now.voice_line
