"""Shared fixtures: a demo station built once per test run, in a temporary data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory):
    from dj.config import load_config

    return load_config(env={}, data_dir=tmp_path_factory.mktemp("demo-data"))


@pytest.fixture(scope="session")
def demo_catalog(demo_config):
    from dj.catalog import Catalog
    from dj.demo.build import build_demo
    from dj.store import Store

    catalog = Catalog(Store(demo_config.db_path), demo_config.media_dir)
    build_demo(demo_config, catalog, short=True)
    return catalog


@pytest.fixture(scope="session")
def demo_station(demo_config, demo_catalog):
    from dj.server.wiring import build_station

    station = build_station(demo_config)
    yield station
    station.shutdown()


@pytest.fixture(scope="session")
def long_tracks_dir(demo_catalog, tmp_path_factory) -> Path:
    """A data dir whose few tracks are each long enough to qualify (the short demo's are not),
    made from the demo's own audio by `dj ingest` with a manifest. Built once per run."""
    import numpy as np
    from pedalboard.io import AudioFile

    from dj.cli import main as dj

    source = tmp_path_factory.mktemp("long-src")
    data_dir = tmp_path_factory.mktemp("long-data")
    manifest = ['[[artist]]\nid = "loop-artist"\nname = "Loop Artist"\n']
    for i, track in enumerate(demo_catalog.tracks()[:4]):
        with AudioFile(str(track.audio_path)) as f:
            audio, rate = f.read(f.frames), f.samplerate
        repeats = int(np.ceil(75.0 * rate / audio.shape[1]))
        with AudioFile(str(source / f"loop-{i}.wav"), "w", rate, audio.shape[0]) as out:
            out.write(np.tile(audio, repeats)[:, : int(75.0 * rate)])
        manifest.append(
            f'[[track]]\nfile = "loop-{i}.wav"\nid = "loop-{i}"\ntitle = "Loop {i}"\n'
            'artist = "loop-artist"\n'
            'shares = [{ party = "Loop Label", role = "master", share = 100 },'
            ' { party = "Loop Songs", role = "publishing", share = 100 }]\n'
            'deals = [{ territories = ["WW"] }]\n')
    (source / "manifest.toml").write_text("\n".join(manifest), encoding="utf-8")
    assert dj(["ingest", str(source), "--manifest", str(source / "manifest.toml"),
               "--data-dir", str(data_dir), "--quiet"]) == 0
    return data_dir


async def _server(aiohttp_server, config, station, *, pacing: bool):
    from dj.server.app import create_app

    app = create_app(config, station, pacing=pacing)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.dj_app = app
    return server


@pytest.fixture
async def fast(aiohttp_server, demo_config, demo_station):
    """The demo station unpaced: the client is the ear, for minutes of programme quickly."""
    return await _server(aiohttp_server, demo_config, demo_station, pacing=False)


@pytest.fixture
async def paced(aiohttp_server, demo_config, demo_station):
    """The demo station as listeners get it: real-time pacing after the burst."""
    return await _server(aiohttp_server, demo_config, demo_station, pacing=True)


def listener_key(station, listener_id: str, role: str = "stream-key") -> str:
    """A key for a demo account (alice, bob, listener-NNN): their streams need one."""
    from dj.auth import TokenStore

    return TokenStore(station.catalog.store).create(role, listener_id, label="test")
