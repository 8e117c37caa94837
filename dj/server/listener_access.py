"""Who may play a listener's stream and use its controls.

A listener with an account (a stored listener) is the only one who may: their stream needs a
``listener`` token or a ``stream-key`` (``Authorization: Bearer`` or ``?key=``, for players that
cannot send headers), their controls and now-playing a ``listener`` token as a bearer. A name with
no account is anonymous: it streams without a key where ``[access] anonymous`` allows it, in the
operator's ``anonymous_territory``, and is never stored. The territory always comes from the
account or the operator, never from the request.

The checks read SQLite: call :meth:`ListenerAccess.resolve` in an executor.
"""

from __future__ import annotations

import json

from aiohttp import web

from dj.auth import TokenStore, bearer_token
from dj.auth.web import a_role
from dj.catalog import Catalog, Listener
from dj.config import Config

STREAM_ROLES = ("listener", "stream-key")
CONTROL_ROLES = ("listener",)


def _refuse(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    headers = {"WWW-Authenticate": 'Bearer realm="dj"'} if cls is web.HTTPUnauthorized else None
    return cls(text=json.dumps({"error": message}), content_type="application/json",
               headers=headers)


def stream_credential(request: web.Request) -> str | None:
    """The bearer token, else the ``key`` query parameter (as typed: it is checked, not used)."""
    return bearer_token(request) or request.query.get("key") or None


class ListenerAccess:
    def __init__(self, config: Config, catalog: Catalog, tokens: TokenStore) -> None:
        self.config = config
        self.catalog = catalog
        self.tokens = tokens

    def resolve(self, listener_id: str, credential: str | None,
                roles: tuple[str, ...] = STREAM_ROLES) -> Listener:
        """The listener a request may act as, or a 401/403 (blocking: reads SQLite).

        A credential that is given must be valid and speak for ``listener_id`` in one of
        ``roles``, even for a name without an account: a wrong key is an error, not anonymous.
        """
        stored = self.catalog.listener(listener_id)
        if credential is not None:
            principal = self.tokens.authenticate(credential)
            if principal is None:
                raise _refuse(web.HTTPUnauthorized, "this key or token is not valid (unknown,"
                              " revoked or expired)")
            if principal.role not in roles:
                raise _refuse(web.HTTPForbidden,
                              f"this needs {' or '.join(map(a_role, roles))} token")
            if principal.subject != listener_id:
                raise _refuse(web.HTTPForbidden, "this token speaks for another listener")
            if stored is None:  # tokens are made with their account; one deleted since
                stored = Listener(listener_id, self.config.default_territory,
                                  self.config.default_tier)
            return stored
        if stored is not None:
            raise _refuse(web.HTTPUnauthorized, "this listener has an account: its key or"
                          " token is needed")
        if not self.config.access.anonymous:
            raise _refuse(web.HTTPUnauthorized, "this station serves listeners with a key only")
        return Listener(listener_id, self.config.access.anonymous_territory.upper(),
                        self.config.default_tier)
