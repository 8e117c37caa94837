"""What players and Icecast tools expect of a radio server besides the stream itself.

* ``GET /stream/{listener}.m3u`` and ``.pls``: a playlist holding the listener's stream URL,
  absolute (from the address the request came to), with ``key``, ``persona`` and
  ``icy_charset`` carried through. It opens no session and checks no key: the player's request
  for the stream does that.
* ``GET /status-json.xsl``: Icecast's status document, with one source standing for the whole
  station (how many listen, the peak, the format). No listener id is in it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from yarl import URL

from dj import __version__
from dj.server.keys import CONFIG, STATION
from dj.server.stream_routes import base_url, icy_charset_for
from dj.server.workers import WORKER
from dj.stream import BadRequest
from dj.stream.station import check_listener_id

routes = web.RouteTableDef()

STATUS_PATH = "/status-json.xsl"
CARRIED = ("key", "persona", "icy_charset")  # query parameters a playlist passes to the stream
PLAYLIST_HEADERS = {"Cache-Control": "no-store"}  # a playlist may hold a key


def stream_url(request: web.Request, listener_id: str) -> str:
    """The absolute URL of ``listener_id``'s stream, as this request addressed the server."""
    query = {name: request.query[name] for name in CARRIED if request.query.get(name)}
    try:
        url = URL(base_url(request)).with_path(f"/stream/{listener_id}.mp3").with_query(query)
    except ValueError:
        raise BadRequest("the Host header is not a host name or address") from None
    return str(url)


def _playlist_entry(request: web.Request) -> tuple[str, str]:
    """(stream URL, title) of the path's listener, after the checks the stream itself makes on
    what the URL carries."""
    listener_id = check_listener_id(request.match_info["listener"])
    request.app[STATION].check_persona(request.query.get("persona") or None)
    icy_charset_for(request)  # a bad ?icy_charset= is refused here, not by the player later
    if "territory" in request.query:
        raise BadRequest("territory comes from the listener's account (or the operator's"
                         " configuration), not from the request")
    title = f"{request.app[CONFIG].stream.station_name}: {listener_id}"
    return stream_url(request, listener_id), title


def _filename(request: web.Request, ext: str) -> str:
    return f'inline; filename="{request.match_info["listener"]}.{ext}"'


@routes.get("/stream/{listener}.m3u")
async def m3u(request: web.Request) -> web.Response:
    url, title = _playlist_entry(request)
    return web.Response(
        text=f"#EXTM3U\n#EXTINF:-1,{title}\n{url}\n", content_type="audio/x-mpegurl",
        charset="utf-8",
        headers={**PLAYLIST_HEADERS, "Content-Disposition": _filename(request, "m3u")})


@routes.get("/stream/{listener}.pls")
async def pls(request: web.Request) -> web.Response:
    url, title = _playlist_entry(request)
    text = (f"[playlist]\nNumberOfEntries=1\nFile1={url}\nTitle1={title}\nLength1=-1\n"
            "Version=2\n")
    return web.Response(
        text=text, content_type="audio/x-scpls", charset="utf-8",
        headers={**PLAYLIST_HEADERS, "Content-Disposition": _filename(request, "pls")})


def _host_name(base: str) -> str:
    try:
        return URL(base).host or ""
    except ValueError:  # a Host header that is no host: say nothing rather than echo it
        return ""


def _icecast_time(at: datetime) -> tuple[str, str]:
    """Icecast's two spellings of a time: RFC 2822 and ISO 8601 without a colon in the
    offset."""
    return at.strftime("%a, %d %b %Y %H:%M:%S %z"), at.strftime("%Y-%m-%dT%H:%M:%S%z")


@routes.get(STATUS_PATH)
async def status_json(request: web.Request) -> web.Response:
    station = request.app[STATION]
    config = request.app[CONFIG]
    stream = config.stream
    base = base_url(request)
    started, started_iso = _icecast_time(
        datetime.fromtimestamp(station.stats.started_wall, UTC))
    kbps = config.audio.bitrate_kbps
    template = f"{base}/stream/{{listener}}.mp3"
    board = request.app.get(WORKER)  # several workers: every worker's listeners count
    listeners = board.streaming() if board is not None else station.sessions.streaming
    source = {
        "audio_info": f"channels=2;samplerate=44100;bitrate={kbps}",
        "bitrate": kbps,
        "channels": 2,
        "samplerate": 44100,
        "genre": stream.station_genre,
        "listener_peak": max(station.stats.listener_peak, listeners),
        "listeners": listeners,
        # every listener has a stream of their own: a free name plays where anonymous
        # listening is on; accounts add ?key=
        "listenurl": f"{base}/stream/guest.mp3" if config.access.anonymous else template,
        "listenurl_template": template,
        "server_description": stream.station_description,
        "server_name": stream.station_name,
        "server_type": "audio/mpeg",
        "server_url": stream.station_url or base + "/",
        "stream_start": started,
        "stream_start_iso8601": started_iso,
        "title": stream.station_name,
        "dummy": None,
    }
    return web.json_response({"icestats": {
        "admin": stream.station_admin,
        "host": _host_name(base),
        "location": stream.station_location,
        "server_id": f"dj {__version__}",
        "server_start": started,
        "server_start_iso8601": started_iso,
        "source": [source],
    }}, headers={"Cache-Control": "no-cache"})
