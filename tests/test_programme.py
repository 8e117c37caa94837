"""A listener's programme with a real catalog (SQLite) and a real trained recommender: what it hands
the renderer obeys the licence at the moment of airing and survives a failing recommender."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dj.catalog import Analysis, Catalog, Deal, Listener, Track
from dj.config import RecommendConfig
from dj.program import Programme, RadioRules
from dj.recommend import LiveRecommender, StationModel
from dj.store import Store

TODAY = date(2026, 11, 26)


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(Store(tmp_path / "dj.sqlite3"), tmp_path)
    for i in range(12):
        artist = f"artist-{i % 4}"
        track = Track(
            f"t{i:02d}",
            f"Song {i}",
            artist,
            artist.title(),
            Path(f"t{i:02d}.flac"),
            Analysis(120.0, -14.0, -1.0, 0.0, 0.0, 120.0, 4.0),
        )
        territories = frozenset({"JP"}) if i == 11 else frozenset({"WW"})
        cat.add_track(track, deals=[Deal(track.id, territories)])
    rows = [(f"l{u}", f"t{(u + k) % 11:02d}", 5.0 + k) for u in range(30) for k in range(4)]
    cat.add_interactions(rows)
    cat.add_listener(Listener("l1", "US"))
    return cat


def programme(catalog: Catalog, recommender, clock=lambda: datetime(2026, 11, 26, 12, tzinfo=UTC)):
    model = recommender
    return Programme(
        listener=catalog.listener("l1"),
        persona="nova",
        catalog=catalog,
        recommender=model,
        narrator=None,
        rules=RadioRules(),
        crossfade_s=4.0,
        seed=1,
        clock=clock,
    )


@pytest.fixture
def live(catalog):
    tracks = catalog.tracks()
    return LiveRecommender(
        StationModel.train(
            catalog.interactions(),
            RecommendConfig(factors=8, iterations=5),
            item_ids=[t.id for t in tracks],
            item_artists={t.id: t.artist_id for t in tracks},
        )
    )


def test_fifty_picks_are_licensed_varied_and_separated(catalog, live):
    p = programme(catalog, live)
    picks = [p.next_item().track.key for _ in range(50)]
    assert "t11" not in picks  # licensed in JP only
    artists = [catalog.track(t).artist_id for t in picks]
    assert all(a != b for a, b in zip(artists, artists[1:], strict=False))
    assert len(set(picks)) == 11  # every licensed track, none collapsed away


def test_a_deal_that_ends_while_queued_is_checked_again_at_airing(catalog, live):
    p = programme(catalog, live)
    p.next_item()
    p.prepare_ahead()
    queued = p._prepared.track.id
    catalog.end_deals(queued, TODAY - timedelta(days=1))
    item = p.next_item()
    assert item is not None and item.track.key != queued


class BrokenRecommender:
    """Stands in for a recommender whose model file is corrupt: every call raises."""

    version = 0

    def allowed_mask(self, ids):
        return None

    def candidates(self, *args, **kwargs):
        raise RuntimeError("model unavailable")


def test_music_goes_on_when_the_recommender_fails(catalog):
    failures: list[str] = []
    p = programme(catalog, BrokenRecommender())
    p.on_failure = failures.append
    picks = [p.next_item().track.key for _ in range(8)]
    assert len(set(picks)) == 8 and "t11" not in picks
    assert failures.count("recommender") == 8


class RecordingNarrator:
    """Records the timing the programme reports and talks whenever 150 s have passed."""

    def __init__(self) -> None:
        self.since: list[float | None] = []

    def choose(self, ctx):
        from dj.narrate import Utterance

        self.since.append(ctx.since_last_voice_s)
        if ctx.since_last_voice_s is not None and ctx.since_last_voice_s < 150:
            return None
        return Utterance(
            key=f"k{len(self.since)}",
            line_id="template:nova:id",
            artist_id=None,
            persona="nova",
            text="This is dj.",
            engine="espeak",
        )

    def render(self, utt):
        import numpy as np

        return np.zeros((2, 44_100), np.float32)

    def persona(self, name):
        class P:
            duck_db = 12.0

        return P()


def test_time_since_the_dj_spoke_is_measured_at_the_transition_it_is_for(catalog, live):
    narrator = RecordingNarrator()
    p = programme(catalog, live)
    p.narrator = narrator
    voiced = [p.next_item().voice is not None for _ in range(6)]
    # tracks air 116 s apart (120 s minus a 4 s crossfade)
    assert narrator.since == [None, 116.0, 232.0, 116.0, 232.0, 116.0]
    assert voiced == [True, False, True, False, True, False]


class SeedNarrator(RecordingNarrator):
    def choose(self, ctx):
        return None

    def persona(self, name):
        class P:
            duck_db = 12.0
            seed_tags = ("night",)

        return P()


def test_a_new_listener_starts_from_the_persona_seed(tmp_path):
    """No history at all: the persona's seed tags bring their tracks forward, blended with what is
    popular in the licensed catalog."""
    cat = Catalog(Store(tmp_path / "dj.sqlite3"), tmp_path)
    for i in range(8):
        tags = ("night",) if i == 7 else ("day",)
        cat.add_track(
            Track(
                f"s{i}",
                f"S{i}",
                f"a{i}",
                f"A{i}",
                Path(f"s{i}.flac"),
                Analysis(120.0, -14.0, -1.0, 0.0, 0.0, 120.0, 4.0),
                tags=tags,
            ),
            deals=[Deal(f"s{i}", frozenset({"WW"}))],
        )
    cat.add_interactions(
        [(f"u{u}", f"s{u % 7}", 5.0 + u % 3) for u in range(40)]
        + [(f"u{u}", "s7", 1.0) for u in range(0, 40, 8)]
    )
    cat.add_listener(Listener("newcomer", "US"))
    tracks = cat.tracks()
    live = LiveRecommender(
        StationModel.train(
            cat.interactions(),
            RecommendConfig(factors=8, iterations=5),
            item_ids=[t.id for t in tracks],
            item_artists={t.id: t.artist_id for t in tracks},
        )
    )
    p = Programme(
        listener=cat.listener("newcomer"),
        persona="atlas",
        catalog=cat,
        recommender=live,
        narrator=SeedNarrator(),
        rules=RadioRules(exploration=0.0),
        crossfade_s=4.0,
        seed=3,
    )
    playable, mask = p._allowed(TODAY)
    seed = p._persona_seed(playable)
    assert seed == ["s7"]
    plain = [t for t, _ in live.candidates("someone-else", mask, n=8)]
    seeded = [t for t, _ in live.candidates("newcomer", mask, n=8, seed=seed)]
    assert plain.index("s7") > 2
    assert seeded.index("s7") == 0
