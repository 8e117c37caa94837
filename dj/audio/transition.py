"""Level-aware transitions: gain curves planned from the edge levels ingest measured.

An equal-power crossfade keeps the sum steady only when both tracks are at their average level.
Real endings fade and real intros start quietly, so a plain crossfade of a fading outro into a
soft intro is a hole of 5-8 LU, which a listener hears as the station going quiet. The curves
here are planned once per transition from ingest's edge levels (momentary loudness every 0.2 s),
so they need no look-ahead in the signal path and add no latency:

* :func:`fade_length` finds where an ending starts to fade, so the crossfade starts there.
* :func:`intro_ride` lifts a quiet intro as a whole towards the track's own loudness (by at most
  the configured ride).
* :func:`complementary_fade_in` brings the incoming track up as fast as the outgoing one's
  real level falls, so their summed power stays at the target; never slower than equal-power.
"""

from __future__ import annotations

import numpy as np

from dj.audio.analysis import EDGE_HOP_S, EDGE_WINDOW_S

# an intro is ridden up to this far under the track's loudness: close enough to be heard as one
# level, with a little of the intro's shape left
INTRO_WITHIN_LU = 1.5
# the incoming track never enters faster than this (a raised edge, no click)
ENTRY_S = 0.5
# a lift that never meets a body is eased back over the end of the measured head (1 dB/s at most)
EASE_BACK_S = 6.0
# a body (or, read backwards, the end of one before a fade) is 1 s (5 points) at its level
AHEAD_POINTS = 5
# the crossfade curves follow both tracks' levels smoothed over 1 s
CURVE_POINTS = 5


def level_times(count: int) -> np.ndarray:
    """Seconds from the cue point (into the track for the head, back from the cue-out for the
    tail) of the centres of ``count`` edge-level windows."""
    return EDGE_WINDOW_S / 2.0 + EDGE_HOP_S * np.arange(count)


def level_at(levels: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Edge level (LU) at ``seconds`` from the cue point, smoothed over 1 s; 0 (the track's
    average) past the measured edge, so an unmeasured track is planned as a steady one."""
    seconds = np.asarray(seconds, dtype=np.float64)
    if levels.size == 0:
        return np.zeros_like(seconds)
    level = smoothed(levels, CURVE_POINTS)
    return np.interp(seconds, level_times(levels.size), level, left=level[0], right=0.0)


def smoothed(levels_lu: np.ndarray, points: int, ahead: bool = False) -> np.ndarray:
    """Power average of each level with its ``points`` neighbours, centred on it or (``ahead``)
    starting at it; the ends repeat the edge value."""
    if points <= 1 or levels_lu.size < 2:
        return np.asarray(levels_lu, dtype=np.float64)
    power = np.power(10.0, np.asarray(levels_lu, dtype=np.float64) / 10.0)
    before = 0 if ahead else points // 2
    padded = np.pad(power, (before, points - 1 - before), mode="edge")
    mean = np.convolve(padded, np.ones(points) / points, mode="valid")
    return 10.0 * np.log10(mean)


def _body_start(levels_lu: np.ndarray, within_lu: float) -> int | None:
    """First index that, and the second from it, are within ``within_lu`` of the average."""
    ahead = smoothed(levels_lu, AHEAD_POINTS, ahead=True)
    body = np.flatnonzero((ahead >= -within_lu) & (levels_lu >= -within_lu))
    return int(body[0]) if body.size else None


def intro_ride(
    head_lu: np.ndarray, max_db: float, within_lu: float = INTRO_WITHIN_LU
) -> np.ndarray:
    """Gain in dB at each head level point: one lift for the whole intro (the points before the
    track's body starts), bringing its loudness to ``within_lu`` under the track's, by at most
    ``max_db``; 0 from the body on, placed to 0.2 s.

    One gain keeps the intro's own shape (its beat, a build-up). An opening quieter than that for
    all of the measured head (a long quiet intro, a classical piece that builds) is lifted the
    same way and eased back to 0 dB over the head's last :data:`EASE_BACK_S` seconds, as an
    operator rides a fader back once the transition is done."""
    ride = np.zeros(head_lu.size)
    if head_lu.size == 0 or max_db <= 0:
        return ride
    body = _body_start(head_lu, within_lu)
    if body == 0:
        return ride
    end = head_lu.size if body is None else body
    intro = 10.0 * np.log10(np.mean(np.power(10.0, head_lu[:end] / 10.0)))
    ride[:end] = np.clip(-within_lu - intro, 0.0, max_db)
    if body is None:
        ease = min(head_lu.size - 1, int(round(EASE_BACK_S / EDGE_HOP_S)))
        ride[head_lu.size - 1 - ease :] *= np.linspace(1.0, 0.0, ease + 1)
    return ride


def fade_length(tail_lu: np.ndarray, within_lu: float = INTRO_WITHIN_LU) -> float:
    """Seconds before the cue-out at which a track's ending starts to fade: the crossfade should
    start there, or the fade plays alone and is then faded again (a hole). 0 when it does not
    fade (or was not measured)."""
    if tail_lu.size == 0:
        return 0.0
    body = _body_start(tail_lu, within_lu)  # the tail runs backwards: "ahead" is earlier audio
    if body is None or body == 0:
        return 0.0
    return float(level_times(tail_lu.size)[body])


def complementary_fade_in(
    x: np.ndarray, out_db: np.ndarray, in_db: np.ndarray, entry: float
) -> np.ndarray:
    """Incoming gain at fractions ``x`` (0..1) of a crossfade whose outgoing curve is the
    equal-power ``cos``.

    ``out_db`` and ``in_db`` are the two tracks' levels at those points relative to the target
    (after any intro ride). The incoming gain makes ``out_gain² · out_power + in_gain² ·
    in_power`` equal to the target wherever it can, is never below the equal-power ``sin``
    curve, only rises, reaches 1 at the end, and starts from 0 over ``entry`` (a fraction)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    g_out2 = np.cos(0.5 * np.pi * x) ** 2
    p_out = np.power(10.0, np.asarray(out_db, dtype=np.float64) / 10.0)
    p_in = np.power(10.0, np.asarray(in_db, dtype=np.float64) / 10.0)
    gain = np.sqrt(np.clip((1.0 - g_out2 * p_out) / p_in, 0.0, 1.0))
    gain = np.maximum.accumulate(np.maximum(gain, np.sin(0.5 * np.pi * x)))
    if entry > 0:
        gain = np.minimum(gain, np.sin(0.5 * np.pi * np.clip(x / entry, 0.0, 1.0)))
    return gain
