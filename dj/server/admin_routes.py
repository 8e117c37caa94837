"""The operator's API (``admin`` tokens): tokens made, listed and revoked over HTTP, as the
``dj token`` commands do. A token's secret is shown once, in the answer that creates it.

    GET  /api/tokens[?role=ROLE]        every token's id, role, subject, state, dates (no secret)
    POST /api/tokens                    {role, subject?, expires_days?, label?} -> 201 {id, token}
    POST /api/tokens/{token_id}/revoke  it stops working at once, in every process
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from dj.auth import ROLES, RoleError, TokenStore, require
from dj.server.artist_routes import _json_body
from dj.server.keys import ACCESS, STATION
from dj.stream import BadRequest
from dj.stream.station import check_listener_id

TOKEN_ID = re.compile(r"[0-9a-f]{8}")
MAX_LABEL_CHARS = 200
MAX_SUBJECT_CHARS = 64

routes = web.RouteTableDef()


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _tokens(request: web.Request) -> TokenStore:
    tokens = request.app[ACCESS].tokens
    require(request, tokens, "admin")
    return tokens


def _info(t: Any) -> dict[str, Any]:
    return {"id": t.id, "role": t.role, "subject": t.subject, "state": t.state(),
            "label": t.label, "created_at": t.created_at, "expires_at": t.expires_at,
            "revoked_at": t.revoked_at}


@routes.get("/api/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    role = request.query.get("role")
    if role is not None and role not in ROLES:
        raise _error(web.HTTPBadRequest, f"unknown role; known: {', '.join(ROLES)}")
    loop = asyncio.get_running_loop()
    tokens = await loop.run_in_executor(None, _tokens, request)
    rows = await loop.run_in_executor(None, lambda: tokens.list(role=role))
    return web.json_response([_info(t) for t in rows])


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise _error(web.HTTPBadRequest, f"{name} has the wrong type")
    return value


@routes.post("/api/tokens")
async def create_token(request: web.Request) -> web.Response:
    loop = asyncio.get_running_loop()
    tokens = await loop.run_in_executor(None, _tokens, request)
    body = await _json_body(request)
    unknown = set(body) - {"role", "subject", "expires_days", "label"}
    if unknown:
        raise _error(web.HTTPBadRequest, f"unknown field {sorted(unknown)[0][:40]!r}")
    role = _field(body, "role", (str,))
    if role not in ROLES:
        raise _error(web.HTTPBadRequest, f"role must be one of {', '.join(ROLES)}")
    subject = _field(body, "subject", (str,))
    expires = _field(body, "expires_days", (int, float))
    label = _field(body, "label", (str,)) or ""  # null is no label, as for the other fields
    if len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise _error(web.HTTPBadRequest, f"label: at most {MAX_LABEL_CHARS} printable characters")

    if subject is not None and not (0 < len(subject) <= MAX_SUBJECT_CHARS
                                    and subject.isprintable()):
        raise _error(web.HTTPBadRequest,
                     f"subject: 1 to {MAX_SUBJECT_CHARS} printable characters")
    catalog = request.app[STATION].catalog

    def make() -> tuple[str, str]:
        if role == "artist" and (not isinstance(subject, str)
                                 or catalog.artist(subject) is None):
            raise _error(web.HTTPBadRequest, "subject must be a known artist id")
        if role in ("listener", "stream-key"):
            try:
                check_listener_id(subject or "")
            except BadRequest as exc:
                raise _error(web.HTTPBadRequest, f"subject: {exc}") from None
            if catalog.listener(subject) is None:
                raise _error(web.HTTPBadRequest, "subject must be a listener account"
                             " (dj token create --role listener makes one)")
        try:
            token = tokens.create(role, subject, label, expires_days=expires)
        except (RoleError, ValueError) as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        return token.split("_")[1], token

    token_id, token = await loop.run_in_executor(None, make)
    return web.json_response({"id": token_id, "token": token, "role": role, "subject": subject},
                             status=201)


@routes.post("/api/tokens/{token_id}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    loop = asyncio.get_running_loop()
    tokens = await loop.run_in_executor(None, _tokens, request)
    if not TOKEN_ID.fullmatch(token_id):
        raise _error(web.HTTPNotFound, "no such token")
    if not await loop.run_in_executor(None, tokens.revoke, token_id):
        known = await loop.run_in_executor(None, lambda: {t.id for t in tokens.list()})
        if token_id not in known:
            raise _error(web.HTTPNotFound, "no such token")
    return web.json_response({"id": token_id, "state": "revoked"})
