"""The whole path: a real aiohttp server on loopback, the demo catalog, a real MP3 stream read by a
client and decoded by ffmpeg; plays and airings checked in the SQLite ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import aiohttp
import imageio_ffmpeg
import pytest

from dj.program.programme import REST_PICKS
from dj.server.app import create_app
from dj.server.retraining import retrain
from dj.stream.icy import parse_icy

from .conftest import listener_key
from .streamcheck import BYTES_PER_S, decode_mp3, longest_silence_s, read_stream

PROGRAMME_S = 240  # four minutes of one listener's stream


@pytest.fixture
async def server(aiohttp_server, demo_config, demo_station):
    app = create_app(demo_config, demo_station, pacing=False)
    return await aiohttp_server(app, host="127.0.0.1")


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def test_stream_decodes_titles_change_and_only_licensed_tracks_air(server, demo_station):
    listener = "listener-007"  # a demo account: its territory is its own
    key = listener_key(demo_station, listener)
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(server, f"/stream/{listener}.mp3?key={key}"),
                   headers={"Icy-MetaData": "1"}) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "audio/mpeg"
        assert resp.headers["icy-br"] == "128"
        assert "icy-name" in resp.headers
        metaint = int(resp.headers["icy-metaint"])
        raw = await read_stream(resp, int(PROGRAMME_S * BYTES_PER_S * 1.01))

    audio, titles = parse_icy(raw, metaint)
    decoded = await asyncio.get_running_loop().run_in_executor(None, decode_mp3, audio)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stderr.strip() == ""  # not even a warning from the decoder
    seconds = len(decoded.pcm) / decoded.rate
    assert seconds >= PROGRAMME_S * 0.95
    assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0

    distinct = [t for i, (_, t) in enumerate(titles) if i == 0 or titles[i - 1][1] != t]
    assert len(distinct) >= 3, titles  # the title changed at least twice

    catalog = demo_station.catalog
    person = catalog.listener(listener)
    today = datetime.now(UTC).date()
    playable = catalog.playable_ids(person.territory, person.tier, today)
    by_title = {f"{t.artist_name} - {t.title}": t.id for t in catalog.tracks()}
    for _, title in titles:
        assert by_title[title] in playable, f"unlicensed track announced: {title}"
    # every play is written once, for a licensed track, with its rightsholders
    demo_station.flush_writes()  # wait for queued ledger writes
    plays = demo_station.ledger.plays(listener)
    assert len(plays) >= len(distinct)
    assert all(p.track_id in playable for p in plays)
    assert len({p.event_id for p in plays}) == len(plays)


async def test_real_client_reads_the_stream_url(server):
    """ffmpeg itself connects over HTTP (it sends Icy-MetaData: 1) and decodes 30 s."""
    proc = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-xerror",
        "-v",
        "error",
        "-i",
        url(server, "/stream/ffmpeg-client.mp3"),
        "-t",
        "30",
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_odd_listener_ids_get_a_clear_400(server):
    async with aiohttp.ClientSession() as client:
        for bad in ["..%2F..%2Fetc", "a%20b", "%00", "x" * 80, "%E2%98%83"]:
            async with client.get(url(server, f"/stream/{bad}.mp3")) as resp:
                assert resp.status in (400, 404), bad
                if resp.status == 400:
                    assert "listener id" in (await resp.json())["error"]
        async with client.get(url(server, "/stream/ok-id.mp3?territory=12")) as resp:
            assert resp.status == 400
        async with client.get(url(server, "/stream/ok-id.mp3?persona=nobody")) as resp:
            assert resp.status == 400
            assert "unknown persona" in (await resp.json())["error"]
        async with client.post(url(server, "/api/listeners/nobody-here/skip")) as resp:
            assert resp.status == 404
        async with client.get(url(server, "/healthz")) as resp:
            assert resp.status == 200


async def test_skips_rest_an_artist_and_now_playing_follows(server, demo_station):
    """Skip through the HTTP API until an artist has been skipped three times; that artist must not
    come back in the station's next ten picks."""
    listener = "skipper-01"
    catalog = demo_station.catalog
    skips: Counter[str] = Counter()
    rested: str | None = None
    rest_began = rest_left = 0
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(server, f"/stream/{listener}.mp3")) as resp,
    ):
        assert await resp.content.read(1)  # audio flows once the session is on air
        session = demo_station.sessions[listener]
        last = None
        for _ in range(20_000):
            assert await resp.content.read(8192)
            if rested is not None and session.programme.history.picks >= rest_began + REST_PICKS:
                break
            async with client.get(url(server, f"/api/listeners/{listener}/now-playing")) as r:
                current = (await r.json())["track_id"]
            if current is None or current == last:
                continue
            last = current
            if rested is not None and skips[catalog.track(current).artist_id] >= 2:
                continue  # keep every other artist un-rested, so the rule alone is tested
            async with client.post(url(server, f"/api/listeners/{listener}/skip")) as r:
                assert r.status == 200
                skipped = (await r.json())["skipped"]  # what was on air when the skip landed
            if skipped and rested is not None:
                skips[catalog.track(skipped).artist_id] += 1
            if rested is None and skipped:
                artist = catalog.track(skipped).artist_id
                skips[artist] += 1
                if skips[artist] == 3:
                    rested = artist
                    # read together: the renderer may have picked since the skip landed (the
                    # cut takes the prepared item, and more are planned ahead); each pick since
                    # then took one off the rest, which dates the rest's start exactly
                    with session.programme._lock:
                        rest_left = session.programme.history.rested.get(artist, 0)
                        rest_began = session.programme.history.picks - (REST_PICKS - rest_left)
        played = list(session.programme.history.played)
    assert rested is not None and rest_left > 0
    after = [p.artist_id for p in played[rest_began : rest_began + REST_PICKS]]
    assert len(after) == REST_PICKS
    assert rested not in after


async def test_retraining_swaps_the_model_while_a_stream_plays(server, demo_station):
    loop = asyncio.get_running_loop()
    version = demo_station.recommender.version
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(server, "/stream/retrain-listener.mp3")) as resp,
    ):
        first = await read_stream(resp, 60 * BYTES_PER_S)
        assert await loop.run_in_executor(None, retrain, demo_station)
        second = await read_stream(resp, 60 * BYTES_PER_S)
    assert demo_station.recommender.version == version + 1
    decoded = await loop.run_in_executor(None, decode_mp3, first + second)
    assert decoded.returncode == 0, decoded.stderr
    assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0


async def test_listeners_at_once_each_get_their_own_programme(server, demo_station):
    """Two listeners with opposite tastes stream at the same time; each stream decodes on its own
    and each hears their own station."""

    async def listen(client, listener: str) -> tuple[bytes, list[str]]:
        key = listener_key(demo_station, listener)
        async with client.get(
            url(server, f"/stream/{listener}.mp3?key={key}"), headers={"Icy-MetaData": "1"}
        ) as resp:
            metaint = int(resp.headers["icy-metaint"])
            raw = await read_stream(resp, 150 * BYTES_PER_S)
            assert demo_station.sessions.live(listener) is not None
        audio, titles = parse_icy(raw, metaint)
        return audio, [t for _, t in titles]

    async with aiohttp.ClientSession() as client:
        (a_audio, a_titles), (b_audio, b_titles) = await asyncio.gather(
            listen(client, "alice"), listen(client, "bob")
        )
    loop = asyncio.get_running_loop()
    for audio in (a_audio, b_audio):
        decoded = await loop.run_in_executor(None, decode_mp3, audio)
        assert decoded.returncode == 0, decoded.stderr
        assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0
    assert a_titles and b_titles
    assert set(a_titles) != set(b_titles)
