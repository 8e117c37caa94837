"""Ingest on real files (../shared/data/audio) and on bad ones, into a real SQLite catalog."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from dj.audio.decode import HouseReader
from dj.catalog import Catalog, Deal
from dj.catalog.ingest import (
    ADDED,
    FAILED,
    SKIPPED,
    analyse_house,
    decode,
    fingerprint,
    ingest,
    metadata_for,
    scan,
    write_house,
)
from dj.catalog.manifest import ManifestError, load_manifest
from dj.store import Store

SR = 44_100
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "ingest-example.toml"
WW = [Deal("", frozenset({"WW"}))]


def catalog_at(root: Path) -> Catalog:
    return Catalog(Store(root / "dj.sqlite3"), root / "media")


def write(path: Path, audio: np.ndarray, sr: int = SR, **kw) -> Path:
    with AudioFile(str(path), "w", sr, audio.shape[0], **kw) as f:
        f.write(audio)
    return path


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([amp * np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32)


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "Good Artist - Good Song.wav", tone(3.0))
    write(src / "second.flac", tone(2.0, 660.0))
    (src / "empty.mp3").write_bytes(b"")
    full = write(tmp_path / "full.mp3", tone(6.0), quality=128).read_bytes()
    (src / "truncated.mp3").write_bytes(full[: len(full) // 2])
    (src / "letter.mp3").write_text("Dear label, here is my song.\n" * 50)
    write(src / "silence.wav", np.zeros((2, SR * 2), np.float32))
    (src / "README.txt").write_text("ignored: not an audio file name")
    return src


def test_bad_files_are_reported_and_ingest_carries_on(tmp_path, bad_folder):
    catalog = catalog_at(tmp_path)
    report = ingest(catalog, tmp_path / "media", bad_folder, default_deals=WW)
    by_file = {r.file: r for r in report.rows}
    assert set(by_file) == {
        "Good Artist - Good Song.wav",
        "second.flac",
        "empty.mp3",
        "truncated.mp3",
        "letter.mp3",
        "silence.wav",
    }
    assert by_file["empty.mp3"].reason == "zero bytes"
    assert by_file["truncated.mp3"].reason.startswith("truncated")
    assert by_file["letter.mp3"].reason.startswith("not audio")
    assert by_file["silence.wav"].reason == "silent throughout"
    assert {r.file for r in report.rows if r.status == FAILED} == {
        "empty.mp3",
        "truncated.mp3",
        "letter.mp3",
        "silence.wav",
    }
    good = by_file["Good Artist - Good Song.wav"]
    assert good.status == ADDED and good.gain_db == pytest.approx(-14.0 - good.loudness_lufs)
    track = catalog.track(good.track_id)
    assert track is not None and track.title == "Good Song" and track.artist_name == "Good Artist"
    assert track.audio_path.exists() and track.audio_path.parent == tmp_path / "media"
    assert catalog.deals(good.track_id) and catalog.shares(good.track_id)
    with HouseReader(track.audio_path) as r:  # the house-format copy
        assert r.samplerate == SR and r.channels == 2
    table = report.format_table()
    assert "zero bytes" in table and "2 added, 0 skipped, 4 failed" in table

    again = ingest(catalog, tmp_path / "media", bad_folder, default_deals=WW)
    assert again.count(ADDED) == 0 and again.count(SKIPPED) == 2
    assert len(catalog.tracks()) == 2


def test_without_a_deal_the_report_says_it_cannot_air(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "song.wav", tone(2.0))
    report = ingest(catalog_at(tmp_path), tmp_path / "media", src)
    assert report.rows[0].status == ADDED and "no deal" in report.rows[0].reason


def test_stages_alone(tmp_path, bad_folder):
    files = scan(bad_folder)
    assert [f.path.name for f in files] == sorted(
        [
            "Good Artist - Good Song.wav",
            "empty.mp3",
            "letter.mp3",
            "second.flac",
            "silence.wav",
            "truncated.mp3",
        ]
    )
    wav = bad_folder / "Good Artist - Good Song.wav"
    house = decode(wav)
    assert house.shape == (2, 3 * SR)
    a = analyse_house(house)
    assert a.duration_s == pytest.approx(3.0)
    path = write_house(house, tmp_path / "m", "t-x")
    assert path == tmp_path / "m" / "t-x.flac" and not list((tmp_path / "m").glob(".*"))
    assert len(fingerprint(wav)) == 64
    meta = metadata_for(wav, None, None, catalog_at(tmp_path))
    assert (meta.artist.id, meta.title) == ("good-artist", "Good Song")


def test_manifest_problems_are_reported_at_once(tmp_path):
    m = tmp_path / "bad.toml"
    m.write_text(
        '[[track]]\nfile = "a.wav"\n\n[[track]]\ntitle = "x"\nartist = "y"\n'
        'shares = [{ party = "p", role = "master", share = 60 }]\n'
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(m)
    assert len(err.value.problems) >= 3


@pytest.mark.skipif(not DATA.exists(), reason="shared data missing")
def test_every_real_file_ingests_with_the_example_manifest(tmp_path):
    catalog = catalog_at(tmp_path)
    report = ingest(catalog, tmp_path / "media", DATA, EXAMPLE, workers=2)
    assert report.count(FAILED) == 0, report.format_table()
    assert report.count(ADDED) == 12
    ids = {t.id for t in catalog.tracks()}
    assert {"km-galway-opus", "km-furious-freak-m4a", "brahms-hungarian-dance-5-excerpt"} <= ids
    for t in catalog.tracks():
        a = t.analysis
        assert 0 <= a.cue_in_s < a.cue_out_s <= a.duration_s + 1e-6
        assert 0 < a.outro_s <= 8.0 and -30 < a.loudness_lufs < 0
        assert catalog.is_playable(t.id, "DE", "subscription", date(2026, 1, 1))
        assert any("credit" in tag for tag in t.tags)
        with HouseReader(t.audio_path) as r:
            assert r.frames == pytest.approx(a.duration_s * SR, abs=2)
    fairy = catalog.track("km-sugar-plum-fairy")
    assert fairy.artist_name == "Kevin MacLeod" and catalog.shares(fairy.id)[0].share_pct == 100
    again = ingest(catalog, tmp_path / "media", DATA, EXAMPLE)
    assert again.count(ADDED) == 0 and again.count(SKIPPED) == 12


def test_a_second_ingest_measures_edge_levels_an_older_ingest_did_not(tmp_path):
    """A catalog from before edge levels existed gets them from its house files on the next
    ingest of the same sources; nothing is added twice, and the levels match a fresh ingest."""
    src = tmp_path / "src"
    src.mkdir()
    intro = tone(4.0, 330.0, 0.05)
    write(src / "Old Artist - Old Song.wav", np.concatenate([intro, tone(20.0)], axis=1))
    catalog = catalog_at(tmp_path)
    ingest(catalog, tmp_path / "media", src, default_deals=WW)
    (track,) = catalog.tracks()
    fresh = track.analysis
    assert fresh.head_lu and fresh.tail_lu
    catalog.set_edge_levels(track.id, b"", b"")  # as an older ingest left it
    assert not catalog.track(track.id).analysis.head_lu
    report = ingest(catalog, tmp_path / "media", src, default_deals=WW)
    assert report.count(ADDED) == 0 and report.count(SKIPPED) == 1
    assert "edge levels measured" in report.rows[0].reason
    upgraded = catalog.track(track.id).analysis
    assert upgraded.head_lu == fresh.head_lu and upgraded.tail_lu == fresh.tail_lu
    assert "edge levels" not in ingest(catalog, tmp_path / "media", src).rows[0].reason
