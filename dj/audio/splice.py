"""The spliced player: one listener's stream as shared body frames joined to transition windows
rendered for them alone.

Between transitions the player hands out the playing track's body frames as they are (no decode,
no mix, no encode); a window (dj.audio.segments) is planned as soon as the next item is known,
and rendered (dj.audio.window) when the stream reaches it. A skip or a revoked line re-plans from
the next frame not yet handed out, and that frame on is rendered again; frames already handed
out never change. Markers come out with the frames that hold them, at listener samples.

The same interface as :class:`dj.audio.full.FullSource` (see :class:`dj.audio.source.Source`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dj.audio.analysis import unpack_levels
from dj.audio.bodies import Body, BodyError, BodyStore
from dj.audio.dsp import as_stereo
from dj.audio.encode import FRAME_SAMPLES as FRAME
from dj.audio.encode import encode_frames
from dj.audio.mastering import ceiling_db
from dj.audio.plan import MARKER_ORDER, Item, Marker
from dj.audio.render import MAX_ATTEMPTS_PER_BLOCK, SKIP_FADE_S
from dj.audio.segments import (
    JOIN_MARGIN,
    Placement,
    Rules,
    Side,
    Voice,
    Window,
    cut_voice,
    plan_crossfade,
    plan_cut,
    plan_start,
)
from dj.audio.transition import fade_length
from dj.audio.window import OPENING_FRAMES, PieceCache, WindowFrames
from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE, AudioConfig

logger = logging.getLogger(__name__)

_silent_frame: bytes | None = None

# the next transition is planned (and rendered, whole) at least this long before it is due:
# slack for a busy machine, which renders it in the background meanwhile
PLAN_AHEAD_S = 6.0


def silent_frame(bitrate_kbps: int) -> bytes:
    """One encoded frame of silence (a frame from the middle of an encode: no start-up)."""
    global _silent_frame
    if _silent_frame is None:
        data, offsets = encode_frames(np.zeros((HOUSE_CHANNELS, FRAME * 8), np.float32),
                                      bitrate_kbps)
        _silent_frame = data[offsets[4] : offsets[5]]
    return _silent_frame


@dataclass(slots=True)
class _Next:
    """The next track, fetched and with its body, and the line said into it."""

    crossfade_s: float
    body: Body
    side: Side
    voice: Voice | None
    audio: np.ndarray | None


def _prepare(frames: WindowFrames) -> None:
    try:
        frames.prepare()
    except Exception:  # it fails again when due, and is handled there
        logger.debug("transition could not be rendered ahead", exc_info=True)


class SplicedPlayer:
    def __init__(
        self,
        config: AudioConfig,
        next_item: Callable[[], Item | None],
        voice_source: Callable[[str], np.ndarray | None],
        bodies: BodyStore,
        *,
        block_frames: int,
        pieces: PieceCache | None = None,
        ahead: Callable[[Callable[[], None]], object] | None = None,
        sample_rate: int = HOUSE_SAMPLE_RATE,
    ) -> None:
        self.config = config
        self.sr = sample_rate
        self.rules = Rules.from_config(config, sample_rate)
        self.block_frames = max(1, block_frames)
        self._next_item = next_item
        self._voice_source = voice_source
        self._store = bodies
        self._pieces = pieces
        # runs a window's render in the background; None: in the render call that plans it
        self._submit = ahead
        self._ceiling = ceiling_db(config)
        self._frame = 0  # next listener frame to hand out
        self._body: Placement | None = None  # the track playing its body between windows
        self._window: WindowFrames | None = None
        self._upcoming: tuple[Window, _Next] | None = None
        self._ready: WindowFrames | None = None  # the upcoming window, its start rendered
        self._in_play: dict[str, Body] = {}
        self._voices: dict[str, np.ndarray] = {}
        self._markers: list[Marker] = []  # what happened (a track passed over, a line dropped)
        self._ahead: list[Marker] = []  # the rendered window's markers not yet handed out
        self._last_voice_end = -(1 << 62)
        self._skip: str | bool = False  # a play id to skip if it is still on, or True
        self._cancelled: set[str] = set()  # written by other threads; set.add is atomic
        self._lock = threading.Lock()
        # when a list: where every frame handed out came from, as (first, last, source) with
        # source a Window's rendered frames or the Placement whose body played (for tests)
        self.journal: list[tuple[int, int, WindowFrames | Placement]] | None = None

    # -- the Source interface -----------------------------------------------------------
    @property
    def frames_rendered(self) -> int:
        return self._frame * FRAME

    @property
    def current_play(self) -> str | None:
        decks = self._audible()
        return decks[-1].side.play_id if decks else None

    @property
    def cheap(self) -> bool:
        """True when the next block is body frames alone: nothing to fetch, plan, mix or
        encode, so it can be handed out without a trip to a render thread."""
        if self._skip or self._cancelled:
            return False
        end = self._block_end()
        wf = self._window
        if wf is not None:  # a window rendered ahead (or by another listener): a copy too
            w = wf.window
            if self._frame >= w.end or not wf.rendered(self._frame, min(end, w.end)):
                return False
            if end <= w.end:
                return True
            return w.incoming is not None and self._body_only(w.incoming, end)
        deck = self._body
        if deck is None:
            return False
        if self._upcoming is not None:
            return end <= self._upcoming[0].start
        return self._body_only(deck, end)

    def _body_only(self, deck: Placement, end: int) -> bool:
        """True when ``deck``'s body frames up to listener frame ``end`` need no planning."""
        return deck.natural_end - end * FRAME > self._lookahead(deck) + self.block_frames * FRAME

    def skip(self, play_id: str | None = None) -> None:
        self._skip = play_id or True

    def cancel_voice(self, key: str) -> None:
        self._cancelled.add(key)

    def abandon(self) -> list[Marker]:
        now = self._frame * FRAME
        ends = [
            Marker(now, "track_cut", d.side.key, round((now - d.origin) / self.sr, 4),
                   d.side.play_id)
            for d in self._audible()
        ]
        self.close()
        return ends

    def close(self) -> bytes:
        self._window = None
        self._upcoming = None
        self._ready = None
        self._body = None
        self._in_play.clear()
        self._voices.clear()
        return b""

    def render(self) -> tuple[bytes, int, list[Marker]]:
        """The next block: (MP3 frames, samples they hold, markers in them)."""
        with self._lock:
            self._controls()
            parts: list[bytes] = []
            start = self._frame
            want = self._block_end()
            while self._frame < want:
                parts.append(self._step(want - self._frame))
            limit = self._frame * FRAME
            out = sorted((m for m in (*self._markers, *self._ahead) if m.frame < limit),
                         key=lambda m: (m.frame, MARKER_ORDER.get(m.kind, 99)))
            self._markers = [m for m in self._markers if m.frame >= limit]
            self._ahead = [m for m in self._ahead if m.frame >= limit]
            return b"".join(parts), (self._frame - start) * FRAME, out

    def _block_end(self) -> int:
        """Where the block from here ends: on the grid of ``block_frames``, except the stream's
        first block, which is its opening frames alone (a listener who just connected waits
        for nothing more); the next block completes it."""
        if self._frame == 0:
            return min(self.block_frames, OPENING_FRAMES)
        return (self._frame // self.block_frames + 1) * self.block_frames

    # -- stepping -----------------------------------------------------------------------
    def _audible(self) -> list[Placement]:
        at = self._frame * FRAME
        if self._window is not None and self._frame < self._window.window.end:
            return self._window.window.audible(at)
        return [self._body] if self._body is not None else []

    def _step(self, n: int) -> bytes:
        """Up to ``n`` frames from where the stream is."""
        wf = self._window
        if wf is not None:
            w = wf.window
            if self._frame < w.end:
                hi = min(w.end, self._frame + n)
                try:
                    data = wf.frame_bytes(self._frame, hi)
                except Exception as exc:
                    self._window_failed(exc)
                    return b""
                if self.journal is not None:
                    self.journal.append((self._frame, hi, wf))
                self._frame = hi
                return data
            self._window = None
            self._body = w.incoming
            self._in_play = {k: b for k, b in self._in_play.items()
                             if self._body is not None and k == self._body.side.key}
            self._voices.clear()
            return b""
        deck = self._body
        if deck is not None:
            if self._upcoming is None:
                self._plan_next(deck)
            if self._upcoming is not None:
                limit = self._upcoming[0].start
            else:  # nothing next yet: the body plays to just before its end
                limit = (deck.natural_end - self.rules.edge) // FRAME - JOIN_MARGIN
            if self._frame < limit:
                hi = min(limit, self._frame + n)
                base = deck.origin // FRAME
                data = self._in_play[deck.side.key].frame_bytes(self._frame - base, hi - base)
                if self.journal is not None:
                    self.journal.append((self._frame, hi, deck))
                self._frame = hi
                return data
            if self._upcoming is not None:
                window, nxt = self._upcoming
                self._upcoming = None
                self._start_window(self._recheck_voice(window, nxt, deck), nxt)
            else:
                self._start_window(
                    plan_cut([deck], (), None, self._frame, self.rules.edge, None, self.rules),
                    None,
                )
            return b""
        nxt = self._fetch()
        if nxt is not None:
            window = plan_start(nxt.side, self._frame, nxt.voice, self.rules,
                                self._last_voice_end)
            self._start_window(window, nxt)
            return b""
        self._frame += n  # nothing to play yet: silence, and ask again next block
        return silent_frame(self.config.bitrate_kbps) * n

    def _lookahead(self, deck: Placement) -> int:
        outro = deck.side.outro_s if deck.side.outro_s > 0 else 2 * self.config.crossfade_s
        return (int(round(outro * self.sr)) + self.rules.attack
                + max(3 * self.block_frames * FRAME, int(PLAN_AHEAD_S * self.sr)))

    def _plan_next(self, deck: Placement) -> None:
        if deck.natural_end - self._frame * FRAME > self._lookahead(deck):
            return
        nxt = self._fetch()
        if nxt is None:
            return
        window = plan_crossfade(deck, nxt.side, nxt.crossfade_s, nxt.voice, self.rules,
                                not_before=self._frame, previous_voice_end=self._last_voice_end)
        self._upcoming = (window, nxt)
        # rendered whole now, seconds before it is due (in the background when there is a
        # pool for it): a burst of transitions (many listeners who tuned in together) then
        # never holds up a stream, and the shared cache gives the same one to everyone
        frames = self._frames(window, window.start, {nxt.side.key: nxt.body},
                              {nxt.voice.key: nxt.audio} if nxt.voice and nxt.audio is not None
                              else {}, whole=True)
        if self._submit is None:
            _prepare(frames)
        else:
            self._submit(lambda: _prepare(frames))
        self._ready = frames

    def _recheck_voice(self, window: Window, nxt: _Next, deck: Placement) -> Window:
        """Consent is checked again as the window is rendered: a line no longer allowed is
        dropped and the transition planned without it."""
        if nxt.voice is None:
            return window
        audio = self._voice_audio(nxt.voice.key) if nxt.voice.key not in self._cancelled else None
        if audio is not None:
            nxt.audio = audio
            return window
        spot = next((v.start for v in window.voices if v.key == nxt.voice.key), window.start)
        self._markers.append(Marker(spot, "voice_dropped", nxt.voice.key))
        nxt.voice, nxt.audio = None, None
        return plan_crossfade(deck, nxt.side, nxt.crossfade_s, None, self.rules,
                              not_before=self._frame, previous_voice_end=self._last_voice_end)

    def _start_window(self, window: Window, nxt: _Next | None, first: int | None = None) -> None:
        first = self._frame if first is None else first
        if nxt is not None:
            self._in_play[nxt.side.key] = nxt.body
            if nxt.voice is not None and nxt.audio is not None:
                self._voices[nxt.voice.key] = nxt.audio
        ready = self._ready
        self._ready = None
        # the stream's opening window is rendered in pieces as short as its first blocks
        lead = self._opening_lead() if first == 0 else ()
        if (ready is not None and ready.window is window and ready.first == first
                and ready.lead == lead):
            frames = ready
        else:
            frames = self._frames(window, first, lead=lead)
        self._ahead = [m for m in window.markers if m.frame >= first * FRAME]
        self._window = frames
        for v in window.voices:
            self._last_voice_end = max(self._last_voice_end, v.end)

    def _opening_lead(self) -> tuple[int, ...]:
        """The pieces of the stream's first block (see :meth:`_block_end`)."""
        head = min(self.block_frames, OPENING_FRAMES)
        return (head, self.block_frames - head) if self.block_frames > head else (head,)

    def _frames(self, window: Window, first: int, bodies=None, voices=None,
                lead: tuple[int, ...] = (), whole: bool = False) -> WindowFrames:
        return WindowFrames(
            window, first, {**self._in_play, **(bodies or {})},
            {**self._voices, **(voices or {})}, edge=self.rules.edge, ceiling_db=self._ceiling,
            bitrate_kbps=self.config.bitrate_kbps, sample_rate=self.sr, cache=self._pieces,
            lead=lead, whole=whole,
        )

    def _window_failed(self, exc: Exception) -> None:
        """A window that cannot be rendered (a track file gone since its body was made): what
        was on air ends here, and the next item starts from silence."""
        at = self._frame * FRAME
        logger.warning("transition at frame %d could not be rendered: %s", self._frame, exc)
        wf = self._window
        decks = wf.window.decks if wf is not None else ()
        self._ahead = []
        for d in decks:
            if d.origin <= at < d.end:
                self._markers.append(Marker(at, "track_end", d.side.key,
                                            round((at - d.origin) / self.sr, 4), d.side.play_id))
            elif d.origin > at:
                self._markers.append(Marker(at, "skipped", d.side.key, f"unreadable: {exc}"))
        self._window, self._body, self._upcoming = None, None, None
        self._in_play.clear()
        self._voices.clear()

    # -- controls -----------------------------------------------------------------------
    def _controls(self) -> None:
        cancelled = set(self._cancelled)
        wf = self._window
        if cancelled and wf is not None and self._frame < wf.window.end:
            window = wf.window
            for key in cancelled:
                if any(v.key == key and v.end > self._frame * FRAME for v in window.voices):
                    window = cut_voice(window, key, self._frame, self.rules)
            if window is not wf.window:
                self._start_window(window, None)
        if cancelled and self._upcoming is not None:
            window, nxt = self._upcoming
            if nxt.voice is not None and nxt.voice.key in cancelled and self._body is not None:
                self._upcoming = (self._recheck_voice(window, nxt, self._body), nxt)
        if self._skip:
            wanted, self._skip = self._skip, False
            # the listener is about to hear the next track already when it is on
            if wanted is True or self.current_play in (wanted, None):
                self._cut()

    def _cut(self) -> None:
        """A skip: everything audible fades out over SKIP_FADE_S from the next frame, and the
        next item (the one already queued, if any) fades in over the same time."""
        wf = self._window
        live = wf is not None and self._frame < wf.window.end
        decks = list(wf.window.decks) if live and wf is not None else (
            [self._body] if self._body is not None else [])
        if not decks:
            return
        cut = (self._frame + JOIN_MARGIN) * FRAME
        voices = wf.window.voices if live and wf is not None else ()
        ducks = wf.window.ducks if live and wf is not None else ()
        queued = [d for d in decks if d.origin > cut]
        nxt: _Next | None = None
        if queued:  # the track crossfading in has not started: it comes in now
            body = self._in_play.get(queued[0].side.key)
            if body is not None:
                nxt = _Next(0.0, body, queued[0].side, None, None)
            voices = tuple(v for v in voices if v.start < cut)
        elif self._upcoming is not None:
            nxt = self._upcoming[1]
            if nxt.voice is not None:
                nxt.audio = self._voice_audio(nxt.voice.key)
                if nxt.audio is None:
                    nxt.voice = None
        else:
            nxt = self._fetch()
        self._upcoming = None
        window = plan_cut(
            [d for d in decks if d.origin <= cut], voices, nxt.side if nxt else None,
            self._frame, int(round(SKIP_FADE_S * self.sr)), nxt.voice if nxt else None,
            self.rules, ducks_on=ducks, previous_voice_end=self._last_voice_end,
        )
        self._start_window(window, nxt)

    # -- fetching -----------------------------------------------------------------------
    def _voice_audio(self, key: str) -> np.ndarray | None:
        try:
            audio = self._voice_source(key)
        except Exception:
            logger.exception("voice %s could not be fetched", key)
            return None
        return None if audio is None else as_stereo(audio, HOUSE_CHANNELS)

    def _fetch(self) -> _Next | None:
        """The next item whose body can be had (bad ones are reported and passed over)."""
        at = self._frame * FRAME
        for _ in range(MAX_ATTEMPTS_PER_BLOCK):
            try:
                item = self._next_item()
            except Exception:  # the programme failing must not stop the music
                logger.exception("next_item failed")
                return None
            if item is None:
                return None
            try:
                body = self._store.get(item.track)
            except BodyError as exc:
                reason = str(exc)
            except Exception as exc:
                reason = f"unreadable: {exc}"
            else:
                return self._prepared(item, body, at)
            logger.warning("skipping track %s (%s): %s", item.track.key, item.track.path, reason)
            self._markers.append(Marker(at, "skipped", item.track.key, reason))
        return None

    def _prepared(self, item: Item, body: Body, at: int) -> _Next:
        cue = item.track
        tail = unpack_levels(cue.tail_lu)
        side = Side(
            key=cue.key, play_id=item.play_id, usable=body.usable,
            outro_s=max(cue.outro_s, fade_length(tail)) if not body.dead_air_s else 0.0,
            head=unpack_levels(cue.head_lu), tail=tail if not body.dead_air_s else np.zeros(0),
            dead_air_s=body.dead_air_s,
        )
        voice: Voice | None = None
        audio: np.ndarray | None = None
        if item.voice is not None:
            audio = (self._voice_audio(item.voice.key)
                     if item.voice.key not in self._cancelled else None)
            if audio is None:
                self._markers.append(Marker(at, "voice_dropped", item.voice.key))
            else:
                voice = Voice(item.voice.key, audio.shape[1], item.voice.duck_db)
        return _Next(item.crossfade_s, body, side, voice, audio)

