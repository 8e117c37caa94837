"""One listener's live session: the programme, a renderer and one MP3 encoder (so there are no gaps
between tracks), and what the listener hears now. Markers from the renderer take effect when their
bytes are sent, not when they are rendered: that is when a play or a line has aired."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dj.audio.encode import Mp3Encoder
from dj.audio.plan import Marker
from dj.audio.render import Renderer
from dj.catalog import Listener, Track
from dj.config import HOUSE_SAMPLE_RATE, Config
from dj.program import Programme

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    start_s: float  # programme seconds at the chunk's first sample
    duration_s: float
    markers: tuple[Marker, ...]


@dataclass(slots=True)
class NowPlaying:
    track: Track | None = None
    started_at: str | None = None
    play_event: str | None = None
    speaking: bool = False
    voice_text: str = ""
    voice_line: str = ""
    skip_requested: bool = False
    history: list[str] = field(default_factory=list)


class Session:
    """Rendering (:meth:`render_chunk`) runs in an executor thread; :meth:`on_sent` runs on the
    event loop and returns the durable writes to make (off the loop) for what just aired."""

    def __init__(
        self,
        *,
        listener: Listener,
        persona: str,
        experiment: str,
        arm: str,
        programme: Programme,
        config: Config,
        voice_source: Callable[[str], object],
        on_failure: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.listener = listener
        self.persona = persona
        self.experiment = experiment
        self.arm = arm
        self.programme = programme
        self.config = config
        self.block_frames = int(config.audio.block_s * HOUSE_SAMPLE_RATE)
        self._revoked_keys: set[str] = set()
        self._voice_source = voice_source
        self.renderer = Renderer(config.audio, programme.next_item, self._voice)
        self.on_failure = on_failure
        self._frame_base = 0
        self.encoder = Mp3Encoder(config.audio.bitrate_kbps)
        self.now = NowPlaying()
        self.started_at = datetime.now(UTC)
        self.rendered_s = 0.0
        self.sent_s = 0.0
        self.closed = False
        self._render_lock = threading.Lock()

    def _voice(self, key: str):
        if key in self._revoked_keys:
            return None
        return self._voice_source(key)

    def render_chunk(self) -> Chunk:
        """Render and encode one block (blocking; call from an executor)."""
        with self._render_lock:
            try:
                audio, markers = self.renderer.render(self.block_frames)
            except Exception:
                # a fault in the mix must not end the listener's stream: start a fresh renderer
                # on the next item (the encoder, and so the stream, carries on without a gap)
                logger.exception("renderer failed for %s; restarting it", self.listener.id)
                self.on_failure("renderer")
                self._frame_base += self.renderer.frames_rendered
                self.renderer.close()
                self.renderer = Renderer(self.config.audio, self.programme.next_item, self._voice)
                audio, markers = self.renderer.render(self.block_frames)
            if self._frame_base:  # markers count frames of the whole session, across restarts
                markers = [
                    dataclasses.replace(m, frame=m.frame + self._frame_base) for m in markers
                ]
            data = self.encoder.encode(audio)
            chunk = Chunk(data, self.rendered_s, audio.shape[1] / HOUSE_SAMPLE_RATE, tuple(markers))
            self.rendered_s += chunk.duration_s
            return chunk

    def skip(self) -> Track | None:
        track = self.now.track
        if track is not None:
            self.now.skip_requested = True
        self.renderer.skip()
        return track

    def revoke_voice(self, line_id: str) -> None:
        """Called when an artist revokes a line: it must not air from now on."""
        self.programme.line_revoked(line_id)
        for key, utt in list(self.programme._utterances.items()):
            if utt.line_id == line_id:
                self._revoked_keys.add(key)
        cancel = getattr(self.renderer, "cancel_voice", None)
        if cancel is not None:
            for key in self._revoked_keys:
                cancel(key)

    def close(self) -> bytes:
        self.closed = True
        with self._render_lock:  # not while a block is being rendered
            self.renderer.close()
        try:
            return self.encoder.close()
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
            "track_id": None if t is None else t.id,
            "title": None if t is None else t.title,
            "artist": None if t is None else t.artist_name,
            "started_at": self.now.started_at,
            "speaking": self.now.speaking,
            "ai_voice": self.now.speaking,  # players disclose that an AI voice is speaking
            "voice_text": self.now.voice_text if self.now.speaking else "",
            "position_s": round(self.sent_s, 3),
        }
