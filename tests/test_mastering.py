"""Per-track mastering curves and the transition limiter: hot material ends under the ceiling,
curves interpolate identically however a range is cut, the window limiter is the exact identity
away from what it limits, and the ride and the loudness gain show up in the curve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dj.audio.analysis import integrated_loudness, true_peak_dbtp
from dj.audio.mastering import (
    ATTACK_S,
    CURVE_HOP,
    RELEASE_DB_PER_S,
    apply_curve,
    ceiling_db,
    limit_window,
    track_curve,
)
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig

SR = HOUSE_SAMPLE_RATE
CONFIG = AudioConfig()
CEILING = ceiling_db(CONFIG)
TOLERANCE_DB = 0.05


def sine(seconds: float, lufs: float, freq: float = 997.0) -> np.ndarray:
    """A stereo sine at ``lufs`` (K-weighting is ~0 dB near 1 kHz, so amplitude follows)."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * freq * t)
    x = np.stack([x, x]).astype(np.float32)
    return (x * 10 ** ((lufs - integrated_loudness(x, SR)) / 20)).astype(np.float32)


def square_chord(seconds: float, over_db: float) -> np.ndarray:
    """Three square waves (a major triad) peaking ``over_db`` above full scale: hard edges make
    large inter-sample peaks."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (220.0, 277.18, 329.63)) / 3
    return (np.stack([x, np.roll(x, 37)]) * 10 ** (over_db / 20)).astype(np.float32)


def hot_noise(seconds: float, over_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (2, int(seconds * SR)))
    # a slow swell so the limiter both holds and releases
    x *= 0.3 + 0.7 * np.abs(np.sin(np.pi * np.arange(x.shape[1]) / (2.5 * SR)))
    return (x / np.max(np.abs(x)) * 10 ** (over_db / 20)).astype(np.float32)


def mastered(audio: np.ndarray, gain_db: float = 0.0, config: AudioConfig = CONFIG) -> np.ndarray:
    return apply_curve(audio, track_curve(audio, gain_db=gain_db, config=config), 0)


def db(x: np.ndarray | float) -> np.ndarray:
    return 20 * np.log10(x)


# --- track curves hold the ceiling -------------------------------------------------------------


@pytest.mark.parametrize(
    "audio",
    [square_chord(8.0, 12.0), hot_noise(8.0, 13.0)],
    ids=["square-chord+12dB", "noise+13dB"],
)
def test_hot_material_is_mastered_under_the_ceiling(audio: np.ndarray) -> None:
    assert true_peak_dbtp(audio) > 10.0
    curve = track_curve(audio, gain_db=0.0, config=CONFIG)
    assert curve.dtype == np.float32 and curve.shape == (audio.shape[1] // CURVE_HOP + 2,)
    out = apply_curve(audio, curve, 0)
    peak = true_peak_dbtp(out)
    assert peak <= CEILING + TOLERANCE_DB
    # held to the ceiling, not crushed far under it
    assert peak > CEILING - 0.5


def test_a_real_track_pushed_hot_is_mastered_under_the_ceiling(shared_data) -> None:
    from dj.audio.decode import decode_file, to_house

    audio = to_house(
        *decode_file(shared_data / "audio" / "kevin-macleod_galway_gs-16b-2c-44100hz.flac")
    )
    loudness = integrated_loudness(audio, SR)
    gain = CONFIG.target_lufs - loudness + 8.0  # 8 dB over the target: real limiting work
    curve = track_curve(audio, gain_db=gain, config=CONFIG)
    out = apply_curve(audio, curve, 0)
    assert true_peak_dbtp(audio * np.float32(10 ** (gain / 20))) > CEILING + 3.0
    assert CEILING - 1.0 < true_peak_dbtp(out) <= CEILING + TOLERANCE_DB
    # and a body cut anywhere passes a transition's limiter untouched: it is already under
    start, stop = 3 * SR + 17, 9 * SR + 5
    window = apply_curve(audio[:, start:stop], curve, start)
    assert np.array_equal(limit_window(window, CEILING), window)


# --- apply_curve ---------------------------------------------------------------------------------


def test_apply_curve_interpolates_between_points_at_multiples_of_the_hop() -> None:
    n = 10 * CURVE_HOP + 5
    curve = np.linspace(0.25, 1.0, n // CURVE_HOP + 2).astype(np.float32)
    curve[4] = 2.0
    ones = np.ones((2, n), np.float32)
    out = apply_curve(ones, curve, 0)
    expected = np.interp(np.arange(n), np.arange(len(curve)) * CURVE_HOP, curve)
    assert out.dtype == np.float32
    assert np.max(np.abs(out[0] - expected)) < 1e-6
    assert out[1, 4 * CURVE_HOP] == 2.0
    with pytest.raises(ValueError):
        apply_curve(ones, curve[:-1], 0)  # the last samples need the point past the end


def test_apply_curve_gives_bit_identical_output_however_a_range_is_split() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    audio = rng.normal(0, 0.3, (2, n)).astype(np.float32)
    curve = rng.uniform(0.1, 1.5, n // CURVE_HOP + 2).astype(np.float32)
    curve[100:200] = 1.0
    start, stop = 1_234, 47_891
    whole = apply_curve(audio[:, start:stop], curve, start)
    for trial in range(20):
        cuts = np.sort(rng.choice(np.arange(start + 1, stop), size=trial % 7 + 1, replace=False))
        edges = [start, *cuts.tolist(), stop]
        parts = [
            apply_curve(audio[:, a:b], curve, a) for a, b in zip(edges, edges[1:], strict=False)
        ]
        assert np.array_equal(np.concatenate(parts, axis=1), whole)
    # single samples too, and hop-aligned pieces
    ones = [apply_curve(audio[:, i : i + 1], curve, i) for i in range(start, start + 300)]
    assert np.array_equal(np.concatenate(ones, axis=1), whole[:, :300])


# --- limit_window --------------------------------------------------------------------------------


def test_limit_window_leaves_a_quiet_mix_bit_identical() -> None:
    mix = hot_noise(6.0, 0.0, seed=2) * np.float32(10 ** ((CEILING - 0.5) / 20))
    assert true_peak_dbtp(mix) < CEILING
    out = limit_window(mix, CEILING)
    assert out.dtype == mix.dtype and np.array_equal(out, mix)
    mix64 = mix.astype(np.float64)
    assert np.array_equal(limit_window(mix64, CEILING), mix64)


def test_limit_window_limits_a_burst_and_leaves_everything_else_bit_identical() -> None:
    base = sine(6.0, -20.0, freq=440.0)  # a mastered body, well under the ceiling
    mix = base.copy()
    burst = slice(3 * SR, 3 * SR + SR // 10)
    mix[:, burst] += square_chord(0.1, 4.0)  # a hot voice-over onset, say
    depth = true_peak_dbtp(mix) - CEILING
    assert depth > 4.0
    out = limit_window(mix, CEILING)
    assert true_peak_dbtp(out) <= CEILING + TOLERANCE_DB
    # the reach of the attack ahead, and of the release behind (plus interpolation and averaging)
    slack = 4 * CURVE_HOP
    before = burst.start - int(2 * ATTACK_S * SR) - slack
    after = burst.stop + int((depth / RELEASE_DB_PER_S + 2 * ATTACK_S) * SR) + slack
    assert after < mix.shape[1] - SR
    assert np.array_equal(out[:, :before], mix[:, :before])
    assert np.array_equal(out[:, after:], mix[:, after:])
    # and the burst itself was turned down, not left alone
    assert np.max(np.abs(out[:, burst])) < np.max(np.abs(mix[:, burst])) * 10 ** (-3 / 20)


def test_limit_window_does_not_trip_on_a_window_cut_mid_waveform() -> None:
    # a loud low sine mastered to the ceiling, cut at a crest: measured as if silence lay beyond
    # the window, the step there rings over the ceiling, but in the stream the body goes on
    no_ride = dataclasses.replace(CONFIG, agc_range_db=0.0)
    audio = mastered(sine(4.0, 0.0, freq=100.0), config=no_ride)
    assert true_peak_dbtp(audio) <= CEILING
    start = 2 * SR + int(np.argmax(audio[0, 2 * SR : 2 * SR + SR // 100]))
    window = audio[:, start : start + SR]
    assert true_peak_dbtp(window) > CEILING + 0.5
    assert np.array_equal(limit_window(window, CEILING), window)


# --- what goes into the curve --------------------------------------------------------------------


def test_the_ride_lifts_a_quieter_second_half_and_is_off_at_zero_range() -> None:
    audio = np.concatenate([sine(8.0, -14.0), sine(8.0, -20.0)], axis=1)
    k = np.arange(audio.shape[1] // CURVE_HOP + 2) * CURVE_HOP / SR
    ridden = track_curve(audio, gain_db=0.0, config=CONFIG)
    first = db(np.median(ridden[(k > 4) & (k < 8)]))
    second = db(np.median(ridden[k > 13]))
    assert abs(first) < 0.5  # at the target: left alone
    assert 4.0 < second - first < CONFIG.agc_range_db + 0.1  # lifted, within the range
    off = track_curve(audio, gain_db=0.0, config=dataclasses.replace(CONFIG, agc_range_db=0.0))
    # nothing here reaches the ceiling, so without the ride the curve is exactly the gain
    assert np.all(off == 1.0)


@pytest.mark.parametrize("gain_db", [-9.0, -3.0, 4.0])
def test_gain_db_scales_the_curve(gain_db: float) -> None:
    audio = sine(3.0, -24.0)  # quiet enough that even +4 dB is nowhere near the ceiling
    off = dataclasses.replace(CONFIG, agc_range_db=0.0)
    curve = track_curve(audio, gain_db=gain_db, config=off)
    assert np.allclose(curve, 10 ** (gain_db / 20), rtol=1e-6, atol=0)
    out = apply_curve(audio, curve, 0)
    assert abs(true_peak_dbtp(out) - true_peak_dbtp(audio) - gain_db) < 0.01


def test_the_ride_measures_the_track_after_its_loudness_gain() -> None:
    # at -20 LUFS with a +6 dB gain the track is at the target: nothing left to ride
    curve = track_curve(sine(8.0, -20.0), gain_db=6.0, config=CONFIG)
    assert np.max(np.abs(db(curve) - 6.0)) < 0.5
