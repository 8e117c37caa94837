"""CORS for what other web players may embed: the streams, their playlists, the listener API,
the personas and the station's status.

Every answer on those paths carries ``Access-Control-Allow-Origin: *`` and exposes the ``icy-*``
headers; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 with
the route's methods and the request headers a player needs, ``Authorization`` among them: a
listener's token is a bearer header, never a cookie, so credentials are never allowed (nor may
they be, with ``*``). The operator's and artists' APIs get no CORS headers: a page elsewhere
cannot read them.
"""

from __future__ import annotations

from aiohttp import web

# paths (prefixes) open to any origin
PUBLIC = ("/stream/", "/api/listeners/", "/api/personas", "/api/tracks/", "/api/openapi.json",
          "/status-json.xsl", "/healthz")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Icy-MetaData", "Range")
EXPOSE_HEADERS = ("icy-name", "icy-description", "icy-genre", "icy-url", "icy-br", "icy-sr",
                  "icy-pub", "icy-metaint", "X-DJ-Persona", "Retry-After", "WWW-Authenticate")
MAX_AGE_S = 600  # how long a browser may cache a preflight


def is_public(path: str) -> bool:
    return path.startswith(PUBLIC)


@web.middleware
async def preflight(request: web.Request, handler):
    """Answer a CORS preflight for a public route (its other methods are its own handlers'); an
    ``OPTIONS`` that is not a preflight, or for any other path, goes on to a 405 or 404."""
    if (request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers
            or not is_public(request.path)):
        return await handler(request)
    exc = request.match_info.http_exception
    if not isinstance(exc, web.HTTPMethodNotAllowed):
        return await handler(request)  # no such route: its 404
    methods = sorted(m for m in exc.allowed_methods if m != "OPTIONS")
    return web.Response(status=204, headers={
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": ", ".join(ALLOW_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE_S),
    })


async def _allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    # on_response_prepare: before the headers go out, so streams and errors get them too
    if is_public(request.path):
        response.headers["Access-Control-Allow-Origin"] = "*"
        if request.method != "OPTIONS":
            response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)


def setup(app: web.Application) -> None:
    """Install the response hook; :func:`preflight` goes first in the app's middlewares."""
    app.on_response_prepare.append(_allow_origin)
