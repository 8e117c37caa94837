"""The aiohttp application: stream, web player, listener API, artist API, health."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

from aiohttp import web

from dj.config import Config
from dj.server.keys import CONFIG, PACING, STATION
from dj.stream import BadRequest, IcyFramer, Station

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@web.middleware
async def json_errors(request: web.Request, handler):
    """Malformed requests get a 4xx with a message; nothing a client sends crashes the server."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


@routes.get("/")
async def player(request: web.Request) -> web.Response:
    html = resources.files("dj.server").joinpath("player.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    station = request.app[STATION]
    return web.json_response(
        {
            "status": "ok",
            "sessions": len(station.sessions),
            "tracks": len(station.catalog.tracks()),
            "narrator": station.narrator is not None,
            "failures": dict(station.failures),
        }
    )


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


@routes.get("/stream/{listener}.mp3")
async def stream(request: web.Request) -> web.StreamResponse:
    station = request.app[STATION]
    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    listener_id = request.match_info["listener"]
    territory = request.query.get("territory")
    persona = request.query.get("persona")
    listener = await loop.run_in_executor(None, station.listener, listener_id, territory)
    session = await loop.run_in_executor(None, station.open_session, listener, persona)

    icy = request.headers.get("Icy-MetaData", "").strip() == "1"
    framer = IcyFramer(config.stream.metaint) if icy else None
    response = web.StreamResponse(
        headers={
            "Content-Type": "audio/mpeg",
            "Cache-Control": "no-cache, no-store",
            "icy-name": f"{config.stream.station_name}: {listener.id}",
            "icy-description": f"personal station hosted by {session.persona}",
            "icy-br": str(config.audio.bitrate_kbps),
            "icy-sr": "44100",
            "icy-pub": "0",
            "X-DJ-Session": session.id,
            "X-DJ-Persona": session.persona,
        }
    )
    if framer is not None:
        response.headers["icy-metaint"] = str(config.stream.metaint)
    response.enable_chunked_encoding()
    await response.prepare(request)

    def set_title(title: str) -> None:
        if framer is not None:
            framer.set_title(title)

    try:
        async for chunk in station.chunks(session, paced=request.app[PACING]):
            station.on_sent(session, chunk, set_title)
            if chunk.data:
                await response.write(framer.frame(chunk.data) if framer else chunk.data)
    except (ConnectionResetError, asyncio.CancelledError):
        logger.info("listener %s left", listener.id)
    finally:
        station.close_session(session)
    return response


def _session_or_404(station: Station, listener_id: str):
    session = station.sessions.get(listener_id)
    if session is None:
        raise web.HTTPNotFound(
            text='{"error": "no live session for this listener"}', content_type="application/json"
        )
    return session


@routes.get("/api/listeners/{listener}/now-playing")
async def now_playing(request: web.Request) -> web.Response:
    station = request.app[STATION]
    session = _session_or_404(station, request.match_info["listener"])
    return web.json_response(session.now_playing())


@routes.post("/api/listeners/{listener}/skip")
async def skip(request: web.Request) -> web.Response:
    station = request.app[STATION]
    listener_id = request.match_info["listener"]
    _session_or_404(station, listener_id)
    track = await asyncio.get_running_loop().run_in_executor(None, station.skip, listener_id)
    return web.json_response({"skipped": track.id if track else None})


async def _feedback(request: web.Request, kind: str) -> web.Response:
    station = request.app[STATION]
    listener_id = request.match_info["listener"]
    _session_or_404(station, listener_id)
    track = await asyncio.get_running_loop().run_in_executor(None, station.like, listener_id, kind)
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


def create_app(
    config: Config, station: Station, *, pacing: bool | None = None, own_station: bool = False
) -> web.Application:
    """The app factory. The station is built beforehand (blocking: model and voices load), so
    that every route, the artist API included, is known before the app starts."""
    app = web.Application(middlewares=[json_errors])
    app[CONFIG] = config
    app[PACING] = config.stream.pacing if pacing is None else pacing
    app[STATION] = station
    app.add_routes(routes)
    if station.narrator is not None:
        from dj.auth import TokenStore
        from dj.server.artist_routes import setup_artist_routes

        setup_artist_routes(
            app,
            narrator=station.narrator,
            tokens=TokenStore(station.catalog.store),
            ledger=station.ledger,
        )
    else:
        logger.warning("artist API disabled: the narrator is not running")

    async def close_streams(app: web.Application) -> None:
        for session in list(app[STATION].sessions.values()):
            session.closed = True

    app.on_shutdown.append(close_streams)

    async def retrain_periodically(app: web.Application):
        interval = config.recommend.retrain_interval_s
        loop = asyncio.get_running_loop()

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                await loop.run_in_executor(None, app[STATION].retrain)

        task = asyncio.create_task(run()) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()

    app.cleanup_ctx.append(retrain_periodically)
    if own_station:

        async def shutdown_station(app: web.Application) -> None:
            await asyncio.get_running_loop().run_in_executor(None, app[STATION].shutdown)

        app.on_cleanup.append(shutdown_station)
    return app
