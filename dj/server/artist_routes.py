"""The artist API: an artist (with an artist token) manages their own lines and consent, and sees
where their lines aired. Every change is committed before the response is sent.

    POST /api/artists/{artist}/lines                 JSON {text, scope} or multipart (clip + text)
    POST /api/artists/{artist}/lines/{line}/revoke   revoke a line (fails closed at once)
    GET  /api/artists/{artist}/lines                 lines with state and audit trail, consents
    GET  /api/artists/{artist}/airings               newest first
    POST /api/artists/{artist}/consent               {kind, action: grant|revoke, evidence}

401 without a valid token, 403 with another artist's token, 400 for a malformed body, 404 for an
unknown line, 422 for a clip that cannot air (with the reason).
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
from dj.narrate import ClipError, LineError, LineNotFound, LineScope, Narrator

logger = logging.getLogger(__name__)

ARTIST_NARRATOR = web.AppKey("artist_api_narrator", Narrator)
ARTIST_TOKENS = web.AppKey("artist_api_tokens", TokenStore)
ARTIST_LEDGER = web.AppKey("artist_api_ledger", Ledger)

MAX_CLIP_BYTES = 20 * 1024 * 1024
MAX_AIRINGS = 1000

T = TypeVar("T")


def _json_error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _artist(request: web.Request) -> tuple[str, Principal]:
    artist = request.match_info["artist"]
    principal = require(request, request.app[ARTIST_TOKENS], "artist", subject=artist)
    return artist, principal


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Database writes and clip decoding run off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _json_error(web.HTTPBadRequest, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise _json_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


async def _multipart_body(request: web.Request) -> tuple[dict[str, Any], bytes | None, str]:
    fields: dict[str, Any] = {}
    clip: bytes | None = None
    clip_name = ""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "clip":
                clip_name = part.filename or ""
                data = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    data.extend(chunk)
                    if len(data) > MAX_CLIP_BYTES:
                        raise _json_error(web.HTTPRequestEntityTooLarge,
                                          f"the clip is larger than {MAX_CLIP_BYTES} bytes")
                clip = bytes(data)
            else:
                fields[part.name] = await part.text()
    except (ValueError, AssertionError) as exc:
        raise _json_error(web.HTTPBadRequest, f"malformed multipart body: {exc}") from None
    if "scope" in fields:
        try:
            fields["scope"] = json.loads(fields["scope"]) if fields["scope"].strip() else {}
        except json.JSONDecodeError:
            raise _json_error(web.HTTPBadRequest, "scope must be a JSON object") from None
    return fields, clip, clip_name


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
        reason = str((await _json_body(request)).get("reason", ""))[:500]
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
    try:
        limit = min(MAX_AIRINGS, max(1, int(request.query.get("limit", "100"))))
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
    if action not in ("grant", "revoke"):
        raise _json_error(web.HTTPBadRequest, "action must be 'grant' or 'revoke'")
    narrator = request.app[ARTIST_NARRATOR]
    try:
        consent = await _blocking(lambda: narrator.lines.set_consent(
            artist, body.get("kind"), action == "grant", who=principal.describe(),
            evidence=str(body.get("evidence") or ""), personas=body.get("personas"),
            territories=body.get("territories"), source="api"))
    except LineError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    return web.json_response({"consent": consent.to_json()})


def setup_artist_routes(app: web.Application, *, narrator: Narrator, tokens: TokenStore,
                        ledger: Ledger) -> None:
    app[ARTIST_NARRATOR] = narrator
    app[ARTIST_TOKENS] = tokens
    app[ARTIST_LEDGER] = ledger
    base = "/api/artists/{artist}"
    app.router.add_post(f"{base}/lines", add_line)
    app.router.add_get(f"{base}/lines", list_lines)
    app.router.add_post(f"{base}/lines/{{line}}/revoke", revoke_line)
    app.router.add_get(f"{base}/airings", list_airings)
    app.router.add_post(f"{base}/consent", set_consent)
