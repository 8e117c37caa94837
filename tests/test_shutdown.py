"""SIGTERM on a real `dj serve` with a listening and a stalled client: it exits within 5 s and
every play in progress is recorded with the seconds heard."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time

import aiohttp

from dj.ledger import Ledger
from dj.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_ends_every_stream_and_records_the_plays(demo_config, demo_station):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(demo_config.data_dir),
        "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    stalled = None
    try:
        async with aiohttp.ClientSession() as client:
            deadline = time.monotonic() + 90
            while True:  # the server loads its model and voices first
                assert time.monotonic() < deadline, "dj serve did not come up"
                try:
                    async with client.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            stalled = socket.create_connection(("127.0.0.1", port))
            stalled.sendall(b"GET /stream/sigterm-stalled.mp3 HTTP/1.1\r\nHost: x\r\n\r\n")
            async with client.get(f"{base}/stream/sigterm-reader.mp3") as resp:
                heard = 0.0
                while heard < 9.0:  # past the provisional start: its credits count
                    assert await resp.content.read(16384)
                    async with client.get(
                        f"{base}/api/listeners/sigterm-reader/now-playing"
                    ) as r:
                        heard = (await r.json())["position_s"]
                t0 = time.monotonic()
                server.send_signal(signal.SIGTERM)
                async with asyncio.timeout(10):
                    while await resp.content.read(65536):
                        pass  # the stream ends cleanly
                    await server.wait()
                took = time.monotonic() - t0
    finally:
        if stalled is not None:
            stalled.close()
        if server.returncode is None:
            server.kill()
            await server.wait()
    stderr = (await server.stderr.read()).decode(errors="replace")
    print(f"SIGTERM to exit: {took:.2f} s")
    assert took < 5.0, stderr[-2000:]
    assert server.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-4000:]

    ledger = Ledger(Store(demo_config.db_path))
    plays = ledger.plays("sigterm-reader")
    assert plays and all(p.ended_at is not None for p in plays)
    assert sum(p.played_s for p in plays) >= 8.0
    assert plays[0].outcome == "left"
    assert ledger.plays("sigterm-stalled") == []
    assert ledger.airings(listener_id="sigterm-stalled") == []
