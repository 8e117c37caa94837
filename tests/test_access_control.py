"""Roles on a real server: an operator's token API, a listener's own history, and writes
limited per token so that one client cannot spend the station's work for everyone."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

import aiohttp

from dj.auth import TokenStore
from dj.config import AccessConfig
from dj.server.app import create_app
from dj.server.rate_limit import RateLimiter

from .conftest import listener_key

ACCOUNT = "listener-042"  # a demo account (dj.demo.listeners)


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_token_api_is_the_operators_alone(fast, demo_station):
    tokens = TokenStore(demo_station.catalog.store)
    admin = tokens.create("admin", None)
    artist = tokens.create("artist", "nova-lake")
    listener = listener_key(demo_station, ACCOUNT, role="listener")
    api = url(fast, "/api/tokens")
    async with aiohttp.ClientSession() as client:
        for headers, expected in (({}, 401), (bearer(artist), 403), (bearer(listener), 403),
                                  (bearer("dj_00000000_" + "y" * 43), 401)):
            async with client.get(api, headers=headers) as r:
                assert r.status == expected
                assert (await r.json())["error"]
            async with client.post(api, headers=headers, json={"role": "admin"}) as r:
                assert r.status == expected
        assert len(tokens.list(role="admin")) == 1  # nothing was made by the refused ones

        async with client.post(api, headers=bearer(admin), json={
                "role": "listener", "subject": ACCOUNT, "expires_days": 1,
                "label": "kitchen radio"}) as r:
            assert r.status == 201
            made = await r.json()
        now_playing = url(fast, f"/api/listeners/{ACCOUNT}/now-playing")
        async with client.get(now_playing, headers=bearer(made["token"])) as r:
            assert r.status == 404  # authorised; there is just no live session
        async with client.get(api, headers=bearer(admin), params={"role": "listener"}) as r:
            listed = await r.json()
        row = next(t for t in listed if t["id"] == made["id"])
        assert row["state"] == "active" and row["label"] == "kitchen radio"
        assert row["expires_at"] and made["token"] not in str(listed)  # no secret is shown

        async with client.post(f"{api}/{made['id']}/revoke", headers=bearer(admin)) as r:
            assert r.status == 200
        async with client.get(now_playing, headers=bearer(made["token"])) as r:
            assert r.status == 401
        async with client.post(f"{api}/ffffffff/revoke", headers=bearer(admin)) as r:
            assert r.status == 404
        async with client.post(f"{api}/..%2F..%2Fetc/revoke", headers=bearer(admin)) as r:
            assert r.status == 404

        for body in ({"role": "wizard"}, {"role": "artist", "subject": "nobody"},
                     {"role": "listener", "subject": "no-such-account-" + uuid.uuid4().hex[:8]},
                     {"role": "listener", "subject": "x\n"}, {"role": "admin", "subject": "a"},
                     {"role": "product"}, {"role": "product", "subject": " "},
                     {"role": "admin", "expires_days": 10**6}, {"role": "admin", "x": 1},
                     {"role": "admin", "expires_days": True}, {"role": "admin", "label": "\x00"},
                     {"role": ["admin"]}):
            async with client.post(api, headers=bearer(admin), json=body) as r:
                assert r.status == 400, (body, r.status)
                assert (await r.json())["error"]
        async with client.get(api, headers=bearer(admin), params={"role": "x"}) as r:
            assert r.status == 400


async def test_history_is_the_account_holders_own(fast, demo_station):
    own = listener_key(demo_station, ACCOUNT, role="listener")
    key = listener_key(demo_station, ACCOUNT)  # a stream key plays the stream, nothing else
    other = listener_key(demo_station, "alice", role="listener")
    play_id = uuid.uuid4().hex
    track = demo_station.catalog.tracks()[0]
    demo_station.ledger.play_started(
        event_id=play_id, listener_id=ACCOUNT, session_id="s", track_id=track.id,
        artist_id=track.artist_id, territory="US", tier="ad-supported")
    history = url(fast, f"/api/listeners/{ACCOUNT}/history")
    async with aiohttp.ClientSession() as client:
        for headers, expected in (({}, 401), (bearer(key), 403), (bearer(other), 403)):
            async with client.get(history, headers=headers) as r:
                assert r.status == expected
                assert (await r.json())["error"]
        async with client.get(history, headers=bearer(own)) as r:
            assert r.status == 200
            plays = (await r.json())["plays"]
        assert plays[0]["play_id"] == play_id and plays[0]["title"] == track.title
        for limit in ("0", "201", "ten", "9" * 400):
            async with client.get(history, headers=bearer(own), params={"limit": limit}) as r:
                assert r.status == 400
        # an anonymous name has no history anyone can read
        async with client.get(url(fast, "/api/listeners/some-guest/history")) as r:
            assert r.status == 401


async def test_writes_are_limited_per_token(aiohttp_server, demo_config, demo_station):
    config = dataclasses.replace(
        demo_config, access=AccessConfig(writes_per_minute=6, write_burst=3))
    server = await aiohttp_server(create_app(config, demo_station, pacing=False),
                                  host="127.0.0.1")
    first = listener_key(demo_station, ACCOUNT, role="listener")
    second = listener_key(demo_station, "listener-043", role="listener")
    async with aiohttp.ClientSession() as client:
        statuses = []
        for _ in range(5):
            async with client.post(url(server, f"/api/listeners/{ACCOUNT}/like"),
                                   headers=bearer(first)) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert "too many" in (await r.json())["error"]
        assert statuses[:3] == [404] * 3 and statuses[3:] == [429, 429]  # no session: 404
        async with client.post(url(server, "/api/listeners/listener-043/like"),
                               headers=bearer(second)) as r:
            assert r.status == 404  # another token has its own allowance
        async with client.get(url(server, f"/api/listeners/{ACCOUNT}/history"),
                              headers=bearer(first)) as r:
            assert r.status == 200  # reads are not counted


def test_a_bucket_refills_at_its_rate_and_forgets_old_callers() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]
    now[0] += 0.5
    assert limiter.take("a") == 0.5
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("b") == 0.0 and limiter.refused == 2
    off = RateLimiter(per_minute=0, burst=1)
    assert all(off.take("a") == 0.0 for _ in range(100))


async def test_a_malformed_request_is_one_log_line(fast, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", b"GARBAGE\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        writer.write(raw)
        status_line = await reader.readline()
        writer.close()
        assert b" 400 " in status_line
    told = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(told) == 2 and all("malformed request" in r.getMessage() for r in told)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
