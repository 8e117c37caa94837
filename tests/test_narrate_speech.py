"""Speech: espeak-ng in-process, loudness, personas that measurably differ, clips, neural."""

from __future__ import annotations

import io
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from dj.narrate import ClipError, NarrationContext, SpeechError, Utterance, VoiceParams
from dj.narrate.engines import EspeakEngine, NeuralEngine, validate_clip
from dj.narrate.persona import load_personas
from dj.narrate.voice_dsp import MAX_PAUSE_S, loudness_lufs, tighten_pauses, to_house

try:  # tests may run as a package or as loose modules
    from .test_narrate import BO, REPO_VOICES, ctx, default_packs, make_narrator
except ImportError:
    from test_narrate import BO, REPO_VOICES, ctx, default_packs, make_narrator  # type: ignore[no-redef]

SR = 44_100
SENTENCE = "Good evening. You are listening to dj. Coming up next, Harbour Lights by Nova Lake."


def median_f0_hz(mono: np.ndarray, rate: int = SR) -> float:
    """Median pitch of voiced 40 ms frames, by autocorrelation (60-450 Hz)."""
    frame, hop = int(0.04 * rate), int(0.02 * rate)
    gate = 0.03 * float(np.max(np.abs(mono)))
    lo, hi = int(rate / 450), int(rate / 60)
    pitches = []
    for start in range(0, mono.size - frame, hop):
        x = mono[start:start + frame].astype(np.float64)
        if np.sqrt(np.mean(x**2)) < gate:
            continue
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def spectral_centroid_hz(mono: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(mono))
    freqs = np.fft.rfftfreq(mono.size, 1 / rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


@pytest.fixture(scope="module")
def personas():
    loaded, problems = load_personas(REPO_VOICES / "personas")
    assert not problems
    return loaded


def test_espeak_speaks(personas) -> None:
    mono, rate = EspeakEngine().synthesize("Hello from the radio.", personas["nova"].voice)
    assert rate == 22_050 and mono.dtype == np.float32
    assert mono.size > rate * 0.5
    assert float(np.sqrt(np.mean(mono**2))) > 0.01


def test_espeak_single_worker_is_thread_safe(personas) -> None:
    engine = EspeakEngine()
    voices = [personas[name].voice for name in ("nova", "atlas", "spark")] * 4
    expected = [engine.synthesize(f"Line number {i}.", v)[0] for i, v in enumerate(voices)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda iv: engine.synthesize(f"Line number {iv[0]}.", iv[1])[0],
                            enumerate(voices)))
    for a, b in zip(expected, got, strict=True):  # espeak adds noise, so not bit-identical
        assert abs(a.size - b.size) <= 0.02 * a.size
        rms_a, rms_b = float(np.sqrt(np.mean(a**2))), float(np.sqrt(np.mean(b**2)))
        assert abs(rms_a - rms_b) < 0.1 * rms_a


def test_espeak_unknown_voice_is_an_error() -> None:
    with pytest.raises(SpeechError, match="no voice"):
        EspeakEngine().synthesize("Hello.", VoiceParams(voice="zz-nowhere"))


def test_render_normalised_to_voice_loudness(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, default_packs())
    utt = narrator.choose(ctx(prev=None, next=BO))
    audio = narrator.render(utt)
    assert audio is not None and audio.dtype == np.float32 and audio.shape[0] == 2
    assert abs(loudness_lufs(audio) - narrator.config.audio.voice_lufs) <= 1.0
    assert float(np.max(np.abs(audio))) <= 10 ** (-1 / 20) + 1e-6
    assert narrator.render(utt) is audio or np.array_equal(narrator.render(utt), audio)


def test_cached_audio_survives_restart(tmp_path: Path) -> None:
    first = make_narrator(tmp_path, default_packs())
    utt = first.choose(ctx(prev=None, next=BO))
    audio = first.render(utt)
    second = make_narrator(tmp_path, voices=first.voices_dir, store=first.store)
    again = second.audio_for(utt.key)
    assert again is not None and np.array_equal(again, audio)


def test_personas_sound_different(personas, capsys) -> None:
    measured = {}
    for name in ("nova", "atlas", "spark"):
        p = personas[name]
        mono, rate = EspeakEngine().synthesize(SENTENCE, p.voice)
        audio = to_house(mono, rate, p.chain, -16.0)
        measured[name] = (median_f0_hz(audio[0]), spectral_centroid_hz(audio[0]),
                          audio.shape[1] / SR)
    with capsys.disabled():
        for name, (f0, centroid, seconds) in measured.items():
            print(f"\n  {name:6s} median f0 {f0:6.1f} Hz  centroid {centroid:6.0f} Hz  "
                  f"length {seconds:4.2f} s", end="")
        print()
    names = list(measured)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (fa, ca, _), (fb, cb, _) = measured[a], measured[b]
            pitch_ratio = max(fa, fb) / min(fa, fb)
            assert pitch_ratio >= 1.1 and abs(ca - cb) >= 250, (a, b, measured)
    assert measured["atlas"][0] < 120 < measured["nova"][0] < measured["spark"][0]
    assert measured["atlas"][1] < measured["nova"][1] < measured["spark"][1]
    assert measured["spark"][2] < measured["nova"][2] < measured["atlas"][2]  # speaking rate


def test_render_failure_is_counted_not_raised(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(REPO_VOICES / "personas", voices / "personas")
    nova = (voices / "personas" / "nova.toml").read_text()
    (voices / "personas" / "nova.toml").write_text(nova.replace('"en-us+f3"', '"zz-nowhere"'))
    narrator = make_narrator(tmp_path, voices=voices)
    utt = narrator.choose(NarrationContext("l", "Sam", "US", "nova", None, BO,
                                           ctx().now, None))
    assert utt is not None
    assert narrator.render(utt) is None
    assert narrator.failures == 1 and narrator.failure_reasons["render:espeak"] == 1


def test_not_airable_is_not_rendered(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, default_packs())
    fake = Utterance("k" * 32, "0" * 32, "bo", "nova", "Something nobody approved.", "espeak")
    assert not narrator.is_airable(fake)
    assert narrator.render(fake) is None
    assert not narrator.cache.path(fake.key).exists()


# -- clips ----------------------------------------------------------------------------------
def _clip_bytes(fmt: str, seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * 44_100)) / 44_100
    tone = 0.3 * np.sin(2 * np.pi * 330 * t) * np.hanning(t.size)
    buf = io.BytesIO()
    with AudioFile(buf, "w", samplerate=44_100, num_channels=1, format=fmt) as f:
        f.write(tone[np.newaxis, :].astype(np.float32))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_valid_clips_accepted(fmt: str) -> None:
    info = validate_clip(_clip_bytes(fmt), f"hello.{fmt}")
    assert info.duration_s == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "x.wav", "not a readable"),
        (os.urandom(4000), "x.mp3", "not a readable"),
        (b"", "x.wav", "empty"),
        (None, "x.ogg", "unsupported"),
        (None, "silent.wav", "silent"),
        (None, "short.wav", "too short"),
    ],
)
def test_corrupt_clips_rejected_with_reason(data: bytes | None, name: str, reason: str) -> None:
    if data is None and name == "silent.wav":
        buf = io.BytesIO()
        with AudioFile(buf, "w", samplerate=44_100, num_channels=1, format="wav") as f:
            f.write(np.zeros((1, 44_100), np.float32))
        data = buf.getvalue()
    elif data is None and name == "short.wav":
        data = _clip_bytes("wav", 0.1)
    elif data is None:
        data = _clip_bytes("wav")
    with pytest.raises(ClipError, match=reason):
        validate_clip(data, name)


# -- neural ---------------------------------------------------------------------------------
def test_neural_persona_falls_back_to_espeak(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(REPO_VOICES / "personas", voices / "personas")
    (voices / "personas" / "neo.toml").write_text(
        'name = "neo"\nengine = "neural"\n[voice]\nname = "en-us"\n'
        'model_path = "models/missing.pth"\nconfig_path = "models/missing.json"\n'
        '[templates]\nstation_id = ["This is {station}."]\n')
    narrator = make_narrator(tmp_path, voices=voices)
    ok, reason = NeuralEngine().available(narrator.persona("neo").voice)
    assert not ok and reason
    utt = narrator.choose(NarrationContext("l", "Sam", "US", "neo", None, BO, ctx().now, None))
    assert utt is not None and utt.engine == "espeak"
    assert narrator.render(utt) is not None


def test_neural_engine_with_local_model() -> None:
    """Runs where the ``neural`` extra is installed; real synthesis needs local model files
    named by DJ_TEST_NEURAL_MODEL and DJ_TEST_NEURAL_CONFIG (never a hub download)."""
    pytest.importorskip("TTS")
    engine = NeuralEngine()
    missing = VoiceParams(model_path=Path("/nonexistent/model.pth"),
                          config_path=Path("/nonexistent/config.json"))
    ok, reason = engine.available(missing)
    assert not ok and "not found" in reason
    with pytest.raises(SpeechError):
        engine.synthesize("Hello.", missing)
    model, config = os.environ.get("DJ_TEST_NEURAL_MODEL"), os.environ.get("DJ_TEST_NEURAL_CONFIG")
    if not (model and config):
        pytest.skip("no local neural model files (DJ_TEST_NEURAL_MODEL/DJ_TEST_NEURAL_CONFIG)")
    mono, rate = engine.synthesize("Hello from the radio.",
                                   VoiceParams(model_path=Path(model), config_path=Path(config)))
    assert rate > 8000 and mono.size > rate * 0.3 and float(np.max(np.abs(mono))) > 0.01


def test_long_pauses_inside_a_line_are_tightened_without_clicks() -> None:
    sr = 44_100
    t = np.arange(sr) / sr
    word = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    gap = np.zeros(int(0.9 * sr), np.float32)
    short = np.zeros(int(0.1 * sr), np.float32)
    edge = np.zeros(int(0.6 * sr), np.float32)
    line = np.concatenate([edge, word, gap, word, short, word, edge])
    out = tighten_pauses(line)
    quiet = np.concatenate([[False], np.abs(out) < 1e-4, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(quiet))
    runs = (edges[1::2] - edges[::2]) / sr
    inner = [r for r in runs[1:-1] if r > 0.02]  # pauses between words, not zero crossings
    assert max(inner) <= MAX_PAUSE_S + 0.02  # the 0.9 s pause is now about 0.25 s
    assert min(inner) == pytest.approx(0.1, abs=0.02)  # a short pause is left alone
    assert out.size == pytest.approx(line.size - (0.9 - MAX_PAUSE_S) * sr, abs=0.02 * sr)
    assert np.max(np.abs(np.diff(out))) <= np.max(np.abs(np.diff(line))) + 1e-6
    assert np.array_equal(tighten_pauses(word), word)  # no pause: untouched
