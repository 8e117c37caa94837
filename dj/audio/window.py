"""Rendering one transition window (dj.audio.segments.Window) into MP3 frames for one listener.

The window's tracks come from their bodies' mastered samples, so wherever only one track plays
at full gain the mix *is* that body's samples, bit for bit. The mix is ducked under the voice,
the voice added, and the sum limited by :func:`dj.audio.mastering.limit_window` (the identity
where nothing is over the ceiling, as at both joins). It is encoded on the listener's frame grid
from :data:`PRE_ROLL` frames before the first kept frame to :data:`POST_ROLL` frames after the
last; those extra frames are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dj.audio.bodies import Body
from dj.audio.decode import HouseReader
from dj.audio.dsp import duck_envelope
from dj.audio.encode import FRAME_SAMPLES as FRAME
from dj.audio.encode import encode_frames
from dj.audio.mastering import limit_window
from dj.audio.segments import POST_ROLL, PRE_ROLL, Window
from dj.config import HOUSE_SAMPLE_RATE


class WindowFrames:
    """A rendered window's kept frames, from listener frame ``first`` to the window's end."""

    def __init__(self, window: Window, first: int, data: bytes, offsets: np.ndarray) -> None:
        self.window = window
        self.first = first
        self.data = data
        self.offsets = offsets

    def frame_bytes(self, lo: int, hi: int) -> bytes:
        """Listener frames ``[lo, hi)`` (within the window)."""
        a, b = lo - self.first, hi - self.first
        return self.data[self.offsets[a] : self.offsets[b]]


def mix_window(
    window: Window,
    lo: int,
    hi: int,
    bodies: Mapping[str, Body],
    voices: Mapping[str, np.ndarray],
    edge: int,
) -> np.ndarray:
    """The window's mix over listener samples ``[lo, hi)``, before the limiter."""
    n = hi - lo
    mix = np.zeros((2, n), np.float32)
    for deck in window.decks:
        a, b = max(lo, deck.origin), min(hi, deck.end)
        if b <= a:
            continue
        body = bodies[deck.side.key]
        with HouseReader(body.path) as reader:
            data = body.samples(reader, a - deck.origin, b - a)
        env = deck.envelope(a, b - a, edge)
        if isinstance(env, float):
            mix[:, a - lo : b - lo] += data
        else:
            mix[:, a - lo : b - lo] += data * env
    for dk in window.ducks:
        a, b = max(lo, dk.start), min(hi, dk.end)
        if b > a:
            mix[:, a - lo : b - lo] *= duck_envelope(np.arange(a, b, dtype=np.int64), [dk])
    for v in window.voices:
        audio = voices.get(v.key)
        if audio is None:
            continue
        a, b = max(lo, v.start), min(hi, v.end)
        if b > a:
            part = audio[:, a - v.start : b - v.start]
            mix[:, a - lo : a - lo + part.shape[1]] += part
            if v.end < v.start + audio.shape[1]:  # cut short (a revoked line): no click
                tail = min(edge, part.shape[1])
                if b == v.end and tail > 0:
                    mix[:, b - lo - tail : b - lo] -= part[:, -tail:] * np.linspace(
                        0.0, 1.0, tail, dtype=np.float32
                    )
    return mix


def render_window(
    window: Window,
    first: int,
    bodies: Mapping[str, Body],
    voices: Mapping[str, np.ndarray],
    *,
    edge: int,
    ceiling_db: float,
    bitrate_kbps: int = 128,
    sample_rate: int = HOUSE_SAMPLE_RATE,
) -> WindowFrames:
    """Listener frames ``[first, window.end)`` of ``window`` as MP3 frames."""
    lo = (first - PRE_ROLL) * FRAME
    hi = (window.end + POST_ROLL) * FRAME
    mix = limit_window(mix_window(window, lo, hi, bodies, voices, edge), ceiling_db, sample_rate)
    data, offsets = encode_frames(mix, bitrate_kbps, sample_rate)
    keep = window.end - first
    if len(offsets) - 1 < PRE_ROLL + keep:
        raise RuntimeError("the encoder returned fewer frames than the window holds")
    a, b = offsets[PRE_ROLL], offsets[PRE_ROLL + keep]
    return WindowFrames(window, first, data[a:b], offsets[PRE_ROLL : PRE_ROLL + keep + 1] - a)
