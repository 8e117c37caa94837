"""The listener's ear: the programme position a client is hearing now, estimated from the socket.

Bytes written to a socket are not heard: they wait in our send buffer, on the wire, in the
client's receive buffer and in the player's own buffer. The model:

* ``taken``: bytes the kernel accepted from us (written minus what the transport still holds).
* ``read``: bytes the client's application took from its socket. On Linux it is estimated from
  TCP_INFO: the right edge of the peer's advertised window (``bytes_acked + snd_wnd``) moves
  only when the peer reads (or its receive buffer grows), so ``read ≈ edge − edge₀``, never
  above ``taken``. Elsewhere, bytes the peer acknowledged (``taken`` minus our send queue).
* Paced, the stream runs ``burst`` ahead of real time, and a player starts once it holds its
  start-up buffer, so it plays from ``delay = max(0, buffer − burst)`` after the first byte:
  ``heard = min(position(read), start + elapsed − delay)``. The buffer is the player's own
  (Chromium holds 2.6 s before it plays, VLC 1 s: :data:`PLAYER_BUFFER_S`), unless the player
  says how far behind real time it plays (:data:`DELAY_HEADER`: the web player, which feeds
  the stream through Media Source Extensions at its own pace). Unpaced (tools,
  tests) the reader is the ear: ``heard = position(read)``. ``heard`` never goes back and never
  passes what was sent.

Error bound: a client that reads and plays keeps its window open, so ``heard`` is within the
player's own start-up delay of its ear (behind by at most one window update when it reads in
exact real time). A client that reads nothing gains at most the growth of its receive window
(about 4.6–5.5 s of audio on Linux loopback defaults) and then never advances; its progress
does not count until its ear is confirmed, so ``stalled`` drops it ``stall_s`` after its first
byte, and credits wait until a connection's ear has passed ``PROVISIONAL_S``, so such a client is
credited with nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import math
import socket
import struct
import termios
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h)
_TCPI_BYTES_ACKED = 120  # __u64, Linux 4.1+
_TCPI_SND_WND = 228  # __u32, Linux 5.19+
_TCPI_LEN = 232
# audio a player holds before it starts, by a User-Agent token; others: stream.player_buffer_s
PLAYER_BUFFER_S = {
    "VLC/": 1.0,  # its default network caching
    "Mozilla/": 2.6,  # browsers (Chromium's <audio>, measured)
}
# a player that keeps its own pace says how far behind real time (since its first byte) it plays,
# in this request header: the web player does, feeding the stream through Media Source Extensions.
# Believed up to the bound: saying less moves the ear earlier by at most that, and what the client
# read still bounds it (as for VLC, whose buffer equals the burst).
DELAY_HEADER = "Player-Delay-S"
MAX_DECLARED_DELAY_S = 10.0
# what a client that reads nothing can seem to hear (its receive window growing): ~4.6 s on Linux
# loopback defaults. Until a connection's ear has passed this, its credits are provisional.
PROVISIONAL_S = 6.0
PROGRESS_SPEED = 0.8  # listening slower than this times real time is not progress
CAUGHT_UP_S = 1.5  # a client this close to the end of what it was sent is keeping up


class SocketGauge:
    """How much of what was written a client has read; see the module docstring."""

    def __init__(self, transport, send_buffer_bytes: int = 0) -> None:
        self._transport = transport
        self._sock = transport.get_extra_info("socket") if transport is not None else None
        self._edge0: int | None = None
        self._last = 0
        # a write of n bytes returns at once while the transport stays under its high-water mark
        self._high = 0
        if transport is not None:
            with contextlib.suppress(AttributeError, NotImplementedError):
                self._high = transport.get_write_buffer_limits()[1]
        if self._sock is not None and send_buffer_bytes > 0:
            # a fixed small buffer: the kernel must not absorb minutes of unheard audio
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        self._edge0 = self._edge()

    def _tcp_info(self) -> tuple[int, int] | None:
        if self._sock is None or not hasattr(socket, "TCP_INFO"):
            return None
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_LEN)
        except (OSError, ValueError):
            return None
        if len(info) < _TCPI_LEN:
            return None
        (acked,) = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)
        (wnd,) = struct.unpack_from("I", info, _TCPI_SND_WND)
        return acked, wnd

    def _edge(self) -> int | None:
        info = self._tcp_info()
        return None if info is None else info[0] + info[1]

    def _send_queue(self) -> int:
        if self._sock is None:
            return 0
        try:
            raw = fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            return struct.unpack("i", raw)[0]
        except (OSError, ValueError):
            return 0

    @property
    def last_read(self) -> int:
        """The last estimate, without asking the kernel again."""
        return self._last

    def takes_at_once(self, nbytes: int) -> bool:
        """A write of ``nbytes`` cannot wait for the client (it stays under the transport's
        high-water mark, so nothing pauses and there is nothing to drain)."""
        transport = self._transport
        return (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() + nbytes <= self._high
        )

    def read_bytes(self, written: int) -> int:
        """Estimated bytes of ``written`` that the client's application has read."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return self._last  # gone: it read nothing more
        taken = max(0, written - transport.get_write_buffer_size())
        edge = self._edge()
        if edge is not None and self._edge0 is not None:
            read = min(taken, edge - self._edge0)
        elif self._edge0 is None:
            read = taken - self._send_queue()
        else:
            read = self._last  # TCP_INFO worked and now fails: the socket is gone
        self._last = max(self._last, read)
        return self._last


@dataclass(slots=True)
class _Span:
    byte_end: int
    start_s: float
    end_s: float
    nbytes: int


def player_delay_s(
    user_agent: str, default_buffer_s: float, burst_s: float, declared: str | None = None
) -> float:
    """How long after its first byte a player starts playing (see the module docstring);
    ``declared``: the player's own word for it (:data:`DELAY_HEADER`), when it is a number."""
    try:
        said = float(declared) if declared else math.nan
    except ValueError:
        said = math.nan
    if math.isfinite(said):
        return min(max(said, 0.0), MAX_DECLARED_DELAY_S)
    buffer_s = next(
        (b for token, b in PLAYER_BUFFER_S.items() if token in user_agent), default_buffer_s
    )
    return max(0.0, buffer_s - burst_s)


class Ear:
    """One connection's model of what its listener hears (call from the event loop)."""

    def __init__(
        self, start_s: float, *, paced: bool, client_delay_s: float = 0.0
    ) -> None:
        self.start_s = start_s
        self.paced = paced
        self.client_delay_s = client_delay_s
        self.heard_s = start_s
        self.sent_s = start_s  # programme position at the end of what was written
        self.written = 0
        self.t_first: float | None = None
        self._spans: list[_Span] = []
        self._ends: list[int] = []
        self._progress_at: float | None = None
        self._progress_heard = start_s

    def wrote(self, nbytes: int, start_s: float, end_s: float, now: float) -> None:
        """``nbytes`` on the wire carry programme time ``[start_s, end_s)``."""
        if nbytes <= 0:
            return
        if self.t_first is None:
            self.t_first = now
            self._progress_at = now
        self.written += nbytes
        self._spans.append(_Span(self.written, start_s, end_s, nbytes))
        self._ends.append(self.written)
        self.sent_s = end_s

    def position_of(self, nbytes: int) -> float:
        """Programme seconds at byte ``nbytes`` of what this connection wrote."""
        if not self._spans or nbytes <= 0:
            return self.start_s
        i = bisect.bisect_left(self._ends, nbytes)
        if i >= len(self._spans):
            return self._spans[-1].end_s
        span = self._spans[i]
        into = nbytes - (span.byte_end - span.nbytes)
        return span.start_s + (span.end_s - span.start_s) * into / span.nbytes

    @property
    def confirmed(self) -> bool:
        """The client has heard more than a client that reads nothing could seem to."""
        return self.heard_s - self.start_s >= PROVISIONAL_S

    def elapsed(self, now: float) -> float:
        return 0.0 if self.t_first is None else now - self.t_first

    def needs_reading(self, read_bytes: int, now: float) -> bool:
        """Whether the socket must be asked how much was read: not while real time, not the
        reader, bounds what is heard (paced, and the client has already read past that bound).
        One TCP_INFO call a block per listener was the loop's largest single cost."""
        if not self.paced or self.t_first is None:
            return True
        return self.position_of(read_bytes) < self.start_s + self.elapsed(now) - self.client_delay_s

    def update(self, read_bytes: int, now: float) -> float:
        """The heard position, from the bytes the client has read by ``now``."""
        pos = read_pos = self.position_of(read_bytes)
        if self.paced:
            pos = min(pos, self.start_s + self.elapsed(now) - self.client_delay_s)
        pos = min(pos, self.sent_s)
        if pos > self.heard_s:
            self.heard_s = pos
        # progress is listening at near real time or better since the last progress, once the
        # ear is confirmed: a client that reads nothing creeps forward only as its receive
        # window grows (up to ~5.5 s with 128 KiB receive buffers), and that is not it. A client
        # that has taken all but the last moment of what was sent while the server sent less
        # than real time is waiting for the server, not stalled.
        if self._progress_at is not None:
            listening = self.confirmed and (
                self.heard_s - self._progress_heard >= PROGRESS_SPEED * (now - self._progress_at)
            )
            waiting = (
                read_pos >= self.sent_s - CAUGHT_UP_S
                and self.sent_s - self.start_s <= self.elapsed(now)
            )
            if listening or waiting:
                self._progress_at, self._progress_heard = now, self.heard_s
        self._forget_before(read_bytes)
        return self.heard_s

    def behind_s(self, now: float) -> float:
        """How far the ear is behind real time (paced): a stalled client falls behind."""
        return self.start_s + self.elapsed(now) - self.heard_s

    def stalled(self, now: float, limit_s: float) -> bool:
        """No progress (see :meth:`update`) for ``limit_s``."""
        return self._progress_at is not None and now - self._progress_at > limit_s

    def _forget_before(self, nbytes: int) -> None:
        # spans wholly read can go, but keep the last one for position_of
        cut = bisect.bisect_left(self._ends, nbytes)
        cut = min(cut, len(self._spans) - 1)
        if cut > 64:
            del self._spans[:cut]
            del self._ends[:cut]
