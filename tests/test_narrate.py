"""The narrator's rules: personas, line ids, scope, consent, choice, repeats, revocation, audit."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from dj.catalog import Analysis, Catalog, Track
from dj.config import Config, NarrateConfig
from dj.narrate import (
    LineError,
    LineScope,
    NarrationContext,
    Narrator,
    PersonaError,
    line_content_id,
    load_persona,
    load_personas,
)
from dj.narrate.packs import load_pack
from dj.store import Store

REPO_VOICES = Path(__file__).resolve().parents[1] / "voices"
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)

PACK = """\
artist = "{artist}"

[[consent]]
kind = "persona_text"
evidence = "test/consent/{artist}.pdf"

[[line]]
text = "{name} wrote {{title}} by the sea."
moment = "before"

[[line]]
text = "That was {name}. Thanks for listening."
moment = "after"
"""


def track(track_id: str, artist_id: str, artist_name: str, title: str) -> Track:
    return Track(
        id=track_id, title=title, artist_id=artist_id, artist_name=artist_name,
        audio_path=Path(f"/nonexistent/{track_id}.flac"), album="Test Album", year=2025,
        analysis=Analysis(120.0, -14.0, -1.0, 0.0, 0.0, 119.0, 4.0),
    )


def make_voices(root: Path, packs: dict[str, str] | None = None) -> Path:
    """A voices dir with the repository's personas and the given artist packs (text)."""
    voices = root / "voices"
    shutil.copytree(REPO_VOICES / "personas", voices / "personas")
    (voices / "artists").mkdir(parents=True)
    for artist, body in (packs or {}).items():
        (voices / "artists" / artist).mkdir()
        (voices / "artists" / artist / "lines.toml").write_text(body)
    return voices


def make_narrator(root: Path, packs: dict[str, str] | None = None, voices: Path | None = None,
                  store: Store | None = None, **narrate: object) -> Narrator:
    """A narrator on a fresh database, or on ``store`` (a restart that keeps the database)."""
    voices = voices or make_voices(root, packs)
    config = Config(data_dir=root / "data", narrate=NarrateConfig(voices_dir=voices, **narrate))
    store = store or Store(config.db_path)
    return Narrator(store, Catalog(store), config)


def default_packs() -> dict[str, str]:
    return {
        "ana": PACK.format(artist="ana", name="Ana"),
        "bo": PACK.format(artist="bo", name="Bo"),
    }


ANA = track("t-ana", "ana", "Ana", "Blue Hour")
BO = track("t-bo", "bo", "Bo", "Red Kite")
NOC = track("t-noc", "noc", "No Consent", "Quiet Song")  # an artist with no pack, no consent


def ctx(prev: Track | None = ANA, next: Track | None = BO, *, listener: str = "l1",
        persona: str = "nova", territory: str = "US", since: float | None = None,
        now: datetime = NOW) -> NarrationContext:
    return NarrationContext(listener, "Sam", territory, persona, prev, next, now, since)


@pytest.fixture
def narrator(tmp_path: Path) -> Narrator:
    return make_narrator(tmp_path, default_packs())


# -- personas ------------------------------------------------------------------------------
def test_repository_personas_load() -> None:
    personas, problems = load_personas(REPO_VOICES / "personas")
    assert problems == []
    assert {"nova", "atlas", "spark"} <= set(personas)
    for p in personas.values():
        assert 10 <= p.duck_db <= 14
        assert {t.kind for t in p.templates} == {"intro", "back_announce", "station_id", "greeting"}


def test_unknown_slot_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent("""\
        name = "bad"

        [voice]
        name = "en-us"

        [templates]
        intro = [
          "Here is {title}.",
          "Here is {titel} by {artist}.",
        ]
        """))
    with pytest.raises(PersonaError) as err:
        load_persona(path)
    assert any(f"{path}:9:" in p and "{titel}" in p for p in err.value.problems), err.value.problems


def test_broken_persona_skipped_others_load(tmp_path: Path) -> None:
    shutil.copytree(REPO_VOICES / "personas", tmp_path / "personas")
    (tmp_path / "personas" / "broken.toml").write_text("name = [unclosed\n")
    (tmp_path / "personas" / "slotty.toml").write_text(
        'name = "slotty"\n[templates]\nintro = ["{nope}"]\n')
    personas, problems = load_personas(tmp_path / "personas")
    assert {"nova", "atlas", "spark"} == set(personas)
    assert any("broken.toml" in p for p in problems)
    assert any("slotty.toml:3" in p and "{nope}" in p for p in problems)


def test_bad_chain_plugin_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[[chain]]\nplugin = "Eval"\n[templates]\nintro = ["Hi {title}"]\n')
    with pytest.raises(PersonaError, match="unknown plugin 'Eval'"):
        load_persona(path)


def test_unknown_persona_gets_default(narrator: Narrator) -> None:
    assert narrator.persona("nobody").name == "nova"
    assert narrator.persona(None).name == "nova"
    assert narrator.persona("atlas").name == "atlas"


# -- line ids and scope ---------------------------------------------------------------------
def test_line_content_id_stable_and_sensitive() -> None:
    scope = LineScope.parse({"personas": ["nova"], "moment": "before"})
    a = line_content_id("ana", "Hello there.", scope, None)
    assert a == line_content_id("ana", "Hello there.",
                                LineScope.parse({"moment": "before", "personas": "nova"}), None)
    assert a != line_content_id("ana", "Hello there!", scope, None)
    assert a != line_content_id("bo", "Hello there.", scope, None)
    assert a != line_content_id("ana", "Hello there.", LineScope.parse({"moment": "after"}), None)
    assert a != line_content_id("ana", "Hello there.", scope, "ab" * 32)


def test_pack_line_ids_stable_across_loads(tmp_path: Path) -> None:
    first = make_narrator(tmp_path / "a", default_packs())
    second = make_narrator(tmp_path / "b", default_packs())
    assert {ln.id for ln in first.lines.lines()} == {ln.id for ln in second.lines.lines()}


def test_scope_parsing_rejects_nonsense() -> None:
    with pytest.raises(LineError, match="moment"):
        LineScope.parse({"moment": "sometimes"})
    with pytest.raises(LineError, match="unknown scope"):
        LineScope.parse({"colour": "blue"})
    with pytest.raises(LineError, match="before valid_from"):
        LineScope.parse({"valid_from": "2026-02-01", "valid_until": "2026-01-01"})


def test_scope_window_is_inclusive_of_end_date() -> None:
    scope = LineScope.parse({"valid_until": "2026-03-14"})
    assert scope.covers("nova", "US", datetime(2026, 3, 14, 23, 59, tzinfo=UTC))
    assert not scope.covers("nova", "US", datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC))


# -- choosing -------------------------------------------------------------------------------
def test_prefers_approved_artist_lines(narrator: Narrator) -> None:
    utt = narrator.choose(ctx())
    assert utt is not None and not utt.is_template
    assert utt.artist_id in {"ana", "bo"}
    assert "{" not in utt.text
    assert narrator.is_airable(utt, "US", NOW)


def test_artist_line_slots_filled_from_their_track(narrator: Narrator) -> None:
    utt = narrator.choose(ctx(prev=None, next=BO))
    assert utt is not None and utt.text == "Bo wrote Red Kite by the sea."


def test_talk_gate(narrator: Narrator) -> None:
    nova = narrator.persona("nova")
    assert narrator.choose(ctx(since=nova.min_gap_s - 1)) is None
    spoken = sum(narrator.choose(ctx(listener=f"l{i}", since=1e6)) is not None for i in range(200))
    assert abs(spoken / 200 - nova.talk_probability) < 0.15


def test_no_consent_artist_never_named(narrator: Narrator) -> None:
    """A track by an artist without persona_text consent: only station IDs and greetings."""
    for i in range(60):
        utt = narrator.choose(ctx(prev=None, next=NOC, listener=f"x{i}"))
        if utt is None:
            continue
        assert utt.artist_id is None and utt.artists == ()
        assert "No Consent" not in utt.text and "Quiet Song" not in utt.text


def test_unapproved_and_out_of_scope_lines_never_chosen(tmp_path: Path) -> None:
    pack = textwrap.dedent("""\
        artist = "ana"
        [[consent]]
        kind = "persona_text"
        evidence = "x"
        [[line]]
        text = "Only for atlas."
        personas = ["atlas"]
        [[line]]
        text = "Only in Germany."
        territories = ["DE"]
        [[line]]
        text = "Expired long ago."
        valid_until = 2020-01-01
        [[line]]
        text = "Not yet."
        valid_from = 2099-01-01
        [[line]]
        text = "Only after the track."
        moment = "after"
        [[line]]
        text = "Only with another track."
        tracks = ["t-other"]
        [[line]]
        text = "Withdrawn in the file."
        state = "revoked"
        """)
    narrator = make_narrator(tmp_path, {"ana": pack})
    for i in range(80):
        utt = narrator.choose(ctx(prev=None, next=ANA, listener=f"u{i}"))
        assert utt is None or utt.is_template, utt


def test_no_consent_means_no_lines(tmp_path: Path) -> None:
    pack = PACK.format(artist="ana", name="Ana")
    pack = pack.replace('kind = "persona_text"\n', 'kind = "recorded_clips"\n')
    narrator = make_narrator(tmp_path, {"ana": pack})
    assert len(narrator.lines.lines("ana", approved_only=True)) == 2
    for i in range(40):
        utt = narrator.choose(ctx(prev=None, next=ANA, listener=f"c{i}"))
        assert utt is None or (utt.is_template and utt.artist_id is None)


def test_never_repeats_within_window(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, default_packs(), no_repeat_airings=4)
    seen: list[str] = []
    for i in range(12):
        utt = narrator.choose(ctx(prev=ANA if i % 2 else BO, next=BO if i % 2 else ANA,
                                  now=NOW.replace(minute=i)))
        assert utt is not None
        identity = utt.line_id if not utt.is_template else utt.line_id + utt.text
        assert identity not in seen[-4:], (i, identity)
        seen.append(identity)


def test_repeat_window_seeded_from_ledger(tmp_path: Path) -> None:
    """After a restart the ledger remembers what the listener heard."""
    voices = make_voices(tmp_path, default_packs())
    first = make_narrator(tmp_path, voices=voices)
    aired = set()
    for i in range(3):
        utt = first.choose(ctx(prev=None, next=BO, now=NOW.replace(minute=i)))
        assert utt is not None
        first.record_airing(utt, listener_id="l1", session_id="s1", event_id=f"e{i}")
        aired.add((utt.line_id, utt.text))
    second = make_narrator(tmp_path, voices=voices, store=first.store)
    for i in range(5):  # 3 remembered + 5 new stay inside the window of 8
        utt = second.choose(ctx(prev=None, next=BO, now=NOW.replace(minute=10 + i)))
        assert utt is not None and (utt.line_id, utt.text) not in aired


# -- revocation and audit -------------------------------------------------------------------
def test_revoke_fails_closed_at_once(narrator: Narrator) -> None:
    utt = narrator.choose(ctx(prev=None, next=BO))
    assert utt is not None and utt.artist_id == "bo"
    audio = narrator.render(utt)
    assert audio is not None and audio.shape[0] == 2
    path = narrator.cache.path(utt.key)
    assert path.exists()
    assert narrator.audio_for(utt.key) is not None
    heard: list[str] = []
    narrator.on_revoke(heard.append)

    narrator.lines.revoke("bo", utt.line_id, who="artist:bo (token t)")

    assert heard == [utt.line_id]
    assert not narrator.is_airable(utt)
    assert not path.exists()
    assert narrator.audio_for(utt.key) is None
    assert narrator.render(utt) is None
    assert not path.exists()
    for i in range(30):
        again = narrator.choose(ctx(prev=None, next=BO, listener=f"r{i}"))
        assert again is None or again.line_id != utt.line_id


def test_consent_revoke_stops_lines_and_templates(narrator: Narrator) -> None:
    line_utt = narrator.choose(ctx(prev=None, next=BO))
    assert line_utt is not None and narrator.render(line_utt) is not None
    template_utt = narrator.choose(ctx(prev=None, next=BO))  # the only bo line is now recent
    assert template_utt is not None and template_utt.is_template and "bo" in template_utt.artists
    heard: list[str] = []
    narrator.on_revoke(heard.append)
    narrator.lines.set_consent("bo", "persona_text", False, who="artist:bo")
    assert line_utt.line_id in heard and template_utt.line_id in heard
    assert not narrator.is_airable(line_utt) and not narrator.is_airable(template_utt)
    assert not narrator.cache.path(line_utt.key).exists()
    for i in range(40):
        utt = narrator.choose(ctx(prev=None, next=BO, listener=f"k{i}"))
        assert utt is None or ("bo" not in utt.artists and "Bo" not in utt.text)


def test_revoke_through_api_sticks_over_file(tmp_path: Path) -> None:
    voices = make_voices(tmp_path, default_packs())
    first = make_narrator(tmp_path, voices=voices)
    line = first.lines.lines("ana")[0]
    first.lines.revoke("ana", line.id, who="artist:ana")
    first.lines.set_consent("bo", "persona_text", False, who="artist:bo")
    second = make_narrator(tmp_path, voices=voices, store=first.store)  # the files still list both
    assert second.lines.get(line.id).state == "revoked"
    assert not second.lines.consent("bo", "persona_text").active


def test_sync_is_idempotent_and_removal_revokes(tmp_path: Path) -> None:
    voices = make_voices(tmp_path, default_packs())
    first = make_narrator(tmp_path, voices=voices)
    audit_before = first.lines.audit()
    report = first.lines.sync_pack(load_pack(voices / "artists" / "ana"))
    assert report.added == [] and report.revoked == []
    assert first.lines.audit() == audit_before
    path = voices / "artists" / "ana" / "lines.toml"
    path.write_text(path.read_text().split("[[line]]")[0] + "[[line]]" +
                    path.read_text().split("[[line]]")[1])  # keep only the first line
    second = make_narrator(tmp_path, voices=voices, store=first.store)
    states = sorted(ln.state for ln in second.lines.lines("ana"))
    assert states == ["approved", "revoked"]
    removed = [e for e in second.lines.audit("ana") if e.action == "line_revoked"]
    assert len(removed) == 1 and removed[0].who.startswith("file:")


def test_audit_is_append_only_with_who_and_when(narrator: Narrator) -> None:
    line = narrator.lines.lines("ana")[0]
    narrator.lines.revoke("ana", line.id, who="artist:ana (token abc)")
    entries = narrator.lines.audit("ana", line.id)
    assert [e.action for e in entries] == ["line_added", "line_revoked"]
    assert entries[-1].who == "artist:ana (token abc)"
    assert datetime.fromisoformat(entries[-1].at) >= datetime.fromisoformat(entries[0].at)
    db = narrator.store
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.transaction() as tx:
        tx.execute("UPDATE narrate_audit SET who = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.transaction() as tx:
        tx.execute("DELETE FROM narrate_audit")
    assert narrator.lines.audit("ana", line.id) == entries


def test_only_the_artist_can_revoke_their_line(narrator: Narrator) -> None:
    from dj.narrate import LineNotFound

    line = narrator.lines.lines("ana")[0]
    with pytest.raises(LineNotFound):
        narrator.lines.revoke("bo", line.id, who="artist:bo")
    assert narrator.lines.get(line.id).approved


def test_clip_line_needs_recorded_clips_consent(tmp_path: Path) -> None:
    import io

    from pedalboard.io import AudioFile

    narrator = make_narrator(tmp_path, default_packs())
    t = np.arange(int(0.8 * 22050)) / 22050
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size)).astype(np.float32)
    buf = io.BytesIO()
    with AudioFile(buf, "w", samplerate=22050, num_channels=1, format="wav") as f:
        f.write(tone[np.newaxis, :])
    line = narrator.lines.add("ana", "Hi, it's Ana!", LineScope.parse({"moment": "before"}),
                              who="artist:ana", clip=buf.getvalue(), clip_name="hi.wav")
    assert line.consent_kind == "recorded_clips"
    picks = {narrator.choose(ctx(prev=None, next=ANA, listener=f"p{i}")) for i in range(30)}
    assert all(u is None or u.line_id != line.id for u in picks)
    narrator.lines.set_consent("ana", "recorded_clips", True, who="artist:ana", evidence="form-7")
    picks = {narrator.choose(ctx(prev=None, next=ANA, listener=f"q{i}")) for i in range(30)}
    clip_utts = [u for u in picks if u is not None and u.line_id == line.id]
    assert clip_utts and all(u.engine == "clip" for u in clip_utts)
    audio = narrator.render(clip_utts[0])
    assert audio is not None and audio.shape == (2, pytest.approx(0.8 * 44100, abs=2000))


def test_record_airing_writes_ledger(narrator: Narrator) -> None:
    utt = narrator.choose(ctx(prev=None, next=BO))
    narrator.record_airing(utt, listener_id="l1", session_id="s1", event_id="ev-1")
    narrator.record_airing(utt, listener_id="l1", session_id="s1", event_id="ev-1")
    airings = narrator.ledger.airings(artist_id="bo")
    assert [(a.line_id, a.persona, a.listener_id) for a in airings] == [(utt.line_id, "nova", "l1")]


def test_repository_artist_packs_load(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, voices=REPO_VOICES)
    assert narrator.problems == []
    demo = {"nova-lake", "copper-kites", "mira-sol", "dust-parade", "lowlight", "kai-ferro",
            "saffron-youth", "night-orchard"}
    for artist in demo:
        lines = narrator.lines.lines(artist, approved_only=True)
        assert 3 <= len(lines) <= 6, artist
        assert narrator.lines.consent(artist, "persona_text").active


def test_revoke_racing_renders_leaves_nothing_behind(tmp_path: Path) -> None:
    """Renders in flight on other threads cannot write the cache after the revoke returns."""
    from concurrent.futures import ThreadPoolExecutor

    narrator = make_narrator(tmp_path, default_packs())
    utts = [narrator.choose(ctx(prev=None, next=BO, listener=f"race{i}")) for i in range(8)]
    line_id = utts[0].line_id
    assert all(u is not None and u.line_id == line_id for u in utts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(narrator.render, u) for u in utts]
        narrator.lines.revoke("bo", line_id, who="artist:bo")
        after = [narrator.audio_for(u.key) for u in utts]
        results = [f.result() for f in futures]
    assert after == [None] * len(utts)
    assert all(narrator.audio_for(u.key) is None for u in utts)
    assert not any(narrator.cache.path(u.key).exists() for u in utts)
    assert all(r is None or r.shape[0] == 2 for r in results)  # each render: audio or refusal


def test_pack_with_clip_and_consent_file(tmp_path: Path) -> None:
    import io

    from pedalboard.io import AudioFile

    pack = ('artist = "ana"\n[[line]]\ntext = "Hi, Ana here."\nclip = "clips/hi.wav"\n'
            'moment = "before"\n[[line]]\ntext = "Broken clip."\nclip = "clips/bad.wav"\n')
    voices = make_voices(tmp_path, {"ana": pack})
    clips = voices / "artists" / "ana" / "clips"
    clips.mkdir()
    t = np.arange(22_050) / 22_050
    buf = io.BytesIO()
    with AudioFile(buf, "w", samplerate=22_050, num_channels=1, format="wav") as f:
        f.write((0.2 * np.sin(2 * np.pi * 180 * t))[np.newaxis, :].astype(np.float32))
    (clips / "hi.wav").write_bytes(buf.getvalue())
    (clips / "bad.wav").write_bytes(b"RIFF....WAVEnope")
    (voices / "artists" / "ana" / "consent.toml").write_text(
        '[[consent]]\nkind = "recorded_clips"\nevidence = "form-9"\n')
    narrator = make_narrator(tmp_path, voices=voices)
    assert any("line[1] (clip bad.wav): not a readable" in p for p in narrator.problems)
    (line,) = narrator.lines.lines("ana")
    assert line.clip_path == clips / "hi.wav" and narrator.lines.consent("ana", "recorded_clips")
    utt = narrator.choose(ctx(prev=None, next=ANA))
    assert utt is not None and utt.line_id == line.id and utt.engine == "clip"
    assert narrator.render(utt) is not None
