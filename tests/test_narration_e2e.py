"""Artist control through the running server and the stream: a revoked line never airs after the
revoke is acknowledged, even when it was already queued; every line that airs is approved and in
scope; the now-playing API discloses the AI voice."""

from __future__ import annotations

import aiohttp
import pytest

from dj.auth import create_token
from dj.server.app import create_app

from .streamcheck import BYTES_PER_S


@pytest.fixture
async def server(aiohttp_server, demo_config, demo_station):
    app = create_app(demo_config, demo_station, pacing=False)
    return await aiohttp_server(app, host="127.0.0.1")


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def flush(station) -> None:
    station.flush_writes()  # queued ledger writes are done


def airings_of(station, line_id: str, session_id: str) -> int:
    return sum(
        1
        for a in station.ledger.airings(limit=100_000)
        if a.line_id == line_id and a.session_id == session_id
    )


async def test_queued_line_revoked_through_the_api_never_airs(server, demo_station):
    listener = "revoke-check"
    station = demo_station
    # lines this session must never air: another persona's, another territory's, an expired one
    out_of_scope: set[str] = set()
    async with aiohttp.ClientSession() as client:
        for artist in station.catalog.artists():
            token = create_token(station.catalog.store, "artist", artist.id)
            for text, scope in [
                (f"{artist.name}, for the night owls only.", {"personas": ["atlas"]}),
                (f"{artist.name}, only in Japan.", {"territories": ["JP"]}),
                (f"{artist.name}, last year's news.", {"valid_until": "2020-01-01T00:00:00Z"}),
            ]:
                async with client.post(
                    url(server, f"/api/artists/{artist.id}/lines"),
                    json={"text": text, "scope": scope},
                    headers={"Authorization": f"Bearer {token}"},
                ) as r:
                    assert r.status == 201, await r.text()
                    out_of_scope.add((await r.json())["id"])
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(server, f"/stream/{listener}.mp3?persona=spark")) as resp,
    ):
        assert resp.status == 200
        assert await resp.content.read(1)  # audio flows once the session is on air
        session = station.sessions[listener]
        target = None
        for _ in range(20 * 60 * BYTES_PER_S // 8192):  # at most 20 minutes of programme
            assert await resp.content.read(8192)
            prepared = session.programme._prepared
            if (
                prepared
                and prepared.utterance
                and not prepared.utterance.line_id.startswith("template:")
            ):
                target = prepared.utterance
                break
        assert target is not None, "no artist line was queued in 20 minutes"

        token = create_token(station.catalog.store, "artist", target.artist_id)
        auth = {"Authorization": f"Bearer {token}"}
        other = next(a.id for a in station.catalog.artists() if a.id != target.artist_id)
        wrong = create_token(station.catalog.store, "artist", other)
        async with client.post(
            url(server, f"/api/artists/{target.artist_id}/lines/{target.line_id}/revoke"),
            headers={"Authorization": f"Bearer {wrong}"},
        ) as r:
            assert r.status == 403  # another artist cannot touch these lines
        async with client.post(
            url(server, f"/api/artists/{target.artist_id}/lines/{target.line_id}/revoke"),
            headers=auth,
        ) as r:
            assert r.status == 200
            assert (await r.json())["state"] == "revoked"
        # acknowledged: from here on the line must not air
        flush(station)
        before = airings_of(station, target.line_id, session.id)
        queued = session.programme._prepared
        assert (
            queued is None
            or queued.utterance is None
            or (queued.utterance.line_id != target.line_id)
        )
        assert station.narrator.audio_for(target.key) is None

        read = 0
        while read < 5 * 60 * BYTES_PER_S:  # five more minutes of programme
            data = await resp.content.read(65536)
            assert data
            read += len(data)
        flush(station)
        assert airings_of(station, target.line_id, session.id) == before

        async with client.get(
            url(server, f"/api/artists/{target.artist_id}/airings"), headers=auth
        ) as r:
            assert r.status == 200
            aired = await r.json()
    assert isinstance(aired["airings"], list)

    # every artist line this session aired was approved at the time and in scope
    aired_lines = {a.line_id for a in station.ledger.airings(listener_id=listener, limit=10_000)}
    assert not aired_lines & out_of_scope
    assert any(not line.startswith("template:") for line in aired_lines)
    for airing in station.ledger.airings(listener_id=listener, limit=10_000):
        if airing.line_id.startswith("template:"):
            continue
        line = station.narrator.lines.get(airing.line_id)
        assert line is not None
        assert not line.scope.personas or "spark" in line.scope.personas
        assert not line.scope.territories or session.listener.territory in line.scope.territories
