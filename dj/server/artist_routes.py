"""The artist API: an artist (with an artist token) manages their own lines and consent, and sees
where their lines aired. Every change is committed before the response is sent.

    POST /api/artists/{artist}/lines                 JSON {text, scope} or multipart (clip + text)
    POST /api/artists/{artist}/lines/{line}/revoke   revoke a line (fails closed at once)
    GET  /api/artists/{artist}/lines                 lines with state and audit trail, consents
    GET  /api/artists/{artist}/airings               newest first
    POST /api/artists/{artist}/consent               {kind, action: grant|revoke, evidence}
    GET  /api/artists/{artist}/statement?period=YYYY-MM   plays, listeners, lines, pool shares
    GET  /api/artists/me                             which artist the token speaks for, limits
    GET  /artist                                     the artist portal (a page using the above)

401 without a valid token, 403 with another artist's token, 400 for a malformed body (not JSON,
nested too deeply, a lone surrogate, a blank or unknown scope name, a date outside the supported
years), 404 for an unknown line, 413 for a body or clip over its limit (refused while reading,
never held whole), 415 for a charset other than UTF-8, 422 for a clip that cannot air (with the
reason). Every error is JSON ``{"error": message}``; nothing is stored for a refused request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web

from dj.auth import Principal, TokenStore, require
from dj.ledger.log import Ledger
from dj.ledger.royalties import RoyaltyError, artist_statement, current_period, parse_period
from dj.narrate import ClipError, LineError, LineNotFound, LineScope, Narrator
from dj.narrate.consent import CONSENT_KINDS, consent_scope
from dj.narrate.lines import MAX_TEXT_CHARS, check_chars
from dj.server.pages import page

logger = logging.getLogger(__name__)

ARTIST_NARRATOR = web.AppKey("artist_api_narrator", Narrator)
ARTIST_TOKENS = web.AppKey("artist_api_tokens", TokenStore)
ARTIST_LEDGER = web.AppKey("artist_api_ledger", Ledger)
ARTIST_MAX_CLIP = web.AppKey("artist_api_max_clip_bytes", int)

MAX_CLIP_BYTES = 20 * 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024  # a multipart text field (text, scope)
MAX_FORM_OVERHEAD = 3 * MAX_FIELD_BYTES  # fields, part headers and boundaries beside the clip
MAX_JSON_BYTES = 256 * 1024
MAX_JSON_DEPTH = 16
MAX_AIRINGS = 1000
MAX_EVIDENCE_CHARS = 500
JSON_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})

T = TypeVar("T")


def _json_error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _too_large(message: str, limit: int) -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(limit, text=json.dumps({"error": message}),
                                         content_type="application/json")


def _artist(request: web.Request) -> tuple[str, Principal]:
    artist = request.match_info["artist"]
    principal = require(request, request.app[ARTIST_TOKENS], "artist", subject=artist)
    return artist, principal


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Database writes and clip decoding run off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _check_charset(charset: str | None) -> None:
    if charset is not None and charset.lower() not in JSON_CHARSETS:
        raise _json_error(web.HTTPUnsupportedMediaType,
                          f"unsupported charset {charset[:40]!r}: send UTF-8")


def _parse_json(data: bytes, what: str) -> Any:
    """JSON from UTF-8 bytes, checked as a whole before anything reads it: no lone surrogates
    (``"\\ud800"``), at most :data:`MAX_JSON_DEPTH` levels; every failure is a 400."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _json_error(web.HTTPBadRequest, f"{what} must be UTF-8") from None
    except RecursionError:
        raise _json_error(web.HTTPBadRequest, f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        reason = "a number is too long" if "digits" in str(exc) else "not valid JSON"
        raise _json_error(web.HTTPBadRequest, f"{what} must be JSON ({reason})") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _json_error(web.HTTPBadRequest, f"{what} is nested too deeply")
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _json_error(web.HTTPBadRequest,
                                  f"{what} holds a string that is not valid Unicode"
                                  " (a lone surrogate)") from None
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    _check_charset(request.charset)
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise _too_large(f"the body is larger than {MAX_JSON_BYTES} bytes", MAX_JSON_BYTES)
    data = bytearray()
    while chunk := await request.content.read(1 << 16):
        data.extend(chunk)
        if len(data) > MAX_JSON_BYTES:
            raise _too_large(f"the body is larger than {MAX_JSON_BYTES} bytes", MAX_JSON_BYTES)
    body = _parse_json(bytes(data), "the body")
    if not isinstance(body, dict):
        raise _json_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    """A part's bytes, refused with 413 as soon as they pass ``limit`` (never held whole)."""
    data = bytearray()
    while chunk := await part.read_chunk(1 << 16):
        data.extend(chunk)
        if len(data) > limit:
            raise _too_large(f"{what} is larger than {limit} bytes", limit)
    return bytes(data)


async def _multipart_body(request: web.Request) -> tuple[dict[str, Any], bytes | None, str]:
    max_clip = request.app.get(ARTIST_MAX_CLIP, MAX_CLIP_BYTES)
    limit = max_clip + MAX_FORM_OVERHEAD
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(f"the upload is larger than {limit} bytes (a clip may have"
                         f" {max_clip})", limit)
    fields: dict[str, Any] = {}
    clip: bytes | None = None
    clip_name = ""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name not in ("clip", "text", "scope"):
                raise _json_error(web.HTTPBadRequest,
                                  "a multipart line has only 'text', 'scope' and 'clip' parts")
            if part.name in fields or (part.name == "clip" and clip is not None):
                raise _json_error(web.HTTPBadRequest, f"part {part.name!r} given twice")
            if part.name == "clip":
                clip_name = part.filename or ""
                clip = await _read_part(part, max_clip, "the clip")
                continue
            data = await _read_part(part, MAX_FIELD_BYTES, f"field {part.name!r}")
            _check_charset(part.get_charset(None))
            try:
                fields[part.name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise _json_error(web.HTTPBadRequest,
                                  f"field {part.name!r} must be UTF-8") from None
    except (ValueError, AssertionError, LookupError) as exc:
        raise _json_error(web.HTTPBadRequest, f"malformed multipart body: {exc}") from None
    if "scope" in fields:
        raw = fields["scope"]
        fields["scope"] = _parse_json(raw.encode(), "scope") if raw.strip() else {}
    if clip_name:
        clip_name = clip_name[:200]
        if not clip_name.isprintable():
            raise _json_error(web.HTTPBadRequest, "the clip's file name is not printable")
    return fields, clip, clip_name


def _check_personas(narrator: Narrator, names: tuple[str, ...]) -> None:
    """A scope may name only personas the station has: a typo would silently air nowhere."""
    unknown = [n for n in names if n not in narrator.personas]
    if unknown:
        raise LineError(f"unknown persona {unknown[0][:40]!r}; known: "
                        + ", ".join(sorted(narrator.personas)))


async def add_line(request: web.Request) -> web.Response:
    artist, principal = _artist(request)
    if request.content_type.startswith("multipart/"):
        body, clip, clip_name = await _multipart_body(request)
        if clip is None:
            raise _json_error(web.HTTPBadRequest, "a multipart line needs a 'clip' file part")
    else:
        body, clip, clip_name = await _json_body(request), None, ""
    scope_data = body.get("scope", {})
    if not isinstance(scope_data, dict):
        raise _json_error(web.HTTPBadRequest, "scope must be an object")
    try:
        scope = LineScope.parse(scope_data)
        narrator = request.app[ARTIST_NARRATOR]
        _check_personas(narrator, scope.personas)
        line = await _blocking(
            lambda: narrator.lines.add(artist, body.get("text"), scope, who=principal.describe(),
                                       clip=clip, clip_name=clip_name, source="api"))
    except ClipError as exc:
        raise _json_error(web.HTTPUnprocessableEntity, f"clip rejected: {exc}") from None
    except LineError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    return web.json_response({"id": line.id, "line": line.to_json()}, status=201)


async def revoke_line(request: web.Request) -> web.Response:
    artist, principal = _artist(request)
    line_id = request.match_info["line"]
    reason = ""
    if request.can_read_body and request.content_type == "application/json":
        reason = (await _json_body(request)).get("reason", "")
        if not isinstance(reason, str):
            raise _json_error(web.HTTPBadRequest, "reason must be a string")
        try:
            reason = check_chars(" ".join(reason.split())[:500], "reason")
        except LineError as exc:
            raise _json_error(web.HTTPBadRequest, str(exc)) from None
    narrator = request.app[ARTIST_NARRATOR]
    try:
        line = await _blocking(
            lambda: narrator.lines.revoke(artist, line_id, who=principal.describe(), reason=reason))
    except LineNotFound:
        raise _json_error(web.HTTPNotFound, f"{artist} has no line {line_id!r}") from None
    return web.json_response({"id": line.id, "state": line.state, "revoked_at": line.updated_at})


async def list_lines(request: web.Request) -> web.Response:
    artist, _ = _artist(request)
    registry = request.app[ARTIST_NARRATOR].lines

    def collect() -> dict[str, Any]:
        audit = registry.audit(artist)
        lines = []
        for line in registry.lines(artist):
            entry = line.to_json()
            entry["audit"] = [a.to_json() for a in audit if a.subject == line.id]
            lines.append(entry)
        return {
            "artist": artist,
            "lines": lines,
            "consents": [c.to_json() for c in registry.consents(artist)],
            "consent_audit": [a.to_json() for a in audit if a.action.startswith("consent_")],
        }

    return web.json_response(await _blocking(collect))


async def list_airings(request: web.Request) -> web.Response:
    artist, _ = _artist(request)
    raw = request.query.get("limit", "100")
    try:
        if len(raw) > 12 or not raw.strip().isascii():
            raise ValueError(raw)
        limit = min(MAX_AIRINGS, max(1, int(raw)))
    except ValueError:
        raise _json_error(web.HTTPBadRequest, "limit must be a number") from None
    ledger = request.app[ARTIST_LEDGER]
    airings = await _blocking(lambda: ledger.airings(artist_id=artist, limit=limit))
    return web.json_response({
        "artist": artist,
        "airings": [
            {"line_id": a.line_id, "persona": a.persona, "listener": a.listener_id,
             "aired_at": a.aired_at, "engine": a.engine, "text": a.text}
            for a in airings
        ],
    })


async def set_consent(request: web.Request) -> web.Response:
    artist, principal = _artist(request)
    body = await _json_body(request)
    action = body.get("action")
    if not isinstance(action, str) or action not in ("grant", "revoke"):
        raise _json_error(web.HTTPBadRequest, "action must be 'grant' or 'revoke'")
    # null is no evidence; any other non-string ({}, 0, false) is an error, not a blank
    evidence = body.get("evidence")
    evidence = "" if evidence is None else evidence
    if not isinstance(evidence, str) or len(evidence) > MAX_EVIDENCE_CHARS:
        raise _json_error(web.HTTPBadRequest,
                          f"evidence must be a string of at most {MAX_EVIDENCE_CHARS} characters")
    narrator = request.app[ARTIST_NARRATOR]
    try:
        evidence = check_chars(evidence.strip(), "evidence")
        _check_personas(narrator, consent_scope(body.get("personas"), None)[0])
        consent = await _blocking(lambda: narrator.lines.set_consent(
            artist, body.get("kind"), action == "grant", who=principal.describe(),
            evidence=evidence, personas=body.get("personas"),
            territories=body.get("territories"), source="api"))
    except LineError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    return web.json_response({"consent": consent.to_json()})


async def whoami(request: web.Request) -> web.Response:
    """The artist an artist token speaks for, so the portal knows its paths; with the limits it
    checks before uploading and the consent kinds it offers. 401 without a valid token, 403 for
    a valid token of another role (the same answers as every artist route)."""
    principal = require(request, request.app[ARTIST_TOKENS], "artist")
    return web.json_response(
        {
            "role": principal.role,
            "subject": principal.subject,
            "consent_kinds": list(CONSENT_KINDS),
            "limits": {
                "clip_bytes": request.app.get(ARTIST_MAX_CLIP, MAX_CLIP_BYTES),
                "text_chars": MAX_TEXT_CHARS,
                "evidence_chars": MAX_EVIDENCE_CHARS,
            },
        },
        headers={"Cache-Control": "no-store"},
    )


async def statement(request: web.Request) -> web.Response:
    """The artist's statement for a month (``period=YYYY-MM``, default this month, UTC; a day
    YYYY-MM-DD too): qualifying plays of their tracks, listeners, aired lines, and each track's
    rightsholders' shares of the pools under both models, with amounts once the operator has
    recorded the period's revenue (``dj report royalties --record``). 400 for a bad period."""
    artist, _ = _artist(request)
    raw = request.query.get("period")
    try:
        period = current_period() if raw is None else parse_period(raw)
    except RoyaltyError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    store = request.app[ARTIST_LEDGER].store
    body = await _blocking(artist_statement, store, artist, period)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


PORTAL_PAGE = "artist_portal.html"




async def artist_portal(request: web.Request) -> web.Response:
    html, csp = page(PORTAL_PAGE)
    return web.Response(text=html, content_type="text/html", headers={
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })


def setup_artist_routes(app: web.Application, *, narrator: Narrator, tokens: TokenStore,
                        ledger: Ledger, max_clip_bytes: int = MAX_CLIP_BYTES) -> None:
    app[ARTIST_NARRATOR] = narrator
    app[ARTIST_TOKENS] = tokens
    app[ARTIST_LEDGER] = ledger
    app[ARTIST_MAX_CLIP] = max_clip_bytes
    base = "/api/artists/{artist}"
    app.router.add_get("/api/artists/me", whoami)  # no GET on {artist} itself: no clash
    app.router.add_post(f"{base}/lines", add_line)
    app.router.add_get(f"{base}/lines", list_lines)
    app.router.add_post(f"{base}/lines/{{line}}/revoke", revoke_line)
    app.router.add_get(f"{base}/airings", list_airings)
    app.router.add_post(f"{base}/consent", set_consent)
    app.router.add_get(f"{base}/statement", statement)
