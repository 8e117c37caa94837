"""The per-session renderer: turns the programme's items into a continuous, mastered house-format
signal, one block at a time, with sample-accurate markers.

Model: every track being played is a *deck* placed on the absolute output timeline (``start`` is
the output frame where its cue-in sounds). A deck's gain at any frame is its loudness gain times
its fade curves, all functions of absolute frame positions, so a block boundary never changes the
result (rendering in 0.5 s blocks or 1-frame blocks gives the same samples).

Rules (each has a test):

* **Crossfade** between consecutive tracks lasts :func:`dj.audio.dsp.crossfade_frames`:
  ``min(outgoing outro, 2 × requested, half the outgoing usable length, half the incoming usable
  length)``, where the outro is ingest's, or longer so the crossfade starts where the track's own
  fade starts (:func:`dj.audio.transition.fade_length`). The outgoing track fades out on the
  equal-power ``cos`` and ends exactly on its cue-out; the incoming one fades in on
  :func:`dj.audio.transition.complementary_fade_in` of both tracks' edge levels (the plain ``sin``
  when they are steady or unmeasured), and a quiet intro is lifted by
  :func:`dj.audio.transition.intro_ride`. A start or stop without a crossfade (first track, a cut,
  a gap) gets a 5 ms edge fade.
* **Next item** is asked for at the start, and when the current track comes within its outro +
  the duck attack + two blocks of its cue-out. ``None`` means nothing yet: the current track plays
  to its end and the renderer asks again every block, sending silence meanwhile.
* **Voice** of an item starts at the transition into it (the crossfade start), or later if the
  previous voice line is still speaking (then it follows it after a short gap), or if the attack
  could not complete in time. ``voice_source`` is called in the block where the duck's attack
  begins, no earlier, because it is the moment consent is checked; ``None`` (or an error) means
  the line is dropped: a ``voice_dropped`` marker and no duck. The music (every deck) is ducked by
  the item's ``duck_db`` with a raised-cosine attack that ends as the voice starts and a release
  after it ends; a voice longer than the crossfade keeps ducking the new track's intro.
* **Skip** fades every audible deck out over ``SKIP_FADE_S`` from the next rendered frame, and
  fades the next item in over the same time (equal-power).
* **Dead air**: when the mix has been below ``dead_air_dbfs`` for almost ``dead_air_s`` (a
  silent stretch inside a track's cue range, or nothing to play), the renderer cuts to the next
  item before the limit is reached and emits ``dead_air``. Silence before cue-in and after
  cue-out (the track's own intended silence, trimmed at ingest) is never sent at all.
* **Bad input** never raises from :meth:`Renderer.render`: an unreadable track is passed over with
  a ``skipped`` marker and the next item is asked for at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dj.audio.agc import LevelRider
from dj.audio.analysis import unpack_levels
from dj.audio.deadair import DeadAirDetector, is_silent
from dj.audio.decode import DecodeError, HouseReader
from dj.audio.dsp import (
    EDGE_FADE_S,
    Duck,
    add_duck,
    as_stereo,
    crossfade_frames,
    db_to_gain,
    duck_envelope,
    edge_fade,
    fade_in_curve,
    fade_out_curve,
    place_voice,
)
from dj.audio.master import MasterChain
from dj.audio.plan import MARKER_ORDER, Item, Marker
from dj.audio.transition import (
    ENTRY_S,
    complementary_fade_in,
    fade_length,
    intro_ride,
    level_at,
    level_times,
)
from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE, AudioConfig

logger = logging.getLogger(__name__)

SKIP_FADE_S = 0.5  # short, so a skip is heard at once (the crossfade is for planned joins)
VOICE_GAP_S = 0.4  # between two voice lines that would otherwise overlap
DEAD_AIR_MARGIN_S = 0.25  # cut this long before the dead-air limit is reached
MAX_ATTEMPTS_PER_BLOCK = 16  # bad items passed over in one block before giving the block up


@dataclass(slots=True)
class _Deck:
    item: Item
    reader: HouseReader
    gain: float
    in_frame: int  # file frame of cue-in
    out_frame: int  # file frame of cue-out
    start: int  # absolute output frame where in_frame sounds
    fade_in: int = 0  # equal-power fade-in frames from start; 0 = edge fade
    fade_outs: list[tuple[int, int]] = field(default_factory=list)  # (absolute start, frames)
    head: np.ndarray = field(default_factory=lambda: np.zeros(0))  # edge levels, LU
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ride: tuple[np.ndarray, np.ndarray] | None = None  # intro ride: (frames from start, dB)
    # a level-aware fade-in replacing the plain sin curve: (frames from start, gain)
    fade_shape: tuple[np.ndarray, np.ndarray] | None = None
    outro_s: float = 0.0  # ingest's outro, or longer to start the crossfade where a fade starts
    started: bool = False
    failed: str | None = None

    @property
    def key(self) -> str:
        return self.item.track.key

    @property
    def usable(self) -> int:
        return self.out_frame - self.in_frame

    @property
    def natural_end(self) -> int:
        return self.start + self.usable

    @property
    def end(self) -> int:
        end = self.natural_end
        for fs, fl in self.fade_outs:
            end = min(end, fs + fl)
        return end

    def envelope(self, t0: int, n: int, edge: int) -> np.ndarray | float:
        """Fade gain over output frames ``[t0, t0 + n)`` (a scalar 1.0 when no fade is active)."""
        t1 = t0 + n
        parts: list[np.ndarray] = []
        pos: np.ndarray | None = None

        def positions() -> np.ndarray:
            nonlocal pos
            if pos is None:
                pos = np.arange(t0, t1, dtype=np.int64)
            return pos

        in_len = self.fade_in if self.fade_in > 0 else edge
        if t0 < self.start + in_len:
            rel = positions() - self.start
            if self.fade_in > 0 and self.fade_shape is not None:
                shape_x, shape_g = self.fade_shape
                parts.append(np.interp(rel, shape_x, shape_g, left=0.0).astype(np.float32))
            elif self.fade_in > 0:
                parts.append(fade_in_curve(rel, self.fade_in))
            else:
                parts.append(edge_fade(rel, edge, rising=True))
        if self.ride is not None and t0 < self.start + self.ride[0][-1]:
            ride_db = np.interp(positions() - self.start, *self.ride)
            parts.append(np.power(10.0, ride_db / 20.0).astype(np.float32))
        for fs, fl in self.fade_outs:
            if t1 > fs:
                parts.append(fade_out_curve(positions() - fs, fl))
        if not self.fade_outs and t1 > self.natural_end - edge:
            parts.append(edge_fade(positions() - (self.natural_end - edge), edge, rising=False))
        if not parts:
            return 1.0
        env = parts[0]
        for p in parts[1:]:
            env = env * p
        return env


@dataclass(slots=True)
class _PlannedVoice:
    key: str
    duck_db: float
    start: int  # planned absolute voice start
    track_key: str


@dataclass(slots=True)
class _Voice:
    key: str
    audio: np.ndarray  # (2, n)
    start: int

    @property
    def end(self) -> int:
        return self.start + self.audio.shape[1]


class Renderer:
    """One listener's audio: ``render(n)`` returns the next ``n`` mastered frames and the markers in
    them. Not thread-safe; call it from one executor thread at a time."""

    def __init__(
        self,
        config: AudioConfig,
        next_item: Callable[[], Item | None],
        voice_source: Callable[[str], np.ndarray | None],
        *,
        profile: bool = False,
    ) -> None:
        self.config = config
        self.sr = HOUSE_SAMPLE_RATE
        self._next_item = next_item
        self._voice_source = voice_source
        rider = LevelRider(
            config.target_lufs,
            config.agc_range_db,
            config.agc_window_s,
            config.agc_speed_db_s,
            sample_rate=self.sr,
        )
        self._master = MasterChain(config.true_peak_dbtp, sample_rate=self.sr, rider=rider)
        self._deadair = DeadAirDetector(self.sr, config.dead_air_dbfs, config.dead_air_s)
        self._attack = int(round(config.duck_attack_ms * self.sr / 1000.0))
        self._release = int(round(config.duck_release_ms * self.sr / 1000.0))
        self._edge = int(round(EDGE_FADE_S * self.sr))
        self._decks: list[_Deck] = []
        self._planned: list[_PlannedVoice] = []
        self._voices: list[_Voice] = []
        self._ducks: list[Duck] = []
        self._last_voice_end = -(1 << 62)
        self._markers: list[Marker] = []
        self._pending_out: list[np.ndarray] = []
        self._pending_frames = 0
        self._mixed = 0  # frames mixed (runs ahead of the output by the limiter's lookahead)
        self._out = 0  # frames returned
        self._skip: str | bool = False  # a play id to skip if it is still on, or True
        self._cancelled: set[str] = set()  # written by other threads; set.add is atomic
        self._asked_this_block = False
        self._in_dead_air = False
        self.profile = profile
        self.timings: dict[str, float] = {"decode": 0.0, "dsp": 0.0, "voice": 0.0}

    # -- public API -----------------------------------------------------------------------
    @property
    def frames_rendered(self) -> int:
        return self._out

    @property
    def current_key(self) -> str | None:
        """The track audible now (the newer one during a crossfade)."""
        now = self._out
        audible = [d for d in self._decks if d.start <= now < d.end]
        if audible:
            return audible[-1].key
        started = [d for d in self._decks if d.start <= now]
        return started[-1].key if started else None

    @property
    def current_play(self) -> str | None:
        """The play id of the track audible at the render head (the newer one in a crossfade)."""
        now = self._out
        audible = [d for d in self._decks if d.start <= now < d.end]
        return audible[-1].item.play_id if audible else None

    def skip(self, play_id: str | None = None) -> None:
        self._skip = play_id or True

    def abandon(self) -> list[Marker]:
        """End every track that has started, at the last frame returned (the renderer is being
        replaced after a fault): a ``track_cut`` marker each, with the seconds it played."""
        ends = [
            Marker(self._out, "track_cut", d.key, round(max(0, self._out - d.start) / self.sr, 4),
                   d.item.play_id)
            for d in self._decks
            if d.started and d.start < self._out
        ]
        self.close()
        return ends

    def close(self) -> None:
        """Release the open track files (a listener left)."""
        for deck in self._decks:
            deck.reader.close()
        self._decks = []

    def cancel_voice(self, key: str) -> None:
        """Stop the voice ``key`` from the next frames mixed (a revoked line): a playing one fades
        out within a few milliseconds and the music comes back up; a planned one never starts.
        Safe to call from another thread."""
        self._cancelled.add(key)

    def render(self, n_frames: int) -> tuple[np.ndarray, list[Marker]]:
        """The next ``n_frames`` of output, float32 ``(2, n_frames)`` in [-1, 1], post-master."""
        if n_frames <= 0:
            return np.zeros((HOUSE_CHANNELS, 0), np.float32), []
        guard = 0
        while self._pending_frames < n_frames and guard < 8:
            guard += 1
            chunk = n_frames - self._pending_frames
            mixed = self._mix_chunk(chunk)
            t = time.process_time() if self.profile else 0.0
            mastered = self._master.process(mixed)
            if self.profile:
                self.timings["dsp"] += time.process_time() - t
            if mastered.shape[1]:
                self._pending_out.append(mastered)
                self._pending_frames += mastered.shape[1]
        out = (
            np.concatenate(self._pending_out, axis=1)
            if len(self._pending_out) > 1
            else (
                self._pending_out[0]
                if self._pending_out
                else np.zeros((HOUSE_CHANNELS, 0), np.float32)
            )
        )
        if out.shape[1] < n_frames:  # cannot happen with a sane limiter; never short the caller
            out = np.pad(out, ((0, 0), (0, n_frames - out.shape[1])))
        block, rest = out[:, :n_frames], out[:, n_frames:]
        self._pending_out = [rest] if rest.shape[1] else []
        self._pending_frames = rest.shape[1]
        self._out += n_frames
        markers = [m for m in self._markers if m.frame < self._out]
        self._markers = [m for m in self._markers if m.frame >= self._out]
        return np.ascontiguousarray(block, dtype=np.float32), markers

    # -- scheduling -----------------------------------------------------------------------
    def _mark(
        self, frame: int, kind: str, key: str, value: float | str | None = None, play: str = ""
    ) -> None:
        self._markers.append(Marker(frame, kind, key, value, play))
        self._markers.sort(key=lambda m: (m.frame, MARKER_ORDER.get(m.kind, 99)))

    def _fetch(self, at: int) -> _Deck | None:
        """Ask for items until one opens (bad ones are reported and passed over)."""
        for _ in range(MAX_ATTEMPTS_PER_BLOCK):
            if self._asked_this_block:
                return None
            try:
                item = self._next_item()
            except Exception:  # the programme failing must not stop the music
                logger.exception("next_item failed")
                item = None
            if item is None:
                self._asked_this_block = True
                return None
            deck = self._open(item, at)
            if deck is not None:
                return deck
        return None

    def _open(self, item: Item, at: int) -> _Deck | None:
        cue = item.track
        t = time.process_time() if self.profile else 0.0
        try:
            reader = HouseReader(cue.path)
        except DecodeError as exc:
            self._reject(item, at, exc.reason)
            return None
        except Exception as exc:  # anything else a broken file can do
            self._reject(item, at, f"unreadable: {exc}")
            return None
        finally:
            if self.profile:
                self.timings["decode"] += time.process_time() - t
        in_frame = max(0, int(round(cue.cue_in_s * self.sr)))
        out_frame = min(reader.frames, int(round(cue.cue_out_s * self.sr)))
        if out_frame - in_frame < self._edge * 2:
            reader.close()
            self._reject(item, at, "nothing to play between the cue points")
            return None
        deck = _Deck(
            item=item,
            reader=reader,
            gain=float(db_to_gain(cue.gain_db)),
            in_frame=in_frame,
            out_frame=out_frame,
            start=at,
            head=unpack_levels(cue.head_lu),
            tail=unpack_levels(cue.tail_lu),
        )
        deck.outro_s = max(cue.outro_s, fade_length(deck.tail))
        ride = intro_ride(deck.head, self.config.intro_ride_db)
        if np.any(ride > 0):
            # the ride's last point is 0 dB: past it the deck plays at its own gain
            last = int(np.flatnonzero(ride > 0)[-1]) + 1
            deck.ride = (level_times(last + 1) * self.sr, ride[: last + 1])
        return deck

    def _plan_fade_in(self, deck: _Deck, previous: _Deck, start: int, length: int) -> None:
        """Shape the incoming track's fade on both tracks' real levels (see dj.audio.transition);
        with no edge levels it is the plain equal-power curve."""
        if length <= 0 or (previous.tail.size == 0 and deck.head.size == 0):
            return
        x = np.linspace(0.0, 1.0, max(2, int(length / (0.01 * self.sr)) + 1))
        frames = x * length
        out_db = level_at(previous.tail, (previous.natural_end - (start + frames)) / self.sr)
        in_db = level_at(deck.head, frames / self.sr)
        if deck.ride is not None:
            in_db = in_db + np.interp(frames, *deck.ride)
        entry = min(1.0, ENTRY_S * self.sr / length)
        deck.fade_shape = (frames, complementary_fade_in(x, out_db, in_db, entry))

    def _reject(self, item: Item, at: int, reason: str) -> None:
        logger.warning("skipping track %s (%s): %s", item.track.key, item.track.path, reason)
        self._mark(at, "skipped", item.track.key, reason)

    def _current(self) -> _Deck | None:
        return self._decks[-1] if self._decks else None

    def _lookahead(self, deck: _Deck, n: int) -> int:
        outro = deck.outro_s if deck.outro_s > 0 else 2 * self.config.crossfade_s
        return int(round(outro * self.sr)) + self._attack + 2 * n

    def _schedule(self, t0: int, n: int) -> None:
        """Make sure the next deck is placed on the timeline in time for its crossfade."""
        cur = self._current()
        if cur is None or cur.end <= t0:
            deck = self._fetch(t0)
            if deck is not None:
                self._add_deck(deck, t0, 0, None)
            return
        if cur.end - t0 > self._lookahead(cur, n):
            return
        deck = self._fetch(t0)
        if deck is None:
            return
        length = crossfade_frames(
            deck.item.crossfade_s, cur.outro_s, cur.usable, deck.usable, self.sr
        )
        start = cur.end - length
        if start < t0:
            start, length = t0, max(0, cur.end - t0)
        if length > 0 and not cur.fade_outs:
            cur.fade_outs.append((start, length))
            self._plan_fade_in(deck, cur, start, length)
        elif cur.fade_outs:  # already fading (a skip): start when it is gone
            start, length = max(t0, cur.end), 0
        self._add_deck(deck, start, length, cur)

    def _add_deck(self, deck: _Deck, start: int, fade_in: int, previous: _Deck | None) -> None:
        deck.start = start
        deck.fade_in = fade_in
        self._decks.append(deck)
        voice = deck.item.voice
        if voice is not None:
            self._planned.append(_PlannedVoice(voice.key, voice.duck_db, start, deck.key))

    def _cut_to_next(self, at: int, fade: int) -> None:
        """Fade out what is playing from ``at`` over ``fade`` frames, and bring the next item in
        over the same frames (a queued deck moves forward; otherwise the next item is fetched)."""
        queued = [d for d in self._decks if d.start > at]
        for d in self._decks:
            if d.start <= at < d.end:
                d.fade_outs.append((at, min(fade, d.end - at)))
        if queued:
            nxt = queued[0]
            nxt.start, nxt.fade_in, nxt.fade_shape = at, fade, None
            for d in queued[1:]:  # cannot happen (one deck is queued at a time); stay safe
                self._decks.remove(d)
                d.reader.close()
                self._planned = [pv for pv in self._planned if pv.track_key != d.key]
            for pv in self._planned:
                if pv.track_key == nxt.key:
                    pv.start = at
        else:
            self._asked_this_block = False
            deck = self._fetch(at)
            if deck is not None:
                self._add_deck(deck, at, fade, None)

    # -- mixing ---------------------------------------------------------------------------
    def _mix_chunk(self, n: int) -> np.ndarray:
        t0 = self._mixed
        self._asked_this_block = False
        if self._skip:
            wanted, self._skip = self._skip, False
            if wanted is True or self.current_play in (wanted, None):
                self._cut_to_next(t0, int(round(SKIP_FADE_S * self.sr)))
        self._schedule(t0, n)
        music = self._mix_decks(t0, n)
        if self._dead_air_ahead(music):
            music = self._handle_dead_air(t0, n)
        if not self._deadair.feed(music):
            self._in_dead_air = False
        mixed = self._mix_voices(t0, n, music)
        self._retire(t0 + n)
        self._mixed = t0 + n
        return mixed

    def current_key_at(self, frame: int) -> str | None:
        audible = [d for d in self._decks if d.start <= frame < d.end]
        return audible[-1].key if audible else None

    def _mix_decks(self, t0: int, n: int) -> np.ndarray:
        t1 = t0 + n
        music = np.zeros((HOUSE_CHANNELS, n), np.float32)
        for d in self._decks:
            lo, hi = max(t0, d.start), min(t1, d.end)
            if hi <= lo:
                continue
            if not d.started:
                d.started = True
                self._mark(d.start, "track_start", d.key, play=d.item.play_id)
            t = time.process_time() if self.profile else 0.0
            try:
                data = d.reader.read(d.in_frame + (lo - d.start), hi - lo)
            except Exception as exc:  # a file that breaks mid-play
                d.failed = f"unreadable: {exc}"
                data = None
            if self.profile:
                t2 = time.process_time()
                self.timings["decode"] += t2 - t
                t = t2
            if data is None:
                continue
            env = d.envelope(lo, hi - lo, self._edge)
            if isinstance(env, float):
                music[:, lo - t0 : hi - t0] += data * np.float32(d.gain)
            else:
                music[:, lo - t0 : hi - t0] += data * (env * np.float32(d.gain))
            if self.profile:
                self.timings["dsp"] += time.process_time() - t
        for d in [d for d in self._decks if d.failed]:
            logger.warning("track %s failed while playing: %s", d.key, d.failed)
            self._mark(max(t0, d.start), "skipped", d.key, d.failed)
            d.fade_outs.append((t0, 0))
            d.failed = None
        return music

    def _dead_air_ahead(self, music: np.ndarray) -> bool:
        """True when this chunk is silent and would take the silence to the limit."""
        limit = self._deadair.limit_frames - int(DEAD_AIR_MARGIN_S * self.sr)
        if self._deadair.silent_frames + music.shape[1] <= limit:
            return False
        if self._voices:
            return False
        return is_silent(music, self.sr, self.config.dead_air_dbfs)

    def _handle_dead_air(self, t0: int, n: int) -> np.ndarray:
        limit = self._deadair.limit_frames - int(DEAD_AIR_MARGIN_S * self.sr)
        at = t0 + max(0, min(n - 1, limit - self._deadair.silent_frames))
        key = self.current_key_at(at) or ""
        if not self._in_dead_air:
            logger.warning(
                "dead air in %s at frame %d: moving on to the next item",
                key or "(nothing playing)",
                at,
            )
            self._mark(
                at, "dead_air", key, round((at - t0 + self._deadair.silent_frames) / self.sr, 3)
            )
            self._in_dead_air = True
        self._cut_to_next(at, self._edge)
        return self._mix_decks(t0, n)

    def _activate_due_voices(self, t0: int, n: int) -> None:
        t1 = t0 + n
        still: list[_PlannedVoice] = []
        for pv in sorted(self._planned, key=lambda p: p.start):
            start = (
                place_voice(
                    pv.start, self._attack, t0, self._last_voice_end, int(VOICE_GAP_S * self.sr)
                )
                if pv.start - self._attack < t1
                else pv.start
            )
            if start - self._attack >= t1:
                pv.start = start
                still.append(pv)
                continue
            try:
                audio = self._voice_source(pv.key)
            except Exception:
                logger.exception("voice %s could not be fetched", pv.key)
                audio = None
            if audio is None:
                self._mark(start, "voice_dropped", pv.key)
                continue
            audio = as_stereo(audio, HOUSE_CHANNELS)
            if audio is None:
                self._mark(start, "voice_dropped", pv.key)
                continue
            voice = _Voice(pv.key, audio, start)
            self._voices.append(voice)
            self._ducks = add_duck(
                self._ducks, Duck(start, voice.end, pv.duck_db, self._attack, self._release)
            )
            self._last_voice_end = voice.end
            self._mark(start, "voice_start", pv.key)
            self._mark(voice.end, "voice_end", pv.key)
        self._planned = still

    def _apply_cancellations(self, t0: int) -> None:
        cancelled = set(self._cancelled)
        if not cancelled:
            return
        for pv in [p for p in self._planned if p.key in cancelled]:
            self._planned.remove(pv)
            self._mark(max(pv.start, t0), "voice_dropped", pv.key)
        for v in [v for v in self._voices if v.key in cancelled and v.end > t0]:
            keep = max(0, t0 - v.start)
            fade = min(self._edge, v.audio.shape[1] - keep)
            tail = v.audio[:, keep : keep + fade] * np.linspace(1.0, 0.0, fade, dtype=np.float32)
            old_end = v.end
            v.audio = np.concatenate([v.audio[:, :keep], tail], axis=1)
            self._markers = [
                m for m in self._markers if not (m.kind == "voice_end" and m.key == v.key)
            ]
            self._mark(v.end, "voice_end", v.key)
            # the release starts at the cut (it is centred on the voice's end), not half a
            # release before it: that part of the duck has been rendered already
            self._ducks = [
                Duck(dk.voice_start,
                     min(dk.voice_end, max(v.end + dk.release // 2, dk.voice_start)),
                     dk.depth_db, dk.attack, dk.release)
                if dk.voice_start <= v.start < dk.voice_end and dk.voice_end <= old_end
                else dk
                for dk in self._ducks
            ]
            if self._last_voice_end == old_end:
                self._last_voice_end = v.end

    def _mix_voices(self, t0: int, n: int, music: np.ndarray) -> np.ndarray:
        t = time.process_time() if self.profile else 0.0
        self._apply_cancellations(t0)
        self._activate_due_voices(t0, n)
        t1 = t0 + n
        active = [dk for dk in self._ducks if dk.start < t1 and dk.end > t0]
        if active:
            music *= duck_envelope(np.arange(t0, t1, dtype=np.int64), active)
        for v in self._voices:
            lo, hi = max(t0, v.start), min(t1, v.end)
            if hi > lo:
                music[:, lo - t0 : hi - t0] += v.audio[:, lo - v.start : hi - v.start]
        if self.profile:
            self.timings["voice"] += time.process_time() - t
        return music

    def _retire(self, t1: int) -> None:
        for d in [d for d in self._decks if d.end <= t1 and d.started]:
            self._decks.remove(d)
            d.reader.close()
            self._mark(
                d.end, "track_end", d.key, round((d.end - d.start) / self.sr, 4), d.item.play_id
            )
        for d in [d for d in self._decks if d.end <= d.start]:  # cut before it ever sounded
            self._decks.remove(d)
            d.reader.close()
        self._voices = [v for v in self._voices if v.end > t1]
        self._ducks = [dk for dk in self._ducks if dk.end > t1]
