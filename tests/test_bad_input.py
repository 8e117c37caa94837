"""Client input that used to answer 500 on the artist API (issue 11), sent as raw bytes to a real
server on loopback: each gets a 4xx JSON error, nothing is stored, and no traceback is logged."""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from dj.auth import TokenStore
from dj.server.app import json_errors
from dj.server.artist_routes import setup_artist_routes

try:  # tests may run as a package or as loose modules
    from .test_artist_api import wav_bytes
    from .test_narrate import default_packs, make_narrator
except ImportError:
    from test_artist_api import wav_bytes  # type: ignore[no-redef]
    from test_narrate import default_packs, make_narrator  # type: ignore[no-redef]

MAX_CLIP = 256 * 1024  # the app under test refuses clips past this


@dataclass
class Raw:
    """One HTTP/1.1 request, byte for byte."""

    method: str
    path: str
    body: bytes = b""
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    auth: Callable[[bytes], bytes] | None = None  # the Authorization value, from the token
    chunked: bool = False


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


async def send(port: int, req: Raw, token: str) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = req.auth(token.encode()) if req.auth else b"Bearer " + token.encode()
    head = [f"{req.method} {req.path} HTTP/1.1".encode(), b"Host: 127.0.0.1",
            b"Connection: close", b"Authorization: " + auth,
            b"Content-Type: " + req.content_type, *(k + b": " + v for k, v in req.headers)]
    head.append(b"Transfer-Encoding: chunked" if req.chunked
                else b"Content-Length: %d" % len(req.body))
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        if req.chunked:
            for i in range(0, len(req.body), 1 << 16):
                piece = req.body[i:i + (1 << 16)]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(req.body)
        await writer.drain()
    except ConnectionError:
        pass  # answered (and closed) before the body was all sent: read the answer
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def multipart(clip: bytes, text: bytes = b"Hey, it's Bo.") -> tuple[bytes, bytes]:
    boundary = b"b0undary"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"
            + text + b"\r\n--" + boundary
            + b"\r\nContent-Disposition: form-data; name=\"clip\"; filename=\"hey.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + clip + b"\r\n--" + boundary + b"--\r\n")
    return body, b"multipart/form-data; boundary=" + boundary


def line(scope_json: bytes = b"{}", text: bytes = b'"Hi from Bo."') -> bytes:
    return b'{"text": ' + text + b', "scope": ' + scope_json + b"}"


LINES = "/api/artists/bo/lines"
CONSENT = "/api/artists/bo/consent"
OVERSIZE_CLIP = b"RIFF" + b"\x00" * (4 * MAX_CLIP)
OVERSIZE_FORM, FORM_TYPE = multipart(OVERSIZE_CLIP)
NESTED = b"[" * 10_000 + b"]" * 10_000

CASES = {
    # a path parameter ending in a newline (artist, line)
    "artist-id-newline": (Raw("POST", "/api/artists/bo%0A/lines", line()), 400),
    "artist-id-crlf": (Raw("GET", "/api/artists/bo%0D%0A/lines"), 400),
    "line-id-newline": (Raw("POST", "/api/artists/bo/lines/abc%0A/revoke", b"{}"), 400),
    "artist-id-not-utf8": (Raw("GET", "/api/artists/%ED%A0%80/lines"), None),
    # bytes that are not UTF-8 in Authorization
    "auth-not-utf8": (Raw("GET", LINES, auth=lambda t: b"Bearer " + t + b"\xff\xfe"), 401),
    "auth-only-not-utf8": (Raw("GET", LINES, auth=lambda t: b"Bearer \xff\xfe\xc3("), 401),
    "auth-scheme-not-utf8": (Raw("GET", LINES, auth=lambda t: b"\xffearer " + t), 401),
    # a lone surrogate
    "surrogate-in-text": (Raw("POST", LINES, line(text=b'"Hi \\ud800 there"')), 400),
    "surrogate-low-in-text": (Raw("POST", LINES, line(text=b'"\\udfff"')), 400),
    "surrogate-in-scope-name": (Raw("POST", LINES, line(b'{"personas": ["\\ud800"]}')), 400),
    "surrogate-in-key": (Raw("POST", LINES, b'{"text": "Hi", "\\ud800": 1}'), 400),
    "surrogate-in-evidence": (Raw("POST", CONSENT, b'{"kind": "persona_text", "action": '
                                  b'"grant", "evidence": "form \\udc00"}'), 400),
    "surrogate-in-reason": (Raw("POST", "/api/artists/bo/lines/abc/revoke",
                                b'{"reason": "\\ud800"}'), 400),
    "nul-in-text": (Raw("POST", LINES, line(text=b'"Hi\\u0000there"')), 400),
    # dates at the edges
    "year-9999-end": (Raw("POST", LINES, line(b'{"valid_until": "9999-12-31"}')), 400),
    "year-9999-minus-14": (Raw("POST", LINES, line(
        b'{"valid_until": "9999-12-31T23:59:59-14:00"}')), 400),
    "year-1-plus-14": (Raw("POST", LINES, line(
        b'{"valid_from": "0001-01-01T00:00:00+14:00"}')), 400),
    "year-1-date": (Raw("POST", LINES, line(b'{"valid_from": "0001-01-01"}')), 400),
    "offset-past-24h": (Raw("POST", LINES, line(
        b'{"valid_from": "2026-01-01T00:00:00+24:00"}')), 400),
    "date-as-number": (Raw("POST", LINES, line(b'{"valid_from": 20260101}')), 400),
    # deeply nested JSON
    "nested-10000-lists": (Raw("POST", LINES, NESTED), 400),
    "nested-in-scope": (Raw("POST", LINES, line(b'{"tracks": ' + NESTED + b"}")), 400),
    "nested-100-objects": (Raw("POST", LINES, b'{"a":' * 100 + b"1" + b"}" * 100), 400),
    # a 5,000-digit integer
    "huge-integer": (Raw("POST", LINES, line(b'{"valid_from": ' + b"9" * 5000 + b"}")), 400),
    "huge-integer-body": (Raw("POST", LINES, b"9" * 5000), 400),
    "huge-integer-limit": (Raw("GET", "/api/artists/bo/airings?limit=" + "9" * 5000), 400),
    # an unknown charset
    "unknown-charset": (Raw("POST", LINES, line(),
                            content_type=b"application/json; charset=x-no-such"), 415),
    "codec-not-text": (Raw("POST", LINES, line(), content_type=b"application/json; charset=zlib"),
                       415),
    "charset-on-consent": (Raw("POST", CONSENT, b"{}",
                               content_type=b"application/json; charset=nope"), 415),
    "charset-in-form-part": (Raw("POST", LINES, multipart(wav_bytes())[0].replace(
        b'name="text"\r\n', b'name="text"\r\nContent-Type: text/plain; charset=nope\r\n'),
        content_type=FORM_TYPE), 415),
    # a clip over the size limit: 413, refused while reading
    "clip-too-large": (Raw("POST", LINES, OVERSIZE_FORM, content_type=FORM_TYPE), 413),
    "clip-too-large-chunked": (Raw("POST", LINES, OVERSIZE_FORM, content_type=FORM_TYPE,
                                   chunked=True), 413),
    "json-too-large": (Raw("POST", LINES, line(text=b'"' + b"x" * (1 << 20) + b'"')), 413),
    # and other malformed bodies
    "form-field-not-utf8": (Raw("POST", LINES, multipart(wav_bytes(), b"Hi \xff")[0],
                                content_type=FORM_TYPE), 400),
    "form-unknown-part": (Raw("POST", LINES, multipart(wav_bytes())[0].replace(
        b'name="text"', b'name="sneaky"'), content_type=FORM_TYPE), 400),
    "form-no-boundary": (Raw("POST", LINES, b"--x\r\n\r\n", content_type=b"multipart/form-data"),
                         400),
    "body-not-utf8": (Raw("POST", LINES, b'{"text": "\xff"}'), 400),
    "kind-is-a-list": (Raw("POST", CONSENT, b'{"kind": [1], "action": "grant", "evidence": "e"}'),
                       400),
    "evidence-is-an-object": (Raw("POST", CONSENT, b'{"kind": "persona_text", "action": "grant",'
                                  b' "evidence": {"a": 1}}'), 400),
    "action-is-a-list": (Raw("POST", CONSENT, b'{"kind": "persona_text", "action": ["grant"]}'),
                         400),
    "moment-is-a-list": (Raw("POST", LINES, line(b'{"moment": ["any"]}')), 400),
    # a persona the station does not have: the line would air nowhere, silently
    "unknown-persona-in-scope": (Raw("POST", LINES, line(b'{"personas": ["ghost"]}')), 400),
    "unknown-persona-in-consent": (Raw("POST", CONSENT, b'{"kind": "persona_text", "action":'
                                       b' "grant", "evidence": "e", "personas": ["ghost"]}'), 400),
    # bidirectional overrides reorder what people see around the words
    "right-to-left-override": (Raw("POST", LINES, line(text=b'"Bo \\u202e olleh"')), 400),
    "isolate-in-evidence": (Raw("POST", CONSENT, b'{"kind": "persona_text", "action": "grant",'
                                b' "evidence": "form \\u2066x"}'), 400),
}


@pytest.fixture
def narrator(tmp_path: Path):
    return make_narrator(tmp_path, default_packs())


@pytest.fixture
async def server(narrator, aiohttp_server):
    """The artist API as :func:`dj.server.app.create_app` mounts it, behind ``json_errors``."""
    app = web.Application(middlewares=[json_errors])
    setup_artist_routes(app, narrator=narrator, tokens=TokenStore(narrator.store),
                        ledger=narrator.ledger, max_clip_bytes=MAX_CLIP)
    return await aiohttp_server(app, host="127.0.0.1")


def stored(narrator) -> tuple:
    q = narrator.store.query
    clips = narrator.lines.clips_dir
    return (tuple(tuple(r) for r in q("SELECT * FROM narrate_lines ORDER BY id")),
            tuple(tuple(r) for r in q("SELECT * FROM narrate_consents ORDER BY artist_id, kind")),
            tuple(tuple(r) for r in q("SELECT * FROM narrate_audit ORDER BY seq")),
            sorted(p.name for p in clips.iterdir()) if clips.exists() else [])


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_a_4xx_json_error(server, narrator, caplog, case) -> None:
    req, status = CASES[case]
    token = TokenStore(narrator.store).create("artist", "bo")
    before = stored(narrator)
    caplog.set_level(logging.DEBUG)

    answer = await send(server.port, req, token)

    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    if status is not None:
        assert answer.status == status, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert isinstance(error, str) and error and error != "internal error"
    assert stored(narrator) == before
    assert tracebacks(caplog) == []


async def test_the_same_requests_done_right_succeed(server, narrator) -> None:
    """The cases above fail for what they say, not for how they are sent."""
    token = TokenStore(narrator.store).create("artist", "bo")
    ok = [
        Raw("POST", LINES, line(b'{"valid_from": "2026-01-01T00:00:00+14:00",'
                                b' "valid_until": "2199-12-31T23:59:59-14:00"}')),
        Raw("POST", LINES, line(text=b'"Hi \\u00e9 \\ud83c\\udfb5 there"')),  # a real pair
        Raw("POST", LINES, line(b'{"territories": [" us ", "ca"]}'),
            content_type=b"application/json; charset=UTF-8"),
        Raw("POST", LINES, multipart(wav_bytes())[0], content_type=FORM_TYPE),
        Raw("POST", LINES, multipart(wav_bytes())[0], content_type=FORM_TYPE, chunked=True),
        Raw("POST", CONSENT, b'{"kind": "persona_text", "action": "grant", "evidence": "f"}'),
    ]
    for req in ok:
        answer = await send(server.port, req, token)
        assert answer.status in (200, 201), (req, answer.body[:300])
    texts = {ln.text for ln in narrator.lines.lines("bo")}
    assert "Hi \u00e9 \U0001f3b5 there" in texts


async def test_oversize_clip_is_refused_while_reading(server, narrator) -> None:
    """16 MiB sent (chunked, no length to refuse up front) against a 256 KiB limit: 413, and
    the server never holds more than about the limit."""
    token = TokenStore(narrator.store).create("artist", "bo")
    body, content_type = multipart(b"RIFF" + bytes(16 << 20))
    req = Raw("POST", LINES, body, content_type=content_type, chunked=True)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        answer = await send(server.port, req, token)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert answer.status == 413 and "larger than" in answer.json()["error"]
    assert peak < 4 * MAX_CLIP + (1 << 20), peak  # the sender's 64 KiB pieces included


async def test_listener_path_param_newline_is_400(demo_config, demo_station, aiohttp_client,
                                                  caplog) -> None:
    """The listener routes, through the app's middleware."""
    from dj.server.app import create_app

    client = await aiohttp_client(create_app(demo_config, demo_station, pacing=False))
    caplog.set_level(logging.DEBUG)
    for method, path in [("POST", "/api/listeners/sam%0A/skip"),
                         ("POST", "/api/listeners/sam%0A/like"),
                         ("GET", "/api/listeners/sam%0A/now-playing"),
                         ("GET", "/api/listeners/%00/now-playing")]:
        resp = await client.request(method, path)
        assert resp.status == 400, (path, await resp.text())
        assert "error" in await resp.json()
    resp = await client.get("/api/no-such-route")
    assert resp.status == 404 and "error" in await resp.json()
    assert tracebacks(caplog) == []
