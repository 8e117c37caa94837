"""Operating the station, on real servers on loopback with real clients: /metrics follows a
listener in and out, /healthz tells whether audio flows (render lag, dead air) and whether
anything can play at all, one log line per session start and end, and ICY titles in Latin-1
for the players that need it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from prometheus_client import REGISTRY as GLOBAL_REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from dj.catalog import Deal
from dj.config import load_config
from dj.server.app import create_app
from dj.server.metrics import REGISTRY
from dj.stream.icy import parse_icy

from .streamcheck import BYTES_PER_S
from .test_listening_e2e import url

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(client: aiohttp.ClientSession, server) -> Samples:
    async with client.get(url(server, "/metrics")) as r:
        assert r.status == 200 and r.content_type == "text/plain"
        return parse(await r.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(check, timeout_s: float = 20.0, what: str = "condition"):
    """Poll an async ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s} s"
        await asyncio.sleep(0.05)


async def test_metrics_follow_a_listener_in_and_out(fast, demo_station, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="dj.stream.stats")
    # outside every experiment: an enrolled listener keeps the arm's persona, and this test
    # changes persona to see a session replaced
    monkeypatch.setattr(demo_station.experiments, "experiments", [])
    listener = "metrics-listener"
    async with aiohttp.ClientSession() as client:
        m0 = await scrape(client, fast)
        async with client.get(url(fast, f"/stream/{listener}.mp3?persona=nova")) as resp:
            heard = await resp.content.readexactly(3 * BYTES_PER_S)
            m1 = await scrape(client, fast)
            for action in ("skip", "like"):
                async with client.post(url(fast, f"/api/listeners/{listener}/{action}")) as r:
                    assert r.status == 200, await r.text()
            m2 = await scrape(client, fast)
        assert value(m1, "dj_listeners") == value(m0, "dj_listeners") + 1
        assert value(m1, "dj_listener_peak") >= value(m1, "dj_listeners")
        assert value(m1, "dj_sessions_opened_total") == value(m0, "dj_sessions_opened_total") + 1
        assert (value(m1, "dj_stream_connections_total", kind="new")
                == value(m0, "dj_stream_connections_total", kind="new") + 1)
        sent = value(m1, "dj_stream_sent_bytes_total") - value(m0, "dj_stream_sent_bytes_total")
        assert sent >= len(heard)
        assert (value(m1, "dj_render_wait_seconds_count")
                > value(m0, "dj_render_wait_seconds_count"))
        assert value(m1, "dj_recommend_seconds_count") > value(m0, "dj_recommend_seconds_count")
        for action in ("skip", "like"):
            assert (value(m2, "dj_listener_actions_total", action=action)
                    == value(m0, "dj_listener_actions_total", action=action) + 1)
        assert value(m2, "dj_ledger_written_total") >= value(m0, "dj_ledger_written_total")
        assert ("dj_ledger_queue_depth", ()) in m2 and ("dj_tts_renders_total", ()) in m2

        async def gone() -> Samples | None:  # the server sees the client go
            m = await scrape(client, fast)
            ended = value(m, "dj_stream_connections_ended_total", cause="gone")
            before = value(m0, "dj_stream_connections_ended_total", cause="gone")
            return m if value(m, "dj_listeners") == value(m0, "dj_listeners") \
                and ended == before + 1 else None

        m3 = await until(gone, what="the listener leaving")
        assert value(m3, "dj_sessions_resumable") >= 1  # kept for a resume
        # the same listener back with another persona: a new session replaces the old one
        async with client.get(url(fast, f"/stream/{listener}.mp3?persona=spark")) as resp:
            await resp.content.readexactly(BYTES_PER_S)
            m4 = await scrape(client, fast)
    assert (value(m4, "dj_sessions_closed_total", cause="replaced")
            == value(m0, "dj_sessions_closed_total", cause="replaced") + 1)
    starts = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith(f"session start: listener={listener} ")]
    ends = [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"session end: listener={listener} ")]
    assert len(starts) == 2 and "persona=nova" in starts[0] and "persona=spark" in starts[1]
    assert len(ends) == 1, ends
    assert "cause=a new session replaced it" in ends[0] and "connections=1" in ends[0]
    duration = float(ends[0].split("duration=")[1].split("s")[0])
    assert 0 < duration < 60
    session = demo_station.sessions.get(listener)
    if session is not None:
        demo_station.release(session)


def test_each_app_has_its_own_registry(demo_config, demo_station):
    first, second = (create_app(demo_config, demo_station) for _ in range(2))
    assert first[REGISTRY] is not second[REGISTRY]
    for app in (first, second):
        names = {m.name for m in app[REGISTRY].collect()}
        assert {"dj_listeners", "dj_sessions_opened", "dj_failures"} <= names
    assert not any(m.name.startswith("dj_") for m in GLOBAL_REGISTRY.collect())


async def health(client: aiohttp.ClientSession, server) -> tuple[int, dict]:
    async with client.get(url(server, "/healthz")) as r:
        return r.status, await r.json()


async def test_healthz_is_degraded_while_a_stream_waits_for_the_renderer(paced, demo_station):
    """Every render thread held up (a stuck render): a new listener's first block cannot be
    made, /healthz says so; once the renderer is free the audio flows and it says so too."""
    workers = demo_station.render_pool._max_workers
    hold = threading.Event()
    holders = [demo_station.render_pool.submit(hold.wait, 30) for _ in range(workers)]
    listener = "render-lag-listener"
    try:
        async with aiohttp.ClientSession() as client:
            m0 = await scrape(client, paced)
            async with client.get(url(paced, f"/stream/{listener}.mp3")) as resp:

                async def degraded() -> dict | None:
                    # degraded for this reason: a shared station may be degraded for another
                    # one (an underrun or dead air a moment ago in an earlier test)
                    status, body = await health(client, paced)
                    waiting = status == 200 and body["audio"]["waiting_for_render"] >= 1
                    return body if waiting and body["status"] == "degraded" else None

                body = await until(degraded, 15, "a degraded /healthz")
                assert body["audio"]["waiting_for_render"] >= 1
                assert any("renderer" in p for p in body["problems"])
                hold.set()
                assert await resp.content.readexactly(BYTES_PER_S)  # the audio flows again
                status, body = await health(client, paced)
                assert status == 200 and body["audio"]["waiting_for_render"] == 0
                assert body["audio"]["flowing"] == body["audio"]["streaming"] >= 1
            m1 = await scrape(client, paced)
        # the wait was observed: at least one render waited over the burst (1 s)
        def over_1s(m: Samples) -> float:
            return (value(m, "dj_render_wait_seconds_count")
                    - value(m, "dj_render_wait_seconds_bucket", le="1.0"))

        assert over_1s(m1) >= over_1s(m0) + 1
    finally:
        hold.set()
        for h in holders:
            h.result(10)
        session = demo_station.sessions.get(listener)
        if session is not None:
            demo_station.release(session)


async def test_a_paced_stream_that_runs_dry_is_an_underrun(aiohttp_server, demo_config,
                                                          demo_catalog):
    """On the full path every block is rendered for its listener: hold the renderer up past
    what the burst covers and the listener's buffer runs dry; that is counted, with how long,
    and /healthz is degraded for a while after."""
    server, station = await _app_server(aiohttp_server, demo_config.data_dir,
                                        {"DJ_STREAM__PATH": "full"}, pacing=True)
    hold = threading.Event()
    holders: list = []
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(url(server, "/stream/dry-listener.mp3")) as resp,
        ):
            assert await resp.content.readexactly(2 * BYTES_PER_S)  # playing, paced
            m0 = await scrape(client, server)
            holders = [station.render_pool.submit(hold.wait, 30)
                       for _ in range(station.render_pool._max_workers)]

            async def waiting() -> bool:  # longer than the burst: behind real time now
                _, body = await health(client, server)
                return body["audio"]["waiting_for_render"] >= 1

            await until(waiting, 15, "the stream waiting on the renderer")
            hold.set()
            assert await resp.content.readexactly(BYTES_PER_S)
            m1 = await until(lambda: _underrun(client, server, m0), 10, "an underrun")
            status, body = await health(client, server)
            assert status == 200 and body["status"] == "degraded"
            assert body["audio"]["underrun_recent"]
    finally:
        hold.set()
        for h in holders:
            h.result(10)
    late = (value(m1, "dj_stream_underrun_seconds_total")
            - value(m0, "dj_stream_underrun_seconds_total"))
    print(f"underrun: the listener's buffer ran dry for {late:.2f} s")
    assert 0.3 < late < 30  # the burst covered the first ~0.5 s of the wait, not the rest


async def _underrun(client: aiohttp.ClientSession, server, before: Samples) -> Samples | None:
    m = await scrape(client, server)
    more = value(m, "dj_stream_underruns_total") > value(before, "dj_stream_underruns_total")
    return m if more else None


async def _app_server(aiohttp_server, data_dir: Path, env: dict[str, str] | None = None,
                      **pacing):
    from dj.server.wiring import build_station

    config = load_config(env=env or {}, data_dir=data_dir)
    station = await asyncio.get_running_loop().run_in_executor(None, build_station, config)
    app = create_app(config, station, own_station=True, **pacing)
    return await aiohttp_server(app, host="127.0.0.1"), station


async def test_healthz_is_an_error_for_an_empty_catalog(aiohttp_server, tmp_path):
    server, _ = await _app_server(aiohttp_server, tmp_path)
    async with aiohttp.ClientSession() as client:
        status, body = await health(client, server)
        assert status == 503 and body["status"] == "error"
        assert body["tracks"] == 0 and "empty" in body["problems"][0]
        m = await scrape(client, server)  # the rest still answers
        assert value(m, "dj_listeners") == 0


# -- a small catalog of our own: titles no ASCII can spell, a track with a silent gap ---------
ARTISTS = {"beyonce-test": "Beyoncé Test", "lodz-band": "Łódź Band"}
TRACKS = [  # id, artist, title, (seconds of tone, of silence, of tone)
    ("gap-track", "beyonce-test", "Café Ünïcode", (8.0, 6.0, 8.0)),
    ("tone-track", "lodz-band", "It's ‘Nights’", (22.0, 0.0, 0.0)),
]


def _tone(seconds: float, rate: int, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    notes = (220.0, 277.2, 329.6) if seed else (196.0, 246.9, 293.7)
    wave = sum(np.sin(2 * np.pi * f * t) for f in notes) / len(notes)
    wobble = 0.75 + 0.25 * np.sin(2 * np.pi * 0.5 * t)  # not a flat drone
    return (0.3 * wave * wobble).astype(np.float32)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """Two tracks ingested with `dj ingest` and no deals: nothing is licensed yet."""
    from pedalboard.io import AudioFile

    from dj.cli import main as dj

    rate = 44_100
    source = tmp_path_factory.mktemp("small-src")
    data_dir = tmp_path_factory.mktemp("small-data")
    manifest = [f'[[artist]]\nid = "{a}"\nname = "{n}"\n' for a, n in ARTISTS.items()]
    for i, (track_id, artist, title, (on, off, again)) in enumerate(TRACKS):
        mono = np.concatenate([_tone(on, rate, i), np.zeros(int(off * rate), np.float32),
                               _tone(again, rate, i)])
        with AudioFile(str(source / f"{track_id}.wav"), "w", rate, 2) as f:
            f.write(np.stack([mono, mono]))
        manifest.append(
            f'[[track]]\nfile = "{track_id}.wav"\nid = "{track_id}"\ntitle = "{title}"\n'
            f'artist = "{artist}"\n'
            'shares = [{ party = "Small Label", role = "master", share = 100 },'
            ' { party = "Small Songs", role = "publishing", share = 100 }]\n')
    (source / "manifest.toml").write_text("\n".join(manifest), encoding="utf-8")
    assert dj(["ingest", str(source), "--manifest", str(source / "manifest.toml"),
               "--data-dir", str(data_dir), "--quiet"]) == 0
    return data_dir


def _license_all(station) -> None:
    for track in station.catalog.tracks():
        if not station.catalog.deals(track.id):
            station.catalog.add_deal(Deal(track_id=track.id, territories=frozenset({"WW"})))


async def test_healthz_is_an_error_until_something_can_play(aiohttp_server, small_dir):
    server, station = await _app_server(aiohttp_server, small_dir)
    async with aiohttp.ClientSession() as client:
        if not any(station.catalog.deals(t.id) for t in station.catalog.tracks()):
            status, body = await health(client, server)
            assert status == 503 and body["status"] == "error" and body["playable"] == 0
            assert "no track is licensed" in body["problems"][0]
        _license_all(station)
        status, body = await health(client, server)
        assert status == 200 and body["status"] == "ok", body
        assert body["playable"] == body["tracks"] == len(TRACKS)
        # the files gone (a media dir lost): nothing can play, whatever the licences say
        moved = []
        for track in station.catalog.tracks():
            moved.append((track.audio_path, track.audio_path.with_suffix(".away")))
            track.audio_path.rename(moved[-1][1])
        try:
            status, body = await health(client, server)
            assert status == 503 and "audio file" in body["problems"][0]
        finally:
            for path, away in moved:
                away.rename(path)
        status, body = await health(client, server)
        assert status == 200


async def test_dead_air_degrades_health_and_titles_go_out_in_latin1(aiohttp_server, small_dir):
    server, station = await _app_server(aiohttp_server, small_dir, pacing=False)
    _license_all(station)
    metaint = station.config.stream.metaint
    raw = bytearray()
    async with aiohttp.ClientSession() as client:
        m0 = await scrape(client, server)
        async with client.get(url(server, "/stream/old-radio.mp3?icy_charset=latin-1"),
                              headers={"Icy-MetaData": "1"}) as resp:
            assert resp.headers["icy-metaint"] == str(metaint)

            async def dead_air_heard() -> bool:
                raw.extend(await resp.content.read(65536))
                m = await scrape(client, server)
                return value(m, "dj_dead_air_seconds_total") > value(
                    m0, "dj_dead_air_seconds_total")

            await until(dead_air_heard, 60, "dead air heard")
            status, body = await health(client, server)
            assert status == 200 and body["status"] == "degraded"
            assert body["audio"]["dead_air_recent"]
            assert any("dead air" in p for p in body["problems"])
            while len(raw) < 70 * BYTES_PER_S:  # both tracks' titles
                chunk = await resp.content.read(65536)
                assert chunk
                raw.extend(chunk)
    _, titles = parse_icy(bytes(raw), metaint, "latin-1")
    shown = {t for _, t in titles}
    # Latin-1 keeps what it can say and spells the rest with what it has; quotes cannot close
    # the title early
    assert "Beyoncé Test - Café Ünïcode" in shown, shown
    assert "Lódz Band - It´s ´Nights´" in shown, shown
    assert station.failures["dead_air"] >= 1  # counted where every fault is
