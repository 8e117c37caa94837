"""The spliced programme as plain values: where each track's body sits on a listener's timeline,
and the transition windows between bodies. Pure functions of the tracks' analysis, the voice-over
and the rules; no audio here, so every rule is testable on numbers alone.

A listener's stream is a run of MP3 frames (:data:`FRAME` samples each). A track placed on it has
an ``origin``: the listener sample where its body sample 0 (its cue-in) sounds, always a whole
number of frames, so the track's shared body frames line up with the listener's frames. Between
two bodies sits a :class:`Window` of frames rendered for this listener alone: everything that is
not one track playing by itself (a crossfade, a voice-over and its duck, a skip's fade, a cut).

A window starts :data:`JOIN_MARGIN` frames before the first sample it changes and ends as many
after the last, so the frames on both sides of each join encode the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dj.audio.dsp import (
    EDGE_FADE_S,
    Duck,
    add_duck,
    crossfade_frames,
    edge_fade,
    fade_in_curve,
    fade_out_curve,
)
from dj.audio.encode import FRAME_SAMPLES as FRAME
from dj.audio.plan import MARKER_ORDER, Marker
from dj.audio.transition import ENTRY_S, complementary_fade_in, level_at
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig

JOIN_MARGIN = 1  # unchanged frames inside a window at each join
# frames of real audio encoded before and after the frames a window keeps, then dropped: the
# encoder's state has converged by the first kept frame, and the last one is not the flush's
PRE_ROLL = 4
POST_ROLL = 2
# a body's first frames carry its encoder's start-up: a window hands over no earlier than this
BODY_SETTLE = 8
VOICE_GAP_S = 0.4  # between two voice lines that would otherwise overlap (as the full render)


def frames_up(samples: int) -> int:
    return -(-samples // FRAME)


@dataclass(frozen=True, slots=True)
class Side:
    """What the planner knows of a track: its body's length and edge levels, no audio."""

    key: str
    play_id: str
    usable: int  # body samples (cue-in to cue-out, or to a dead-air cut)
    outro_s: float
    head: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)
    dead_air_s: float = 0.0  # > 0: the body ends where a silence this long reached the limit


@dataclass(frozen=True, slots=True)
class Placement:
    """A track on the listener's timeline, with its fades (listener samples)."""

    side: Side
    origin: int  # where body sample 0 sounds; a multiple of FRAME
    fade_in: int = 0  # equal-power (or ``shape``) fade-in from the origin; 0 = an edge fade
    shape: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)
    fade_outs: tuple[tuple[int, int], ...] = ()  # (listener sample, samples): it stops there

    @property
    def natural_end(self) -> int:
        return self.origin + self.side.usable

    @property
    def end(self) -> int:
        return min([self.natural_end, *(s + n for s, n in self.fade_outs)])

    def fading_out(self, start: int, length: int) -> Placement:
        return replace(self, fade_outs=(*self.fade_outs, (start, length)))

    def envelope(self, t0: int, n: int, edge: int) -> np.ndarray | float:
        """Fade gain over listener samples ``[t0, t0 + n)``; exactly 1.0 where none applies."""
        t1 = t0 + n
        gain: np.ndarray | None = None
        pos = np.arange(t0, t1, dtype=np.int64)

        def times(part: np.ndarray) -> None:
            nonlocal gain
            gain = part if gain is None else gain * part

        in_len = self.fade_in if self.fade_in > 0 else edge
        if t0 < self.origin + in_len:
            rel = pos - self.origin
            if self.fade_in > 0 and self.shape is not None:
                times(np.interp(rel, *self.shape, left=0.0).astype(np.float32))
            elif self.fade_in > 0:
                times(fade_in_curve(rel, self.fade_in))
            else:
                times(edge_fade(rel, edge, rising=True))
        for fs, fl in self.fade_outs:
            if t1 > fs:
                times(fade_out_curve(pos - fs, fl))
        if not self.fade_outs and t1 > self.natural_end - edge:
            times(edge_fade(pos - (self.natural_end - edge), edge, rising=False))
        return 1.0 if gain is None else gain


@dataclass(frozen=True, slots=True)
class VoiceSpot:
    key: str
    start: int  # listener sample of the first word
    length: int  # samples
    duck_db: float

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, slots=True)
class Window:
    """Listener frames ``[start, end)`` rendered for this listener; the body of ``decks[-1]``
    continues after it when that deck is still playing at ``end``."""

    start: int
    end: int
    decks: tuple[Placement, ...]
    voices: tuple[VoiceSpot, ...] = ()
    ducks: tuple[Duck, ...] = ()
    markers: tuple[Marker, ...] = ()

    @property
    def incoming(self) -> Placement | None:
        last = self.decks[-1] if self.decks else None
        return last if last is not None and last.end > self.end * FRAME else None

    def audible(self, at: int) -> list[Placement]:
        return [d for d in self.decks if d.origin <= at < d.end]

    def body_frame(self) -> int:
        """The incoming track's body frame that follows the window."""
        inc = self.incoming
        return 0 if inc is None else self.end - inc.origin // FRAME


@dataclass(frozen=True, slots=True)
class Rules:
    """The render rules the planner needs, in samples."""

    attack: int
    release: int
    edge: int
    voice_gap: int
    sample_rate: int = HOUSE_SAMPLE_RATE

    @classmethod
    def from_config(cls, config: AudioConfig, sample_rate: int = HOUSE_SAMPLE_RATE) -> Rules:
        return cls(
            attack=int(round(config.duck_attack_ms * sample_rate / 1000.0)),
            release=int(round(config.duck_release_ms * sample_rate / 1000.0)),
            edge=int(round(EDGE_FADE_S * sample_rate)),
            voice_gap=int(round(VOICE_GAP_S * sample_rate)),
            sample_rate=sample_rate,
        )


@dataclass(frozen=True, slots=True)
class Voice:
    """A line to speak over the transition into a track (its audio's length is known)."""

    key: str
    length: int
    duck_db: float


def _fade_shape(a: Side, a_natural_end: int, b: Side, start: int, length: int, sr: int):
    """The incoming fade on both tracks' real levels (see dj.audio.transition); ``None`` for the
    plain equal-power curve when neither edge was measured."""
    if length <= 0 or (a.tail.size == 0 and b.head.size == 0):
        return None
    x = np.linspace(0.0, 1.0, max(2, int(length / (0.01 * sr)) + 1))
    pos = x * length
    # from the window's own offsets only (integers), never the listener's absolute position:
    # the same transition then has the same shape, to the bit, on every listener's timeline
    # (and is rendered once for all of them)
    out_db = level_at(a.tail, ((a_natural_end - start) - pos) / sr)
    in_db = level_at(b.head, pos / sr)
    entry = min(1.0, ENTRY_S * sr / length)
    return (pos, complementary_fade_in(x, out_db, in_db, entry))


def _close(
    start: int,
    decks: list[Placement],
    voices: list[VoiceSpot],
    ducks: list[Duck],
    carried: tuple[Marker, ...],
    new_from: int,
    rules: Rules,
) -> Window:
    """A window from ``start`` to ``JOIN_MARGIN`` frames past the last change, with the markers
    of what happens in it at or after listener sample ``new_from`` (``carried`` before it)."""
    last = start * FRAME
    for d in decks:
        last = max(last, d.origin + (d.fade_in or rules.edge))
        if d.fade_outs:
            last = max(last, d.end)
    for dk in ducks:
        last = max(last, dk.end)
    for v in voices:
        last = max(last, v.end)
    end = frames_up(last) + JOIN_MARGIN
    if decks and not decks[-1].fade_outs:
        end = max(end, decks[-1].origin // FRAME + BODY_SETTLE)
    # decks that stopped just before still sound in the pre-roll
    kept = [d for d in decks if d.end > (start - PRE_ROLL) * FRAME]
    markers: list[Marker] = list(carried)
    for d in kept:
        if d.origin >= new_from:
            markers.append(Marker(d.origin, "track_start", d.side.key, play=d.side.play_id))
        if d.fade_outs and d.end >= new_from:
            markers.append(Marker(d.end, "track_end", d.side.key,
                                  round((d.end - d.origin) / rules.sample_rate, 4),
                                  d.side.play_id))
    for v in voices:
        if v.start >= new_from:
            markers.append(Marker(v.start, "voice_start", v.key))
        if v.end >= new_from:
            markers.append(Marker(v.end, "voice_end", v.key))
    markers.sort(key=lambda m: (m.frame, MARKER_ORDER.get(m.kind, 99)))
    return Window(start, end, tuple(kept), tuple(voices), tuple(ducks), tuple(markers))


def _voice_at(
    voice: Voice | None,
    wanted: int,
    not_before: int,
    previous_voice_end: int,
    rules: Rules,
    voices: list[VoiceSpot],
    ducks: list[Duck],
) -> None:
    if voice is None or voice.length <= 0:
        return
    start = max(wanted, not_before + rules.attack, previous_voice_end + rules.voice_gap)
    spot = VoiceSpot(voice.key, start, voice.length, voice.duck_db)
    voices.append(spot)
    ducks[:] = add_duck(ducks, Duck(start, spot.end, voice.duck_db, rules.attack, rules.release))


def plan_start(
    b: Side,
    at: int,
    voice: Voice | None,
    rules: Rules,
    previous_voice_end: int = -(1 << 62),
) -> Window:
    """``b`` starts from silence at listener frame ``at`` (the stream's start, or after a gap)."""
    origin = at * FRAME
    deck = Placement(b, origin)
    voices: list[VoiceSpot] = []
    ducks: list[Duck] = []
    _voice_at(voice, origin, origin, previous_voice_end, rules, voices, ducks)
    return _close(at, [deck], voices, ducks, (), origin, rules)


def plan_crossfade(
    a: Placement,
    b: Side,
    requested_s: float,
    voice: Voice | None,
    rules: Rules,
    *,
    not_before: int,
    previous_voice_end: int = -(1 << 62),
) -> Window:
    """The planned transition from ``a`` (playing its body) into ``b``: ``a`` fades out on the
    equal-power curve ending on its cue-out, ``b`` fades in on the level-aware curve from a frame
    boundary, and the voice starts with the crossfade. ``not_before`` is the first listener frame
    not yet committed: the window never starts earlier (the crossfade is shortened instead)."""
    sr = rules.sample_rate
    if a.side.dead_air_s:
        cut = max(not_before + JOIN_MARGIN, frames_up(a.natural_end - rules.edge) - 1)
        said = Marker(cut * FRAME, "dead_air", a.side.key, round(a.side.dead_air_s, 3))
        return plan_cut([a], (), b, cut - JOIN_MARGIN, rules.edge, voice, rules,
                        carried=(said,), previous_voice_end=previous_voice_end)
    length = crossfade_frames(requested_s, a.side.outro_s, a.side.usable, b.usable, sr)
    natural_end = a.natural_end
    origin = (natural_end - length) // FRAME * FRAME  # on the grid: a little longer, never shorter
    lead = rules.attack if voice is not None else 0
    earliest = (not_before + JOIN_MARGIN) * FRAME + lead
    if origin < earliest:
        origin = frames_up(earliest) * FRAME
    fade = max(0, natural_end - origin)
    if fade <= 0:  # no room left for a crossfade: it plays out, then b starts
        cut = frames_up(natural_end)
        return plan_cut([a], (), b, max(not_before, cut - JOIN_MARGIN), rules.edge, voice, rules,
                        previous_voice_end=previous_voice_end)
    out = a.fading_out(origin, fade)
    deck = Placement(b, origin, fade, _fade_shape(a.side, natural_end, b, origin, fade, sr))
    voices: list[VoiceSpot] = []
    ducks: list[Duck] = []
    _voice_at(voice, origin, origin - lead, previous_voice_end, rules, voices, ducks)
    first = min([origin, *(d.start for d in ducks)])
    start = max(not_before, first // FRAME - JOIN_MARGIN)
    return _close(start, [out, deck], voices, ducks, (), start * FRAME, rules)


def plan_cut(
    playing: list[Placement] | tuple[Placement, ...],
    voices_on: tuple[VoiceSpot, ...],
    b: Side | None,
    at: int,
    fade: int,
    voice: Voice | None,
    rules: Rules,
    *,
    ducks_on: tuple[Duck, ...] = (),
    carried: tuple[Marker, ...] = (),
    previous_voice_end: int = -(1 << 62),
) -> Window:
    """Everything audible fades out over ``fade`` samples from one frame after listener frame
    ``at`` (a skip, a dead-air cut, a track that ends with nothing queued); ``b``, if any, fades
    in over the same samples. Voices already speaking carry on."""
    cut = (at + JOIN_MARGIN) * FRAME
    decks: list[Placement] = []
    for d in playing:
        if d.origin > cut:  # queued, not yet audible: dropped
            continue
        decks.append(d if d.end <= cut + min(fade, d.end - cut) else
                     d.fading_out(cut, min(fade, d.end - cut)))
    voices = [v for v in voices_on if v.end > at * FRAME]
    ducks = [dk for dk in ducks_on if dk.end > at * FRAME]
    if b is not None:
        decks.append(Placement(b, cut, fade if fade > rules.edge else 0))
        last_voice = max([previous_voice_end, *(v.end for v in voices)])
        # the duck's attack runs after the cut: the frames before it are already out
        _voice_at(voice, cut, cut, last_voice, rules, voices, ducks)
    return _close(at, decks, voices, ducks, carried, at * FRAME, rules)


def cut_voice(window: Window, key: str, at: int, rules: Rules) -> Window:
    """``window`` with the voice ``key`` stopped from one frame after listener frame ``at`` (a
    revoked line): it fades out over the edge, its duck is released, and the music comes back."""
    cut = (at + JOIN_MARGIN) * FRAME
    voices: list[VoiceSpot] = []
    ducks = list(window.ducks)
    for v in window.voices:
        if v.key != key or v.end <= cut:
            voices.append(v)
            continue
        if v.start < cut:
            voices.append(replace(v, length=cut + rules.edge - v.start))
        # the release starts at the cut (it is centred on the voice's end): nothing before
        # the cut changes, those frames are out already
        ducks = [
            Duck(dk.voice_start, min(dk.voice_end, max(cut + dk.release // 2, dk.voice_start)),
                 dk.depth_db, dk.attack, dk.release)
            if dk.voice_start <= v.start < dk.voice_end else dk
            for dk in ducks
        ]
    kept = tuple(m for m in window.markers if m.frame < at * FRAME)
    # the window keeps its length: the body after it is already placed
    redone = _close(window.start, list(window.decks), voices, ducks, kept, at * FRAME, rules)
    return replace(redone, end=max(redone.end, window.end))
