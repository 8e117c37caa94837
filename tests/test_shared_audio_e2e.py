"""Real music through the whole station: `dj ingest` of every file in ../shared/data/audio, then a
programme of it measured as a listener hears it (true peak, loudness per track, clicks at every
join, loudness around every transition, ducking depth and attack), then a stream of it read over
HTTP and decoded by ffmpeg. A house file corrupted while its track is queued is skipped with a
logged reason and the music goes on (that test runs last: it breaks a file of the catalog)."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import numpy as np
import pytest

from dj.audio.analysis import integrated_loudness, true_peak_dbtp
from dj.audio.dsp import max_abs_jump
from dj.audio.plan import Item, Marker, VoiceCue
from dj.audio.render import Renderer
from dj.cli import main as dj
from dj.config import HOUSE_SAMPLE_RATE as SR
from dj.config import REPO_ROOT, load_config
from dj.narrate.engines.espeak import EspeakEngine
from dj.narrate.persona import load_personas
from dj.narrate.voice_dsp import to_house
from dj.program.programme import track_cue
from dj.server.app import create_app
from dj.server.wiring import build_station

from .streamcheck import BYTES_PER_S, decode_mp3, longest_silence_s


@pytest.fixture(scope="module")
def shared_station(shared_data, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("shared-station")
    args = [
        "ingest",
        str(shared_data / "audio"),
        "--manifest",
        str(REPO_ROOT / "config" / "ingest-example.toml"),
        "--data-dir",
        str(data_dir),
        "--quiet",
    ]
    assert dj(args) == 0
    assert dj(args) == 0  # a second run adds nothing twice
    config = load_config(env={}, data_dir=data_dir)
    station = build_station(config)
    yield config, station
    station.shutdown()


def test_every_shared_file_is_in_the_catalog_once(shared_station, shared_data):
    _, station = shared_station
    files = [p for p in (shared_data / "audio").iterdir() if p.suffix != ".md"]
    tracks = station.catalog.tracks()
    assert len(tracks) == len(files) == 12
    for t in tracks:
        assert t.audio_path.exists()
        assert abs(t.analysis.loudness_lufs + t.analysis.gain_db + 14.0) < 0.5


# every format and rate of ../shared/data/audio, short and long, quiet and hot, in one programme
ORDER = [
    "brahms-hungarian-dance-5-excerpt",
    "km-galway-flac",
    "emegeme-target",
    "km-vibe-ace",
    "brahms-hungarian-dance-5",
    "km-sugar-plum-fairy",
    "emegeme-country",
    "km-galway-opus",
]
VOICED = {"km-vibe-ace", "km-sugar-plum-fairy", "emegeme-country"}
SENTENCE = "That was Galway by Kevin MacLeod. Coming up next, something to dance to."


def render(config, items: list[Item], voice, seconds: float) -> tuple[np.ndarray, list[Marker]]:
    queue = list(items)
    renderer = Renderer(config, lambda: queue.pop(0) if queue else None, lambda key: voice(key))
    blocks, markers = [], []
    while renderer.frames_rendered < seconds * SR:
        block, found = renderer.render(SR // 2)
        blocks.append(block)
        markers += found
    renderer.close()
    return np.concatenate(blocks, axis=1), markers


@pytest.fixture(scope="module")
def real_programme(shared_station):
    """Six minutes of the real files with three real voice-overs (espeak through the default
    persona's chain), as the station's renderer plays them."""
    config, station = shared_station
    nova = load_personas(REPO_ROOT / "voices" / "personas")[0]["nova"]
    speech = to_house(*EspeakEngine().synthesize(SENTENCE, nova.voice), nova.chain,
                      config.audio.voice_lufs)
    tracks = [station.catalog.track(i) for i in ORDER]
    items = [
        Item(track_cue(t), config.audio.crossfade_s,
             VoiceCue(f"v-{t.id}", nova.duck_db) if t.id in VOICED else None)
        for t in tracks
    ]
    seconds = sum(t.analysis.cue_out_s - t.analysis.cue_in_s for t in tracks) - 40
    out, markers = render(config.audio, items, lambda key: speech, seconds)
    return config, items, speech, nova, out, markers


def spans(markers: list[Marker], kind: str) -> list[tuple[str, int]]:
    return [(m.key, m.frame) for m in markers if m.kind == kind]


def test_real_programme_true_peak_and_loudness_per_track(real_programme):
    config, _, _, _, out, markers = real_programme
    assert not [m for m in markers if m.kind in ("skipped", "dead_air")]
    assert true_peak_dbtp(out) <= config.audio.true_peak_dbtp
    starts, ends = spans(markers, "track_start"), dict(spans(markers, "track_end"))
    voice_ends = [f for _, f in spans(markers, "voice_end")]
    measured = 0
    for i, (key, _) in enumerate(starts[:-1]):
        prev_end = ends.get(starts[i - 1][0], 0) if i else 0
        lo = max([prev_end] + [v for v in voice_ends if v <= starts[i + 1][1]]) + SR
        hi = starts[i + 1][1] - SR
        if hi - lo < 20 * SR:
            continue  # too short to measure alone
        measured += 1
        assert integrated_loudness(out[:, lo:hi], SR) == pytest.approx(-14.0, abs=1.0), key
    assert measured >= 3


def test_real_programme_has_no_clicks_at_any_join(real_programme):
    _, _, _, _, out, markers = real_programme
    joins = [m.frame for m in markers if m.kind in ("track_start", "track_end", "voice_start",
                                                     "voice_end")]
    assert len(joins) >= 16
    edge = SR // 100
    for j in joins:
        at = max_abs_jump(out[:, max(0, j - edge) : j + edge])
        before, after = out[:, max(0, j - 2 * SR) : j - edge], out[:, j + edge : j + 2 * SR]
        around = np.concatenate([before, after], axis=1)
        assert at <= max_abs_jump(around), f"click at {j / SR:.2f} s"


def short_term(x: np.ndarray, start: int, end: int) -> np.ndarray:
    return np.array([integrated_loudness(x[:, i : i + 3 * SR], SR)
                     for i in range(start, end - 3 * SR, SR // 5)])


def test_real_programme_loudness_around_every_transition(real_programme):
    """Short-term (3 s) loudness across each crossfade stays within 3 LU of the music beside it
    (8 s of each track playing alone); the music's own quiet openings are not the transition's."""
    _, _, _, _, out, markers = real_programme
    starts, ends = spans(markers, "track_start"), dict(spans(markers, "track_end"))
    checked = 0
    for i in range(1, len(starts)):
        key, s = starts[i]
        o1 = ends.get(starts[i - 1][0])
        nxt = starts[i + 1][1] if i + 1 < len(starts) else out.shape[1]
        prev = starts[i - 1][1]
        if o1 is None or s - prev < 12 * SR or nxt - o1 < 12 * SR:
            continue
        beside = np.concatenate(
            [short_term(out, s - 11 * SR, s), short_term(out, o1, o1 + 11 * SR)]
        )
        across = short_term(out, s - 2 * SR, o1 + 2 * SR)
        checked += 1
        assert across.min() >= beside.min() - 3.0, (key, across.min(), beside.min())
        assert across.max() <= beside.max() + 3.0, (key, across.max(), beside.max())
    assert checked >= 3


def test_real_music_ducks_by_the_persona_depth_before_the_first_word(real_programme):
    """The same two real tracks with the voice's duck and without it (the level rider off, so the
    duck is all that differs): the music under the line is down by the persona's depth, already
    at the first word."""
    config, items, speech, nova, _, _ = real_programme
    dsp_only = dataclasses.replace(config.audio, agc_range_db=0.0)
    pair = [i for i in items if i.track.key in ("brahms-hungarian-dance-5", "km-sugar-plum-fairy")]
    silent = np.zeros_like(speech)
    ducked, markers = render(dsp_only, pair, lambda key: silent, 60)
    plain, _ = render(dsp_only, pair, lambda key: None, 60)
    (_, v0), (_, v1) = spans(markers, "voice_start")[0], spans(markers, "voice_end")[0]
    def down_db(span: slice) -> float:
        return float(10 * np.log10(np.mean(plain[:, span] ** 2) / np.mean(ducked[:, span] ** 2)))

    depth = down_db(slice(v0, v1 - int(config.audio.duck_release_ms * SR / 1000)))
    assert 10.0 <= depth <= 14.0 and depth == pytest.approx(nova.duck_db, abs=0.5)
    assert down_db(slice(v0, v0 + SR // 20)) == pytest.approx(nova.duck_db, abs=0.5)  # 1st word


async def test_real_music_streams_and_a_corrupt_file_is_skipped(aiohttp_server, shared_station):
    config, station = shared_station
    server = await aiohttp_server(create_app(config, station, pacing=False), host="127.0.0.1")
    listener = "real-music"
    corrupted = None
    buf = bytearray()
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{server.port}/stream/{listener}.mp3") as resp,
    ):
        assert resp.status == 200
        buf += await resp.content.read(1)  # audio flows once the session is on air
        session = station.sessions[listener]
        while len(buf) < 6 * 60 * BYTES_PER_S:
            data = await resp.content.read(65536)
            assert data
            buf += data
            with session.programme._lock:  # nothing is handed to the renderer meanwhile
                prepared = session.programme._prepared
                if corrupted is None and prepared is not None:
                    corrupted = prepared.track
                    corrupted.audio_path.write_bytes(b"this is not a FLAC file any more" * 100)
    assert corrupted is not None
    assert station.failures["track_unreadable"] >= 1
    decoded = await asyncio.get_running_loop().run_in_executor(None, decode_mp3, bytes(buf))
    assert decoded.returncode == 0, decoded.stderr
    assert len(decoded.pcm) / decoded.rate >= 6 * 60 * 0.95
    assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0
    station.flush_writes()
    plays = station.ledger.plays(listener)
    assert corrupted.id not in {p.track_id for p in plays}
    # the corrupted track was queued behind the first one: another took its place (real tracks
    # run to 3 minutes, so six minutes hold as few as two or three starts)
    assert len({p.track_id for p in plays}) >= 2
