"""The aiohttp application: stream, web player, listener API, artist API, health."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dj.auth import TokenStore, bearer_token
from dj.config import Config
from dj.server import admin_routes, cors, icecast_routes, metrics, player_routes, stream_routes
from dj.server.access_log import quiet_parser_errors
from dj.server.changes import watch_changes
from dj.server.health import health
from dj.server.keys import ACCESS, CONFIG, CONNECTIONS, CONTROLS, OPENING, PACING, STATION
from dj.server.listener_access import CONTROL_ROLES, ListenerAccess
from dj.server.openapi import OPENAPI_PATH, openapi_json
from dj.server.rate_limit import RATE_LIMITER, RateLimiter, limit_writes
from dj.server.retraining import periodic_retraining
from dj.server.wiring import MODEL_FILE
from dj.stream import BadRequest, Controls, Station
from dj.stream.station import check_listener_id

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _bad_path_param(request: web.Request) -> str | None:
    """The name of a path parameter no route can mean (control characters, a lone surrogate
    from bytes that were not UTF-8), or None."""
    for name, value in request.match_info.items():
        if not value.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return name
    return None


def _as_json(exc: web.HTTPException) -> web.Response:
    """An error aiohttp (or a handler) answered as text, answered as JSON with its headers."""
    headers = {k: v for k, v in exc.headers.items()
               if k.lower() not in ("content-type", "content-length")}
    message = exc.text if exc.text and len(exc.text) <= 300 else exc.reason
    return web.json_response({"error": message or exc.reason}, status=exc.status,
                             headers=headers, reason=exc.reason)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Malformed requests get a 4xx with a JSON message; nothing a client sends crashes the
    server or leaves a traceback in the log (only a real fault is logged, and answered 500)."""
    bad = _bad_path_param(request)
    if bad is not None:
        return web.json_response(
            {"error": f"{bad} id must not contain control characters or bytes that are not"
                      " UTF-8"}, status=400
        )
    try:
        return await handler(request)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json" and not exc.empty_body:
            return _as_json(exc)
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return await health(request)  # dj/server/health.py: catalog, audio flowing, counters


@routes.get("/api/personas")
async def personas(request: web.Request) -> web.Response:
    narrator = request.app[STATION].narrator
    if narrator is None:
        return web.json_response([])
    return web.json_response(
        [
            {"name": p.name, "description": getattr(p, "description", "")}
            for p in narrator.personas.values()
        ]
    )


async def _session_or_404(request: web.Request):
    """The live session of the path's listener, once the request has shown it may act as them
    (an account's own listener token; nothing for an anonymous name)."""
    station = request.app[STATION]
    listener_id = check_listener_id(request.match_info["listener"])
    await asyncio.get_running_loop().run_in_executor(
        None, request.app[ACCESS].resolve, listener_id, bearer_token(request), CONTROL_ROLES)
    session = station.sessions.live(listener_id)
    if session is None:
        raise web.HTTPNotFound(
            text='{"error": "no live session for this listener"}', content_type="application/json"
        )
    return session


@routes.get("/api/listeners/{listener}/now-playing")
async def now_playing(request: web.Request) -> web.Response:
    session = await _session_or_404(request)
    return web.json_response(session.now_playing())


HISTORY_MAX = 200


@routes.get("/api/listeners/{listener}/history")
async def history(request: web.Request) -> web.Response:
    """What an account's listener played, newest first, with seconds heard and how each ended.
    Anonymous names keep no history anyone could read: this needs the listener's own token."""
    station = request.app[STATION]
    listener_id = check_listener_id(request.match_info["listener"])
    token = bearer_token(request)
    if token is None:
        raise web.HTTPUnauthorized(
            text='{"error": "a history is kept for accounts: send the listener\'s token"}',
            content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="dj"'})
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= limit <= HISTORY_MAX:
        raise BadRequest(f"limit must be from 1 to {HISTORY_MAX}")

    def read() -> list[dict]:
        request.app[ACCESS].resolve(listener_id, token, CONTROL_ROLES)
        out = []
        for play in station.ledger.plays(listener_id, limit=limit):
            track = station.catalog.track(play.track_id)
            out.append({
                "play_id": play.event_id, "track": play.track_id,
                "title": track.title if track else None,
                "artist": track.artist_name if track else None,
                "started_at": play.started_at, "ended_at": play.ended_at,
                "played_s": play.played_s, "outcome": play.outcome,
            })
        return out

    plays = await asyncio.get_running_loop().run_in_executor(None, read)
    return web.json_response({"listener": listener_id, "plays": plays})


@routes.post("/api/listeners/{listener}/skip")
async def skip(request: web.Request) -> web.Response:
    session = await _session_or_404(request)
    track = await request.app[CONTROLS].skip(session.listener.id)
    return web.json_response({"skipped": track.id if track else None})


async def _feedback(request: web.Request, kind: str) -> web.Response:
    session = await _session_or_404(request)
    track = await request.app[CONTROLS].feedback(session.listener.id, kind)
    if track is None:
        raise web.HTTPConflict(
            text='{"error": "nothing is playing yet"}', content_type="application/json"
        )
    return web.json_response({kind + "d": track.id})


@routes.post("/api/listeners/{listener}/like")
async def like(request: web.Request) -> web.Response:
    return await _feedback(request, "like")


@routes.post("/api/listeners/{listener}/dislike")
async def dislike(request: web.Request) -> web.Response:
    return await _feedback(request, "dislike")


STOP_GRACE_S = 1.5  # at shutdown, how long streams get to end cleanly
STOP_TIMEOUT_S = 2.0  # then how long open connections get before they are closed
JANITOR_S = 5.0  # how often sessions past their resume window are released


async def release_left_sessions(app: web.Application):
    """Release the sessions whose listeners did not come back within the resume window."""
    station = app[STATION]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(JANITOR_S)
            station.release_expired(loop.time())

    task = asyncio.create_task(run())
    yield
    task.cancel()


def create_app(
    config: Config, station: Station, *, pacing: bool | None = None, own_station: bool = False
) -> web.Application:
    """The app factory. The station is built beforehand (blocking: model and voices load), so
    that every route, the artist API included, is known before the app starts."""
    quiet_parser_errors()
    app = web.Application(middlewares=[cors.preflight, json_errors, limit_writes])
    app[RATE_LIMITER] = RateLimiter(config.access.writes_per_minute, config.access.write_burst)
    app[CONFIG] = config
    app[PACING] = config.stream.pacing if pacing is None else pacing
    app[STATION] = station
    app[CONTROLS] = Controls(station)
    app[CONNECTIONS] = set()
    app[OPENING] = {}
    tokens = TokenStore(station.catalog.store)
    app[ACCESS] = ListenerAccess(config, station.catalog, tokens)
    app.add_routes(routes)
    app.add_routes(stream_routes.routes)
    app.add_routes(icecast_routes.routes)  # playlists, /status-json.xsl
    metrics.setup(app)  # /metrics
    cors.setup(app)
    player_routes.setup(app)  # the web player: page, pushed now-playing, artwork
    app.router.add_get(OPENAPI_PATH, openapi_json)
    from dj.server.artist_routes import artist_portal  # the page says so when the API is off

    app.router.add_get("/artist", artist_portal)
    app.add_routes(admin_routes.routes)
    from dj.server import experiment_routes

    experiment_routes.setup(app)  # reports for the product team
    if station.narrator is not None:
        from dj.server.artist_routes import setup_artist_routes

        setup_artist_routes(
            app,
            narrator=station.narrator,
            tokens=tokens,
            ledger=station.ledger,
        )
    else:
        logger.warning("artist API disabled: the narrator is not running")

    async def stop_streams(app: web.Application) -> None:
        # every stream ends cleanly; one still stuck after a moment (a client that reads
        # nothing cannot take even the end of the body) is cancelled, not waited for
        for session in station.sessions:
            if session.owner is not None:
                session.owner.stop()
        if app[CONNECTIONS]:
            await asyncio.wait(list(app[CONNECTIONS]), timeout=STOP_GRACE_S)
        for task in list(app[CONNECTIONS]):
            task.cancel()

    async def warm_bodies(app: web.Application) -> None:
        station.warm_bodies()

    app.on_startup.append(warm_bodies)
    app.on_shutdown.append(stop_streams)
    app.cleanup_ctx.append(release_left_sessions)
    app.cleanup_ctx.append(watch_changes)
    app.cleanup_ctx.append(
        periodic_retraining(station, config.recommend.retrain_interval_s,
                            config.model_dir / MODEL_FILE)
    )
    if own_station:

        async def shutdown_station(app: web.Application) -> None:
            await asyncio.get_running_loop().run_in_executor(None, app[STATION].shutdown)

        app.on_cleanup.append(shutdown_station)
    return app
