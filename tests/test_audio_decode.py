"""Decoding, analysis, the master limiter and the MP3 encoder, on generated audio and real files."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from pedalboard.io import AudioFile

from dj.audio.analysis import SilentAudioError, analyse, integrated_loudness, true_peak_dbtp
from dj.audio.decode import DecodeError, HouseReader, decode_file, read_house, to_house
from dj.audio.encode import Mp3Encoder
from dj.audio.master import MasterChain

SR = 44_100
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3, sr: int = SR, channels: int = 2):
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[np.newaxis, :], channels, 0).astype(
        np.float32
    )


def write(path: Path, audio: np.ndarray, sr: int = SR, **kw) -> Path:
    with AudioFile(str(path), "w", sr, audio.shape[0], **kw) as f:
        f.write(audio)
    return path


# -- decode -----------------------------------------------------------------------------------
def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.mp3"
    p.write_bytes(b"")
    with pytest.raises(DecodeError) as err:
        decode_file(p)
    assert err.value.kind == "zero bytes" and err.value.path == p


def test_text_file_renamed_mp3_is_not_audio(tmp_path):
    p = tmp_path / "notes.mp3"
    p.write_text("this is a shopping list, not a song\n" * 40)
    with pytest.raises(DecodeError) as err:
        decode_file(p)
    assert err.value.kind == "not audio"


@pytest.mark.parametrize("ext", ["mp3", "flac", "wav"])
def test_truncated_file(tmp_path, ext):
    full = write(tmp_path / f"full.{ext}", tone(6.0), **({"quality": 128} if ext == "mp3" else {}))
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    audio, sr = decode_file(full)
    assert audio.shape[1] / sr == pytest.approx(6.0, abs=0.1)
    with pytest.raises(DecodeError) as err:
        decode_file(cut)
    assert err.value.kind == "truncated", err.value.reason


def test_to_house_resamples_and_duplicates_mono():
    mono = tone(1.0, 1000.0, sr=22_050, channels=1)
    house = to_house(mono, 22_050)
    assert house.shape == (2, SR) and house.dtype == np.float32
    assert np.array_equal(house[0], house[1])
    spectrum = np.abs(np.fft.rfft(house[0, 4410:-4410]))
    peak_hz = np.argmax(spectrum) * SR / (house.shape[1] - 8820)
    assert peak_hz == pytest.approx(1000.0, abs=2.0)
    assert np.sqrt(np.mean(house[0, 4410:-4410] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_read_house_seeks_and_zero_pads(tmp_path):
    ramp = np.tile(np.linspace(-0.5, 0.5, 1000, dtype=np.float32), (2, 1))
    p = write(tmp_path / "ramp.wav", ramp, bit_depth=32)
    block = read_house(p, 900, 200)
    assert block.shape == (2, 200)
    assert np.allclose(block[:, :100], ramp[:, 900:], atol=1e-6)
    assert not block[:, 100:].any()
    with HouseReader(p) as r:
        assert np.allclose(r.read(10, 5), ramp[:, 10:15], atol=1e-6)
        assert np.allclose(r.read(0, 5), ramp[:, :5], atol=1e-6)


@pytest.mark.skipif(not DATA.exists(), reason="shared data missing")
@pytest.mark.parametrize(
    "name",
    [
        "kevin-macleod_furious-freak_ff-16b-1c-44100hz.m4a",
        "kevin-macleod_galway_gs-16b-2c-44100hz.opus",
    ],
)
def test_formats_pedalboard_cannot_read_decode_with_pyav(name):
    audio, sr = decode_file(DATA / name)
    assert sr in (44_100, 48_000) and audio.shape[1] / sr > 15.0
    assert np.abs(audio).max() > 0.1


# -- analysis ---------------------------------------------------------------------------------
def test_silent_throughout(tmp_path):
    p = write(tmp_path / "silence.wav", np.zeros((2, SR * 3), np.float32))
    audio, sr = decode_file(p)
    with pytest.raises(SilentAudioError):
        analyse(to_house(audio, sr))


def test_true_peak_finds_inter_sample_peaks():
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4).astype(np.float32)[np.newaxis, :]
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.05)  # samples miss the peak
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.2)


def test_analysis_cues_gain_and_outro():
    rng = np.random.default_rng(3)
    body = (rng.normal(0, 0.1, (2, SR * 20))).astype(np.float32)
    fade = body[:, : SR * 20] * np.logspace(0, -3, SR * 20, dtype=np.float32)  # 60 dB over 20 s
    audio = np.concatenate(
        [np.zeros((2, SR * 2), np.float32), body, fade, np.zeros((2, SR * 3), np.float32)], axis=1
    )
    a = analyse(audio, SR, target_lufs=-14.0, crossfade_s=4.0)
    assert a.duration_s == pytest.approx(45.0)
    assert a.cue_in_s == pytest.approx(2.0, abs=0.02)
    assert 22.0 + 8.0 < a.cue_out_s < 22.0 + 12.0  # the inaudible end of the fade is trimmed
    assert 6.0 < a.outro_s <= 8.0  # the fade is ridden (up to twice the crossfade)
    assert a.gain_db == pytest.approx(-14.0 - a.loudness_lufs)
    short = analyse(tone(3.0), SR)
    assert short.outro_s <= 1.0 + 1e-6  # a third of a 3 s track


@pytest.mark.parametrize("source_lufs", [-30.0, -6.0])
def test_gain_reaches_target(source_lufs):
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (2, SR * 6)).astype(np.float32)
    x *= 10 ** ((source_lufs - integrated_loudness(x, SR)) / 20)
    a = analyse(x, SR)
    assert a.loudness_lufs == pytest.approx(source_lufs, abs=0.05)
    assert integrated_loudness(x * 10 ** (a.gain_db / 20), SR) == pytest.approx(-14.0, abs=0.05)


# -- master and encoder -------------------------------------------------------------------------
def test_master_holds_true_peak_on_a_hot_source():
    t = np.arange(SR * 4) / SR
    x = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (110, 220, 277, 330, 1500, 5000)) * 0.6
    x = np.stack([x, np.roll(x, 37)]).astype(np.float32)  # ~ +14 dBTP
    master = MasterChain(-1.0)
    out = np.concatenate(
        [master.process(x[:, i : i + 22050]) for i in range(0, x.shape[1], 22050)], 1
    )
    assert out.shape[1] > x.shape[1] - 1000
    assert true_peak_dbtp(out) <= -1.0


def test_mp3_encoder_streams_decodable_cbr():
    enc = Mp3Encoder(128)
    chunks = [enc.encode(tone(0.5, 440 + 10 * i)) for i in range(20)]
    assert sum(map(len, chunks[:-1])) > 0  # bytes come out while the stream is live
    data = b"".join(chunks) + enc.close()
    assert len(data) == pytest.approx(10 * 128_000 / 8, rel=0.05)
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        assert s.codec_context.sample_rate == SR and s.codec_context.channels == 2
        frames = sum(f.samples for f in c.decode(s))
    assert enc.dropped_bytes > 0  # the closing header rewrite was not spliced into the frames
    assert frames == pytest.approx(10 * SR, abs=2 * 1152 + 2000)
