"""Engine output → house format: resample to 44.1 kHz, persona chain, stereo, voice loudness.

Pure functions on numpy arrays, so the chain and the loudness target are tested without an engine.
"""

from __future__ import annotations

import logging
from math import gcd

import numpy as np
import pedalboard
import pyloudnorm
from scipy.signal import resample_poly

from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE
from dj.narrate.chain import ChainSpec, build_chain

logger = logging.getLogger(__name__)

# part of every cached clip's key: a change to the processing here renders lines anew
PROCESSING_VERSION = 2
TAIL_S = 0.35  # room for a reverb tail
# pauses inside a line are tightened to this, as a produced voice-track is: a longer pause is a
# hole down to the ducked music under it
MAX_PAUSE_S = 0.25
PAUSE_BELOW_DB = 40.0  # a 10 ms window this far under the line's loudest is a pause
PEAK_CEILING_DB = -1.0


def to_house_rate(mono: np.ndarray, rate: int) -> np.ndarray:
    mono = np.asarray(mono, dtype=np.float32).reshape(-1)
    if rate == HOUSE_SAMPLE_RATE:
        return mono
    g = gcd(HOUSE_SAMPLE_RATE, rate)
    return resample_poly(mono, HOUSE_SAMPLE_RATE // g, rate // g).astype(np.float32)


def apply_chain(mono: np.ndarray, chain: ChainSpec) -> np.ndarray:
    if not chain:
        return mono
    padded = np.concatenate([mono, np.zeros(int(TAIL_S * HOUSE_SAMPLE_RATE), np.float32)])
    out = build_chain(chain)(padded[np.newaxis, :], HOUSE_SAMPLE_RATE)[0]
    return trim_silence(out.astype(np.float32))


def trim_silence(mono: np.ndarray, threshold_db: float = -60.0) -> np.ndarray:
    """Drop leading/trailing near-silence (a voice-over should start when it is due)."""
    loud = np.flatnonzero(np.abs(mono) > 10 ** (threshold_db / 20))
    if loud.size == 0:
        return mono[:0]
    pad = int(0.02 * HOUSE_SAMPLE_RATE)
    return mono[max(0, loud[0] - pad) : loud[-1] + pad + 1]


def tighten_pauses(mono: np.ndarray, max_pause_s: float = MAX_PAUSE_S) -> np.ndarray:
    """Shorten every pause longer than ``max_pause_s`` to that length (cut in its middle, with a
    5 ms crossfade so the cut never clicks); speech itself is untouched."""
    sr = HOUSE_SAMPLE_RATE
    win = sr // 100
    n = mono.size // win
    if n < 3:
        return mono
    rms = np.sqrt(np.mean(np.square(mono[: n * win].reshape(n, win), dtype=np.float64), axis=1))
    quiet = rms < max(float(rms.max()) * 10 ** (-PAUSE_BELOW_DB / 20), 1e-6)
    keep_windows = int(max_pause_s * sr) // win
    pieces, pos, fade = [], 0, int(0.005 * sr)
    k = 0
    while k < n:
        if not quiet[k]:
            k += 1
            continue
        end = k
        while end < n and quiet[end]:
            end += 1
        if k > 0 and end < n and end - k > keep_windows:  # inner pauses only
            cut_from = (k + keep_windows // 2) * win
            cut_to = (end - (keep_windows - keep_windows // 2)) * win
            pieces.append(mono[pos:cut_from])
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            pieces.append(
                mono[cut_from : cut_from + fade] * (1 - ramp) + mono[cut_to : cut_to + fade] * ramp
            )
            pos = cut_to + fade
        k = end
    pieces.append(mono[pos:])
    return np.concatenate(pieces).astype(np.float32)


def loudness_lufs(stereo: np.ndarray) -> float:
    """Integrated loudness (ITU-R BS.1770, pyloudnorm); short audio is measured looped to 0.5 s."""
    data = stereo.T.astype(np.float64)
    min_frames = int(0.5 * HOUSE_SAMPLE_RATE)
    if len(data) < min_frames:
        data = np.tile(data, (int(np.ceil(min_frames / max(1, len(data)))), 1))
    return float(pyloudnorm.Meter(HOUSE_SAMPLE_RATE).integrated_loudness(data))


def normalise(stereo: np.ndarray, target_lufs: float) -> np.ndarray:
    """Gain to ``target_lufs``; if that would push peaks past −1 dBFS, limit and measure again."""
    level = loudness_lufs(stereo)
    if not np.isfinite(level):
        raise ValueError("speech is silent")
    out = stereo * np.float32(10 ** ((target_lufs - level) / 20))
    ceiling = 10 ** (PEAK_CEILING_DB / 20)
    if float(np.max(np.abs(out))) > ceiling:
        limiter = pedalboard.Limiter(threshold_db=PEAK_CEILING_DB - 2.0, release_ms=80.0)
        out = limiter(out.astype(np.float32), HOUSE_SAMPLE_RATE)
        level = loudness_lufs(out)
        out = out * np.float32(10 ** ((target_lufs - level) / 20))
        out = np.clip(out, -ceiling, ceiling)  # the renderer's master limiter has the final say
    return out.astype(np.float32)


def to_house(mono: np.ndarray, rate: int, chain: ChainSpec, target_lufs: float) -> np.ndarray:
    """(2, n) float32 at 44.1 kHz, chain applied, at ``target_lufs``."""
    voice = apply_chain(tighten_pauses(to_house_rate(mono, rate)), chain)
    if voice.size == 0:
        raise ValueError("speech is silent")
    stereo = np.repeat(voice[np.newaxis, :], HOUSE_CHANNELS, axis=0)
    return normalise(stereo, target_lufs)
