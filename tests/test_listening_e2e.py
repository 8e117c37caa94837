"""What each listener actually hears, end to end on loopback: every client's way of connecting,
sessions that cannot leak, credit that follows the ear, skips heard at once, resume and
takeover."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest

from dj.server.keys import CONNECTIONS
from dj.stream.icy import parse_icy

from .streamcheck import BYTES_PER_S, decode_mp3, read_stream


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def eventually(check, timeout_s: float = 20.0) -> None:
    """Wait for a condition the server reaches on its own (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def raw_request(port: int, request: bytes, limit: int, timeout_s: float = 30.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while len(data) < limit:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
    finally:
        writer.close()
    return bytes(data)


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


async def test_http10_with_icy_metadata_gets_a_close_delimited_stream_with_titles(fast):
    """VLC's retry: HTTP/1.0 and Icy-MetaData: 1. No chunked encoding; audio decodes; titles."""
    raw = await raw_request(
        fast.port,
        b"GET /stream/vlc-style.mp3 HTTP/1.0\r\nIcy-MetaData: 1\r\nUser-Agent: VLC/3.0\r\n\r\n",
        40 * BYTES_PER_S,
    )
    status, headers, body = split_response(raw)
    assert " 200 " in status + " ", status
    assert "chunked" not in headers.get("transfer-encoding", "")
    assert headers["content-type"] == "audio/mpeg"
    metaint = int(headers["icy-metaint"])
    audio, titles = parse_icy(body, metaint)
    decoded = await asyncio.get_running_loop().run_in_executor(None, decode_mp3, audio)
    assert decoded.returncode == 0, decoded.stderr
    assert len(decoded.pcm) / decoded.rate > 30
    assert titles and all(" - " in t for _, t in titles)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_http10_plays(fast, tmp_path):
    out = tmp_path / "curl.mp3"
    proc = await asyncio.create_subprocess_exec(
        "curl", "-0", "-s", "--max-time", "20", "-H", "Icy-MetaData: 1", "-D",
        str(tmp_path / "headers"), "-o", str(out), "--max-filesize", "100000000",
        "-r", "0-", url(fast, "/stream/curl-10.mp3"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # curl has no byte limit for a live stream: stop it once enough has arrived
    await eventually(lambda: out.exists() and out.stat().st_size > 30 * BYTES_PER_S, 20)
    proc.terminate()
    await proc.wait()
    headers = (tmp_path / "headers").read_text().lower()
    assert "200" in headers.splitlines()[0]
    assert "transfer-encoding" not in headers
    audio, titles = parse_icy(out.read_bytes(), int(headers.split("icy-metaint:")[1].split()[0]))
    decoded = decode_mp3(audio[: 25 * BYTES_PER_S])
    assert decoded.returncode == 0, decoded.stderr
    assert titles


async def test_head_opens_nothing_and_a_live_stream_survives_it(fast, demo_station):
    listener = "head-check"
    async with aiohttp.ClientSession() as client:
        async with client.head(url(fast, "/stream/nobody-yet.mp3")) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "audio/mpeg"
        assert demo_station.sessions.get("nobody-yet") is None
        async with client.get(url(fast, f"/stream/{listener}.mp3")) as resp:
            await read_stream(resp, 20 * BYTES_PER_S)
            session = demo_station.sessions.live(listener)
            assert session is not None
            for _ in range(5):
                async with client.head(url(fast, f"/stream/{listener}.mp3")) as r:
                    assert r.status == 200
            more = await read_stream(resp, 20 * BYTES_PER_S)
            assert len(more) >= 20 * BYTES_PER_S
            assert demo_station.sessions.live(listener) is session


async def test_early_hangups_heads_and_bad_ids_leave_no_session(fast, demo_station):
    before = len(demo_station.sessions)
    for i in range(100):  # hang up before the response headers
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        writer.write(f"GET /stream/hangup-{i}.mp3 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        writer.close()
    async with aiohttp.ClientSession() as client:
        for i in range(100):
            async with client.head(url(fast, f"/stream/probe-{i}.mp3")) as r:
                assert r.status == 200
        for i, bad in enumerate(["a%0A", "b%0D%0A", "%00c", "d%09", "e%7F"] * 20):
            async with client.get(url(fast, f"/stream/{bad}{i}.mp3")) as r:
                assert r.status == 400
                assert "listener id" in (await r.json())["error"]

    def settled() -> bool:
        return not fast.dj_app[CONNECTIONS] and len(demo_station.sessions) == before

    await eventually(settled, 60)
    assert not any(s.listener.id.startswith(("hangup-", "probe-")) for s in demo_station.sessions)


async def test_a_stalled_client_is_dropped_and_credited_nothing(paced, demo_station):
    """A client that never reads: dropped within 35 s, no qualifying play, no airing. Meanwhile a
    client that reads and plays in real time hears within 1 s of its ear, and a skip is heard
    within 2 s of the request."""
    loop = asyncio.get_running_loop()
    stalled_id, reader_id = "stalled-client", "realtime-reader"
    # a plain socket that is never read (asyncio's streams would read 128 KB on their own)
    stalled_sock = socket.create_connection(("127.0.0.1", paced.port))
    stalled_sock.sendall(f"GET /stream/{stalled_id}.mp3 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    t_connect = loop.time()
    errors: list[float] = []
    skip_latency = None
    delay = 0.0  # the reader says it is VLC, which holds no more than the burst before playing
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(paced, f"/stream/{reader_id}.mp3"), headers={"User-Agent": "VLC/3.0.24"})
        as resp,
    ):
        first = await resp.content.read(1)
        t_first = loop.time()
        assert first
        skipped_at = None
        old_play = None
        while demo_station.sessions.live(stalled_id) is not None or skipped_at is None:
            assert loop.time() - t_connect < 36, "the stalled client was not dropped"
            await resp.content.read(65536)  # a player reads what arrives, plays in real time
            async with client.get(url(paced, f"/api/listeners/{reader_id}/now-playing")) as r:
                now = await r.json()
            errors.append(now["position_s"] - (loop.time() - t_first - delay))
            elapsed = loop.time() - t_first
            if skipped_at is None and elapsed > 9 and now["play_id"]:
                old_play, heard_at_request = now["play_id"], now["position_s"]
                async with client.post(url(paced, f"/api/listeners/{reader_id}/skip")) as r:
                    assert r.status == 200
                skipped_at = loop.time()
            elif skipped_at is not None and skip_latency is None and now["play_id"] != old_play:
                session = demo_station.sessions.live(reader_id)
                new_start = session.open_plays[now["play_id"]].start_s
                skip_latency = new_start - heard_at_request
                assert loop.time() - skipped_at < 3.0  # the title follows the ear
    dropped_after = loop.time() - t_connect
    # the server let go of the socket too: what the kernels held drains, then the stream ends
    stalled_sock.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        while stalled_sock.recv(65536):
            pass
    stalled_sock.close()
    assert dropped_after < 35
    print(f"ear error: median {sorted(errors)[len(errors) // 2]:+.3f} s, "
          f"max |e| {max(abs(e) for e in errors[8:]):.3f} s over {len(errors)} samples; "
          f"skip heard {skip_latency:.2f} s after the request; stalled dropped at "
          f"{dropped_after:.1f} s")
    assert max(abs(e) for e in errors[8:]) < 1.0  # once the player has started
    assert skip_latency is not None and skip_latency < 2.0

    stalled = demo_station.sessions.get(stalled_id)
    if stalled is not None:
        demo_station.release(stalled)
    reader = demo_station.sessions.get(reader_id)
    if reader is not None:
        demo_station.release(reader)
    demo_station.flush_writes()
    plays = demo_station.ledger.plays(stalled_id)
    assert all((p.played_s or 0) < 30 for p in plays)
    assert demo_station.ledger.airings(listener_id=stalled_id) == []
    reader_plays = {p.event_id: p for p in demo_station.ledger.plays(reader_id)}
    assert reader_plays[old_play].outcome == "skipped"
    assert reader_plays[old_play].played_s < 30


async def test_reconnect_resumes_and_another_device_takes_over(fast, demo_station):
    listener = "two-devices"
    async with aiohttp.ClientSession() as client:
        async with client.get(url(fast, f"/stream/{listener}.mp3")) as resp:
            await read_stream(resp, 30 * BYTES_PER_S)
            session = demo_station.sessions.live(listener)
            play, heard = session.now.play_id, session.heard_s
        await eventually(lambda: demo_station.sessions.live(listener) is None)
        assert demo_station.sessions.get(listener) is session  # kept for a resume
        async with client.get(url(fast, f"/stream/{listener}.mp3")) as resp:
            resumed = await read_stream(resp, 5 * BYTES_PER_S)
            assert demo_station.sessions.live(listener) is session
            assert session.heard_s >= heard
            decoded = await asyncio.get_running_loop().run_in_executor(None, decode_mp3, resumed)
            assert decoded.returncode == 0 and decoded.stderr.strip() == "", decoded.stderr
            # another device: it takes the programme over, the first connection ends
            async with client.get(url(fast, f"/stream/{listener}.mp3")) as other:
                await read_stream(other, 5 * BYTES_PER_S)
                rest = await read_stream(resp, 100 * 60 * BYTES_PER_S)
                assert len(rest) < 100 * 60 * BYTES_PER_S  # the first stream ended
                assert demo_station.sessions.live(listener) is session
    await eventually(lambda: demo_station.sessions.live(listener) is None)
    demo_station.release(session)
    demo_station.flush_writes()
    plays = demo_station.ledger.plays(listener)
    ids = [p.event_id for p in plays]
    assert len(ids) == len(set(ids))
    assert play in ids  # the play in progress at the hang-up went on: one row, not two
    assert all(p.ended_at is not None for p in plays)
    assert len({p.session_id for p in plays}) == 1
    openings = demo_station.ledger.airings(listener_id=listener)
    assert len({a.event_id for a in openings}) == len(openings)


async def test_vlc_plays_the_stream_with_titles(paced, demo_station):
    """Debian's VLC, run as a non-root user: its HTTP/1.1 try, then its HTTP/1.0 ICY retry,
    which takes the programme over; audio decodes and the title shows, with one programme."""
    from .vlcclient import play_with_vlc, vlc_available

    if not vlc_available():
        pytest.skip("VLC is not installed")
    listener = "vlc-listener"
    result = await asyncio.get_running_loop().run_in_executor(
        None, play_with_vlc, url(paced, f"/stream/{listener}.mp3"), 12.0
    )
    print(f"vlc: {result.audio_s:.1f} s decoded, titles {result.titles}, "
          f"requests {[(r.module, r.version) for r in result.requests]}, "
          f"reconnects {result.reconnects}")
    assert result.decoded, result.errors
    assert result.audio_s > 8
    assert any(r.version == "HTTP/1.0" and r.header("Icy-MetaData") == "1"
               for r in result.requests)
    assert result.titles and all(" - " in t for t in result.titles)
    assert result.reconnects == 0
    session = demo_station.sessions.get(listener)
    assert session is not None  # one programme, kept for a resume
    demo_station.release(session)
    demo_station.flush_writes()
    plays = demo_station.ledger.plays(listener)
    assert plays and len({p.session_id for p in plays}) == 1


@contextlib.asynccontextmanager
async def _render_held(server, station, monkeypatch, listener: str):
    """A raw client of ``listener``'s unpaced stream that has read nothing while the server
    wrote its first blocks, and the server waiting on the third block's render, held back until
    the context ends. Yields (socket, session). The client's receive buffer is small, so it is
    full by then: reading reopens its window, which is what the server sees of the reading."""
    import threading

    from dj.stream.session import Session

    monkeypatch.setattr(station.experiments, "experiments", [])
    # every block through the render pool, and the third one held back until released
    monkeypatch.setattr(Session, "cheap", property(lambda self: False))
    held, release = threading.Event(), threading.Event()
    render = Session.render_next
    calls = 0

    def render_next(self):
        nonlocal calls
        if self.listener.id == listener:
            calls += 1
            if calls == 3:
                held.set()
                release.wait(30)
        return render(self)

    monkeypatch.setattr(Session, "render_next", render_next)
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(f"GET /stream/{listener}.mp3 HTTP/1.0\r\n\r\n".encode())
        assert await loop.run_in_executor(None, held.wait, 30)
        session = station.sessions.live(listener)
        assert session is not None
        yield sock, session
    finally:
        release.set()
        sock.close()


async def test_a_control_acts_on_what_was_heard_by_the_time_it_came(
    fast, demo_station, monkeypatch
):
    """A like acts at the position the listener has reached when it comes, not at the
    connection's last reading of the ear."""
    listener = "control-after-reading"
    async with _render_held(fast, demo_station, monkeypatch, listener) as (sock, session):
        before = session.heard_s
        got = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 1 << 16)
        assert len(got) > 4000
        async with (
            aiohttp.ClientSession() as client,
            client.post(url(fast, f"/api/listeners/{listener}/like")) as r,
        ):
            assert r.status == 200, await r.text()
            liked = (await r.json())["liked"]
        # what the client took while the server waited is heard (as far as its reopened window
        # shows it: 2 KiB, 0.128 s, here)
        assert session.heard_s - before > 0.05
        assert liked == session.now.track.id


async def test_the_ear_moves_while_the_server_waits_for_a_render(
    fast, demo_station, monkeypatch
):
    """A stream waiting for its renderer still follows its listener's ear: what they hear
    (titles, the AI-voice flag, credits) does not wait for the render."""
    listener = "ear-while-rendering"
    async with _render_held(fast, demo_station, monkeypatch, listener) as (sock, session):
        before = session.heard_s
        got = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 1 << 16)
        assert len(got) > 4000
        await eventually(lambda: session.heard_s - before > 0.05, timeout_s=5.0)
