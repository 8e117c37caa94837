"""Typed keys for what the app shares between handlers."""

from __future__ import annotations

from aiohttp import web

from dj.config import Config
from dj.stream import Station

CONFIG = web.AppKey("config", Config)
STATION = web.AppKey("station", Station)
PACING = web.AppKey("pacing", bool)
