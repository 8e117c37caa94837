"""``GET``/``HEAD /stream/{listener}.mp3``: the listener's endless stream, for every client.

HTTP/1.1 clients get a chunked body, HTTP/1.0 ones (VLC's retry, ``curl -0``) a body that ends
when the connection closes. ``HEAD`` answers the headers and opens nothing. Nothing is allocated
for a request until its response has started; every way a connection ends frees what it held.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dj.catalog import Listener
from dj.server.keys import ACCESS, CONFIG, CONNECTIONS, OPENING, PACING, STATION
from dj.server.listener_access import stream_credential
from dj.stream import BadRequest, Connection, IcyFramer, Session, SocketGauge, Station
from dj.stream.ear import DELAY_HEADER
from dj.stream.icy import NAMES as ICY_NAMES
from dj.stream.icy import icy_charset
from dj.stream.registry import NOTHING_HEARD_S
from dj.stream.station import check_listener_id

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _headers(request: web.Request, listener_id: str, persona: str, icy: bool) -> dict[str, str]:
    config = request.app[CONFIG]
    stream = config.stream
    headers = {
        "Content-Type": "audio/mpeg",
        "Cache-Control": "no-cache, no-store",
        "icy-name": f"{stream.station_name}: {listener_id}",
        "icy-description": f"{stream.station_description} (hosted by {persona})",
        "icy-genre": stream.station_genre,
        "icy-url": stream.station_url or base_url(request) + "/",
        "icy-br": str(config.audio.bitrate_kbps),
        "icy-sr": "44100",
        "icy-pub": "0",  # a personal stream: never listed in a public directory
        "X-DJ-Persona": persona,
    }
    if icy:
        headers["icy-metaint"] = str(stream.metaint)
    return headers


def base_url(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client addressed this server (for absolute URLs)."""
    return f"{request.scheme}://{request.host}"


def icy_charset_for(request: web.Request) -> str:
    """The StreamTitle charset for this client: ``?icy_charset=`` (utf-8 or latin-1), else the
    configured one."""
    asked = request.query.get("icy_charset")
    if asked is None:
        return icy_charset(request.app[CONFIG].stream.icy_charset) or "utf-8"
    charset = icy_charset(asked) if asked in ICY_NAMES else None
    if charset is None:
        raise BadRequest("icy_charset must be one of " + ", ".join(ICY_NAMES))
    return charset


async def _open(app: web.Application, listener: Listener, persona: str | None) -> Session:
    """A new session for ``listener_id``. Connections that arrive while one is being opened
    (VLC drops its first request and retries at once) wait for it and take it over, instead of
    opening a second programme."""
    station = app[STATION]
    opening = app[OPENING]
    loop = asyncio.get_running_loop()
    while True:
        pending = opening.get(listener.id)
        if pending is None:
            break
        session = await asyncio.shield(pending)
        if not session.closed:
            return session
    future: asyncio.Future[Session] = loop.create_future()
    opening[listener.id] = future
    try:
        session = await loop.run_in_executor(None, station.open_session, listener, persona)
        future.set_result(session)
        return session
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: waiters re-raise it, nobody else needs to
        raise
    finally:
        opening.pop(listener.id, None)


@routes.get("/stream/{listener}.mp3")  # aiohttp routes HEAD here too
async def stream(request: web.Request) -> web.StreamResponse:
    station: Station = request.app[STATION]
    config = request.app[CONFIG]
    listener_id = check_listener_id(request.match_info["listener"])
    persona = request.query.get("persona") or None
    station.check_persona(persona)
    if "territory" in request.query:
        raise BadRequest("territory comes from the listener's account (or the operator's"
                         " configuration), not from the request")
    listener = await asyncio.get_running_loop().run_in_executor(
        None, request.app[ACCESS].resolve, listener_id, stream_credential(request))
    icy = request.headers.get("Icy-MetaData", "").strip() == "1"
    charset = icy_charset_for(request)

    existing = station.sessions.get(listener_id)
    resumed = (
        existing
        if existing is not None and not existing.closed and persona in (None, existing.persona)
        else None
    )
    shown = resumed.persona if resumed else station.persona_for(
        listener_id, persona, listener.territory)[0]
    headers = _headers(request, listener_id, shown, icy)
    if request.method == "HEAD":
        return web.Response(headers=headers)

    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)  # HTTP/1.1: chunked; HTTP/1.0: ends with the connection
    except ConnectionError:
        return response  # the client hung up before the headers: nothing was opened
    if request.transport is None or request.transport.is_closing():
        return response
    loop = asyncio.get_running_loop()
    session = resumed
    conn: Connection | None = None
    try:
        if session is None:
            session = await _open(request.app, listener, persona)
        conn = Connection(
            station,
            session,
            response.write,
            SocketGauge(request.transport, config.stream.send_buffer_bytes),
            paced=request.app[PACING],
            framer=IcyFramer(config.stream.metaint, charset) if icy else None,
            user_agent=request.headers.get("User-Agent", ""),
            declared_delay=request.headers.get(DELAY_HEADER),
        )
        kind = ("new" if resumed is None
                else "takeover" if resumed.owner is not None else "resumed")
        replaced = station.sessions.attach(session, conn)
        if replaced is not None:
            station.release(replaced, cause="replaced")
        station.stats.connection_started(session.id, kind, station.sessions.streaming)
        logger.debug("stream of %s: %s connection (%s)", listener_id, kind,
                     request.headers.get("User-Agent", "-"))
        request.app[CONNECTIONS].add(asyncio.current_task())
        why = await conn.run()
        station.stats.connection_ended(session.id, why)
        logger.debug("stream of %s ended (%s) at %.1f s heard", listener_id, why,
                     session.heard_s)
        if why == "stalled" and request.transport is not None:
            # it reads nothing, so it cannot take the end of the body either: cut it off
            request.transport.abort()
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client hangs up; the server cancels it at
        # shutdown with the socket still open
        gone = request.transport is None or request.transport.is_closing()
        logger.debug("stream of %s stopped (%s)", listener_id, "client gone" if gone
                     else "cancelled")
        if session is not None and conn is not None:
            station.stats.connection_ended(session.id, "gone: client hung up" if gone
                                           else "cancelled")
        raise
    except Exception:  # the response has started: end it, never answer a second time
        logger.exception("stream of %s failed", listener_id)
        station.count_failure("stream")
        if session is not None and conn is not None:
            station.stats.connection_ended(session.id, "error")
    finally:
        request.app[CONNECTIONS].discard(asyncio.current_task())
        if session is not None:
            if conn is None:
                if resumed is None:  # opened for a client that was already gone
                    station.release(session, cause="unstarted")
            elif station.sessions.detach(session, conn, loop.time()):
                station.release(session, cause="unheard" if session.heard_s < NOTHING_HEARD_S
                                else "left")
    return response
