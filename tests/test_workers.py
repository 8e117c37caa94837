"""`dj serve --workers 2`: one port, two serving processes, each listener always on the same one.

Against a real server on loopback: listeners on both workers stream; a connection reused across
listeners is sent round to the right worker; a reconnect resumes the same programme; the public
status counts every worker's listeners; a worker that dies is started again while the other
worker's streams play on; SIGTERM ends both within 5 s with every play recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import pytest

from dj.ledger import Ledger
from dj.server.workers import asked_worker, listener_in, request_target, worker_of
from dj.store import Store
from tests.test_shutdown import free_port


def test_the_listener_a_request_names():
    assert listener_in("/stream/alice.mp3?key=x") == "alice"
    assert listener_in("/stream/a.b.m3u") == "a.b"
    assert listener_in("/stream/%61lice.pls") == "alice"  # as the route reads it
    assert listener_in("/listen/bob") == "bob"
    assert listener_in("/api/listeners/carol/now-playing") == "carol"
    assert listener_in("/api/listeners/carol/events?x=1") == "carol"
    for target in ("/", "/healthz", "/stream/", "/stream/x.ogg", "/api/tokens",
                   "/api/artists/nova-lake/lines", "/status-json.xsl"):
        assert listener_in(target) is None, target
    assert request_target(b"GET /stream/a.mp3 HTTP/1.0\r\nHost: x\r\n") == "/stream/a.mp3"
    assert request_target(b"garbage") is None
    assert asked_worker("/healthz?worker=1", 2) == 1
    assert asked_worker("/healthz?worker=2", 2) is None
    assert asked_worker("/healthz?worker=x", 2) is None


def test_a_listener_always_lands_on_the_same_worker():
    # crc32, not Python's salted hash: the same in every process, on every node
    assert [worker_of(n, 2) for n in ("alice", "bob", "carol", "dave")] == [1, 0, 1, 0]
    assert {worker_of(f"l{i}", 4) for i in range(40)} == {0, 1, 2, 3}


def _names_on_each_worker(count: int = 2) -> list[str]:
    names: dict[int, str] = {}
    i = 0
    while len(names) < count:
        names.setdefault(worker_of(f"wk-{i}", count), f"wk-{i}")
        i += 1
    return [names[w] for w in range(count)]


async def _until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _json(client: aiohttp.ClientSession, url: str):
    async with client.get(url) as r:
        return r.status, r.headers.get("X-DJ-Worker"), await r.json()


@pytest.fixture
async def workers_server(demo_config, demo_station):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(demo_config.data_dir),
        "--port", str(port), "--workers", "2", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as client:

        async def up():
            try:
                async with client.get(f"{base}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await _until(up, "dj serve --workers 2 to come up", timeout=120)
    try:
        yield server, base
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


class Listening:
    """A paced stream read continuously in the background, as a player reads it."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.received = 0
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while chunk := await self.resp.content.read(65536):
            self.received += len(chunk)

    def close(self) -> None:
        self.task.cancel()
        self.resp.close()

    async def ended(self) -> None:
        await self.task  # the body ended cleanly


async def _stream(client, base: str, name: str) -> Listening:
    resp = await client.get(f"{base}/stream/{name}.mp3")
    assert resp.status == 200
    return Listening(resp)


async def _heard(client, base: str, name: str) -> float:
    status, _, body = await _json(client, f"{base}/api/listeners/{name}/now-playing")
    return body["position_s"] if status == 200 else 0.0


async def _heard_past(client, base: str, name: str, seconds: float) -> bool:
    return await _heard(client, base, name) >= seconds


async def test_workers_route_resume_count_restart_and_stop(workers_server, demo_config):
    server, base = workers_server
    a, b = _names_on_each_worker()
    async with aiohttp.ClientSession() as client:
        stream_a = await _stream(client, base, a)
        stream_b = await _stream(client, base, b)
        for name in (a, b):
            await _until(lambda name=name: _heard_past(client, base, name, 0.5),
                         f"{name} to be heard")

        # each listener's session lives on its own worker, and every request about them
        # reaches it, even over one keep-alive connection shared by both
        one = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=one) as shared:
            for name, worker in ((a, "0"), (b, "1"), (a, "0")):
                status, answered_by, body = await _json(
                    shared, f"{base}/api/listeners/{name}/now-playing")
                assert (status, answered_by, body["listener"]) == (200, worker, name)
        sessions = {name: (await _json(client, f"{base}/api/listeners/{name}/now-playing"))[2]
                    ["session"] for name in (a, b)}

        # what is no HTTP request (a TLS hello) is answered at once, not held for a line
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        async with asyncio.timeout(5):
            line = await reader.readline()
        assert line.startswith(b"HTTP/1.") and b" 400 " in line, line
        writer.close()

        # the public status counts both workers' listeners
        async def counted():
            _, _, status = await _json(client, f"{base}/status-json.xsl")
            return sum(s["listeners"] for s in status["icestats"]["source"]) == 2
        await _until(counted, "both workers' listeners in /status-json.xsl", timeout=10)

        # a reconnect reaches the same worker and resumes the same programme
        await _until(lambda: _heard_past(client, base, a, 3.0), f"{a} to hear 3 s")
        stream_a.close()
        stream_a = await _stream(client, base, a)
        _, _, now = await _json(client, f"{base}/api/listeners/{a}/now-playing")
        assert now["session"] == sessions[a]

        # worker 0 dies: it is started again, and worker 1's stream plays on meanwhile
        _, _, health = await _json(client, f"{base}/healthz")
        pids = {w["worker"]: w["pid"] for w in health["workers"]}
        before = stream_b.received
        os.kill(pids[0], signal.SIGKILL)
        stream_a.close()

        async def restarted():
            _, _, h = await _json(client, f"{base}/healthz?worker=1")
            w0 = h["workers"][0]
            return w0["alive"] and w0["pid"] != pids[0]
        await _until(restarted, "worker 0 to be started again", timeout=60)
        assert stream_b.received > before
        assert not stream_b.task.done()
        _, _, now = await _json(client, f"{base}/api/listeners/{b}/now-playing")
        assert now["session"] == sessions[b]
        stream_a = await _stream(client, base, a)  # a new programme on the new worker 0

        # both play on past the provisional start, then SIGTERM stops everything in order
        for name in (a, b):
            await _until(lambda name=name: _heard_past(client, base, name, 9.0),
                         f"{name} to hear 9 s")
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await stream_a.ended()
            await stream_b.ended()
            await server.wait()
        took = time.monotonic() - t0
    stderr = (await server.stderr.read()).decode(errors="replace")
    assert took < 5.0, stderr[-3000:]
    assert server.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-4000:]
    assert "did not stop in time" not in stderr, stderr[-3000:]

    ledger = Ledger(Store(demo_config.db_path))
    for name in (a, b):
        plays = ledger.plays(name)
        assert plays and all(p.ended_at is not None for p in plays), name
        assert sum(p.played_s for p in plays) >= 8.0, name
