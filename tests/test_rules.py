import random

from dj.program.rules import PlayedTrack, RadioRules, pick_track

ARTIST = {f"t{i}": f"a{i % 4}" for i in range(20)}
CANDIDATES = [(f"t{i}", 1.0 - i * 0.01) for i in range(20)]


def test_no_repeat_within_the_window_and_artist_separation():
    rng = random.Random(1)
    history: list[PlayedTrack] = []
    now = 0.0
    for _ in range(16):
        pick = pick_track(CANDIDATES, ARTIST, history, now, RadioRules(exploration=0.0), rng)
        assert pick is not None
        assert pick not in {p.track_id for p in history}
        if history:
            assert ARTIST[pick] != history[-1].artist_id
        history.append(PlayedTrack(pick, ARTIST[pick], now))
        now += 180.0


def test_small_catalog_falls_back_to_the_track_heard_longest_ago():
    cands = [("t0", 1.0), ("t1", 0.9)]
    history = [PlayedTrack("t1", "a1", 0.0), PlayedTrack("t0", "a0", 100.0)]
    pick = pick_track(cands, ARTIST, history, 200.0, RadioRules(), random.Random(0))
    assert pick == "t1"


def test_rested_artists_are_not_picked_while_others_remain():
    rng = random.Random(3)
    blocked = frozenset({"a0", "a1"})
    for _ in range(50):
        pick = pick_track(CANDIDATES, ARTIST, [], 0.0, RadioRules(), rng, blocked)
        assert ARTIST[pick] not in blocked


def test_exploration_spreads_picks_beyond_the_top():
    rng = random.Random(7)
    played = [PlayedTrack("t99", "a9", -1e9)]
    picks = {
        pick_track(CANDIDATES, ARTIST, played, 0.0, RadioRules(exploration=0.3), rng)
        for _ in range(300)
    }
    assert len(picks) > 8
    none = {
        pick_track(CANDIDATES, ARTIST, played, 0.0, RadioRules(exploration=0.0), rng)
        for _ in range(300)
    }
    assert none <= {t for t, _ in CANDIDATES[:8]}


def test_first_pick_never_explores():
    rng = random.Random(11)
    firsts = {
        pick_track(CANDIDATES, ARTIST, [], 0.0, RadioRules(exploration=1.0), rng)
        for _ in range(200)
    }
    assert firsts <= {t for t, _ in CANDIDATES[:8]}
