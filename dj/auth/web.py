"""aiohttp helpers: read the bearer token, require a role, and match the path's subject.

401 means "who are you?" (no token, or not a valid one); 403 means "not yours to touch".
"""

from __future__ import annotations

import json

from aiohttp import web

from dj.auth.tokens import Principal, TokenStore


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None (absent, another scheme, or not
    printable ASCII: a header that was not UTF-8 arrives with surrogate escapes)."""
    header = request.headers.get("Authorization", "")
    if len(header) > 1024 or not header.isascii() or not header.isprintable():
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def a_role(role: str) -> str:
    """``"an admin"``, ``"a listener"``: for messages."""
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _error(cls: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json",
               headers=headers or None)


def require(request: web.Request, tokens: TokenStore, *roles: str,
            subject: str | None = None) -> Principal:
    """The request's principal if it holds one of ``roles`` (and, when given, that ``subject``).

    Raises 401 without a valid token and 403 for a valid token of another role or subject.
    """
    principal = tokens.authenticate(bearer_token(request))
    if principal is None:
        raise _error(web.HTTPUnauthorized, "a valid bearer token is required",
                     **{"WWW-Authenticate": 'Bearer realm="dj"'})
    if principal.role not in roles:
        raise _error(web.HTTPForbidden, f"this needs {' or '.join(map(a_role, roles))} token")
    if subject is not None and principal.subject != subject:
        raise _error(web.HTTPForbidden, "this token does not speak for this subject")
    return principal
