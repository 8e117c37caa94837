"""Listener identity on a real server: an account's stream and controls are its own, a free name
listens anonymously in the operator's territory, and the territory never comes from the request."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from dj.auth import TokenStore
from dj.config import AccessConfig
from dj.server.access_log import hide_keys
from dj.server.app import create_app

from .conftest import listener_key

ACCOUNT = "bob"  # a demo account (dj.demo.listeners)


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def _status(client, method: str, address: str, **kw) -> tuple[int, dict, bytes]:
    async with client.request(method, address, **kw) as r:
        body = await r.content.read(4096) if r.status == 200 and method == "GET" else b""
        payload = await r.json() if r.status >= 400 else {}
        return r.status, payload, body


async def test_an_accounts_stream_needs_its_own_key(fast, demo_station):
    tokens = TokenStore(demo_station.catalog.store)
    key = listener_key(demo_station, ACCOUNT)
    token = listener_key(demo_station, ACCOUNT, role="listener")
    others = listener_key(demo_station, "alice")
    artist = tokens.create("artist", "nova-lake")
    revoked = listener_key(demo_station, ACCOUNT)
    assert tokens.revoke(revoked.split("_")[1])
    expired = listener_key(demo_station, ACCOUNT)
    with demo_station.catalog.store.transaction() as db:  # as if it had run out long ago
        db.execute("UPDATE auth_tokens SET expires_at = '2000-01-01T00:00:00+00:00'"
                   " WHERE id = ?", (expired.split("_")[1],))
    stream = url(fast, f"/stream/{ACCOUNT}.mp3")
    async with aiohttp.ClientSession() as client:
        for method in ("GET", "HEAD"):
            status, payload, _ = await _status(client, method, stream)
            assert status == 401
        status, payload, _ = await _status(client, "GET", stream)
        assert "key" in payload["error"]
        for bad, expected in ((others, 403), (artist, 403), (revoked, 401), (expired, 401),
                              ("dj_00000000_" + "x" * 43, 401), ("not a key", 401)):
            status, payload, _ = await _status(client, "GET", stream, params={"key": bad})
            assert status == expected, (bad, payload)
            assert payload["error"]
        assert demo_station.sessions.live(ACCOUNT) is None  # nothing was opened for them

        status, _, body = await _status(client, "GET", stream, params={"key": key})
        assert status == 200 and len(body) > 0
        status, _, body = await _status(
            client, "GET", stream, headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and len(body) > 0


async def test_an_accounts_controls_need_its_listener_token(fast, demo_station):
    key = listener_key(demo_station, ACCOUNT)
    token = listener_key(demo_station, ACCOUNT, role="listener")
    now_playing = url(fast, f"/api/listeners/{ACCOUNT}/now-playing")
    skip = url(fast, f"/api/listeners/{ACCOUNT}/skip")
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(fast, f"/stream/{ACCOUNT}.mp3"), params={"key": key}) as resp,
    ):
        assert resp.status == 200
        await resp.content.readexactly(64_000)
        assert (await _status(client, "POST", skip))[0] == 401
        assert (await _status(client, "POST", skip, params={"key": token}))[0] == 401
        stream_only = {"Authorization": f"Bearer {key}"}  # a stream key grants nothing else
        assert (await _status(client, "POST", skip, headers=stream_only))[0] == 403
        assert (await _status(client, "GET", now_playing, headers=stream_only))[0] == 403
        mine = {"Authorization": f"Bearer {token}"}
        async with client.get(now_playing, headers=mine) as r:
            assert r.status == 200
            assert (await r.json())["listener"] == ACCOUNT
        async with client.post(url(fast, f"/api/listeners/{ACCOUNT}/like"),
                               headers=mine) as r:
            assert r.status in (200, 409)  # 409: nothing heard yet


async def test_a_free_name_listens_anonymously_and_is_not_stored(fast, demo_station, demo_config):
    listener = "passer-by-17"
    async with aiohttp.ClientSession() as client:
        async with client.get(url(fast, f"/stream/{listener}.mp3")) as resp:
            assert resp.status == 200
            await resp.content.readexactly(64_000)
            session = demo_station.sessions.live(listener)
            assert session is not None
            assert session.listener.territory == demo_config.access.anonymous_territory
            async with client.get(url(fast, f"/api/listeners/{listener}/now-playing")) as r:
                assert r.status == 200
        status, payload, _ = await _status(
            client, "GET", url(fast, "/stream/passer-by-18.mp3"), params={"territory": "DE"})
        assert status == 400 and "account" in payload["error"]
    assert demo_station.catalog.listener(listener) is None


@pytest.fixture
async def keys_only(aiohttp_server, demo_config, demo_station):
    config = dataclasses.replace(demo_config, access=AccessConfig(anonymous=False))
    app = create_app(config, demo_station, pacing=False)
    return await aiohttp_server(app, host="127.0.0.1")


async def test_an_operator_can_turn_anonymous_listening_off(keys_only, demo_station):
    async with aiohttp.ClientSession() as client:
        status, payload, _ = await _status(client, "GET", url(keys_only, "/stream/anyone.mp3"))
        assert status == 401 and "key only" in payload["error"]
        status, _, _ = await _status(client, "POST", url(keys_only, "/api/listeners/anyone/skip"))
        assert status == 401
    assert demo_station.sessions.live("anyone") is None


def test_the_access_log_never_holds_a_key():
    assert hide_keys("/stream/bob.mp3?key=dj_1234abcd_secret&persona=nova") == (
        "/stream/bob.mp3?key=***&persona=nova")
    assert hide_keys("/stream/bob.mp3?persona=nova&key=dj_1") == (
        "/stream/bob.mp3?persona=nova&key=***")
    assert hide_keys("/stream/bob.mp3?monkey=1") == "/stream/bob.mp3?monkey=1"
