"""Per-track mastering as a gain curve, and the offline limiter for rendered transitions.

The spliced stream shares each track's mastered, encoded body among all listeners and renders
only the transitions per listener; a join is inaudible only if the samples on both sides are
identical, so a track's mastering cannot depend on what a listener heard before it. It is
therefore a gain curve computed once over the track alone (loudness gain x the slow level ride
x a lookahead limiter), stored as control points every :data:`CURVE_HOP` samples and
interpolated identically wherever the track's samples are used: in its body and inside
transitions.

A transition sums already-mastered tracks with fades and a voice, which may go over the
ceiling, so it passes through :func:`limit_window`: the same limiter, offline over the whole
window, which is exactly the identity wherever nothing nearby is over the ceiling. The window's
edges, one mastered body alone, thus come out bit-identical and meet the shared body cleanly.

The limiter works on control points, not samples: each point gets the smallest gain any sample
it influences needs (so the interpolated gain never exceeds what a sample needs), then a
lookahead attack (a running minimum ahead, smoothed by a moving average of the same length, so
the gain ramps down before a peak instead of stepping) and a release that rises back at a fixed
rate in dB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import firwin, oaconvolve

from dj.audio.agc import LevelRider
from dj.audio.analysis import TRUE_PEAK_OVERSAMPLING
from dj.audio.master import DEFAULT_MARGIN_DB
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig

CURVE_HOP: int = 64  # samples between control points

ATTACK_S = 0.005  # lookahead: the gain is all the way down this long before a peak
RELEASE_DB_PER_S = 6.0 / 0.150  # recovers 6 dB in 150 ms, the live master chain's release
# Track curves aim this far under the ceiling: the gain moving across the oversampling filter's
# span lets the mastered body overshoot the target by a few thousandths of a dB, and a body at a
# transition's edge must not trip limit_window (which would then touch the edge samples).
TRACK_HEADROOM_DB = 0.02

# The true-peak detector interpolates with the filter resample_poly uses for 4x, the one
# dj.audio.analysis.true_peak_dbtp measures with, run as one overlap-add convolution per phase
# (2.5x faster than resample_poly, which also computes the trivial phase 0 the long way).
_UP = TRUE_PEAK_OVERSAMPLING
_HALF = 10 * _UP
_FILTER = firwin(2 * _HALF + 1, 1.0 / _UP, window=("kaiser", 5.0)) * _UP
_REACH = _HALF // _UP  # input samples the filter spans each side
_PHASES = np.stack([_FILTER[p::_UP][: 2 * _REACH] for p in range(1, _UP)]).astype(np.float32)
# phase 0 is the sample itself times the centre tap (1.0006: resample_poly's normalisation)
_CENTRE = np.float32(max(_FILTER[_HALF], 1.0))

_CHUNK = 1 << 16  # samples oversampled at a time: bounds memory on a whole track
_OVERLAP = 64  # context each side of a chunk, well over the filter's reach
# samples at each end of a window whose oversampled values depend on the zero padding beyond it
_EDGE = _REACH + 2


def ceiling_db(config: AudioConfig) -> float:
    """The limiters' ceiling in dBTP: under the configured true-peak limit by the margin the MP3
    encoder's overshoot needs (see :mod:`dj.audio.master`)."""
    return config.true_peak_dbtp - DEFAULT_MARGIN_DB


def _interpolated(curve: np.ndarray, offset: int, n: int) -> np.ndarray:
    """The curve's gain at absolute samples offset..offset+n-1, float32.

    Each sample's value is one fixed float32 expression of its two control points and its
    position within the hop, so any split of a range gives bit-identical gains."""
    if n == 0:
        return np.empty(0, np.float32)
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    first = offset // CURVE_HOP
    last = (offset + n - 1) // CURVE_HOP
    if last + 1 >= len(curve):
        raise ValueError(
            f"samples up to {offset + n} need {last + 2} control points, the curve has {len(curve)}"
        )
    points = np.asarray(curve, dtype=np.float32)
    start = points[first : last + 1]
    step = points[first + 1 : last + 2] - start
    # k / 64 is exact in float32
    frac = np.arange(CURVE_HOP, dtype=np.float32) / np.float32(CURVE_HOP)
    gains = (start[:, None] + step[:, None] * frac[None, :]).reshape(-1)
    skip = offset - first * CURVE_HOP
    return gains[skip : skip + n]


def apply_curve(audio: np.ndarray, curve: np.ndarray, offset: int) -> np.ndarray:
    """Body samples [offset, offset + n) ``audio`` (channels, n) times the curve at those
    absolute positions, float32; bit-identical however a range is split into calls."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio * _interpolated(curve, offset, audio.shape[1])[None, :]


def _sample_peaks(
    read: Callable[[int, int], np.ndarray], n: int, *, zero_padded_edges: bool
) -> np.ndarray:
    """Per sample t, the largest absolute value across channels of the signal at t and of its
    4x-oversampled points between t-1 and t+1 (float32, length n).

    Both samples next to an inter-sample peak answer for it, so it is held down whichever way
    the gain moves between them. ``read(lo, hi)`` gives samples [lo, hi) (channels, hi - lo)
    float32. With ``zero_padded_edges`` False the first and last few samples count by their own
    value only: the oversampling filter would otherwise see a step into the silence beyond the
    ends, which a window cut out of a continuous stream does not have."""
    peaks = np.empty(n, np.float32)
    for start in range(0, n, _CHUNK):
        end = min(n, start + _CHUNK)
        lo = max(0, start - _OVERLAP)
        hi = min(n, end + _OVERLAP)
        x = read(lo, hi)
        # phase p of sample s is the point p/4 of the way from s to s + 1; as a correlation with
        # the filter's phases it is full-convolution index (s - lo) + _REACH
        inter = oaconvolve(x[None], _PHASES[:, None, :], axes=2)
        s0 = max(start - 1, 0)
        a, b = s0 - lo, end - lo
        ahead = np.abs(x[:, a:b]).max(axis=0) * _CENTRE
        np.maximum(ahead, np.abs(inter[:, :, a + _REACH : b + _REACH]).max(axis=(0, 1)), out=ahead)
        if start == 0:
            peaks[0] = ahead[0]
            peaks[1:end] = np.maximum(ahead[1:], ahead[:-1])
        else:
            peaks[start:end] = np.maximum(ahead[1:], ahead[:-1])
    if not zero_padded_edges:
        edge = min(_EDGE, n)
        for lo, hi in ((0, edge), (n - edge, n)):
            peaks[lo:hi] = np.abs(read(lo, hi)).max(axis=0)
    return peaks


def _point_peaks(peaks: np.ndarray, points: int) -> np.ndarray:
    """Per control point, the largest sample peak it influences (float64, length ``points``).

    Point k is interpolated into the hops starting at points k-1 and k, so it answers for
    samples [(k-1)H, (k+1)H)."""
    n = len(peaks)
    whole = n // CURVE_HOP
    hops = np.zeros(points + 1)  # hops[j + 1] is hop j; hops[0] is the nothing before sample 0
    hops[1 : whole + 1] = peaks[: whole * CURVE_HOP].reshape(whole, CURVE_HOP).max(axis=1)
    if n > whole * CURVE_HOP:
        hops[whole + 1] = peaks[whole * CURVE_HOP :].max()
    return np.maximum(hops[:-1], hops[1:])


def _limiter_gains(point_peaks: np.ndarray, ceiling: float, sample_rate: int) -> np.ndarray:
    """Limiter gain per control point (float64, <= 1): never above what the point's samples
    need to stay under the linear ``ceiling``, and exactly 1.0 wherever nothing within the
    attack and release spans is over it."""
    required = np.ones(len(point_peaks))
    hot = point_peaks > ceiling
    if not hot.any():
        return required
    required[hot] = ceiling / point_peaks[hot]
    span = 1 + int(np.ceil(ATTACK_S * sample_rate / (2 * CURVE_HOP)))
    pad = span - 1
    k = len(required)
    # unity beyond both ends: nothing there needs reduction, and the attack can start before
    # point 0 (its ramp is simply cut)
    padded = np.concatenate([np.ones(pad), required, np.ones(pad)])
    # running minimum over the next `span` points (those at points -pad .. k-1)
    ahead = padded[: k + pad].copy()
    for i in range(1, span):
        np.minimum(ahead, padded[i : i + k + pad], out=ahead)
    # release: at most `rise` dB up per point, i.e. g[i] = min over j <= i of a[j] + (i-j)*rise,
    # a cumulative minimum once the ramp is taken out
    rise = RELEASE_DB_PER_S * CURVE_HOP / sample_rate
    ramp = np.arange(k + pad) * rise
    ahead_db = 20.0 * np.log10(ahead)
    held_db = ramp + np.minimum.accumulate(ahead_db - ramp)
    # the ramp's rounding (~1e-12 dB) must not keep a recovered point off exactly 1.0
    held_db[held_db > -1e-9] = 0.0
    held = np.power(10.0, held_db / 20.0)
    # moving average over the last `span` points: the step down becomes a ramp and still
    # reaches each point's minimum by that point, as every term already has
    smooth = held[:k].copy()
    for i in range(1, span):
        smooth += held[i : i + k]
    smooth /= span
    # rounding aside the average is already <= required; this makes it so
    return np.minimum(smooth, required)


def track_curve(
    audio: np.ndarray,
    *,
    gain_db: float,
    config: AudioConfig,
    sample_rate: int = HOUSE_SAMPLE_RATE,
) -> np.ndarray:
    """Control points (float32, 1-D, length n // CURVE_HOP + 2) of the linear gain that masters
    a track body on its own.

    ``audio`` is float32 (channels, n): the track's house-format samples from its cue-in to its
    cue-out. The gain is the loudness gain ``10**(gain_db/20)`` x a fresh level rider's ride
    toward ``config.target_lufs`` (``config.agc_*``; range 0 is off) x a lookahead limiter, so
    that ``apply_curve(audio, curve, 0)`` has a true peak (4x oversampled) at most
    :func:`ceiling_db` (aimed :data:`TRACK_HEADROOM_DB` under it)."""
    audio = np.asarray(audio, dtype=np.float32)
    channels, n = audio.shape
    points = n // CURVE_HOP + 2
    gain = 10.0 ** (gain_db / 20.0)
    base = np.full(points, gain)
    rider = LevelRider(
        config.target_lufs,
        config.agc_range_db,
        config.agc_window_s,
        config.agc_speed_db_s,
        sample_rate=sample_rate,
        channels=channels,
    )
    if rider.enabled and n > 0:
        # the ride moves over seconds: its value at each point is all the curve needs
        at = np.minimum(np.arange(points) * CURVE_HOP, n - 1)
        ride_db = np.empty(points)
        for start in range(0, n, _CHUNK):
            block = audio[:, start : start + _CHUNK] * np.float32(gain)
            ride = rider.gains_db(block)
            first, last = np.searchsorted(at, [start, start + block.shape[1]])
            ride_db[first:last] = ride[at[first:last] - start]
        base *= np.power(10.0, ride_db / 20.0)
    if n == 0:
        return base.astype(np.float32)
    # the limiter sees exactly what the rest of the curve makes of the track
    before = base.astype(np.float32)
    peaks = _sample_peaks(
        lambda lo, hi: apply_curve(audio[:, lo:hi], before, lo),
        n,
        zero_padded_edges=True,
    )
    ceiling = 10.0 ** ((ceiling_db(config) - TRACK_HEADROOM_DB) / 20.0)
    limit = _limiter_gains(_point_peaks(peaks, points), ceiling, sample_rate)
    # both neighbouring points' limiter gains are <= a sample's need, so the product's
    # interpolation is <= the other gains' interpolation times that need
    return (base * limit).astype(np.float32)


def limit_window(
    mix: np.ndarray, ceiling: float, sample_rate: int = HOUSE_SAMPLE_RATE
) -> np.ndarray:
    """A rendered transition window (channels, n) held to ``ceiling`` dBTP, as a new array of
    ``mix``'s dtype: samples with nothing over the ceiling within the attack and release spans
    are bit-identical to ``mix``. No delay: the whole window is there to look ahead into.

    The first and last few samples' inter-sample peaks are not checked against the silence
    beyond the window (there is none in the stream); a window's edges are a mastered body
    alone, already under the ceiling."""
    out = np.array(mix, copy=True)
    n = out.shape[1]
    if n == 0:
        return out
    x = np.asarray(mix, dtype=np.float32)
    peaks = _sample_peaks(lambda lo, hi: x[:, lo:hi], n, zero_padded_edges=False)
    points = n // CURVE_HOP + 2
    limit = _limiter_gains(_point_peaks(peaks, points), 10.0 ** (ceiling / 20.0), sample_rate)
    if np.all(limit == 1.0):
        return out
    gains = _interpolated(limit.astype(np.float32), 0, n)
    # only where the gain is under 1, so the rest is untouched whatever the dtype
    cut = gains < 1.0
    out[:, cut] = (mix[:, cut] * gains[cut]).astype(out.dtype)
    return out
