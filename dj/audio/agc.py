"""A slow automatic gain control (the "AGC" stage of a broadcast processor) ahead of the limiter.

Per-track gain at ingest puts every track at the target on average, but a quiet intro, a long
fade-out or a break still sits several LU under it, and at a transition they meet: measured on the
demo programme, short-term loudness sagged 4-6 LU at every crossfade. This stage rides the level
back toward the target with a time constant of seconds, within ``range_db``, so the programme
keeps an even level through transitions while the music's phrasing (faster than the window) is
left alone. Near-silence is gated: there the rider relaxes toward 0 dB instead of pumping up
noise.

Loudness is K-weighted (ITU-R BS.1770, the filters pyloudnorm uses) and measured on the incoming
signal (feed-forward, so the loop cannot oscillate). Every stage is a linear one-pole filter run
per sample with carried state, so the output does not depend on how the stream is cut into
blocks.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter, lfilter_zi

from dj.audio.analysis import k_weighting

GATE_WINDOW_S = 0.4  # the momentary window decides what counts as near-silence


def _one_pole(time_s: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    keep = math.exp(-1.0 / (time_s * sample_rate))
    return np.array([1.0 - keep]), np.array([1.0, -keep])


class LevelRider:
    def __init__(
        self,
        target_lufs: float = -14.0,
        range_db: float = 6.0,
        window_s: float = 3.0,
        speed_db_s: float = 3.0,
        gate_lufs: float = -45.0,
        sample_rate: int = 44_100,
        channels: int = 2,
    ) -> None:
        self.target_lufs = target_lufs
        self.range_db = range_db
        self.gate_lufs = gate_lufs
        self.sample_rate = sample_rate
        self._target_power = 10 ** ((target_lufs + 0.691) / 10)
        self._gate_power = 10 ** ((gate_lufs + 0.691) / 10)
        self._k = k_weighting(sample_rate)
        self._k_state = [np.zeros((channels, len(lfilter_zi(b, a)))) for b, a in self._k]
        self._gate = _one_pole(GATE_WINDOW_S, sample_rate)
        self._level = _one_pole(window_s, sample_rate)
        # the gain follows what is wanted with a time constant that moves `range_db` in about
        # range_db / speed_db_s seconds
        self._smooth = _one_pole(max(range_db / max(speed_db_s, 1e-3), 0.05) / 3, sample_rate)
        # start as if the programme had been at the target: no jump at the first block
        self._gate_zi = lfilter_zi(*self._gate) * self._target_power
        self._level_zi = lfilter_zi(*self._level) * self._target_power
        self._smooth_zi = np.zeros(1)
        self._gain = 0.0

    @property
    def enabled(self) -> bool:
        return self.range_db > 0

    @property
    def gain_db(self) -> float:
        """The gain at the end of the last block."""
        return self._gain

    def gains_db(self, block: np.ndarray) -> np.ndarray:
        """The per-sample gain in dB that :meth:`process` applies to ``block`` (channels, n); it
        advances the state just as :meth:`process` does. Zeros when off."""
        n = block.shape[1]
        if not self.enabled or n == 0:
            return np.zeros(n)
        y = block.astype(np.float64)
        for i, (b, a) in enumerate(self._k):
            y, self._k_state[i] = lfilter(b, a, y, axis=1, zi=self._k_state[i])
        power = np.sum(y * y, axis=0)
        fast, self._gate_zi = lfilter(*self._gate, power, zi=self._gate_zi)
        power = np.where(fast > self._gate_power, power, self._target_power)
        level, self._level_zi = lfilter(*self._level, power, zi=self._level_zi)
        loudness = -0.691 + 10 * np.log10(np.maximum(level, 1e-12))
        wanted = np.clip(self.target_lufs - loudness, -self.range_db, self.range_db)
        gain_db, self._smooth_zi = lfilter(*self._smooth, wanted, zi=self._smooth_zi)
        self._gain = float(gain_db[-1])
        return gain_db

    def process(self, block: np.ndarray) -> np.ndarray:
        """Ride ``block`` (channels, n) toward the target."""
        if not self.enabled or block.shape[1] == 0:
            return block
        return (block * np.power(10.0, self.gains_db(block) / 20.0)).astype(np.float32)
