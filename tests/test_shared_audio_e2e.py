"""Real music through the whole station: `dj ingest` of every file in ../shared/data/audio, then a
stream of it read over HTTP and decoded by ffmpeg. A house file corrupted while its track is queued
is skipped with a logged reason and the music goes on."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from dj.cli import main as dj
from dj.config import REPO_ROOT, load_config
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
    station.io_pool.submit(lambda: None).result()
    plays = station.ledger.plays(listener)
    assert corrupted.id not in {p.track_id for p in plays}
    assert len({p.track_id for p in plays}) >= 4
