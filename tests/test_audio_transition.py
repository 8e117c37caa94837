"""Level-aware transition planning: edge levels measured at ingest, the intro ride, where a fade
starts, and the complementary fade-in, each against what it promises."""

from __future__ import annotations

import numpy as np
import pytest

from dj.audio.analysis import (
    EDGE_HOP_S,
    analyse,
    edge_levels,
    integrated_loudness,
    pack_levels,
    unpack_levels,
)
from dj.audio.transition import (
    EASE_BACK_S,
    INTRO_WITHIN_LU,
    complementary_fade_in,
    fade_length,
    intro_ride,
    level_at,
    level_times,
)

SR = 44_100


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (2, int(seconds * SR))).astype(np.float32)


def steps(levels_db: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Noise in sections of (seconds, dB) — an intro, a body, a fade drawn as steps."""
    parts = [noise(sec, seed + i) * np.float32(10 ** (db / 20)) for i, (sec, db) in
             enumerate(levels_db)]
    return np.concatenate(parts, axis=1)


def test_edge_levels_follow_the_music_and_pack_to_half_lu():
    x = steps([(6, -8.0), (30, 0.0), (6, -12.0)])
    loud = integrated_loudness(x, SR)
    head, tail = edge_levels(x, SR, loud, 0.0, x.shape[1] / SR)
    assert head.size == tail.size == int((20.0 - 0.4) / EDGE_HOP_S) + 1
    body = integrated_loudness(x[:, 6 * SR : 36 * SR], SR) - loud  # relative to the track
    # the intro sits 8 dB under the body, the ending 12 dB under it
    assert head[:25].mean() == pytest.approx(body - 8.0, abs=0.3)
    assert head[40:].mean() == pytest.approx(body, abs=0.3)
    assert tail[:25].mean() == pytest.approx(body - 12.0, abs=0.3)
    packed = pack_levels(head)
    assert len(packed) == head.size
    assert np.max(np.abs(unpack_levels(packed) - head)) <= 0.25


def test_edge_levels_of_a_short_track_cover_only_its_usable_audio():
    x = noise(3.0)
    head, tail = edge_levels(x, SR, integrated_loudness(x, SR), 0.5, 2.5)
    assert head.size == tail.size == int((2.0 - 0.4) / EDGE_HOP_S) + 1
    assert np.all(np.abs(head) < 1.0)


def test_analysis_stores_the_edge_levels():
    a = analyse(steps([(5, -6.0), (20, 0.0)]), SR)
    head = unpack_levels(a.head_lu)
    assert head.size > 0 and head[:15].mean() < -4.0 and unpack_levels(a.tail_lu).size > 0


def test_intro_ride_lifts_a_quiet_intro_as_one_gain_up_to_the_body():
    head = np.array([-6.0] * 40 + [0.0] * 58)  # 8 s intro 6 LU under the track
    ride = intro_ride(head, 6.0)
    assert np.allclose(ride[:40], 6.0 - INTRO_WITHIN_LU)
    assert np.all(ride[40:] == 0.0)  # the body is never lifted
    assert np.all(intro_ride(head, 2.0)[:40] == 2.0)  # capped by the configured ride
    assert not intro_ride(head, 0.0).any()  # 0 turns it off


def test_intro_ride_keeps_the_intro_shape():
    beat = np.array([-3.0, -9.0] * 20 + [0.0] * 58)
    ride = intro_ride(beat, 6.0)
    assert np.ptp(ride[:40]) == 0.0 and 0 < ride[0] < 6.0  # one gain: the beat is not flattened
    assert not intro_ride(np.zeros(98), 6.0).any()  # no intro
    assert not intro_ride(np.zeros(0), 6.0).any()


def test_an_opening_quiet_for_all_of_the_head_is_lifted_then_eased_back():
    ride = intro_ride(np.full(98, -8.0), 6.0)
    ease = int(EASE_BACK_S / EDGE_HOP_S)
    assert np.all(ride[: 98 - ease - 1] == 6.0)  # capped lift over the opening
    assert ride[-1] == 0.0  # back to the track's own gain where the measured head ends
    steps = np.diff(ride[-ease - 1 :])
    assert np.all(steps <= 0) and np.max(-steps) <= 1.0 * EDGE_HOP_S + 1e-9  # at most 1 dB/s


def test_fade_length_finds_where_the_ending_starts_to_fade():
    # tail runs backwards from the cue-out: 6 s fading from -30 up to 0, then the body
    tail = np.concatenate([np.linspace(-30.0, 0.0, 30), np.zeros(68)])
    assert fade_length(tail) == pytest.approx(level_times(30)[-1] + EDGE_HOP_S, abs=0.45)
    assert fade_length(np.zeros(98)) == 0.0  # a cold ending
    assert fade_length(np.zeros(0)) == 0.0


def test_level_at_is_the_average_past_the_measured_edge():
    head = np.full(10, -5.0)
    assert level_at(head, np.array([0.0, 1.0]))[0] == pytest.approx(-5.0)
    assert level_at(head, np.array([30.0]))[0] == 0.0
    assert level_at(np.zeros(0), np.array([1.0]))[0] == 0.0


def test_complementary_fade_in_is_equal_power_for_steady_tracks():
    x = np.linspace(0, 1, 401)
    g = complementary_fade_in(x, np.zeros_like(x), np.zeros_like(x), entry=0.0)
    assert np.allclose(g, np.sin(0.5 * np.pi * x), atol=1e-9)


def test_complementary_fade_in_holds_the_sum_when_the_outgoing_fades_by_itself():
    x = np.linspace(0, 1, 401)
    out_db = -20.0 * x  # the outgoing track's own fade, under the crossfade curve
    in_db = np.full_like(x, -1.5)
    g = complementary_fade_in(x, out_db, in_db, entry=0.1)
    total = np.cos(0.5 * np.pi * x) ** 2 * 10 ** (out_db / 10) + g**2 * 10 ** (in_db / 10)
    settled = x >= 0.1
    assert np.all(10 * np.log10(total[settled]) > -1.6)  # the plain sin curve sags to -7 LU
    plain = np.cos(0.5 * np.pi * x) ** 2 * 10 ** (out_db / 10) + np.sin(0.5 * np.pi * x) ** 2
    assert 10 * np.log10(plain.min()) < -3.0
    assert g[0] == 0.0 and g[-1] == pytest.approx(1.0)
    assert np.all(np.diff(g) >= -1e-12)  # only rises
    slower = g < np.sin(0.5 * np.pi * x) - 1e-12
    assert np.all(x[slower] < 0.1)  # never slower than equal-power, once it has entered
