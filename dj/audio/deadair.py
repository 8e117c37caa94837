"""Dead-air detection: how long the output has been (and would stay) below the silence threshold.

Levels are measured on short windows so a single transient does not count as sound and a short
pause in the music does not count as dead air until it lasts ``dead_air_s``.
"""

from __future__ import annotations

import numpy as np

from dj.audio.dsp import window_rms_db

WINDOW_S = 0.05


def silent_windows(audio: np.ndarray, sample_rate: int, threshold_dbfs: float) -> np.ndarray:
    """A boolean per ``WINDOW_S`` window of ``audio``: True where it is below ``threshold_dbfs``.
    A trailing partial window is measured on its own."""
    window = max(1, int(sample_rate * WINDOW_S))
    levels = window_rms_db(audio, window)
    rest = audio.shape[-1] - levels.size * window
    if rest > 0:
        levels = np.append(levels, window_rms_db(audio[..., -rest:], rest))
    return levels < threshold_dbfs


def trailing_silence(audio: np.ndarray, sample_rate: int, threshold_dbfs: float) -> int:
    """Frames of silence at the end of ``audio`` (whole windows; all of it when all silent)."""
    silent = silent_windows(audio, sample_rate, threshold_dbfs)
    if silent.size == 0:
        return 0
    if silent.all():
        return audio.shape[-1]
    loud = np.flatnonzero(~silent)
    window = max(1, int(sample_rate * WINDOW_S))
    return max(0, audio.shape[-1] - (int(loud[-1]) + 1) * window)


def is_silent(audio: np.ndarray, sample_rate: int, threshold_dbfs: float) -> bool:
    return bool(silent_windows(audio, sample_rate, threshold_dbfs).all())


class DeadAirDetector:
    """Follows the output block by block and tells how long it has been silent."""

    def __init__(
        self, sample_rate: int, threshold_dbfs: float = -50.0, limit_s: float = 2.0
    ) -> None:
        self.sample_rate = sample_rate
        self.threshold_dbfs = threshold_dbfs
        self.limit_frames = int(round(limit_s * sample_rate))
        self.silent_frames = 0

    def feed(self, block: np.ndarray) -> int:
        """Account for a rendered block; returns the current silent run in frames."""
        tail = trailing_silence(block, self.sample_rate, self.threshold_dbfs)
        if tail == block.shape[-1]:
            self.silent_frames += tail
        else:
            self.silent_frames = tail
        return self.silent_frames

    def reset(self) -> None:
        self.silent_frames = 0

    @property
    def exceeded(self) -> bool:
        return self.silent_frames > self.limit_frames
