"""Transition maths and envelopes, against numpy references (no audio files)."""

from __future__ import annotations

import numpy as np
import pytest

from dj.audio.dsp import (
    Duck,
    add_duck,
    crossfade_frames,
    db_to_gain,
    duck_envelope,
    edge_fade,
    equal_power_crossfade,
    gain_to_db,
    max_abs_jump,
    place_voice,
)

SR = 44_100


def test_db_gain_round_trip():
    assert db_to_gain(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert gain_to_db(db_to_gain(-12.5)) == pytest.approx(-12.5)
    assert np.allclose(gain_to_db(db_to_gain(np.array([-3.0, 0.0, 6.0]))), [-3.0, 0.0, 6.0])


def test_equal_power_crossfade_is_minus_3_db_per_side_at_midpoint():
    out, inc = equal_power_crossfade(4 * SR)
    mid = 2 * SR
    assert gain_to_db(out[mid]) == pytest.approx(-3.01, abs=0.01)
    assert gain_to_db(inc[mid]) == pytest.approx(-3.01, abs=0.01)
    assert np.allclose(out.astype(np.float64) ** 2 + inc.astype(np.float64) ** 2, 1.0, atol=1e-6)
    assert inc[0] == 0.0 and out[0] == 1.0
    assert np.all(np.diff(inc) >= 0) and np.all(np.diff(out) <= 0)


def test_edge_fade_is_smooth():
    up = edge_fade(np.arange(-10, 300), 220, rising=True)
    assert up[0] == 0 and up[-1] == 1
    assert max_abs_jump(up[np.newaxis, :]) < 2 * np.pi / 220


def test_duck_attack_completes_before_voice_and_releases_smoothly():
    attack, release = int(0.15 * SR), int(0.5 * SR)
    duck = Duck(voice_start=SR, voice_end=3 * SR, depth_db=12.0, attack=attack, release=release)
    pos = np.arange(0, 5 * SR)
    env = gain_to_db(duck_envelope(pos, [duck]))
    assert env[SR - attack - 1] == pytest.approx(0.0, abs=1e-6)  # untouched before the attack
    assert env[SR] == pytest.approx(-12.0, abs=1e-3)  # fully down as the first word starts
    half = release // 2  # the release is centred on the voice's end
    assert np.all(env[SR : 3 * SR - half] < -11.99)
    assert -12.0 < env[3 * SR] < 0.0
    assert env[3 * SR + half] == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.diff(env[3 * SR - half : 3 * SR + half]) >= -1e-9)  # release only rises
    assert np.max(np.abs(np.diff(env))) < 12.0 * np.pi / (2 * attack) + 1e-6  # no steps


def test_two_ducks_close_together_keep_the_music_down():
    attack, release = int(0.15 * SR), int(0.5 * SR)
    a = Duck(SR, 2 * SR, 12.0, attack, release)
    b = Duck(2 * SR + int(0.4 * SR), 4 * SR, 12.0, attack, release)
    ducks = add_duck(add_duck([], a), b)
    assert len(ducks) == 1
    env = gain_to_db(duck_envelope(np.arange(SR, 4 * SR - release // 2), ducks))
    assert env.max() < -11.99  # stays down between the two lines
    far = add_duck([a], Duck(6 * SR, 7 * SR, 12.0, attack, release))
    assert len(far) == 2


@pytest.mark.parametrize(
    ("requested", "outro", "out_usable_s", "in_usable_s", "expected_s"),
    [
        (4.0, 4.0, 180.0, 200.0, 4.0),  # ordinary
        (4.0, 7.0, 180.0, 200.0, 7.0),  # fade-out ridden
        (4.0, 12.0, 180.0, 200.0, 8.0),  # ... up to twice the request
        (4.0, 4.0, 5.0, 200.0, 2.5),  # short outgoing track: half its usable length
        (4.0, 4.0, 180.0, 3.0, 1.5),  # short incoming track
        (0.0, 4.0, 180.0, 200.0, 0.0),  # a cut
        (4.0, 0.0, 180.0, 200.0, 4.0),  # unknown outro → requested
    ],
)
def test_crossfade_length_rule(requested, outro, out_usable_s, in_usable_s, expected_s):
    got = crossfade_frames(requested, outro, int(out_usable_s * SR), int(in_usable_s * SR), SR)
    assert got == int(round(expected_s * SR))


def test_voice_placement():
    gap = int(0.4 * SR)
    assert place_voice(10 * SR, 6615, 0, -1, gap) == 10 * SR  # with the transition
    assert place_voice(10 * SR, 6615, 10 * SR, -1, gap) == 10 * SR + 6615  # late: attack first
    assert place_voice(10 * SR, 6615, 0, 11 * SR, gap) == 11 * SR + gap  # after the last line
