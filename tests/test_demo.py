"""The demo content generator: synthesizer, catalog definition, licence cases, listeners, build."""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from scipy import signal

from dj.catalog import Analysis, Catalog, Track
from dj.config import Config
from dj.demo.catalog import ARTISTS, demo_tracks
from dj.demo.compose import compose
from dj.demo.listeners import CLUSTERS, make_listeners
from dj.demo.manifest import manifest_toml
from dj.demo.spec import SongSpec
from dj.demo.synth import render
from dj.store import Store

SR = 44_100
TODAY = date(2026, 3, 15)


def _spec(**changes) -> SongSpec:
    base = SongSpec(seed=7, tempo_bpm=110, duration_s=12.0, fade_s=3.0)
    return base.replace(**changes)


# -- synthesizer --------------------------------------------------------------------------------

PRESETS = {
    "dreamy": dict(mood="dreamy", pad="glass_pad", lead="sine_lead", arp="bell"),
    "rock": dict(mood="driving", pad="pulse_guitar", chord_rhythm="pulse", lead="saw_lead",
                 arp="", bass="pick_bass", bass_line="eighths", groove="rock", ending="clean",
                 loudness_lufs=-9.0, mode="minor", key="E"),
    "jazz": dict(mood="jazzy", pad="ep", chord_rhythm="comp", lead="vibes", arp="",
                 bass="upright", bass_line="walking", groove="jazz", swing=0.6, kit="soft",
                 loudness_lufs=-24.0),
    "latin": dict(mood="warm", pad="nylon", chord_rhythm="strum", lead="ep", arp="",
                  bass="upright", bass_line="tumbao", groove="bossa", effects=False),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[SongSpec, np.ndarray]]:
    out = {}
    for name, changes in PRESETS.items():
        spec = _spec(**changes)
        out[name] = (spec, render(spec))
    return out


@pytest.mark.parametrize("name", list(PRESETS))
def test_render_is_house_format_clean_and_at_its_loudness(rendered, name):
    spec, x = rendered[name]
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == 2
    assert x.shape[1] == round(compose(spec).music_s * SR)
    assert abs(x.shape[1] / SR - spec.duration_s) < 6.0  # whole bars, plus a ring-out tail
    assert np.isfinite(x).all()
    assert np.abs(x).max() <= 1.0
    # no click at either end: the file starts and ends at zero, and ramps there smoothly
    assert np.abs(x[:, :4]).max() < 1e-4 and np.abs(x[:, -4:]).max() < 1e-4
    ms = SR // 1000  # raised-cosine edges: within 1 ms of either end the gain is under 2.5 %
    assert np.abs(x[:, :ms]).max() < 0.025 and np.abs(x[:, -ms:]).max() < 0.025
    # the two channels differ (panning, detune): it is stereo, not dual mono
    assert np.abs(x[0] - x[1]).max() > 1e-3
    loudness = pyloudnorm.Meter(SR).integrated_loudness(x.T)
    assert abs(loudness - spec.loudness_lufs) < 1.0


def test_render_is_deterministic():
    spec = _spec(duration_s=9.0)
    assert np.array_equal(render(spec), render(spec))
    assert not np.array_equal(render(spec), render(spec.replace(seed=8)))


def test_silence_at_start_and_end_for_cue_detection():
    spec = _spec(silence_start_s=1.5, silence_end_s=2.0)
    x = render(spec)
    assert not np.any(x[:, : int(1.5 * SR)])
    assert not np.any(x[:, -int(2.0 * SR):])
    assert np.abs(x[:, int(1.5 * SR): -int(2.0 * SR)]).max() > 0.1


def test_fade_ending_is_quieter_at_the_end_than_a_clean_ending():
    def tail_rms(ending: str) -> float:
        x = render(_spec(ending=ending, fade_s=4.0, groove="four", duration_s=16.0))
        return float(np.sqrt(np.mean(x[:, -int(2.0 * SR):] ** 2)))

    assert tail_rms("fade") < tail_rms("clean")


def _beat_period_s(x: np.ndarray) -> float:
    """The strongest periodicity of the low-band onset envelope between 0.3 and 0.8 s."""
    low = signal.sosfilt(signal.butter(4, 150, fs=SR, output="sos"), x.mean(axis=0))
    hop = 441
    frames = np.abs(low[: low.size // hop * hop]).reshape(-1, hop).max(axis=1)
    onset = np.maximum(np.diff(frames), 0.0)
    onset -= onset.mean()
    ac = np.correlate(onset, onset, mode="full")[onset.size - 1:]
    lags = np.arange(ac.size) * hop / SR
    window = (lags >= 0.3) & (lags <= 0.8)
    return float(lags[window][np.argmax(ac[window])])


def test_tempo_sets_the_onset_rate():
    changes = dict(groove="four", arp="", lead="sine_lead", effects=False, duration_s=20.0)
    slow = _beat_period_s(render(_spec(tempo_bpm=80, **changes)))
    fast = _beat_period_s(render(_spec(tempo_bpm=140, **changes)))
    assert slow == pytest.approx(60 / 80, abs=0.04)
    assert fast == pytest.approx(60 / 140, abs=0.04)


def test_arrangement_has_a_song_form():
    arrangement = compose(SongSpec(seed=3, tempo_bpm=100, duration_s=110, ending="clean"))
    names = [s.name for s in arrangement.sections]
    assert names[0] == "intro" and names[-1] == "final" and "outro" in names
    assert "verse" in names and "chorus" in names
    assert all(e.start_s < arrangement.music_s for e in arrangement.events)
    parts = Counter(e.part for e in arrangement.events)
    assert {"pad", "bass", "lead", "arp", "drums"} <= set(parts)


def test_invalid_spec_lists_every_problem():
    with pytest.raises(ValueError, match="unknown key.*unknown groove"):
        compose(SongSpec(seed=1, key="H", groove="polka"))


# -- catalog definition -------------------------------------------------------------------------


def test_catalog_definition():
    tracks = demo_tracks(TODAY)
    assert len(tracks) >= 24
    assert len({t.artist_id for t in tracks}) >= 6
    assert {t.artist_id for t in tracks} == {a.id for a in ARTISTS}
    assert len({t.id for t in tracks}) == len(tracks)
    assert len({t.isrc for t in tracks}) == len(tracks)
    assert all(len(t.isrc) == 12 for t in tracks)
    assert all(60 <= t.spec.duration_s <= 150 for t in tracks)
    assert all(70 <= t.spec.tempo_bpm <= 150 for t in tracks)
    assert len({t.spec.tempo_bpm for t in tracks}) >= 12
    assert {t.spec.mode for t in tracks} == {"major", "minor"}
    levels = [t.spec.loudness_lufs for t in tracks]
    assert min(levels) <= -22 and max(levels) >= -9
    assert {t.spec.ending for t in tracks} == {"fade", "clean"}
    assert any(t.spec.silence_start_s > 0 for t in tracks)
    for t in tracks:
        assert not t.spec.problems()
        assert t.tags
        by_role = defaultdict(float)
        for s in t.shares:
            by_role[s.role] += s.share_pct
        assert dict(by_role) == {"master": 100.0, "publishing": 100.0}
    assert any(sum(1 for s in t.shares if s.role == "publishing") == 2 for t in tracks)
    assert any(sum(1 for s in t.shares if s.role == "master") == 2 for t in tracks)


def test_short_catalog_for_tests():
    tracks = demo_tracks(TODAY, short=True)
    assert len(tracks) >= 24
    assert all(20 <= t.spec.duration_s <= 30 for t in tracks)


def _catalog_with_demo_tracks(tmp_path: Path, today: date) -> tuple[Catalog, list]:
    catalog = Catalog(Store(tmp_path / "dj.sqlite3"), tmp_path / "media")
    tracks = demo_tracks(today)
    dummy = Analysis(duration_s=90.0, loudness_lufs=-14.0, true_peak_dbtp=-1.0, gain_db=0.0,
                     cue_in_s=0.0, cue_out_s=90.0, outro_s=4.0)
    for t in tracks:
        catalog.add_track(
            Track(t.id, t.title, t.artist_id, t.artist_name, tmp_path / "media" / f"{t.id}.flac",
                  dummy, isrc=t.isrc, album=t.album, year=t.year, tags=t.tags),
            t.shares, t.deals,
        )
    return catalog, tracks


def test_required_unplayable_cases(tmp_path):
    catalog, tracks = _catalog_with_demo_tracks(tmp_path, TODAY)
    reasons = {t.id: t.unplayable for t in tracks if t.unplayable}
    by_reason = {why: tid for tid, why in reasons.items()}
    jp_only = by_reason["licensed in JP only"]
    expired = by_reason["deal expired"]
    future = by_reason["deal not yet started"]
    on_demand = by_reason["on-demand use only, not radio"]
    subscription = by_reason["subscription tier only"]

    us_ad = catalog.playable_ids("US", "ad-supported", TODAY)
    assert {jp_only, expired, future, on_demand, subscription}.isdisjoint(us_ad)
    assert len(us_ad) >= 18
    assert jp_only in catalog.playable_ids("JP", "ad-supported", TODAY)
    assert subscription in catalog.playable_ids("US", "subscription", TODAY)
    assert expired not in catalog.playable_ids("JP", "subscription", TODAY)
    assert on_demand not in catalog.playable_ids("GB", "subscription", TODAY)
    assert future in catalog.playable_ids("US", "ad-supported", TODAY + timedelta(days=60))
    assert expired in catalog.playable_ids("US", "ad-supported", TODAY - timedelta(days=60))
    # every track without a licence case airs in the US for everyone
    assert {t.id for t in tracks if not t.unplayable} <= us_ad
    # the renewed deal (an expired one plus a current one) airs
    renewed = [t for t in tracks if len(t.deals) == 2]
    assert renewed and all(t.id in us_ad for t in renewed)


def test_deal_dates_follow_the_build_day(tmp_path):
    later = TODAY + timedelta(days=400)
    catalog, tracks = _catalog_with_demo_tracks(tmp_path, later)
    us_ad = catalog.playable_ids("US", "ad-supported", later)
    expired = next(t.id for t in tracks if t.unplayable == "deal expired")
    assert expired not in us_ad and len(us_ad) >= 18


def test_manifest_round_trips(tmp_path):
    load_manifest = pytest.importorskip("dj.catalog.manifest").load_manifest
    tracks = demo_tracks(TODAY)
    text = manifest_toml(ARTISTS, tracks, lambda t: f"{t.id}.flac")
    raw = tomllib.loads(text)
    assert len(raw["artist"]) == len(ARTISTS) and len(raw["track"]) == len(tracks)
    path = tmp_path / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    parsed = load_manifest(path, tmp_path)
    by_id = {t.id: t for t in parsed.tracks}
    for t in tracks:
        entry = by_id[t.id]
        assert entry.title == t.title and entry.isrc == t.isrc and entry.artist == t.artist_id
        assert {(d.territories, d.excluded, d.start, d.end, d.tiers, d.uses) for d in entry.deals} \
            == {(d.territories, d.excluded, d.start, d.end, d.tiers, d.uses) for d in t.deals}


# -- listeners ----------------------------------------------------------------------------------


def test_listener_histories():
    tracks = demo_tracks(TODAY)
    hist = make_listeners(tracks, n=240, seed=0)
    ids = [x.id for x in hist.listeners]
    assert len(ids) == len(set(ids)) >= 200
    assert "listener-001" in ids and "listener-240" in ids and {"alice", "bob"} <= set(ids)
    assert len({x.territory for x in hist.listeners}) >= 6
    assert {x.tier for x in hist.listeners} == {"subscription", "ad-supported"}
    assert all(x.display_name for x in hist.listeners)
    known = {t.id for t in tracks}
    assert all(tid in known and count >= 1 for _, tid, count in hist.rows)
    assert len({(lid, tid) for lid, tid, _ in hist.rows}) == len(hist.rows)
    listened = {lid for lid, _, _ in hist.rows}
    assert listened == set(ids)
    # play counts are heavy-tailed: the busiest listener plays far more than the median one
    totals = Counter()
    for lid, _, count in hist.rows:
        totals[lid] += count
    values = sorted(totals.values())
    assert values[-1] > 10 * values[len(values) // 2]


def test_listener_tastes_are_distinct_per_cluster():
    tracks = demo_tracks(TODAY)
    artist_of = {t.id: t.artist_id for t in tracks}
    hist = make_listeners(tracks, n=240, seed=0)
    plays: dict[str, Counter] = defaultdict(Counter)
    for lid, tid, count in hist.rows:
        plays[hist.clusters[lid]][artist_of[tid]] += count
    top = {cluster: counter.most_common(1)[0][0] for cluster, counter in plays.items()}
    assert set(top) == set(CLUSTERS)
    assert len(set(top.values())) >= 5
    for cluster, artist in top.items():
        assert CLUSTERS[cluster].get(artist, 0) >= 0.5


def test_named_listeners_have_obvious_tastes():
    tracks = demo_tracks(TODAY)
    artist_of = {t.id: t.artist_id for t in tracks}
    hist = make_listeners(tracks, seed=0)
    for lid, expected in (("alice", {"nova-lake", "night-orchard"}), ("bob", {"dust-parade"})):
        counts = Counter()
        for who, tid, count in hist.rows:
            if who == lid:
                counts[artist_of[tid]] += count
        assert counts.most_common(1)[0][0] in expected
        listener = next(x for x in hist.listeners if x.id == lid)
        assert listener.territory == "US"


def test_listeners_are_deterministic_for_a_seed():
    tracks = demo_tracks(TODAY)
    a, b = make_listeners(tracks, seed=5), make_listeners(tracks, seed=5)
    assert a.rows == b.rows and a.listeners == b.listeners
    assert make_listeners(tracks, seed=6).rows != a.rows


# -- build ----------------------------------------------------------------------------------------


def test_build_demo_short_is_idempotent(tmp_path):
    pytest.importorskip("dj.catalog.ingest")
    from dj.demo.build import build_demo

    config = Config(data_dir=tmp_path / "data")
    catalog = Catalog(Store(config.db_path), config.media_dir)
    summary = build_demo(config, catalog, n_listeners=200, short=True)
    assert summary.built and not summary.failed
    assert summary.tracks >= 24 and summary.artists >= 6
    assert summary.listeners >= 200 and summary.interactions > 200
    assert {why for _, why in summary.unplayable} >= {
        "licensed in JP only", "deal expired", "deal not yet started",
    }
    tracks = catalog.tracks()
    assert len(tracks) >= 24
    assert all(t.audio_path.exists() for t in tracks)
    assert all(20 <= t.analysis.duration_s <= 36 for t in tracks)
    quiet = catalog.track("night-orchard-01")
    assert quiet is not None and quiet.analysis.loudness_lufs < -20
    assert quiet.analysis.cue_in_s > 1.0  # the silence at its start was found
    assert not [p for p in config.data_dir.iterdir() if p.name.startswith("demo-")]
    shares = catalog.shares("copper-kites-01")
    assert sum(s.share_pct for s in shares if s.role == "publishing") == 100.0

    again = build_demo(config, catalog, n_listeners=200, short=True)
    assert not again.built
    assert (again.tracks, again.listeners, again.interactions) == (
        summary.tracks, summary.listeners, summary.interactions,
    )
