"""Live sessions: the programme on air, the listener's ear, pacing, ICY framing, and what aired."""

from dj.stream.connection import Connection
from dj.stream.controls import Controls
from dj.stream.ear import Ear, SocketGauge
from dj.stream.icy import IcyFramer, metadata_block, parse_icy
from dj.stream.session import Chunk, Session
from dj.stream.station import BadRequest, Station

__all__ = [
    "BadRequest",
    "Chunk",
    "Connection",
    "Controls",
    "Ear",
    "IcyFramer",
    "Session",
    "SocketGauge",
    "Station",
    "metadata_block",
    "parse_icy",
]
