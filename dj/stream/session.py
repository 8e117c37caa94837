"""One listener's programme on air: its audio source (dj.audio.source: spliced or fully rendered,
one continuous MP3 stream either way), the chunks sent but not yet heard (so a reconnection
resumes where the ear was), the markers waiting for the ear, and what the listener hears now.

A session outlives its connections: another device takes it over, a reconnection within the
resume window picks it up at the heard position, and it is released only when the listener has
left for good.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from dj.audio.plan import Item, Marker
from dj.audio.source import Source
from dj.catalog import Listener, Track
from dj.config import HOUSE_SAMPLE_RATE, Config
from dj.program import Programme

if TYPE_CHECKING:
    from dj.narrate.utterance import Served

logger = logging.getLogger(__name__)

# (next item, voice source, the source that failed or None) -> a source
SourceFactory = Callable[[Callable[[], Item | None], Callable[[str], object], Source | None],
                         Source]

REPLAY_MAX_S = 30.0  # sent audio kept for a resume; more than any client's buffer
SERVED_KEPT = 8  # voice lines served and not yet aired: one on air and one queued, at most a few
HISTORY_KEPT = 20  # tracks heard, for the player


class Owner(Protocol):
    """The connection streaming a session (dj.stream.connection), as the session sees it."""

    waiting_since: float | None  # loop time since which it has waited for the renderer

    def hear_now(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    data: bytes
    start_s: float  # programme seconds at the chunk's first sample
    duration_s: float
    markers: tuple[Marker, ...]

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(slots=True)
class OpenPlay:
    play_id: str
    track: Track
    start_s: float  # programme second it became audible
    started_at: str
    qualified: bool = False
    checkpoints: int = 0  # heard progress made durable so far (dj.ledger.log.CHECKPOINT_S each)
    dead_air_s: float = 0.0  # silence heard in it before the dead-air guard cut it short


@dataclass(slots=True)
class NowPlaying:
    """What the listener hears now (updated at the heard position, not when rendered)."""

    track: Track | None = None
    play_id: str | None = None
    started_at: str | None = None
    speaking: bool = False
    voice_text: str = ""
    voice_line: str = ""
    history: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY_KEPT))

    @property
    def title(self) -> str | None:
        t = self.track
        return None if t is None else f"{t.artist_name} - {t.title}"


class Session:
    """Rendering (:meth:`render_next`) runs in an executor thread, one block at a time; the rest
    runs on the event loop."""

    def __init__(
        self,
        *,
        listener: Listener,
        persona: str,
        experiment: str,
        arm: str,
        programme: Programme,
        config: Config,
        voice_source: Callable[[str], Served | None],
        make_source: SourceFactory,
        on_failure: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.listener = listener
        self.persona = persona
        self.experiment = experiment
        self.arm = arm
        self.programme = programme
        self.config = config
        self._revoked_keys: set[str] = set()
        self._voice_source = voice_source
        # voice key -> what this session was served for it, until the line airs (its record)
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._served_lock = threading.Lock()
        # makes the source (again, after a fault: then it is given the one that failed)
        self._make_source = make_source
        self.source: Source = make_source(programme.next_item, self._voice, None)
        self.on_failure = on_failure
        self._frame_base = 0
        self.now = NowPlaying()
        self.started_at = datetime.now(UTC)
        self.rendered_s = 0.0
        self.heard_s = 0.0
        self.heard_wall = time.time()  # when the ear last moved on: a play left ends then
        self.closed = False
        self.open_plays: dict[str, OpenPlay] = {}
        self.skipped_plays: set[str] = set()
        self.voice_heard: dict[str, str] = {}  # voice key -> airing id, once its start is heard
        self.held: list[Marker] = []  # credits heard on a connection not yet confirmed
        self.owner: Owner | None = None  # the connection streaming it now
        self.left_at: float | None = None  # loop time the last connection ended
        self._next_seq = 0
        self._replay: deque[Chunk] = deque()
        self._pending: deque[Marker] = deque()
        self._render_lock = threading.Lock()

    def _voice(self, key: str):
        """A voice line's audio for the renderer (its thread), checked again each time it is
        asked for. Once served, the same rendering is given again until it airs: the transition
        was planned with its length, and the airing record names what was heard (a stand-in
        is not swapped for the neural render that became ready in between)."""
        if key in self._revoked_keys:
            return None
        served = self._voice_source(key)
        with self._served_lock:
            if served is None:
                self._served.pop(key, None)
                return None
            served = self._served.setdefault(key, served)
            self._served.move_to_end(key)
            while len(self._served) > SERVED_KEPT:
                self._served.popitem(last=False)
        return served.audio

    def served_voice(self, key: str) -> Served | None:
        """What this session was served for the line ``key`` (taken: call it as it airs)."""
        with self._served_lock:
            return self._served.pop(key, None)

    # -- rendering (executor thread) ------------------------------------------------------
    def render_next(self) -> Chunk:
        """Render and encode the next block (blocking)."""
        with self._render_lock:
            if self.closed:
                raise RuntimeError("session is closed")
            extra: list[Marker] = []
            try:
                data, samples, markers = self.source.render()
            except Exception:
                # a fault in the mix must not end the listener's stream: close the plays on air
                # and start a fresh source on the next item
                logger.exception("renderer failed for %s; restarting it", self.listener.id)
                self.on_failure("renderer")
                # the cut is at the new source's frame 0
                extra = [dataclasses.replace(m, frame=0) for m in self.source.abandon()]
                self._frame_base += self.source.frames_rendered
                self.source = self._make_source(self.programme.next_item, self._voice,
                                                self.source)
                data, samples, markers = self.source.render()
            if self._frame_base or extra:  # markers count frames of the whole session
                markers = [
                    dataclasses.replace(m, frame=m.frame + self._frame_base)
                    for m in [*extra, *markers]
                ]
            chunk = Chunk(
                self._next_seq,
                data,
                self.rendered_s,
                samples / HOUSE_SAMPLE_RATE,
                tuple(markers),
            )
            self._next_seq += 1
            self.rendered_s = chunk.end_s
            return chunk

    @property
    def cheap(self) -> bool:
        """The next block needs no rendering work (it may be made on the loop)."""
        return self.source.cheap and not self.closed and not self._render_lock.locked()

    # -- the loop's side ------------------------------------------------------------------
    def add_chunk(self, chunk: Chunk) -> None:
        """Keep a rendered chunk for replay and queue its markers for the ear (on the loop)."""
        self._replay.append(chunk)
        self._pending.extend(chunk.markers)
        while self._replay and self._replay[0].end_s < self.rendered_s - REPLAY_MAX_S:
            self._replay.popleft()

    def chunk(self, seq: int) -> Chunk | None:
        """A chunk already rendered (for a connection that has not sent it yet), or ``None``
        when ``seq`` is the next one to render."""
        if not self._replay or seq >= self._next_seq:
            return None
        first = self._replay[0].seq
        return self._replay[max(0, seq - first)] if seq - first < len(self._replay) else None

    def resume_seq(self) -> int:
        """Where a new connection starts: the chunk holding the heard position."""
        for c in self._replay:
            if c.end_s > self.heard_s:
                return c.seq
        return self._next_seq

    @property
    def next_marker_in_s(self) -> float:
        """Programme seconds from the ear to the next marker it will reach (inf: none)."""
        if not self._pending:
            return float("inf")
        return self._pending[0].frame / HOUSE_SAMPLE_RATE - self.heard_s

    def hear(self, heard_s: float) -> list[Marker]:
        """Advance the heard position; returns the markers the ear has now reached, in order."""
        if heard_s <= self.heard_s:
            return []
        self.heard_s = heard_s
        self.heard_wall = time.time()
        limit = heard_s * HOUSE_SAMPLE_RATE
        out: list[Marker] = []
        while self._pending and self._pending[0].frame <= limit:
            out.append(self._pending.popleft())
        return out

    @property
    def ahead_s(self) -> float:
        """Rendered beyond the ear (what a skip has to wait out)."""
        return self.rendered_s - self.heard_s

    # -- control ------------------------------------------------------------------------
    def hear_now(self) -> None:
        """Bring what the listener hears up to this moment (on the loop): a control acts on
        that, and a connection reads its ear only as it writes, which can be a block ago."""
        if self.owner is not None:
            self.owner.hear_now()

    def skip(self) -> Track | None:
        """Skip what the listener hears. The renderer fades out only if it is still in that
        play; if it has moved on already, the listener is about to hear the next track."""
        track, play = self.now.track, self.now.play_id
        if track is None or play is None:
            return None
        self.skipped_plays.add(play)
        self.source.skip(play)  # cut only if the renderer is still in that play
        return track

    def revoke_voice(self, line_id: str) -> None:
        """Called when an artist revokes or narrows a line or a consent behind it: what it
        touches and can no longer air for this listener must not air from now on."""
        touched = [u for u in self.programme.utterances() if u.line_id == line_id]
        # a narrowing leaves what is still allowed here alone; a revoke leaves nothing
        gone = [u for u in touched if self._voice_source(u.key) is None]
        if touched and not gone:
            return
        self.programme.line_revoked(line_id)
        for utt in gone:
            self._revoked_keys.add(utt.key)
        for key in self._revoked_keys:
            self.source.cancel_voice(key)
        if self.now.speaking and self.now.voice_line == line_id:
            self.now.speaking = False

    def close(self) -> bytes:
        """Release the source's files and encoder (blocking; waits for a block)."""
        self.closed = True
        with self._render_lock:
            self._replay.clear()
            self._pending.clear()
            try:
                return self.source.close()
            except Exception:  # the client is gone; nothing more to send
                return b""

    def now_playing(self) -> dict:
        t = self.now.track
        return {
            "listener": self.listener.id,
            "session": self.id,
            "persona": self.persona,
            "experiment": self.experiment,
            "arm": self.arm,
            "track": None
            if t is None
            else {
                "id": t.id,
                "title": t.title,
                "artist": t.artist_name,
                "artist_id": t.artist_id,
                "album": t.album,
                "year": t.year,
            },
            "play_id": self.now.play_id,
            "track_id": None if t is None else t.id,
            "title": None if t is None else t.title,
            "artist": None if t is None else t.artist_name,
            "started_at": self.now.started_at,
            "speaking": self.now.speaking,
            "ai_voice": self.now.speaking,  # players disclose that an AI voice is speaking
            "voice_text": self.now.voice_text if self.now.speaking else "",
            "position_s": round(self.heard_s, 3),
            "history": list(self.now.history),
        }
