"""One client connection streaming a session: paces the audio, writes it, and moves the
session's ear as the client reads, so every event fires at the heard position.

The connection ends when the client goes, when it stalls (its ear falls ``stall_s`` behind real
time, or a write makes no progress for that long), when another connection takes the session
over, or when the server stops. It never closes the session: the caller decides that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dj.audio.encode import clean_start
from dj.stream.ear import Ear, SocketGauge, player_delay_s
from dj.stream.icy import IcyFramer
from dj.stream.session import Chunk, Session
from dj.stream.station import Station

logger = logging.getLogger(__name__)

TICK_S = 0.1  # how often the ear is read while a write waits
# while paced, the ear is read when the next block is due or the ear reaches the next marker,
# and at least this often (so a stall is seen); one wake-up a block, not ten, with 1,000 streams
MAX_TICK_S = 1.0
MIN_TICK_S = 0.02


class Connection:
    def __init__(
        self,
        station: Station,
        session: Session,
        write: Callable[[bytes], Awaitable[None]],
        gauge: SocketGauge,
        *,
        paced: bool,
        framer: IcyFramer | None = None,
        user_agent: str = "",
        declared_delay: str | None = None,
    ) -> None:
        cfg = station.config.stream
        self.station = station
        self.session = session
        self._write = write
        self._gauge = gauge
        self.paced = paced
        self._framer = framer
        self._burst_s = cfg.burst_s
        self._stall_s = cfg.stall_s
        self._seq = session.resume_seq()
        start = session.chunk(self._seq)
        self.ear = Ear(
            start.start_s if start is not None else session.rendered_s,
            paced=paced,
            client_delay_s=player_delay_s(
                user_agent, cfg.player_buffer_s, cfg.burst_s, declared_delay
            )
            if paced
            else 0.0,
        )
        self.ended = ""
        self._stopping = False
        # loop time since which it has waited for the render pool (None: not waiting); what
        # /healthz reads to tell whether audio is flowing
        self.waiting_since: float | None = None
        self._ticked_at = -1.0  # loop time the ear was last read

    def stop(self) -> None:
        """End the stream cleanly at the next chance (the server stops)."""
        self._stopping = True
        if not self.ended:
            self.ended = "server stopping"

    def hear_now(self) -> None:
        """Read the ear at once (on the loop), for a control that acts on what is heard."""
        if self.ended or not self._owned():
            return
        try:
            self._tick(asyncio.get_running_loop().time())
        except Exception:  # the socket went meanwhile: the last reading stands
            logger.debug("ear reading for a control failed", exc_info=True)

    def _tick(self, now: float) -> None:
        """Read the ear and fire what it reached."""
        self._ticked_at = now
        read = self._gauge.last_read
        if self.ear.needs_reading(read, now):
            read = self._gauge.read_bytes(self.ear.written)
        heard = self.ear.update(read, now)
        self.station.heard(self.session, heard, self.ear.confirmed)
        if self._framer is not None and self.session.now.title is not None:
            self._framer.set_title(self.session.now.title)

    def _listening(self, now: float) -> bool:
        """Read the ear; False (and the connection ends) once the client has stalled."""
        self._tick(now)
        if self.ear.stalled(now, self._stall_s):
            self.ended = "stalled"
            return False
        return True

    def _owned(self) -> bool:
        return self.session.owner is self and not self.session.closed and not self._stopping

    async def _next_chunk(self) -> Chunk | None:
        loop = asyncio.get_running_loop()
        while self._owned():
            chunk = self.session.chunk(self._seq)
            if chunk is not None:
                return chunk
            if self.session.cheap:  # shared body frames: a copy, no reason to leave the loop
                rendered = self.session.render_next()
            else:
                started = self.waiting_since = loop.time()
                behind = self._behind_s(started)
                try:
                    rendered = await self._rendered(
                        loop.run_in_executor(self.station.render_pool, self.session.render_next)
                    )
                finally:
                    self.waiting_since = None
                self._waited(started, behind, loop.time())
            self.station.rendered(self.session, rendered)
        return None

    async def _rendered(self, render: asyncio.Future[Chunk]) -> Chunk:
        """The render's result, reading the ear meanwhile: the client plays on what it holds,
        and what it hears (titles, credits) must not wait for the renderer."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                done, _ = await asyncio.wait({render}, timeout=TICK_S)
                if done:
                    return render.result()
                if self.ear.t_first is not None:
                    self._tick(loop.time())
        finally:
            render.cancel()  # the connection ends first: the block is not wanted (as awaited)

    def _behind_s(self, now: float) -> float | None:
        """How far real time has passed the end of what was sent (> 0: the listener's buffer
        is dry); None unpaced or before the first byte."""
        if not self.paced or self.ear.t_first is None:
            return None
        return self.ear.start_s + self.ear.elapsed(now) - self.ear.sent_s

    def _waited(self, started: float, behind: float | None, now: float) -> None:
        """Count a wait for the renderer: its length, and the silence it caused the listener
        (what it added to how far the stream was behind real time)."""
        stats = self.station.stats
        stats.render_wait.observe(now - started)
        after = self._behind_s(now)
        if behind is None or after is None or after <= max(0.0, behind):
            return
        if behind <= 0:
            stats.underruns.inc()
        stats.underrun_seconds.inc(after - max(0.0, behind))
        stats.last_underrun = time.monotonic()

    async def _pace(self, duration_s: float) -> bool:
        """Wait until sending ``duration_s`` more keeps the stream within the burst of real
        time, reading the ear meanwhile. False when the connection should end. (Sending slower
        to shrink a player's own start-up buffer makes Chromium stop and rebuffer.)"""
        loop = asyncio.get_running_loop()
        # an ear read moments ago, as the previous block was released, is not read again: with
        # a thousand streams that second reading a block was a sixth of the loop's time
        fresh = loop.time() - self._ticked_at < MIN_TICK_S
        while self._owned():
            now = loop.time()
            if not fresh and not self._listening(now):
                return False
            fresh = False
            ahead = self.ear.sent_s - (self.ear.start_s + self.ear.elapsed(now))
            if self.ear.t_first is None or ahead + duration_s <= self._burst_s:
                return True
            due = self.session.next_marker_in_s
            # a marker already due waits for the client to read it: look again at the tick
            event = TICK_S if due <= 0 else min(MAX_TICK_S, max(MIN_TICK_S, due))
            await asyncio.sleep(min(event, ahead + duration_s - self._burst_s))
        return False

    async def _send(self, data: bytes) -> bool:
        """Write ``data``, reading the ear while the write waits for the client; False when the
        client stalls (its ear falls behind, or the write makes no progress) meanwhile."""
        if self._gauge.takes_at_once(len(data)):
            await self._write(data)  # nothing to wait for: no task, no timer
            return True
        loop = asyncio.get_running_loop()
        write = asyncio.ensure_future(self._write(data))
        started = loop.time()
        try:
            while True:
                done, _ = await asyncio.wait({write}, timeout=TICK_S)
                if done:
                    write.result()  # raises if the client went away
                    return True
                now = loop.time()
                if not self._listening(now):
                    return False
                if now - started > self._stall_s:
                    self.ended = "stalled"
                    return False
                if self._stopping:
                    return False
        finally:
            if not write.done():
                write.cancel()
            elif not write.cancelled():
                write.exception()  # retrieved: the connection already ends for its own reason

    async def run(self) -> str:
        """Stream until the connection ends; returns why."""
        loop = asyncio.get_running_loop()
        if self._framer is not None and self.session.now.title is not None:
            self._framer.set_title(self.session.now.title)
        try:
            block_s = self.station.config.audio.block_s
            while self._owned():
                # pace before rendering: the render head is then never more than the burst
                # ahead of the ear, so a skip is heard within it
                if self.paced and not await self._pace(block_s):
                    break
                chunk = await self._next_chunk()
                if chunk is None:
                    break
                audio, start_s = chunk.data, chunk.start_s
                if self.ear.t_first is None and chunk.seq > 0 and audio:
                    # picked up mid-stream (a resume or a takeover): start on a clean frame
                    cut = clean_start(audio)
                    audio = audio[cut:]
                    start_s += chunk.duration_s * cut / len(chunk.data)
                if not audio:
                    self._seq += 1
                    continue
                data = self._framer.frame(audio) if self._framer else audio
                if not await self._send(data):
                    break
                self.station.stats.bytes_sent.inc(len(data))
                self.ear.wrote(len(data), start_s, chunk.end_s, loop.time())
                self._seq += 1
                # paced, the next pace reads the ear at once; unpaced, read it here
                if not self.paced and not self._listening(loop.time()):
                    break
        except (ConnectionError, RuntimeError) as exc:
            # the client went away (aiohttp raises ClientConnectionResetError, a
            # ConnectionResetError) or the session was closed under us
            self.ended = self.ended or f"gone: {type(exc).__name__}"
        finally:
            try:
                self._tick(loop.time())
            except Exception:  # the ear is best-effort once the socket is gone
                logger.debug("final ear reading failed", exc_info=True)
        if not self.ended:
            self.ended = "taken over" if not self._owned() else "ended"
        if self.ended == "stalled":
            self.station.count_failure("client_stalled")
        return self.ended
