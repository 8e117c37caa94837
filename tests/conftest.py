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
