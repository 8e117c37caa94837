"""The web player and what it needs beyond the listener API.

    GET /                                   the player page
    GET /listen/{listener}                  the same page, tuned straight into that listener
    GET /api/listeners/{listener}/events    what the listener hears, pushed (server-sent events)
    GET /api/listeners/{listener}/persona   who hosts a new session, and whether they may choose
    GET /api/tracks/{track}/artwork         the track's cover (stored, or drawn from its id)

The event stream sends a ``now-playing`` event at once and again whenever what the listener
hears changes: the ear reached a track or a DJ line, a connection started or stopped streaming,
the session was replaced (another persona). It follows the ear, not the renderer, so the page
changes as the listener hears it. A comment every ``HEARTBEAT_S`` keeps proxies from closing a
quiet stream; a client that went away frees its place within ``CHECK_S`` (or at once where the
server cancels handlers of lost connections).

Access is the stream's: an anonymous name needs nothing; an account needs its ``listener`` token
or its ``stream-key``, as a bearer or in ``?key=`` (``EventSource`` cannot send headers, and the
page's ``<audio>`` already carries the same key in its URL; the state pushed is what that stream
tells its player anyway: titles, persona, the AI-voice flag). Another listener's key is 403.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dj.catalog import Catalog, Listener, Track
from dj.catalog.artwork import generated_cover, stored_cover
from dj.server.keys import ACCESS, STATION
from dj.server.listener_access import STREAM_ROLES, stream_credential
from dj.server.pages import page
from dj.stream import Station
from dj.stream.station import check_listener_id
from dj.stream.watch import TooManyWatchers, Watcher

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

PAGE = "player.html"
WATCHERS = web.AppKey("player_watchers", set[Watcher])
HEARTBEAT_S = 15.0  # a comment on a quiet stream: proxies close idle connections at 30-60 s
CHECK_S = 1.0  # how often a quiet stream looks whether its client is still there
RETRY_MS = 2000  # how soon EventSource reconnects after a drop
WRITE_TIMEOUT_S = 30.0  # a client that takes nothing for this long is cut off
RECENT_SHOWN = 6
ARTWORK_MAX_AGE_S = 86400
SSE_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}


def _json_error(cls: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json",
               headers=headers or None)


# -- the page ---------------------------------------------------------------------------------


def _page_response() -> web.Response:
    html, csp = page(PAGE, media=True)
    return web.Response(text=html, content_type="text/html", headers={
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",  # a key in the address bar goes nowhere
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })


@routes.get("/")
async def player(request: web.Request) -> web.Response:
    return _page_response()


@routes.get("/listen/{listener}")
async def listen(request: web.Request) -> web.Response:
    check_listener_id(request.match_info["listener"])
    return _page_response()


# -- who hosts --------------------------------------------------------------------------------
async def _allowed(request: web.Request) -> Listener:
    """The path's listener (their account, or an anonymous one in the operator's territory),
    once the request may follow their stream (401/403 otherwise)."""
    listener_id = check_listener_id(request.match_info["listener"])
    return await asyncio.get_running_loop().run_in_executor(
        None, request.app[ACCESS].resolve, listener_id, stream_credential(request), STREAM_ROLES)


def persona_choice(station: Station, listener: Listener) -> dict[str, Any]:
    """Who hosts a new session for the listener, and whether the player offers a choice: not to
    a listener an experiment assigns (a choice would take them out of their arm). Enrolment
    depends on the listener's territory, as when their session opens."""
    listener_id = listener.id
    persona, experiment, arm = station.persona_for(listener_id, None, listener.territory)
    narrator = station.narrator
    personas = [] if narrator is None else [
        {"name": p.name, "description": getattr(p, "description", "")}
        for p in sorted(narrator.personas.values(), key=lambda p: p.name)]
    return {"listener": listener_id, "persona": persona, "in_experiment": bool(experiment),
            "experiment": experiment or None, "arm": arm or None,
            "choice": not experiment and len(personas) > 1, "personas": personas}


@routes.get("/api/listeners/{listener}/persona")
async def persona(request: web.Request) -> web.Response:
    listener = await _allowed(request)
    return web.json_response(persona_choice(request.app[STATION], listener))


# -- what the listener hears, pushed ------------------------------------------------------------
def artwork_url(track_id: str) -> str:
    return f"/api/tracks/{quote(track_id, safe='')}/artwork"


def credits_of(catalog: Catalog, track: Track) -> dict[str, list]:
    """The track's rightsholders (shares by role) and its credit lines (``credit: …`` tags,
    which a licence such as CC BY requires to be shown). Blocking: reads SQLite."""
    shares = [{"party": s.party, "role": s.role, "share": s.share_pct}
              for s in catalog.shares(track.id)]
    notes = [tag.split(":", 1)[1].strip() for tag in track.tags
             if tag.lower().startswith("credit:") and tag.split(":", 1)[1].strip()]
    return {"rightsholders": shares, "notes": notes}


def _track_brief(track: Track) -> dict[str, Any]:
    return {"id": track.id, "title": track.title, "artist": track.artist_name,
            "album": track.album, "artwork": artwork_url(track.id)}


def player_state(station: Station, listener_id: str,
                 territory: str | None = None) -> dict[str, Any]:
    """What the listener hears now, as the player shows it (on the loop: reads live state).
    Without a session: nothing playing, hosted by whoever would host a new one (in
    ``territory``, the listener's)."""
    session = station.sessions.get(listener_id)
    if session is None or session.closed:
        persona, experiment, arm = station.persona_for(listener_id, None, territory)
        state: dict[str, Any] = {
            "listener": listener_id, "session": None, "persona": persona,
            "experiment": experiment, "arm": arm, "track": None, "play_id": None,
            "track_id": None, "title": None, "artist": None, "started_at": None,
            "speaking": False, "ai_voice": False, "voice_text": "", "position_s": 0.0,
            "history": []}
    else:
        state = session.now_playing()
    state["on_air"] = session is not None and not session.closed and session.owner is not None
    track = None if session is None or session.closed else session.now.track
    if state["track"] is not None and track is not None:
        state["track"].update(artwork=artwork_url(track.id), credits=None)
    recent: list[dict[str, Any]] = []
    history = list(state["history"])
    if history and track is not None and history[-1] == track.id:
        history.pop()  # the one playing is not "recent"
    for track_id in reversed(history):
        heard = station.catalog.track(track_id)
        if heard is not None:
            recent.append(_track_brief(heard))
        if len(recent) >= RECENT_SHOWN:
            break
    state["recent"] = recent
    return state


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@routes.get("/api/listeners/{listener}/events")
async def events(request: web.Request) -> web.StreamResponse:
    station = request.app[STATION]
    listener = await _allowed(request)
    listener_id = listener.id
    if request.method == "HEAD":  # aiohttp routes HEAD here: the headers, and no stream
        return web.Response(content_type="text/event-stream", headers=SSE_HEADERS)
    try:
        watcher = station.watch.subscribe(listener_id)
    except TooManyWatchers as exc:
        raise _json_error(web.HTTPTooManyRequests, str(exc), **{"Retry-After": "10"}) from None
    request.app[WATCHERS].add(watcher)
    response = web.StreamResponse(headers={**SSE_HEADERS, "Content-Type": "text/event-stream"})
    loop = asyncio.get_running_loop()
    credits: tuple[str, dict[str, list]] | None = None  # of the track shown last

    async def send(data: bytes) -> None:
        # a client that keeps the connection but reads nothing must not hold its place forever
        await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_S)

    try:
        await response.prepare(request)
        await send(f"retry: {RETRY_MS}\n\n".encode())
        quiet_s = 0.0
        while True:
            changed = await watcher.wait(CHECK_S)
            if watcher.stopped or request.transport is None or request.transport.is_closing():
                break
            if not changed:
                quiet_s += CHECK_S
                if quiet_s >= HEARTBEAT_S:
                    await send(b": keep-alive\n\n")
                    quiet_s = 0.0
                continue
            quiet_s = 0.0
            state = player_state(station, listener_id, listener.territory)
            track = state["track"]
            if track is not None:
                if credits is None or credits[0] != track["id"]:
                    heard = station.catalog.track(track["id"])
                    if heard is not None:
                        credits = (heard.id, await loop.run_in_executor(
                            None, credits_of, station.catalog, heard))
                if credits is not None and credits[0] == track["id"]:
                    track["credits"] = credits[1]
            await send(_event("now-playing", state))
    except ConnectionError:
        pass  # the client went away: nothing to answer
    except TimeoutError:
        logger.info("event stream of %s cut off: its client reads nothing", listener_id)
        if request.transport is not None:
            request.transport.abort()
    finally:
        watcher.close()
        request.app[WATCHERS].discard(watcher)
    return response


async def _stop_event_streams(app: web.Application) -> None:
    # event streams never end by themselves: end them before the server waits for handlers
    for watcher in list(app[WATCHERS]):
        watcher.stop()


# -- artwork ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _drawn(track_id: str) -> bytes:
    return generated_cover(track_id)


def cover_of(station: Station, track_id: str) -> tuple[bytes, str]:
    """The track's stored cover, or one drawn from its id (blocking)."""
    return stored_cover(station.config.media_dir, track_id) or (_drawn(track_id), "image/png")


@routes.get("/api/tracks/{track}/artwork")
async def artwork(request: web.Request) -> web.Response:
    station = request.app[STATION]
    track = station.catalog.track(request.match_info["track"])
    if track is None:
        raise _json_error(web.HTTPNotFound, "no such track")
    body, media_type = await asyncio.get_running_loop().run_in_executor(
        None, cover_of, station, track.id)
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    headers = {"Cache-Control": f"public, max-age={ARTWORK_MAX_AGE_S}", "ETag": etag,
               "X-Content-Type-Options": "nosniff"}
    wanted = request.headers.get("If-None-Match", "")
    if etag in (t.strip() for t in wanted.split(",")) or wanted.strip() == "*":
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=media_type, headers=headers)


def setup(app: web.Application) -> None:
    """Add the player's routes to ``app``."""
    app[WATCHERS] = set()
    app.add_routes(routes)
    app.on_shutdown.append(_stop_event_streams)
