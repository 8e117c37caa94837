"""What ingest measures of a track, once: loudness (ITU-R BS.1770 via pyloudnorm), true peak,
the gain to the station's target, cue points, a sensible outro crossfade length, and how loud each
end of the track is (the edge levels transitions are planned on).

Cue points use levels *relative to the track's own loudness*, so a quiet classical piece and a
loud pop master are trimmed alike: leading and trailing silence go, and so does the inaudible end
of a long fade (it would only sound like a gap under the next track's crossfade).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.signal import lfilter, resample_poly

from dj.audio.dsp import window_rms_db

logger = logging.getLogger(__name__)

# cue-in: the first 10 ms window louder than loudness - 45 dB (never below -70 dBFS)
CUE_IN_BELOW_LU = 45.0
# cue-out: the end of the last 100 ms window louder than loudness - 30 dB (never below -70 dBFS)
CUE_OUT_BELOW_LU = 30.0
# a track's "body" is louder than loudness - 8 dB (400 ms windows); after its end a fade begins
BODY_BELOW_LU = 8.0
FLOOR_DBFS = -70.0
# transitions: the loudness of each end of a track, in momentary (400 ms) windows every 0.2 s
# over EDGE_S seconds: fine enough to place a gain change on an intro's first downbeat
EDGE_S = 20.0
EDGE_HOP_S = 0.2
EDGE_WINDOW_S = 0.4
EDGE_FLOOR_LU = -60.0
EDGE_SETTLE_S = 0.5  # audio before a measured edge that the K-weighting filters run in on
TRUE_PEAK_OVERSAMPLING = 4
_MIN_LOUDNESS_S = 0.4  # BS.1770 gating blocks are 400 ms


class SilentAudioError(ValueError):
    """The audio has no audible content at all."""


@dataclass(frozen=True, slots=True)
class TrackAnalysis:
    """Same fields as :class:`dj.catalog.models.Analysis`: ingest does ``Analysis(**asdict(a))``."""

    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    gain_db: float
    cue_in_s: float
    cue_out_s: float
    outro_s: float
    head_lu: bytes = b""  # edge levels (see :func:`edge_levels`), packed by :func:`pack_levels`
    tail_lu: bytes = b""


def integrated_loudness(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS of ``(channels, frames)`` audio; ``-inf`` for digital silence.

    Clips shorter than one 400 ms gating block are measured looped to that length."""
    x = np.asarray(audio, dtype=np.float64)
    need = int(math.ceil(_MIN_LOUDNESS_S * sr)) + 1
    if x.shape[1] == 0:
        return float("-inf")
    if x.shape[1] < need:
        x = np.tile(x, (1, need // x.shape[1] + 1))
    return float(pyloudnorm.Meter(sr).integrated_loudness(x.T))


def true_peak_dbtp(
    audio: np.ndarray, oversampling: int = TRUE_PEAK_OVERSAMPLING, chunk: int = 1 << 18
) -> float:
    """Peak level of the oversampled signal (BS.1770-style true peak), in dBTP.

    Works in overlapping chunks so a three-minute track never needs a 4× copy in memory."""
    x = np.asarray(audio, dtype=np.float32)
    n = x.shape[-1]
    if n == 0:
        return float("-inf")
    overlap = 64
    peak = 0.0
    for start in range(0, n, chunk):
        lo = max(0, start - overlap)
        hi = min(n, start + chunk + overlap)
        up = resample_poly(x[:, lo:hi], oversampling, 1, axis=1)
        # drop the filter's edge transients of interior chunks (they belong to the neighbours)
        a = (start - lo) * oversampling
        b = up.shape[1] - (hi - min(n, start + chunk)) * oversampling
        peak = max(
            peak,
            float(np.max(np.abs(up[:, a:b]))),
            float(np.max(np.abs(x[:, start : start + chunk]))),
        )
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


def _smooth_db(levels_db: np.ndarray, width: int) -> np.ndarray:
    if levels_db.size == 0 or width <= 1:
        return levels_db
    power = np.power(10.0, levels_db / 10.0)
    kernel = np.ones(width) / width
    return 10.0 * np.log10(np.maximum(np.convolve(power, kernel, mode="same"), 1e-20))


def find_cues(audio: np.ndarray, sr: int, loudness_lufs: float) -> tuple[float, float, float]:
    """``(cue_in_s, cue_out_s, fade_s)``: where audible content starts and ends, and how long the
    ending fade is (from the end of the track's body to the cue-out)."""
    duration = audio.shape[1] / sr
    fine = max(1, sr // 100)
    coarse = max(1, sr // 10)
    in_level = window_rms_db(audio, fine)
    in_threshold = max(loudness_lufs - CUE_IN_BELOW_LU, FLOOR_DBFS)
    above = np.flatnonzero(in_level > in_threshold)
    if above.size == 0:
        return 0.0, duration, 0.0
    cue_in = above[0] * fine / sr

    out_level = _smooth_db(window_rms_db(audio, coarse), 3)
    out_threshold = max(loudness_lufs - CUE_OUT_BELOW_LU, FLOOR_DBFS)
    loud = np.flatnonzero(out_level > out_threshold)
    cue_out = min(duration, (loud[-1] + 1) * coarse / sr) if loud.size else duration
    # the remainder shorter than one coarse window is kept when the track is loud to its end
    if loud.size and loud[-1] == out_level.size - 1:
        cue_out = duration
    if cue_out <= cue_in:
        cue_out = duration

    body_level = _smooth_db(window_rms_db(audio, coarse), 4)
    body = np.flatnonzero(body_level > loudness_lufs - BODY_BELOW_LU)
    body_end = (body[-1] + 1) * coarse / sr if body.size else cue_out
    fade = max(0.0, cue_out - max(body_end, cue_in))
    return float(cue_in), float(cue_out), float(fade)


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The BS.1770 K-weighting filter stages as ``(b, a)`` pairs, as pyloudnorm designs them for
    this rate (so a hand-rolled meter measures exactly what pyloudnorm does)."""
    meter = pyloudnorm.Meter(sample_rate)
    return [(np.asarray(f.b, float), np.asarray(f.a, float)) for f in meter._filters.values()]


def momentary_levels(audio: np.ndarray, sr: int, hop: int, win: int, settle: int) -> np.ndarray:
    """Loudness (LUFS) of ``win``-frame windows every ``hop`` frames, the first one starting
    ``settle`` frames into ``audio`` (the filters' start-up transient is left before it)."""
    y = np.asarray(audio, dtype=np.float64)
    for b, a in k_weighting(sr):
        y = lfilter(b, a, y, axis=1)
    power = np.concatenate([[0.0], np.cumsum(np.sum(y * y, axis=0))])
    starts = np.arange(settle, y.shape[1] - win + 1, hop)
    mean = (power[starts + win] - power[starts]) / win
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(mean)


def edge_levels(
    audio: np.ndarray, sr: int, loudness_lufs: float, cue_in_s: float, cue_out_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """How loud each end of a track is, relative to its integrated loudness (LU), so transitions
    can be planned on the music's real level rather than its average: ``head[k]`` is the
    momentary loudness of the 400 ms window starting ``k`` × 0.2 s after the cue-in, ``tail[k]``
    of the one ending ``k`` × 0.2 s before the cue-out (``tail[0]`` is the very end). Each covers
    at most :data:`EDGE_S` seconds, and at most the usable audio."""
    win, hop = int(EDGE_WINDOW_S * sr), int(EDGE_HOP_S * sr)
    settle = int(EDGE_SETTLE_S * sr)
    lo, hi = int(round(cue_in_s * sr)), min(audio.shape[1], int(round(cue_out_s * sr)))
    count = max(0, min(int((EDGE_S - EDGE_WINDOW_S) / EDGE_HOP_S) + 1, (hi - lo - win) // hop + 1))
    if count == 0:
        return np.zeros(0), np.zeros(0)
    span = win + (count - 1) * hop

    def levels(start: int) -> np.ndarray:
        pre = min(settle, start)
        measured = momentary_levels(audio[:, start - pre : start + span], sr, hop, win, pre)
        return np.clip(np.nan_to_num(measured - loudness_lufs, neginf=EDGE_FLOOR_LU),
                       EDGE_FLOOR_LU, 40.0)[:count]

    return levels(lo), levels(hi - span)[::-1]


def pack_levels(levels: np.ndarray) -> bytes:
    """Edge levels as int8 in half-LU steps (under 100 bytes per end: the catalog keeps them in
    memory)."""
    return np.clip(np.round(np.asarray(levels) * 2.0), -128, 127).astype(np.int8).tobytes()


def unpack_levels(packed: bytes) -> np.ndarray:
    return np.frombuffer(packed, dtype=np.int8).astype(np.float64) / 2.0


def outro_length(usable_s: float, fade_s: float, crossfade_s: float) -> float:
    """The suggested crossfade for a track's ending.

    The default crossfade for an ordinary ending; a track that fades out gets its fade ridden
    (up to twice the default); a short track gets at most a third of its usable length, so its
    own fade-in and fade-out never meet.
    """
    outro = crossfade_s
    if fade_s > crossfade_s:
        outro = min(fade_s, 2.0 * crossfade_s)
    return float(max(0.0, min(outro, usable_s / 3.0)))


def analyse(
    audio: np.ndarray, sr: int = 44_100, target_lufs: float = -14.0, crossfade_s: float = 4.0
) -> TrackAnalysis:
    """Measure ``(channels, frames)`` float audio. Raises :class:`SilentAudioError` for audio
    with nothing audible in it.

    The gain brings the integrated loudness to ``target_lufs`` whatever that does to the peaks:
    a quiet, peaky master may be pushed over the ceiling, and the master limiter then takes the
    excess (logged, since heavy limiting is audible and such a file deserves a look)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    duration = audio.shape[1] / sr
    if audio.shape[1] == 0 or not np.any(audio):
        raise SilentAudioError("silent throughout")
    loudness = integrated_loudness(audio, sr)
    if not math.isfinite(loudness) or loudness < FLOOR_DBFS:
        raise SilentAudioError(f"silent throughout (loudness {loudness:.1f} LUFS)")
    peak = true_peak_dbtp(audio)
    gain = target_lufs - loudness
    if peak + gain > -1.0:
        logger.debug(
            "gain %.1f dB puts the true peak at %+.1f dBTP; the master limiter takes %.1f dB",
            gain,
            peak + gain,
            peak + gain + 1.0,
        )
    cue_in, cue_out, fade = find_cues(audio, sr, loudness)
    head, tail = edge_levels(audio, sr, loudness, cue_in, cue_out)
    return TrackAnalysis(
        duration_s=round(duration, 6),
        loudness_lufs=round(loudness, 3),
        true_peak_dbtp=round(peak, 3),
        gain_db=round(gain, 3),
        cue_in_s=round(cue_in, 4),
        cue_out_s=round(cue_out, 4),
        outro_s=round(outro_length(cue_out - cue_in, fade, crossfade_s), 3),
        head_lu=pack_levels(head),
        tail_lu=pack_levels(tail),
    )
