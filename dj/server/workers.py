"""Several serving processes behind one port, each listener always served by the same one.

One Python process is bound by its GIL: its event loop and its render threads take turns, and
past a few hundred paced streams the loop falls behind. ``dj serve --workers N`` runs N worker
processes, each a whole station (its own loop, render pool, caches and ledger writer over the
shared SQLite files), behind one acceptor process that owns the listening socket:

- the acceptor accepts a connection, peeks at its request line (``MSG_PEEK``: nothing is
  consumed), and hands the socket itself to a worker over a Unix socket (``SCM_RIGHTS``);
- the worker is chosen by the listener id in the path (``/stream/{id}.mp3``, ``/listen/{id}``,
  ``/api/listeners/{id}/...``), so a listener's reconnects, takeovers, controls and pushed
  events all reach the process that holds their session; other requests go round the workers;
  ``?worker=K`` picks one (an operator's ``/healthz`` or ``/metrics`` of each worker);
- the worker adopts the socket into its aiohttp server, which answers it as if it had accepted
  it. A keep-alive connection that later asks for another worker's listener is sent back to the
  acceptor with a 307 to the same URL and ``Connection: close``.

Changes made through one worker (consents, licences, tokens, models) reach the others through
the database, as they reach other hosts. Workers share live numbers through a small shared
array (``WorkerBoard``), so ``/status-json.xsl`` counts every listener. A worker that dies is
started again; SIGTERM to the acceptor ends every worker cleanly within the stop grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import itertools
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aiohttp import web

from dj.config import Config

logger = logging.getLogger(__name__)

HEAD_MAX = 8192  # the most of a request looked at to find its line
HEAD_WAIT_S = 10.0  # a client that sends no request line within this is closed
STOP_S = 4.5  # SIGTERM: how long workers get to end their streams before they are killed
READY_WAIT_S = 600.0  # the first start of a worker may make missing track bodies
RESTART_PAUSE_S = 1.0  # a worker that keeps dying is started again at most this often
PUBLISH_S = 1.0  # how often a worker writes its numbers to the board

# what the start of a request line can look like: a method, then a target without spaces
_REQUEST_START = re.compile(rb"[A-Z]{1,16}(?: [^ \r\n]*(?: H?T?T?P?/?[0-9.]*\r?)?)?$")
_ROUTED = re.compile(r"/(?:stream|listen|api/listeners)/([^/?#]+)")
_SUFFIXES = (".mp3", ".m3u", ".pls")


def listener_in(target: str) -> str | None:
    """The listener id a request target names, as the routes read it (percent-decoded, without
    a playlist or stream suffix), or None for a request that names no listener."""
    path = urlsplit(target).path
    match = _ROUTED.match(path)
    if match is None:
        return None
    name = unquote(match.group(1), errors="replace")
    if path.startswith("/stream/"):
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return None
    return name


def worker_of(listener_id: str, count: int) -> int:
    """The worker that serves ``listener_id``: stable across restarts, nodes and Pythons
    (crc32, not ``hash``, which is salted per process)."""
    return zlib.crc32(listener_id.encode("utf-8", "surrogatepass")) % count


def asked_worker(target: str, count: int) -> int | None:
    """``?worker=K`` (0 <= K < count), or None."""
    values = parse_qs(urlsplit(target).query).get("worker")
    if not values:
        return None
    try:
        index = int(values[0])
    except ValueError:
        return None
    return index if 0 <= index < count else None


def request_target(head: bytes) -> str | None:
    """The target of an HTTP request line (``GET /x HTTP/1.1``), or None."""
    line = head.split(b"\n", 1)[0].strip()
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    return parts[1].decode("latin-1")


# --- what the workers share ---------------------------------------------------------------

_FIELDS = 4  # per worker: streaming listeners, sessions held, last heartbeat (monotonic), pid


@dataclass(frozen=True)
class WorkerBoard:
    """Numbers each worker publishes for the others: a shared array, no locks (each slot has
    one writer; a reader may see one worker's numbers a second old)."""

    count: int
    index: int
    cells: SynchronizedArray

    @classmethod
    def create(cls, count: int) -> WorkerBoard:
        return cls(count, -1, multiprocessing.get_context("spawn").Array(
            ctypes.c_double, count * _FIELDS, lock=False))

    def for_worker(self, index: int) -> WorkerBoard:
        return WorkerBoard(self.count, index, self.cells)

    def publish(self, streaming: int, sessions: int) -> None:
        base = self.index * _FIELDS
        self.cells[base] = streaming
        self.cells[base + 1] = sessions
        self.cells[base + 2] = time.monotonic()
        self.cells[base + 3] = os.getpid()

    def streaming(self) -> int:
        return int(sum(self.cells[i * _FIELDS] for i in range(self.count)))

    def workers(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for i in range(self.count):
            seen = self.cells[i * _FIELDS + 2]
            out.append({
                "worker": i,
                "streaming": int(self.cells[i * _FIELDS]),
                "sessions": int(self.cells[i * _FIELDS + 1]),
                "alive": seen > 0 and now - seen < 5 * PUBLISH_S,
                "pid": int(self.cells[i * _FIELDS + 3]),
            })
        return out


WORKER = web.AppKey("worker", WorkerBoard)


# --- the worker side ----------------------------------------------------------------------


@web.middleware
async def owned_listeners_only(request: web.Request, handler):
    """A request for another worker's listener (a keep-alive connection reused across
    listeners) is sent round again on a new connection, which the acceptor routes right."""
    board = request.app[WORKER]
    target = request.path_qs
    wanted = asked_worker(target, board.count)
    if wanted is None:
        listener_id = listener_in(target)
        wanted = worker_of(listener_id, board.count) if listener_id is not None else None
    if wanted is not None and wanted != board.index:
        raise web.HTTPTemporaryRedirect(target, headers={"Connection": "close"})
    response = await handler(request)
    if not response.prepared:  # a stream's headers are already on their way
        response.headers.setdefault("X-DJ-Worker", str(board.index))
    return response


async def _publish(app: web.Application):
    from dj.server.keys import STATION

    station = app[STATION]
    board = app[WORKER]

    async def run() -> None:
        while True:
            board.publish(station.sessions.streaming, len(station.sessions))
            await asyncio.sleep(PUBLISH_S)

    task = asyncio.create_task(run())
    yield
    task.cancel()


def setup_worker(app: web.Application, board: WorkerBoard) -> None:
    """Make ``app`` one worker of several (before it starts)."""
    app[WORKER] = board
    app.middlewares.append(owned_listeners_only)
    app.cleanup_ctx.append(_publish)


def _adopt_connections(loop: asyncio.AbstractEventLoop, channel: socket.socket,
                       server: Callable[[], asyncio.Protocol], gone: asyncio.Event) -> None:
    """Adopt every socket the acceptor hands over; the channel closing means it is gone."""
    channel.setblocking(False)

    def readable() -> None:
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(channel, 16, 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds = b"", []
            if not msg and not fds:
                loop.remove_reader(channel.fileno())
                gone.set()
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                loop.create_task(loop.connect_accepted_socket(server, sock))

    loop.add_reader(channel.fileno(), readable)


async def _serve_worker(app: web.Application, channel: socket.socket, shutdown_s: float) -> None:
    from dj.server.access_log import KeyHidingAccessLogger

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)  # SIGINT is the acceptor's to act on
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_s,
                           access_log_class=KeyHidingAccessLogger)
    await runner.setup()
    assert runner.server is not None
    _adopt_connections(loop, channel, runner.server, stop)
    channel.send(b"ready")
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(channel.fileno())
        await runner.cleanup()


def worker_main(config: Config, board: WorkerBoard, channel: socket.socket,
                log_level: int) -> None:
    """One worker process: build a station, then serve the connections handed over."""
    from dj.server.app import STOP_TIMEOUT_S, create_app
    from dj.server.memory import tune as tune_malloc
    from dj.server.wiring import build_station

    logging.basicConfig(level=log_level,
                        format=f"%(asctime)s %(levelname)s %(name)s[w{board.index}]: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the acceptor, which stops us
    if board.index > 0:
        # one worker retrains and renders the shared opening lines; the others pick up the
        # model and the renders it saves (the voice cache is on disk, shared)
        config = config.replace(
            recommend=dataclasses.replace(config.recommend, retrain_interval_s=0.0),
            narrate=dataclasses.replace(config.narrate, warm_openings=False))
    station = build_station(config)
    tune_malloc(station)
    app = create_app(config, station, own_station=True)
    setup_worker(app, board)
    asyncio.run(_serve_worker(app, channel, STOP_TIMEOUT_S))
    exit_now(0)


def exit_now(code: int) -> None:
    """Exit once the station has shut down (every play recorded, the ledger flushed), without
    waiting for a thread still busy with work nobody needs now (a track body being made)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# --- the acceptor -------------------------------------------------------------------------


async def _ready(fd: int, add: Callable[..., Any], remove: Callable[[int], Any],
                 timeout: float) -> None:
    """Wait until ``fd`` is readable or writable (``add`` is the loop's add_reader or
    add_writer); TimeoutError after ``timeout``."""
    ready = asyncio.get_running_loop().create_future()
    add(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        remove(fd)


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.channel: socket.socket | None = None
        self.started = 0.0


class Acceptor:
    """Owns the listening socket and the workers; routes each connection to its worker."""

    def __init__(self, config: Config, count: int, log_level: int) -> None:
        self.config = config
        self.count = count
        self.log_level = log_level
        self.board = WorkerBoard.create(count)
        self.workers = [_Worker(i) for i in range(count)]
        self._turn = itertools.count()
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = False

    # -- workers -----------------------------------------------------------------------------
    def start_worker(self, worker: _Worker, wait: bool) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self._ctx.Process(
            target=worker_main, name=f"dj-worker-{worker.index}",
            args=(self.config, self.board.for_worker(worker.index), theirs, self.log_level),
        )
        process.start()
        theirs.close()
        worker.process, worker.channel, worker.started = process, ours, time.monotonic()
        if wait:
            ours.settimeout(READY_WAIT_S)
            try:
                ready = ours.recv(16)
            except (TimeoutError, OSError):
                ready = b""
            if ready != b"ready":
                raise RuntimeError(f"worker {worker.index} did not start (exit code"
                                   f" {process.exitcode}); see the log above")
        ours.setblocking(False)

    def start(self) -> None:
        """Start the workers one after another: the first makes what the others then load
        (database migrations, a first model, the track bodies)."""
        for worker in self.workers:
            self.start_worker(worker, wait=True)
            logger.info("worker %d of %d ready (pid %d)", worker.index + 1, self.count,
                        worker.process.pid)

    async def _watch(self) -> None:
        """Start again a worker that died (its listeners reconnect to a new programme)."""
        while not self._stopping:
            await asyncio.sleep(0.5)
            for worker in self.workers:
                if worker.process.is_alive() or self._stopping:
                    continue
                logger.error("worker %d exited (code %s); starting it again", worker.index,
                             worker.process.exitcode)
                wait = RESTART_PAUSE_S - (time.monotonic() - worker.started)
                if wait > 0:
                    await asyncio.sleep(wait)
                if worker.channel is not None:
                    worker.channel.close()
                self.start_worker(worker, wait=False)

    # -- connections -------------------------------------------------------------------------
    async def _head(self, conn: socket.socket) -> bytes:
        """The request's first bytes, peeked (left in the socket for the worker)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HEAD_WAIT_S
        while True:
            try:
                data = conn.recv(HEAD_MAX, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                data = None
            if data is not None:
                if (not data or b"\n" in data or len(data) >= HEAD_MAX
                        or not _REQUEST_START.match(data)):
                    return data  # a line, or what is no HTTP request: a worker answers 400
                await asyncio.sleep(0.005)  # part of a line: the rest is on its way
            else:
                await _ready(conn.fileno(), loop.add_reader, loop.remove_reader,
                             max(0.0, deadline - loop.time()))
            if loop.time() > deadline:
                raise TimeoutError

    def choose(self, head: bytes) -> int:
        target = request_target(head)
        if target is not None:
            asked = asked_worker(target, self.count)
            if asked is not None:
                return asked
            listener_id = listener_in(target)
            if listener_id is not None:
                return worker_of(listener_id, self.count)
        return next(self._turn) % self.count

    async def _hand_over(self, conn: socket.socket, index: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            channel = self.workers[index].channel
            assert channel is not None
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
                return
            except (BlockingIOError, InterruptedError):
                await _ready(channel.fileno(), loop.add_writer, loop.remove_writer, HEAD_WAIT_S)

    async def _route(self, conn: socket.socket) -> None:
        try:
            head = await self._head(conn)
            if head:
                await self._hand_over(conn, self.choose(head))
        except (TimeoutError, OSError) as exc:
            logger.debug("connection not handed over: %s", exc)
        finally:
            conn.close()  # the worker holds its own copy

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = asyncio.create_task(self._watch())
        accepting = asyncio.create_task(self._accept(sock))
        routes: set[asyncio.Task] = set()
        self._routes = routes
        await stop.wait()
        self._stopping = True
        accepting.cancel()
        watch.cancel()
        sock.close()
        await loop.run_in_executor(None, self.stop_workers)

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(sock)
            conn.setblocking(False)
            task = asyncio.create_task(self._route(conn))
            self._routes.add(task)
            task.add_done_callback(self._routes.discard)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for worker in self.workers:
            if worker.process is not None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
                if worker.process.is_alive():
                    logger.error("worker %d did not stop in time; killed", worker.index)
                    worker.process.kill()
                    worker.process.join()
            if worker.channel is not None:
                worker.channel.close()


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_workers(config: Config, count: int, log_level: int,
                  on_ready: Callable[[], None]) -> int:
    """Run ``count`` workers behind one acceptor until SIGTERM or Ctrl-C."""
    sock = listening_socket(config.host, config.port)  # fails early if the port is taken
    acceptor = Acceptor(config, count, log_level)
    try:
        acceptor.start()
    except RuntimeError as exc:
        logger.error("%s", exc)
        acceptor.stop_workers()
        return 1
    on_ready()
    asyncio.run(acceptor.serve(sock))
    return 0
