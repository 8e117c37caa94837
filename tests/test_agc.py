"""The slow level rider: neutral at the target, rides a quiet passage up within its range, does not
pump up silence, and does not depend on how the stream is cut into blocks."""

from __future__ import annotations

import numpy as np
import pyloudnorm

from dj.audio.agc import LevelRider

SR = 44_100


def noise(seconds: float, lufs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, (2, int(seconds * SR))).astype(np.float32)
    now = pyloudnorm.Meter(SR).integrated_loudness(x.T)
    return (x * 10 ** ((lufs - now) / 20)).astype(np.float32)


def ride(x: np.ndarray, block: int = SR // 2, **kw) -> tuple[np.ndarray, LevelRider]:
    rider = LevelRider(sample_rate=SR, **kw)
    out = [rider.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    return np.concatenate(out, axis=1), rider


def loudness(x: np.ndarray) -> float:
    return pyloudnorm.Meter(SR).integrated_loudness(x.T)


def test_programme_at_the_target_passes_almost_unchanged():
    x = noise(20, -14.0)
    out, rider = ride(x)
    assert abs(loudness(out) - loudness(x)) < 0.3
    assert abs(rider.gain_db) < 0.5


def test_a_quiet_passage_is_ridden_up_within_the_range():
    x = np.concatenate([noise(10, -14.0, 1), noise(15, -20.0, 2)], axis=1)
    out, rider = ride(x, range_db=4.0, window_s=2.0, speed_db_s=4.0)
    tail = out[:, -5 * SR :]
    assert -16.3 < loudness(tail) < -15.7  # +4 dB, the whole range, and no more
    assert abs(rider.gain_db - 4.0) < 0.2


def test_silence_is_not_pumped_up():
    x = np.concatenate([noise(10, -14.0, 3), np.zeros((2, 10 * SR), np.float32)], axis=1)
    x[:, -10 * SR :] += np.random.default_rng(4).normal(0, 1e-4, (2, 10 * SR)).astype(np.float32)
    out, rider = ride(x)
    assert abs(rider.gain_db) < 0.5
    assert np.max(np.abs(out[:, -5 * SR :])) < 1e-3


def test_block_size_does_not_change_the_output():
    x = np.concatenate([noise(6, -14.0, 5), noise(6, -19.0, 6)], axis=1)
    a, _ = ride(x, block=SR // 2)
    b, _ = ride(x, block=1000)
    assert np.max(np.abs(a - b)) < 1e-5


def test_off_means_untouched():
    x = noise(3, -20.0, 7)
    out, _ = ride(x, range_db=0.0)
    assert np.array_equal(out, x)
