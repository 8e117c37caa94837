"""Listeners: how many concurrent paced listeners one `dj serve` carries, and at what cost.

    python bench/listeners.py --listeners 5,20,50 --seconds 60 [--path full|spliced|both]
        [--data-dir DIR] [--port 8766] [--procs K] [--ramp R] [--warmup W] [--json FILE]
    python bench/listeners.py --listeners 20 --seconds 60 --url http://HOST:PORT [--pid PID]

Without --url, each (N, path) row gets a fresh `python -m dj.cli serve --data-dir DIR` with
DJ_PORT, DJ_STREAM__PATH=<path>, DJ_WORKERS=<--workers, default 1> and OPENBLAS_NUM_THREADS=1
(CPU and RSS are summed over its worker processes; log files in a temp dir, printed at
the end), stopped after the row. If DIR has no tracks yet the demo catalog is built into it
first, as `dj demo` does (about a minute). DIR defaults to dj's own data dir. With --url the
running server is used as it is (--path then only labels the row); CPU and RSS are measured
only if --pid names its process.

N listeners are spread over K client processes (default: one per 200 listeners, at most one per
core), each an asyncio loop of raw sockets. A listener sends `GET /stream/bench-<row>-<i>.mp3
HTTP/1.0` (a close-delimited body) and reads whatever arrives; connects are spread over a ramp of
min(10 s, S/4). Each listener is a simulated player of the 128 kbps stream (16,000 B/s): it
starts once it holds 1.0 s of audio, consumes 16,000 B/s of wall time, and on running dry
re-buffers 0.5 s before playing on. Every listener stops S seconds after the first connect.

Columns, one row per (N, path):
    ttfa_p50_ms, ttfa_p99_ms  connect start -> first body byte, over the listeners that got one
    underruns                 times a player ran dry, summed over listeners
    starved_s                 seconds players spent dry (re-buffering), summed over listeners
    cpu_s_per_listener_hour   server CPU (user+system, all threads) over the steady window, per
                              hour of one listener: cpu_s / (n * window_s / 3600)
    of_which_speech           the part of it spent by the DJ's neural-voice threads (niced;
                              they take CPU the streams leave idle), per listener-hour
    rss_mb_per_listener       (server RSS at the end - RSS of the idle server) / n
    server_cores              server CPU seconds per wall second over the steady window
    load1                     the machine's 1-minute load average at the end of the window
    client_cores              the client processes' own CPU per wall second (near the core
                              count means the client, not the server, may be the bottleneck)
    errors                    listeners refused, reset, cut off or answered non-200
The steady window runs from when every listener has its first audio (or has failed), plus
--warmup seconds (default 0), to the end; n is the number of listeners streaming when it starts
(N unless some failed). Each row's server starts cold, so caches it fills on first use (the
spliced path's shared track bodies) are paid inside short rows: use longer rows or --warmup to
see the steady state. After the table:
for --path both, full/spliced CPU per listener-hour for each N, then per path the largest N with
no underruns and no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import queue as queuelib
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
BYTES_PER_S = 16_000  # CBR 128 kbps
START_BUFFER = BYTES_PER_S  # 1.0 s before playback starts
REBUFFER = BYTES_PER_S // 2  # 0.5 s before it resumes after running dry
GRACE_S = 5.0
HEALTH_WAIT_S = 180.0  # a first start may train the recommender
CONNECT_WAIT_S = 20.0  # after the ramp, the most the steady window waits for stragglers
LISTENERS_PER_PROC = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the simulated player and one listener (runs in the client processes) ---------------------


@dataclass
class Player:
    """A player's buffer: it plays from the bytes received, in wall time, at the stream's rate."""

    received: int = 0
    consumed: int = 0  # at `anchor`; while playing, consumption runs on from there
    anchor: float | None = None  # when playback (re)started; None while buffering
    starts: int = 0
    underruns: int = 0
    starved_s: float = 0.0
    starved_since: float | None = None
    first_underrun_at: float | None = None

    def _drain(self, now: float) -> None:
        if self.anchor is None:
            return
        empty_at = self.anchor + (self.received - self.consumed) / BYTES_PER_S
        if empty_at <= now:
            if self.first_underrun_at is None:
                self.first_underrun_at = empty_at
            self.underruns += 1
            self.consumed = self.received
            self.anchor = None
            self.starved_since = empty_at

    def feed(self, now: float, n: int) -> None:
        self._drain(now)
        self.received += n
        need = START_BUFFER if self.starts == 0 else REBUFFER
        if self.anchor is None and self.received - self.consumed >= need:
            if self.starved_since is not None:
                self.starved_s += now - self.starved_since
                self.starved_since = None
            self.anchor = now
            self.starts += 1

    def finish(self, now: float) -> None:
        self._drain(now)
        if self.starved_since is not None:
            self.starved_s += now - self.starved_since
            self.starved_since = None


@dataclass
class ClientResult:
    index: int
    ttfa_s: float | None = None
    bytes: int = 0
    underruns: int = 0
    starved_s: float = 0.0
    error: str | None = None
    error_at_s: float | None = None  # since the first connect
    first_underrun_s: float | None = None  # since this listener's first audio


async def _listen(
    index: int, host: str, port: int, name: str, start: float, t0: float, stop: float,
    queue: Any,
) -> ClientResult:
    res = ClientResult(index)
    player = Player()
    loop = asyncio.get_running_loop()
    writer: asyncio.StreamWriter | None = None
    first: float | None = None
    await asyncio.sleep(max(0.0, start - loop.time()))
    deadline = asyncio.timeout_at(stop)
    try:
        async with deadline:
            began = loop.time()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET /stream/{name}.mp3 HTTP/1.0\r\nHost: {host}:{port}\r\n"
                f"User-Agent: dj-bench-listeners\r\n\r\n".encode()
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(None, 2)[1].decode(errors="replace") if head else "?"
            if status != "200":
                res.error = f"http {status}"
            else:
                while data := await reader.read(65536):
                    now = loop.time()
                    if first is None:
                        first = now
                        res.ttfa_s = now - began
                        queue.put(("first", index))
                    player.feed(now, len(data))
                    res.bytes += len(data)
                res.error = "closed by server"
    except TimeoutError:
        if not deadline.expired():
            res.error = "timed out"  # an OS-level one (ETIMEDOUT), not our stop
        elif first is None:
            res.error = "no audio before the end"
    except ConnectionRefusedError:
        res.error = "refused"
    except ConnectionResetError:
        res.error = "reset"
    except asyncio.IncompleteReadError:
        res.error = "closed before the headers"
    except (OSError, ValueError, IndexError, asyncio.LimitOverrunError) as exc:
        res.error = type(exc).__name__
    end = min(loop.time(), stop)
    player.finish(end)
    res.underruns, res.starved_s = player.underruns, player.starved_s
    if player.first_underrun_at is not None and first is not None:
        res.first_underrun_s = player.first_underrun_at - first
    if res.error is not None:
        res.error_at_s = end - t0
        queue.put(("fail" if first is None else "lost", index))
    if writer is not None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return res


async def _listeners(
    host: str, port: int, row: str, indices: list[int], n: int, ramp_s: float, t0: float,
    seconds: float, queue: Any,
) -> list[ClientResult]:
    stop = t0 + seconds
    tasks = [
        asyncio.create_task(
            _listen(i, host, port, f"bench-{row}-{i}", t0 + ramp_s * i / n, t0, stop, queue)
        )
        for i in indices
    ]
    return list(await asyncio.gather(*tasks))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_process(
    k: int, host: str, port: int, row: str, indices: list[int], n: int, ramp_s: float,
    seconds: float, go: Any, t0: Any, queue: Any,
) -> None:
    """One client process: report ready, wait for the common start, run its listeners."""
    _raise_fd_limit()
    queue.put(("ready", k))
    if not go.wait(60):
        queue.put(("done", k, [], 0.0))
        return
    cpu0 = time.process_time()
    results = asyncio.run(
        _listeners(host, port, row, indices, n, ramp_s, t0.value, seconds, queue)
    )
    queue.put(("done", k, [dataclasses.asdict(r) for r in results], time.process_time() - cpu0))


# --- the server and its process (runs in the harness) ------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it (a server's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU of the process and the processes under it (all threads); NaN once
    it is gone. A worker that exited during the row is not counted (rows say so in errors)."""
    if not Path(f"/proc/{pid}").exists():
        return math.nan
    total = 0.0
    for p in process_tree(pid):
        try:
            rest = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # counted after the command name: utime and stime are fields 14 and 15 of the line
        total += (int(rest[11]) + int(rest[12])) / CLK_TCK
    return total


SPEECH_THREAD = "dj-speech"  # the OS name dj's neural-voice threads give themselves


def proc_speech_cpu_s(pid: int) -> float:
    """CPU of the speech threads of the process and the processes under it: the DJ's voice,
    rendered on niced threads from CPU the streams leave idle (reported apart from them)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            if name == SPEECH_THREAD:
                rest = stat.rsplit(")", 1)[1].split()
                total += (int(rest[11]) + int(rest[12])) / CLK_TCK
    return total


def proc_rss_mb(pid: int) -> float:
    """Resident memory of the process and the processes under it."""
    if not Path(f"/proc/{pid}").exists():
        return math.nan
    total = 0.0
    for p in process_tree(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def healthz(base: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout) as r:
            return json.loads(r.read()) if r.status == 200 else None
    except (OSError, ValueError):
        return None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def log_tail(path: Path) -> str:
    """The log's last line that says something (not an access line), and where the log is."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return str(path)
    said = [x.strip() for x in text if x.strip() and "aiohttp.access" not in x]
    return f"{said[-1][:200] if said else '(empty log)'} [{path}]"


def track_count(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as c:
            return int(c.execute("SELECT count(*) FROM tracks").fetchone()[0])
    except sqlite3.Error:  # no file, or no tables yet
        return 0


def ensure_catalog(data_dir: Path) -> None:
    """Build the demo catalog into a data dir without tracks, with the code `dj demo` runs."""
    # a database alone is not a catalog: any `dj serve` creates an empty one
    if track_count(data_dir / "dj.sqlite3") > 0:
        return
    from dj.catalog import Catalog
    from dj.cli import make_bodies
    from dj.config import load_config
    from dj.demo.build import build_demo
    from dj.store import Store

    print(f"no catalog in {data_dir}: building the demo catalog (about a minute)", flush=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(data_dir=data_dir)
    catalog = Catalog(Store(config.db_path), config.media_dir)
    print(build_demo(config, catalog, progress=True).describe(), flush=True)
    # and, as `dj demo` does before it serves, every track's body for the spliced path: a
    # station started without them makes them while its first listeners wait
    make_bodies(config, catalog)


class Server:
    """A `dj serve` of our own, for one row."""

    def __init__(self, data_dir: Path, port: int, path: str, log: Path, workers: int) -> None:
        env = dict(os.environ, DJ_PORT=str(port), DJ_STREAM__PATH=path, DJ_WORKERS=str(workers),
                   OPENBLAS_NUM_THREADS="1")
        self.log = log
        with log.open("wb") as out:
            # its own session: a Ctrl-C reaches only the harness, which then stops it in order
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(data_dir)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                start_new_session=True,
            )

    def wait_healthy(self, base: str) -> dict[str, Any]:
        deadline = time.monotonic() + HEALTH_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited ({self.proc.returncode}) at start: {log_tail(self.log)}"
                )
            if (health := healthz(base)) is not None:
                return health
            time.sleep(0.25)
        raise RuntimeError(f"server not healthy after {HEALTH_WAIT_S:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- one row ------------------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    n: int
    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    procs: int = 0
    ramp_s: float = 0.0
    window_s: float = math.nan
    streaming: int = 0  # listeners with audio when the window started
    ttfa_p50_ms: float = math.nan
    ttfa_p99_ms: float = math.nan
    underruns: int = 0
    listeners_with_underruns: int = 0
    starved_s: float = 0.0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float = math.nan
    cpu_s_per_listener_hour: float = math.nan
    speech_cpu_s: float = math.nan
    speech_s_per_listener_hour: float = math.nan
    rss_idle_mb: float = math.nan
    rss_end_mb: float = math.nan
    rss_mb_per_listener: float = math.nan
    server_cores: float = math.nan
    load1: float = math.nan
    client_cpu_s: float = math.nan
    client_cores: float = math.nan
    health_start: dict[str, Any] | None = None
    health_end: dict[str, Any] | None = None
    log: str | None = None
    clients: list[dict[str, Any]] = field(default_factory=list)


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_row(args: argparse.Namespace, n: int, path: str, logdir: Path) -> Row:
    row = Row(path, n)
    if args.url is None and args.workers != 1:
        row.notes.append(f"server with --workers {args.workers}")
    own = args.url is None
    base = args.url.rstrip("/") if args.url else f"http://127.0.0.1:{args.port}"
    split = urlsplit(base)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    server: Server | None = None
    pid: int | None = args.pid
    tag = f"{path}{n}" if own else f"{path}{n}-{int(time.time()) % 100000}"  # no resumes
    try:
        if own:
            if port_in_use(host, port):
                row.status = f"port {port} is already in use (pick another with --port)"
                return row
            server = Server(args.data_dir, port, path, logdir / f"serve-{path}-{n}.log",
                            args.workers)
            row.log = str(server.log)
            pid = server.proc.pid
            row.health_start = server.wait_healthy(base)
            if not row.health_start.get("tracks"):
                row.status = f"no tracks in {args.data_dir} (run `dj demo --data-dir DIR` once)"
                return row
            # the server may not know this path yet; if it tells us its path, hold it to it
            shown = row.health_start.get("path")
            if shown is not None and shown != path:
                row.status = f"server runs path {shown!r}, not {path!r}"
                return row
        elif (health := healthz(base, timeout=5.0)) is None:
            row.status = f"no healthy server at {base}"
            return row
        else:
            row.health_start = health
        if pid is not None:
            time.sleep(1.0)  # let start-up work (first requests, caches) settle
            row.rss_idle_mb = proc_rss_mb(pid)
        measure(args, row, host, port, tag, pid, server)
        if (health := healthz(base)) is not None:
            row.health_end = health
            if failures := health.get("failures"):
                row.notes.append(f"server failures: {failures}")
    except RuntimeError as exc:
        row.status = str(exc)
    finally:
        if server is not None:
            server.stop()
    return row


def measure(
    args: argparse.Namespace, row: Row, host: str, port: int, tag: str, pid: int | None,
    server: Server | None,
) -> None:
    n, seconds = row.n, args.seconds
    k = args.procs or max(1, min(os.cpu_count() or 1, math.ceil(n / LISTENERS_PER_PROC)))
    k = min(k, n)
    row.procs = k
    row.ramp_s = args.ramp if args.ramp is not None else min(10.0, seconds / 4)
    ctx = multiprocessing.get_context("spawn")  # the harness may hold threads; fork is unsafe
    inbox = ctx.Queue()
    go = ctx.Event()
    t0v = ctx.Value("d", 0.0)
    workers = [
        ctx.Process(
            target=client_process,
            args=(j, host, port, tag, list(range(j, n, k)), n, row.ramp_s, seconds, go, t0v,
                  inbox),
            daemon=True,
        )
        for j in range(k)
    ]
    for w in workers:
        w.start()
    results: list[dict[str, Any]] = []
    client_cpu = 0.0
    done = 0
    try:
        ready = 0
        ready_by = time.monotonic() + 60
        while ready < k:
            try:
                msg = inbox.get(timeout=max(0.1, ready_by - time.monotonic()))
            except queuelib.Empty:
                raise RuntimeError(f"only {ready}/{k} client processes started") from None
            ready += msg[0] == "ready"
        t0 = time.monotonic() + 0.2
        t0v.value = t0
        go.set()
        stop = t0 + seconds
        first = failed = lost = 0
        steady_at = cpu0 = speech0 = connected_at = math.nan
        steady_by = min(stop - 1.0, t0 + row.ramp_s + CONNECT_WAIT_S)
        died: str | None = None

        def alive() -> bool:
            nonlocal died
            if died is None and server is not None and server.proc.poll() is not None:
                died = (f"server died at +{time.monotonic() - t0:.1f} s "
                        f"(exit {server.proc.returncode}): {log_tail(server.log)}")
            elif died is None and pid is not None and not Path(f"/proc/{pid}").exists():
                died = f"server process {pid} gone at +{time.monotonic() - t0:.1f} s"
            return died is None

        while (now := time.monotonic()) < stop:
            try:
                msg = inbox.get(timeout=min(0.25, max(0.01, stop - now)))
            except queuelib.Empty:
                msg = None
            if msg is not None:
                kind = msg[0]
                first += kind == "first"
                failed += kind == "fail"
                lost += kind == "lost"
                if kind == "done":  # a client process ended early (e.g. never started)
                    done += 1
                    results += msg[2]
                    client_cpu += msg[3]
            if not alive():
                break
            now = time.monotonic()
            if math.isnan(connected_at) and (first + failed >= n or now >= steady_by):
                connected_at = now
                if first + failed < n:
                    row.notes.append(f"only {first}/{n} had audio {now - t0:.0f} s in")
            if math.isnan(steady_at) and now >= connected_at + args.warmup:
                steady_at = now
                row.streaming = first - lost
                if pid is not None:
                    cpu0 = proc_cpu_s(pid)
                    speech0 = proc_speech_cpu_s(pid)
        end = time.monotonic()
        alive()
        if died is not None:
            row.status = died
        elif pid is not None and not math.isnan(steady_at):
            row.window_s = end - steady_at
            row.server_cpu_s = proc_cpu_s(pid) - cpu0
            row.speech_cpu_s = proc_speech_cpu_s(pid) - speech0
            row.rss_end_mb = proc_rss_mb(pid)
        elif not math.isnan(steady_at):
            row.window_s = end - steady_at
        row.load1 = os.getloadavg()[0]
        collect_by = stop + GRACE_S
        while done < k and time.monotonic() < collect_by:
            try:
                msg = inbox.get(timeout=max(0.05, collect_by - time.monotonic()))
            except queuelib.Empty:
                break
            if msg[0] == "done":
                done += 1
                results += msg[2]
                client_cpu += msg[3]
        if done < k:
            row.notes.append(f"{k - done} client process(es) did not report")
    finally:
        go.set()  # release processes still waiting for the start
        for w in workers:
            w.join(1.0)
            if w.is_alive():
                w.terminate()
                w.join(1.0)
    summarise(row, results, client_cpu, seconds)


def summarise(row: Row, results: list[dict[str, Any]], client_cpu: float, seconds: float) -> None:
    row.clients = sorted(results, key=lambda r: r["index"])
    ttfa = [r["ttfa_s"] * 1000 for r in results if r["ttfa_s"] is not None]
    row.ttfa_p50_ms, row.ttfa_p99_ms = percentile(ttfa, 0.5), percentile(ttfa, 0.99)
    row.underruns = sum(r["underruns"] for r in results)
    row.listeners_with_underruns = sum(r["underruns"] > 0 for r in results)
    row.starved_s = sum(r["starved_s"] for r in results)
    # listeners that never reported (a killed client process) count as errors too
    row.errors = sum(r["error"] is not None for r in results) + row.n - len(results)
    for r in results:
        if r["error"] is not None:
            row.error_kinds[r["error"]] = row.error_kinds.get(r["error"], 0) + 1
    row.client_cpu_s = client_cpu
    row.client_cores = client_cpu / seconds
    m = row.streaming
    if m > 0 and row.window_s > 0 and not math.isnan(row.server_cpu_s):
        row.cpu_s_per_listener_hour = row.server_cpu_s / (m * row.window_s / 3600)
        row.speech_s_per_listener_hour = row.speech_cpu_s / (m * row.window_s / 3600)
        row.server_cores = row.server_cpu_s / row.window_s
        row.rss_mb_per_listener = (row.rss_end_mb - row.rss_idle_mb) / m


# --- output -------------------------------------------------------------------------------------

COLUMNS = [
    ("path", 7, ""), ("N", 5, "d"), ("ttfa_p50_ms", 11, ".0f"), ("ttfa_p99_ms", 11, ".0f"),
    ("underruns", 9, "d"), ("starved_s", 9, ".1f"), ("cpu_s_per_listener_hour", 23, ".1f"),
    ("of_which_speech", 15, ".1f"),
    ("rss_mb_per_listener", 19, ".2f"), ("server_cores", 12, ".2f"), ("load1", 5, ".2f"),
    ("client_cores", 12, ".3f"), ("errors", 6, "d"),
]


def header() -> str:
    return " ".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}"
                    for i, (name, w, _) in enumerate(COLUMNS))


def format_row(row: Row) -> str:
    if row.status != "ok" and not row.clients:
        return f"{row.path:<7} {row.n:>5}  FAILED: {row.status}"
    values = [row.path, row.n, row.ttfa_p50_ms, row.ttfa_p99_ms, row.underruns, row.starved_s,
              row.cpu_s_per_listener_hour, row.speech_s_per_listener_hour,
              row.rss_mb_per_listener, row.server_cores, row.load1,
              row.client_cores, row.errors]
    cells = []
    for i, ((_, w, fmt), v) in enumerate(zip(COLUMNS, values, strict=True)):
        if i == 0:
            cells.append(f"{v:<{w}}")
        elif isinstance(v, float) and math.isnan(v):
            cells.append(f"{'-':>{w}}")
        else:
            cells.append(f"{v:>{w}{fmt}}")
    lines = [" ".join(cells)]
    if row.status != "ok":
        lines.append(f"  ! {row.status}")
    lines += [f"  # {note}" for note in row.notes]
    if row.error_kinds:
        lines.append("  # errors: " + ", ".join(f"{k} x{v}" for k, v in row.error_kinds.items()))
    return "\n".join(lines)


def summary(rows: list[Row], paths: list[str], ns: list[int]) -> list[str]:
    out: list[str] = []
    by = {(r.path, r.n): r for r in rows}
    if set(paths) == {"full", "spliced"}:
        for n in ns:
            f, s = by.get(("full", n)), by.get(("spliced", n))
            if f and s and s.cpu_s_per_listener_hour > 0 and f.cpu_s_per_listener_hour > 0:
                out.append(f"N={n}: full/spliced CPU per listener-hour = "
                           f"{f.cpu_s_per_listener_hour:.1f} / {s.cpu_s_per_listener_hour:.1f}"
                           f" = {f.cpu_s_per_listener_hour / s.cpu_s_per_listener_hour:.2f}x")
            else:
                out.append(f"N={n}: full/spliced CPU per listener-hour: n/a")
    for path in paths:
        clean = [r.n for r in rows if r.path == path and r.status == "ok" and r.clients
                 and r.underruns == 0 and r.errors == 0]
        out.append(f"largest N with zero underruns ({path}): "
                   f"{max(clean) if clean else 'none'}")
    return out


def jsonable(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listeners", required=True,
                   help="comma-separated listener counts, one row each, e.g. 5,20,50")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each row")
    p.add_argument("--url", help="a running server to target instead of starting one")
    p.add_argument("--pid", type=int, help="with --url: the server's pid, for CPU and RSS")
    p.add_argument("--ramp", type=float, default=None,
                   help="seconds over which the listeners connect (default min(10, S/4)):"
                   " 10 s for 1,000 is a flash crowd; a minute is a busy evening")
    p.add_argument("--warmup", type=float, default=0.0,
                   help="seconds after all listeners have audio before the window starts"
                   " (lets caches fill; 0 measures from the last first byte)")
    p.add_argument("--path", choices=["full", "spliced", "both"], default="spliced")
    p.add_argument("--workers", type=int, default=1,
                   help="serving processes of the server we start (dj serve --workers)")
    p.add_argument("--data-dir", type=Path, help="data dir of the server we start")
    p.add_argument("--port", type=int, default=8766, help="port of the server we start")
    p.add_argument("--procs", type=int, help="client processes (default: one per 200 listeners,"
                   " at most one per core)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    try:
        ns = [int(x) for x in args.listeners.split(",") if x.strip()]
    except ValueError:
        p.error("--listeners takes integers, e.g. 5,20,50")
    if not ns or min(ns) < 1:
        p.error("--listeners needs at least one count >= 1")
    if args.seconds < 8:
        p.error("--seconds must be at least 8 (ramp, then a steady window)")
    ramp = args.ramp if args.ramp is not None else min(10.0, args.seconds / 4)
    if args.ramp is not None and not 0 <= args.ramp < args.seconds - 4:
        p.error("--ramp must be >= 0 and leave a window after it")
    if args.warmup < 0 or args.warmup >= args.seconds - ramp:
        p.error("--warmup must be >= 0 and leave a window after the ramp")
    if args.url is not None and args.path == "both":
        p.error("with --url the server runs the path it was started with: --path is its label")
    if args.pid is not None and args.url is None:
        p.error("--pid goes with --url (without --url the harness measures its own server)")
    if args.url is None:
        if args.data_dir is None:
            from dj.config import load_config

            args.data_dir = load_config().data_dir  # the dir `dj serve` would use
        args.data_dir = args.data_dir.expanduser().resolve()
        ensure_catalog(args.data_dir)
    paths = ["spliced", "full"] if args.path == "both" else [args.path]
    _raise_fd_limit()  # inherited by the server we start
    logdir = Path(tempfile.mkdtemp(prefix="dj-bench-listeners-"))
    rows: list[Row] = []
    print(header(), flush=True)
    try:
        for n in ns:
            for path in paths:  # both paths per N back to back: the ratio sees the same machine
                row = run_row(args, n, path, logdir)
                rows.append(row)
                print(format_row(row), flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    print()
    print("\n".join(summary(rows, paths, ns)))
    if args.url is None:
        print(f"server logs: {logdir}")
    if args.json:
        args.json.write_text(json.dumps(
            jsonable({"args": {k: str(v) if isinstance(v, Path) else v
                               for k, v in vars(args).items()},
                      "rows": [dataclasses.asdict(r) for r in rows]}), indent=1))
        print(f"raw numbers: {args.json}")


if __name__ == "__main__":
    main()
