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

TAIL_S = 0.35  # room for a reverb tail
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
    return mono[max(0, loud[0] - pad): loud[-1] + pad + 1]


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
    voice = apply_chain(to_house_rate(mono, rate), chain)
    if voice.size == 0:
        raise ValueError("speech is silent")
    stereo = np.repeat(voice[np.newaxis, :], HOUSE_CHANNELS, axis=0)
    return normalise(stereo, target_lufs)
