"""What a listener holds is bounded while they listen and released when they leave for good."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dj.narrate import NarrationContext, Narrator
from dj.narrate.cache import VoiceCache
from dj.narrate.narrator import MAX_KNOWN_UTTERANCES
from dj.narrate.narrator import MAX_LISTENERS as NARRATOR_MAX_LISTENERS
from dj.narrate.utterance import Utterance
from dj.recommend import LiveRecommender
from dj.recommend.base import MAX_LISTENERS as RECOMMEND_MAX_LISTENERS
from dj.store import Store
from tests.test_narrate import BO, NOC, NOW, ctx, default_packs, make_narrator
from tests.test_recommend import CATALOG, TRACKS, everything, train


def greeting(listener: str, minute: int = 0) -> NarrationContext:
    """A transition into a track by an artist without consent: only templates that name no
    artist apply, and greetings carry the listener's name, so each listener gets new keys."""
    return NarrationContext(listener, f"Name {listener}", "US", "nova", None, NOC,
                            NOW.replace(minute=minute), None)


@pytest.fixture
def narrator(tmp_path: Path) -> Narrator:
    return make_narrator(tmp_path, default_packs())


# -- narrator -----------------------------------------------------------------------------------
def test_narrator_bounds_are_stated() -> None:
    assert MAX_KNOWN_UTTERANCES == 4096
    assert NARRATOR_MAX_LISTENERS == 10_000


def test_repeat_windows_bounded_over_many_listeners(narrator: Narrator) -> None:
    narrator.max_listeners = 5
    for i in range(40):
        narrator.choose(greeting(f"many{i}"))
        assert len(narrator._recent) <= 5
    assert list(narrator._recent) == [f"many{i}" for i in range(35, 40)]  # least recent dropped


def test_known_utterances_bounded_over_many_listeners(narrator: Narrator) -> None:
    narrator.max_known = 8
    keys = set()
    for i in range(60):
        utt = narrator.choose(greeting(f"k{i}"))
        assert utt is not None
        keys.add(utt.key)
        assert len(narrator._known) <= 8
    assert len(keys) > 8  # the bound was actually exercised


def test_forget_releases_the_listener(narrator: Narrator) -> None:
    for i in range(3):
        assert narrator.choose(greeting("leaver", minute=i)) is not None
    assert narrator.choose(greeting("stayer")) is not None
    assert "leaver" in narrator._recent
    narrator.forget("leaver")
    assert "leaver" not in narrator._recent and "stayer" in narrator._recent
    narrator.forget("leaver")  # twice, or for someone never seen: harmless
    narrator.forget("nobody")


def test_forgotten_listener_repeat_window_comes_back_from_the_ledger(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, default_packs(), no_repeat_airings=4)
    aired = set()
    for i in range(3):
        utt = narrator.choose(ctx(prev=None, next=BO, now=NOW.replace(minute=i)))
        assert utt is not None
        narrator.record_airing(utt, listener_id="l1", session_id="s1", event_id=f"e{i}")
        aired.add((utt.line_id, utt.text))
    narrator.forget("l1")
    utt = narrator.choose(ctx(prev=None, next=BO, now=NOW.replace(minute=10)))
    assert utt is not None and (utt.line_id, utt.text) not in aired


def test_queued_utterance_survives_other_listeners_choices(narrator: Narrator) -> None:
    """Choosing, rendering and asking for audio keep an utterance the most recently used."""
    narrator.max_known = 8
    queued = narrator.choose(ctx(prev=None, next=BO))
    assert queued is not None and narrator.render(queued) is not None
    for i in range(30):
        narrator.choose(greeting(f"other{i}"))
        if i % 5 == 0:
            assert narrator.audio_for(queued.key, "US") is not None  # touched: stays
    assert queued.key in narrator._known
    assert narrator.audio_for(queued.key, "US") is not None


def test_dropped_keys_fail_closed_unless_rendered(narrator: Narrator) -> None:
    narrator.max_known = 4
    rendered = narrator.choose(greeting("r"))
    assert rendered is not None and narrator.render(rendered) is not None
    never = narrator.choose(greeting("n"))
    assert never is not None
    for i in range(10):
        narrator.choose(greeting(f"push{i}"))
    assert rendered.key not in narrator._known and never.key not in narrator._known
    assert narrator.audio_for(rendered.key, "US") is not None  # found in the cache's index
    assert narrator.audio_for(never.key, "US") is None  # nothing to check it against: no audio


def test_voice_cache_memory_bound_honoured(tmp_path: Path) -> None:
    cache = VoiceCache(Store(tmp_path / "db.sqlite"), tmp_path / "voice")
    assert cache.memory_items == 64
    audio = np.zeros((2, 100), dtype=np.float32)
    keys = []
    for i in range(100):
        utt = Utterance(f"key{i:03d}", "template:nova:x", None, "nova", f"text {i}", "espeak")
        cache.put(utt, audio)
        keys.append(utt.key)
        assert len(cache._memory) <= 64
    for key in keys:  # reading back from disk keeps the bound too
        assert cache.get(key) is not None
        assert len(cache._memory) <= 64
    assert list(cache._memory) == keys[-64:]


# -- recommender --------------------------------------------------------------------------------
def test_recommender_bound_is_stated() -> None:
    assert RECOMMEND_MAX_LISTENERS == 10_000
    assert train("popularity").max_listeners == 10_000
    assert LiveRecommender(train("popularity")).max_listeners == 10_000


@pytest.mark.parametrize("kind", ["als", "popularity"])
def test_warm_and_picks_for_many_listeners_stay_bounded(kind: str) -> None:
    model = train(kind)
    model.max_listeners = 10
    allowed = everything(model)
    for i in range(50):
        model.warm(f"w{i}", seed=[TRACKS[i % len(TRACKS)]])
        model.candidates(f"c{i}", allowed, 5, seed=[TRACKS[(3 * i) % len(TRACKS)]])
        assert len(model._seeds) <= 10 and len(model._states) <= 10
        assert len(model._cache) <= model.cache_size
    assert "c49" in model._seeds and "w0" not in model._seeds  # least recently used dropped


@pytest.mark.parametrize("kind", ["als", "popularity"])
def test_feedback_for_many_listeners_stays_bounded(kind: str) -> None:
    model = train(kind)
    model.max_listeners = 10
    allowed = everything(model)
    for i in range(50):
        model.feedback(f"f{i}", TRACKS[i % len(TRACKS)], "skip")
        assert len(model._states) <= 10
    # A dropped listener is served again, from the model alone.
    assert "f0" not in model._states
    assert len(model.candidates("f0", allowed, 5)) == 5
    # An active listener keeps their state: a pick touches it.
    model.feedback("keep", TRACKS[0], "dislike")
    for i in range(30):
        model.feedback(f"g{i}", TRACKS[1], "play")
        model.candidates("keep", allowed, 5)
    assert "keep" in model._states
    assert TRACKS[0] not in {t for t, _ in model.candidates("keep", allowed, 10)}


def test_forget_releases_every_per_listener_table() -> None:
    model = train("als")
    allowed = everything(model)
    model.warm("gone", seed=[TRACKS[0]])
    model.feedback("gone", TRACKS[1], "like")
    model.candidates("gone", allowed, 5, seed=[TRACKS[2]])
    model.candidates("here", allowed, 5, seed=[TRACKS[3]])
    assert "gone" in model._states and "gone" in model._seeds and "gone" in model._cache
    model.forget("gone")
    assert "gone" not in model._states
    assert "gone" not in model._seeds
    assert "gone" not in model._cache
    assert "here" in model._seeds and "here" in model._cache


def test_live_log_bounded_and_released() -> None:
    live = LiveRecommender(train("als"), max_events_per_listener=3, max_listeners=10)
    for i in range(50):
        for track in TRACKS[:5]:
            live.feedback(f"l{i}", track, "play")
        assert len(live._log) <= 10
        assert all(len(events) <= 3 for events in live._log.values())
    assert list(live._log) == [f"l{i}" for i in range(40, 50)]
    live.forget("l49")
    assert "l49" not in live._log and "l49" not in live.model._states
    live.swap(train("als", random_state=1))  # replays only what is still logged
    assert set(live.model._states) == {f"l{i}" for i in range(40, 49)}
    assert len(live.candidates("l40", live.allowed_mask(CATALOG), 5)) == 5


# -- the station's own objects ------------------------------------------------------------------
def test_demo_station_objects_release_a_listener(demo_station) -> None:
    narrator, recommender = demo_station.narrator, demo_station.recommender
    assert narrator is not None
    listener = "memory-bounds-listener"
    track_id = recommender.model.item_ids[0]
    recommender.warm(listener, [track_id])
    recommender.feedback(listener, track_id, "play")
    track = demo_station.catalog.track(track_id)
    narrator.choose(NarrationContext(listener, "Memo", "US", narrator.persona(None).name,
                                     None, track, NOW, None))
    assert listener in narrator._recent and listener in recommender.model._states
    narrator.forget(listener)
    recommender.forget(listener)
    assert listener not in narrator._recent
    assert listener not in recommender._log
    model = recommender.model
    assert listener not in model._states and listener not in model._seeds
    assert listener not in model._cache
