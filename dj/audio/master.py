"""The master chain: the last stage before the encoder, one per session.

A pedalboard ``BrickwallLimiter`` (lookahead, no makeup gain) with its true-peak sidechain (4×
oversampled detection) holds the ceiling. Its ceiling sits ``margin_db`` under the configured
true-peak limit because oversampled detection "substantially reduces" but does not remove
inter-sample overshoot; measured on hot square-wave chords, real music and noise pushed 13 dB
over full scale, the output true peak (4× oversampled) stays within 0.02 dB of the limiter's
ceiling, so a 0.3 dB margin keeps ≤ −1 dBTP with room to spare.

The limiter has lookahead latency: the renderer mixes that many frames ahead and this class hands
back exactly as many frames as it was given once primed (see :meth:`process`). Output frame ``k``
is input frame ``k`` (pedalboard compensates the delay), so markers stay sample-accurate.
"""

from __future__ import annotations

import logging

import numpy as np
from pedalboard import BrickwallLimiter

from dj.audio.agc import LevelRider
from dj.config import HOUSE_SAMPLE_RATE

logger = logging.getLogger(__name__)

DEFAULT_MARGIN_DB = 0.3


class MasterChain:
    """Stateful limiter across blocks (``reset=False``): no discontinuity at block edges."""

    def __init__(
        self,
        true_peak_dbtp: float = -1.0,
        margin_db: float = DEFAULT_MARGIN_DB,
        release_ms: float = 150.0,
        lookahead_ms: float = 5.0,
        true_peak: bool = True,
        sample_rate: int = HOUSE_SAMPLE_RATE,
        rider: LevelRider | None = None,
    ) -> None:
        self.rider = rider
        self.ceiling_db = true_peak_dbtp - margin_db
        self.sample_rate = sample_rate
        self._limiter = BrickwallLimiter(
            ceiling_db=self.ceiling_db,
            release_ms=release_ms,
            lookahead_ms=lookahead_ms,
            true_peak=true_peak,
        )

    def process(self, block: np.ndarray) -> np.ndarray:
        """Limit a block. The first call returns fewer frames (the lookahead being filled);
        afterwards each call returns as many frames as it was given."""
        if self.rider is not None:
            block = self.rider.process(block)
        out = self._limiter.process(
            np.ascontiguousarray(block, dtype=np.float32), self.sample_rate, reset=False
        )
        return np.clip(out, -1.0, 1.0)
