"""Typed keys for what the app shares between handlers."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dj.config import Config
from dj.server.listener_access import ListenerAccess
from dj.stream import Controls, Session, Station

CONFIG = web.AppKey("config", Config)
STATION = web.AppKey("station", Station)
CONTROLS = web.AppKey("controls", Controls)
PACING = web.AppKey("pacing", bool)
CONNECTIONS = web.AppKey("connections", set[asyncio.Task])
OPENING = web.AppKey("opening", dict[str, asyncio.Future[Session]])
ACCESS = web.AppKey("access", ListenerAccess)
