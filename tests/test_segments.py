"""The spliced programme's plan, on numbers alone: where bodies sit, where each window starts
and ends, and that nothing a window renders changes a frame on the far side of a join."""

from __future__ import annotations

import numpy as np
import pytest

from dj.audio.dsp import duck_envelope
from dj.audio.encode import FRAME_SAMPLES as F
from dj.audio.segments import (
    BODY_SETTLE,
    JOIN_MARGIN,
    Placement,
    Rules,
    Side,
    Voice,
    Window,
    cut_voice,
    plan_crossfade,
    plan_cut,
    plan_start,
)
from dj.config import AudioConfig

SR = 44_100
RULES = Rules.from_config(AudioConfig())


def side(key: str, seconds: float, outro_s: float = 4.0, dead_air_s: float = 0.0) -> Side:
    return Side(key, f"play-{key}", int(seconds * SR), outro_s, dead_air_s=dead_air_s)


def gain(window: Window, deck: Placement, lo: int, hi: int) -> np.ndarray:
    """What the window does to ``deck`` over listener samples [lo, hi): fades times ducks."""
    env = deck.envelope(lo, hi - lo, RULES.edge)
    env = np.full(hi - lo, env, np.float32) if isinstance(env, float) else env
    if window.ducks:
        env = env * duck_envelope(np.arange(lo, hi), list(window.ducks))
    return env


def untouched(window: Window, deck: Placement, lo: int, hi: int) -> bool:
    return bool(np.all(gain(window, deck, lo, hi) == 1.0))


@pytest.mark.parametrize("voice", [None, Voice("line", int(3.2 * SR), 12.0)])
def test_a_crossfade_sits_on_the_frame_grid_and_leaves_both_joins_untouched(voice):
    a = Placement(side("a", 181.3), origin=37 * F)
    w = plan_crossfade(a, side("b", 200.0), 4.0, voice, RULES, not_before=40)
    out, inc = w.decks
    assert inc.origin % F == 0
    assert out.end == a.natural_end  # the outgoing fade ends on its cue-out
    assert a.natural_end - inc.origin >= 4.0 * SR  # never shorter than asked
    assert a.natural_end - inc.origin < 4.0 * SR + F
    # before the window and in its first frame, the outgoing body plays as it is
    assert untouched(w, out, (w.start - 4) * F, (w.start + JOIN_MARGIN) * F)
    # after it, the incoming body does
    assert untouched(w, inc, (w.end - JOIN_MARGIN) * F, (w.end + 4) * F)
    assert w.incoming is inc and w.body_frame() == w.end - inc.origin // F
    kinds = [(m.kind, m.key) for m in w.markers]
    assert ("track_end", "a") in kinds and ("track_start", "b") in kinds
    end = next(m for m in w.markers if m.kind == "track_end")
    assert end.frame == a.natural_end and end.value == pytest.approx(181.3, abs=1e-4)
    assert end.play == "play-a"
    if voice is not None:
        (spot,) = w.voices
        assert spot.start == inc.origin  # the line starts with the crossfade
        assert w.ducks[0].start >= (w.start + JOIN_MARGIN) * F
        assert w.end * F >= w.ducks[0].end + JOIN_MARGIN * F
        assert [m.kind for m in w.markers if m.key == "line"] == ["voice_start", "voice_end"]


def test_a_late_plan_shortens_the_crossfade_instead_of_reaching_back():
    a = Placement(side("a", 100.0), origin=0)
    late = a.natural_end // F - 40  # under a second before a's end
    w = plan_crossfade(a, side("b", 100.0), 4.0, Voice("v", SR, 12.0), RULES, not_before=late)
    assert w.start >= late
    out, inc = w.decks
    assert out.end == a.natural_end and inc.origin >= (late + JOIN_MARGIN) * F + RULES.attack
    assert untouched(w, out, (late - 4) * F, (late + JOIN_MARGIN) * F)


def test_a_skip_fades_everything_from_the_next_frame_and_the_duck_does_not_reach_back():
    a = Placement(side("a", 100.0), origin=0)
    at = 1000
    w = plan_cut([a], (), side("b", 90.0), at, int(0.5 * SR), Voice("v", 2 * SR, 12.0), RULES)
    out, inc = w.decks
    cut = (at + JOIN_MARGIN) * F
    assert out.end == cut + int(0.5 * SR) and inc.origin == cut
    assert untouched(w, out, (at - 4) * F, cut)  # the frames before are out already
    assert w.voices[0].start >= cut + RULES.attack and w.ducks[0].start >= cut
    assert w.body_frame() >= BODY_SETTLE
    ends = [m for m in w.markers if m.kind == "track_end"]
    assert ends[0].value == pytest.approx((cut + 0.5 * SR) / SR, abs=1e-4)


def test_a_skip_during_a_crossfade_fades_both_and_keeps_the_earlier_fade():
    a = Placement(side("a", 100.0), origin=0)
    w = plan_crossfade(a, side("b", 100.0), 4.0, None, RULES, not_before=0)
    at = w.start + 60  # half way through
    redo = plan_cut(w.decks, w.voices, side("c", 60.0), at, int(0.5 * SR), None, RULES)
    out, mid, new = redo.decks
    for d in (out, mid):
        assert d.end <= (at + JOIN_MARGIN) * F + int(0.5 * SR)
        # up to the cut the redone window is the window that was playing
        assert np.array_equal(gain(redo, d, (at - 4) * F, (at + 1) * F),
                              gain(w, next(x for x in w.decks if x.side == d.side),
                                   (at - 4) * F, (at + 1) * F))
    assert new.side.key == "c" and new.origin == (at + JOIN_MARGIN) * F


def test_a_revoked_line_stops_at_the_next_frame_and_nothing_before_it_changes():
    w = plan_start(side("b", 100.0), 0, Voice("v", 5 * SR, 12.0), RULES)
    at = 100
    redo = cut_voice(w, "v", at, RULES)
    (v,) = redo.voices
    assert v.end == (at + JOIN_MARGIN) * F + RULES.edge
    deck = redo.decks[0]
    before = ((at - 4) * F, (at + JOIN_MARGIN) * F)
    assert np.array_equal(gain(redo, deck, *before), gain(w, deck, *before))
    after = gain(redo, deck, (at + JOIN_MARGIN) * F + RULES.release, w.end * F)
    assert np.all(after == 1.0)  # the music is back up once the release is over
    assert redo.end >= w.end  # the body after it stays where it was placed
    assert [m.frame for m in redo.markers if m.kind == "voice_end"] == [v.end]


def test_a_start_hands_over_to_the_body_only_once_its_encoder_has_settled():
    w = plan_start(side("b", 100.0), 12, None, RULES)
    assert w.start == 12 and w.decks[0].origin == 12 * F
    assert w.body_frame() >= BODY_SETTLE


def test_a_dead_air_cut_ends_the_track_with_an_edge_and_says_so():
    a = Placement(side("a", 50.0, dead_air_s=1.75), origin=0)
    w = plan_crossfade(a, side("b", 100.0), 4.0, None, RULES, not_before=0)
    out, inc = w.decks
    assert out.end <= a.natural_end and a.natural_end - out.end < 2 * F
    assert inc.origin >= out.end - RULES.edge  # a cut, not a crossfade over the silence
    kinds = [m.kind for m in w.markers]
    assert kinds[0] == "dead_air" and w.markers[0].frame == (w.start + JOIN_MARGIN) * F
    assert kinds.index("track_end") > 0
