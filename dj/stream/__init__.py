"""Live sessions: render-ahead, pacing, ICY framing, and what aired."""

from dj.stream.icy import IcyFramer, metadata_block, parse_icy
from dj.stream.session import Chunk, Session
from dj.stream.station import BadRequest, Station

__all__ = ["BadRequest", "Chunk", "IcyFramer", "Session", "Station", "metadata_block", "parse_icy"]
