"""What players, web pages and Icecast tools expect of a radio server, on a real server on
loopback: the icy-* headers on GET and HEAD over HTTP/1.0 and 1.1, CORS for embedding,
.m3u/.pls playlists that real players (VLC, mpv, ffmpeg) follow to the stream and its titles,
and Icecast's /status-json.xsl without a listener id in it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import aiohttp
import imageio_ffmpeg
import pytest

from .streamcheck import BYTES_PER_S, decode_mp3
from .test_listening_e2e import raw_request, split_response, url


async def head_of(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers and the start of the body of a raw request (a stream is cut off
    once a few blocks have arrived)."""
    return split_response(await raw_request(port, request, 4 * BYTES_PER_S))


ICY_ALWAYS = ("icy-name", "icy-description", "icy-genre", "icy-url", "icy-br", "icy-pub",
              "icy-sr")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("icy", [False, True])
async def test_stream_headers_for_every_client(fast, demo_station, method, version, icy):
    listener = f"hdr-{method.lower()}-{version.replace('.', '')}-{int(icy)}"
    request = (f"{method} /stream/{listener}.mp3 HTTP/{version}\r\nHost: radio.test:8000\r\n"
               + ("Icy-MetaData: 1\r\n" if icy else "") + "Connection: close\r\n\r\n").encode()
    status, headers, body = await head_of(fast.port, request)
    assert status.split()[1] == "200", status
    assert headers["content-type"] == "audio/mpeg"
    assert all(headers.get(h) for h in ICY_ALWAYS), headers
    assert headers["icy-pub"] == "0" and headers["icy-br"] == "128"
    assert headers["icy-name"] == f"dj: {listener}"
    assert headers["icy-genre"] == demo_station.config.stream.station_genre
    assert headers["icy-url"] == "http://radio.test:8000/"  # where the client found us
    assert ("icy-metaint" in headers) is icy
    assert headers["access-control-allow-origin"] == "*"
    if method == "HEAD":
        assert body == b""
        assert demo_station.sessions.get(listener) is None  # a HEAD opens nothing
    else:
        if version == "1.0":
            assert "transfer-encoding" not in headers
        assert body  # audio follows


async def test_cors_lets_web_players_embed_the_stream_and_public_api(fast):
    origin = {"Origin": "https://player.example"}
    async with aiohttp.ClientSession() as client:
        # a preflight for a listener control with a bearer token: allowed, without credentials
        async with client.options(url(fast, "/api/listeners/someone/skip"), headers={
                **origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert r.headers["Access-Control-Allow-Methods"] == "POST"
            allowed = {h.strip().lower()
                       for h in r.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type", "icy-metadata"} <= allowed
            assert "Access-Control-Allow-Credentials" not in r.headers
            assert int(r.headers["Access-Control-Max-Age"]) > 0
        async with client.options(url(fast, "/stream/embed.mp3"), headers={
                **origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "icy-metadata"}) as r:
            assert r.status == 204
            assert set(r.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD"}
        # the answers themselves, errors included, can be read by another origin
        for path in ("/stream/embed.m3u", "/status-json.xsl", "/api/personas", "/healthz",
                     "/stream/bad%20id.pls", "/api/listeners/nobody-live/now-playing"):
            async with client.get(url(fast, path), headers=origin) as r:
                assert r.headers.get("Access-Control-Allow-Origin") == "*", path
                assert "Access-Control-Allow-Credentials" not in r.headers
        async with client.head(url(fast, "/stream/embed.mp3"), headers=origin) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            exposed = r.headers["Access-Control-Expose-Headers"].lower()
            assert "icy-name" in exposed and "icy-metaint" in exposed
        # the operator's API is not for other origins; OPTIONS that is no preflight is a 405
        async with client.options(url(fast, "/api/tokens"), headers={
                **origin, "Access-Control-Request-Method": "GET"}) as r:
            assert r.status == 405 and "Access-Control-Allow-Origin" not in r.headers
        async with client.get(url(fast, "/api/tokens"), headers=origin) as r:
            assert r.status == 401 and "Access-Control-Allow-Origin" not in r.headers
        async with client.options(url(fast, "/stream/embed.mp3")) as r:
            assert r.status == 405


def playlist_url(kind: str, text: str) -> str:
    if kind == "m3u":
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert text.startswith("#EXTM3U\n#EXTINF:-1,") and len(lines) == 1, text
        return lines[0]
    entries = dict(line.split("=", 1) for line in text.splitlines()[1:])
    assert text.startswith("[playlist]\n") and entries["NumberOfEntries"] == "1", text
    assert entries["Version"] == "2" and entries["Length1"] == "-1"
    return entries["File1"]


@pytest.mark.parametrize("kind,media", [("m3u", "audio/x-mpegurl"), ("pls", "audio/x-scpls")])
async def test_playlists_point_at_the_stream_and_open_nothing(fast, demo_station, kind, media):
    sessions = len(demo_station.sessions)
    opened = demo_station.stats.sessions_opened._value.get()
    async with aiohttp.ClientSession() as client:
        # absolute, from the Host the client used; an account's key carried through, encoded
        async with client.get(url(fast, f"/stream/alice.{kind}?key=dj_ab_c%0Ad&persona=atlas"
                                        "&icy_charset=latin1&other=x"),
                              headers={"Host": "radio.test:8443"}) as r:
            assert r.status == 200 and r.content_type == media
            assert r.headers["Cache-Control"] == "no-store"  # it may hold a key
            text = await r.text()
        assert "\nd" not in text and "%0A" in text  # a newline in the key cannot add a line
        assert playlist_url(kind, text) == ("http://radio.test:8443/stream/alice.mp3"
                                            "?key=dj_ab_c%0Ad&persona=atlas&icy_charset=latin1")
        assert "dj: alice" in text
        for bad, why in [("bad%20id", "listener id"), ("ok?territory=DE", "territory"),
                         ("ok?persona=nobody", "unknown persona"),
                         ("ok?icy_charset=koi8-r", "icy_charset"), ("x" * 65, "listener id")]:
            path, _, query = bad.partition("?")
            async with client.get(url(fast, f"/stream/{path}.{kind}"
                                            + (f"?{query}" if query else ""))) as r:
                assert r.status == 400, bad
                assert why in (await r.json())["error"]
        # the URL it names plays
        async with client.get(url(fast, f"/stream/pl-{kind}.{kind}")) as r:
            stream = playlist_url(kind, await r.text())
        assert stream == url(fast, f"/stream/pl-{kind}.mp3")
        assert demo_station.sessions.get(f"pl-{kind}") is None  # the playlist opened nothing
        assert len(demo_station.sessions) == sessions
        assert demo_station.stats.sessions_opened._value.get() == opened
        async with client.get(stream) as r:
            assert r.status == 200 and r.content_type == "audio/mpeg"
            audio = await r.content.readexactly(5 * BYTES_PER_S)
    decoded = await asyncio.get_running_loop().run_in_executor(None, decode_mp3, audio)
    assert decoded.returncode == 0, decoded.stderr
    session = demo_station.sessions.get(f"pl-{kind}")
    if session is not None:
        demo_station.release(session)


async def test_status_json_counts_listeners_and_names_none(fast, demo_station):
    secret = "status-secret-listener-4711"
    async with (
        aiohttp.ClientSession() as client,
        client.get(url(fast, f"/stream/{secret}.mp3")) as stream,
    ):
        assert await stream.content.readexactly(BYTES_PER_S)
        live = demo_station.sessions.streaming
        async with client.get(url(fast, "/status-json.xsl")) as r:
            assert r.status == 200 and r.content_type == "application/json"
            text = await r.text()
    icestats = json.loads(text)["icestats"]
    assert secret not in text
    assert icestats["server_id"].startswith("dj ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}",
                        icestats["server_start_iso8601"])
    assert {"admin", "host", "location"} <= icestats.keys()
    (source,) = icestats["source"]
    assert source["listeners"] == live >= 1  # the secret listener among them
    assert source["listener_peak"] >= source["listeners"] >= 1
    assert source["bitrate"] == 128 and source["server_type"] == "audio/mpeg"
    assert source["title"] == source["server_name"] == demo_station.config.stream.station_name
    assert source["genre"] == demo_station.config.stream.station_genre
    assert source["listenurl"] == url(fast, "/stream/guest.mp3")
    assert source["stream_start_iso8601"] == icestats["server_start_iso8601"]
    session = demo_station.sessions.get(secret)
    if session is not None:
        demo_station.release(session)


# -- real players, from the playlists ---------------------------------------------------------

def _mpv(playlist: str, seconds: float) -> tuple[int, str]:
    """mpv plays ``playlist`` headless for ``seconds``; (exit code, its log)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "mpv.log")
        proc = subprocess.run(
            ["mpv", "--no-config", "--no-video", "--ao=null", f"--length={seconds:g}",
             "--no-terminal", f"--log-file={log}", playlist],
            capture_output=True, timeout=seconds + 30, check=False)
        with open(log, encoding="utf-8", errors="replace") as f:
            return proc.returncode, f.read()


def _ffmpeg(playlist: str, seconds: float) -> tuple[int, str]:
    """ffmpeg decodes ``playlist`` (as the HLS demuxer reads an M3U) for ``seconds``."""
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "debug",
         "-f", "hls", "-t", f"{seconds:g}", "-i", playlist, "-f", "null", "-"],
        capture_output=True, timeout=seconds + 30, check=False)
    return proc.returncode, proc.stderr.decode(errors="replace")


async def test_real_players_play_the_playlists_with_titles(paced, demo_station):
    """VLC and mpv open the .m3u and the .pls, follow them to the stream and show its titles;
    ffmpeg reads the .m3u with its HLS demuxer (it has no PLS reader) and gets the titles."""
    from .vlcclient import play_with_vlc, vlc_available

    loop = asyncio.get_running_loop()
    ran = []
    played: list[str] = []
    if vlc_available():
        for kind in ("m3u", "pls"):
            listener = f"vlc-{kind}"
            result = await loop.run_in_executor(
                None, play_with_vlc, url(paced, f"/stream/{listener}.{kind}"), 6.0)
            print(f"vlc {kind}: {result.audio_s:.1f} s decoded, titles {result.titles}")
            assert result.decoded, result.errors
            assert any(r.target == f"/stream/{listener}.mp3" for r in result.requests)
            assert result.titles and all(" - " in t for t in result.titles)
            played.append(listener)
        ran.append("vlc")
    if shutil.which("mpv"):
        for kind in ("m3u", "pls"):
            listener = f"mpv-{kind}"
            started = time.monotonic()
            code, log = await loop.run_in_executor(
                None, _mpv, url(paced, f"/stream/{listener}.{kind}"), 5.0)
            assert code == 0, log[-2000:]
            assert f"Playing: {url(paced, f'/stream/{listener}.mp3')}" in log
            assert "Audio --aid=1 (mp3 2ch 44100Hz)" in log
            titles = re.findall(r"icy-title: (.+)", log)
            print(f"mpv {kind}: titles {titles} in {time.monotonic() - started:.1f} s")
            assert titles and all(" - " in t for t in titles)
            played.append(listener)
        ran.append("mpv")
    code, log = await loop.run_in_executor(
        None, _ffmpeg, url(paced, "/stream/ffmpeg-m3u.m3u"), 4.0)
    assert code == 0, log[-2000:]
    assert "request: GET /stream/ffmpeg-m3u.mp3" in log
    titles = re.findall(r"Metadata update for StreamTitle: (.+)", log)
    print(f"ffmpeg m3u: titles {titles}")
    assert titles and all(" - " in t for t in titles)
    played.append("ffmpeg-m3u")
    ran.append("ffmpeg")
    print("players:", ran)
    for listener in played:
        session = demo_station.sessions.get(listener)
        if session is not None:
            demo_station.release(session)
