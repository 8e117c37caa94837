"""Time to the first decodable MP3 frame: how soon a player that connects has something to play.

A client connects to a running server on loopback, asks for a listener's stream and times the
first body byte and the moment the first whole MPEG frame has arrived; ffmpeg (from the
imageio-ffmpeg wheel) then decodes exactly those first bytes, so "decodable" is an independent
decoder's word, not ours. Each connect is a new listener (a new session: the programme is opened
and its first block rendered) unless ``--resume``, which reconnects one listener (its session is
picked up where it was heard).

    python bench/first_frame.py --url http://127.0.0.1:8000 [-n 50] [--resume]
    python bench/first_frame.py --serve DATA_DIR [-n 50] [--port 8767]

Prints every connect's times and p50/p99 of each; the target is a first frame under 100 ms.
With --serve it starts a fresh `python -m dj.cli serve --data-dir DATA_DIR` (OPENBLAS_NUM_THREADS
=1), waits until its start-up work (track bodies, opening lines) is done, and runs three passes
on it: new listeners on the cold server (every opening rendered), new listeners again (openings
shared from the first pass, where they are the same), and reconnects of one listener; then a
table of the three, with the machine's load average at each pass's start and end (this
measures latency on a shared machine: compare runs under similar load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import imageio_ffmpeg
import numpy as np

KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
RATES = (44_100, 48_000, 32_000)
TARGET_MS = 100.0
REPO_ROOT = Path(__file__).resolve().parent.parent
START_WAIT_S = 180.0  # longest wait for a started server to be healthy and then idle


MAX_FRAMES = 4  # ffmpeg's MP3 demuxer wants two frames in a row to lock on; more is a fault


@dataclass
class Connect:
    connect_ms: float  # TCP handshake done
    first_byte_ms: float  # first byte of the body
    first_frame_ms: float  # the fewest whole frames ffmpeg decodes had all arrived
    frames: int  # how many frames that took (0: it decoded none of the first MAX_FRAMES)
    decoded_samples: int  # what ffmpeg made of exactly those bytes


def frame_ends(data: bytes, limit: int = MAX_FRAMES) -> list[int]:
    """End offsets of the whole MPEG-1/2 Layer III frames at the start of ``data`` (after
    anything before the first sync word), at most ``limit``."""
    ends: list[int] = []
    at = data.find(b"\xff")
    while at >= 0 and at + 4 <= len(data) and len(ends) < limit:
        b1, b2 = data[at + 1], data[at + 2]
        index, rate = b2 >> 4, (b2 >> 2) & 3
        if b1 & 0xE6 != 0xE2 or not 0 < index < 15 or rate == 3:
            if ends:
                break  # lost sync after a frame: what came so far is all there is
            at = data.find(b"\xff", at + 1)
            continue
        size = 144 * KBPS[index] * 1000 // RATES[rate] + ((b2 >> 1) & 1)
        if at + size > len(data):
            break
        at += size
        ends.append(at)
    return ends


def decode(data: bytes) -> int:
    """Samples ffmpeg decodes from ``data`` (0 if it cannot)."""
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
         "-f", "mp3", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "pipe:1"],
        input=data, capture_output=True, check=False)
    return len(proc.stdout) // 2 if proc.returncode == 0 else 0


async def one(host: str, port: int, path: str) -> Connect:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    t_conn = time.perf_counter()
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: first-frame-bench"
                 "\r\n\r\n".encode())
    head = b""
    body = bytearray()
    t_byte = None
    arrivals: list[tuple[int, float]] = []  # (body bytes so far, when)
    try:
        async with asyncio.timeout(10):
            while len(frame_ends(bytes(body))) < MAX_FRAMES:
                chunk = await reader.read(65536)
                if not chunk:
                    raise RuntimeError(f"the server closed the stream: {head[:200]!r}")
                now = time.perf_counter()
                if not head:
                    buf = bytes(body) + chunk
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        body[:] = buf
                        continue
                    head = buf[:end]
                    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
                    body[:] = buf[end + 4:]
                else:
                    body += chunk
                if body and t_byte is None:
                    t_byte = now
                arrivals.append((len(body), now))
    finally:
        writer.close()
    assert t_byte is not None
    ends = frame_ends(bytes(body))
    frames, samples, end = 0, 0, ends[-1]
    for k, end in enumerate(ends, start=1):  # the fewest frames an independent decoder plays
        samples = decode(bytes(body[:end]))
        if samples:
            frames = k
            break
    t_frame = next(t for size, t in arrivals if size >= end)
    ms = 1000.0
    return Connect((t_conn - t0) * ms, (t_byte - t0) * ms, (t_frame - t0) * ms, frames, samples)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def run_pass(host: str, port: int, n: int, resume: bool, gap: float) -> list[Connect]:
    run = uuid.uuid4().hex[:6]
    results: list[Connect] = []
    for i in range(n):
        listener = f"ff-{run}" if resume else f"ff-{run}-{i}"
        c = await one(host, port, f"/stream/{listener}.mp3")
        results.append(c)
        print(f"{i:3d}  connect {c.connect_ms:6.1f} ms  first byte {c.first_byte_ms:6.1f} ms"
              f"  first decodable {c.first_frame_ms:6.1f} ms ({c.frames} frames,"
              f" {c.decoded_samples} samples)")
        await asyncio.sleep(gap)
    return results


def summary(results: list[Connect], label: str) -> bool:
    """Print a pass's percentiles; True when every first frame decoded."""
    undecodable = sum(1 for c in results if c.frames == 0)
    print(f"\n{len(results)} connects ({label})")
    for name in ("connect_ms", "first_byte_ms", "first_frame_ms"):
        values = [getattr(c, name) for c in results]
        print(f"  {name:<15} p50 {pct(values, 50):7.1f}  p99 {pct(values, 99):7.1f}"
              f"  max {max(values):7.1f}  mean {statistics.fmean(values):7.1f}")
    print(f"  first frames ffmpeg could not decode: {undecodable}")
    p99 = pct([c.first_frame_ms for c in results], 99)
    print(f"  target: first frame p99 under {TARGET_MS:.0f} ms:"
          f" {'met' if p99 < TARGET_MS else 'NOT met'}")
    return undecodable == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A fresh `dj serve` of our own on ``port``, stopped by :meth:`stop`."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="first-frame-serve-", suffix=".log")[1])
        env = dict(os.environ, DJ_PORT=str(port), OPENBLAS_NUM_THREADS="1")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(data_dir)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self) -> None:
        """Healthy, then idle: start-up work would otherwise be timed as the first connects'."""
        deadline = time.monotonic() + START_WAIT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy in {START_WAIT_S:.0f} s; see {self.log}")
            time.sleep(0.25)
        before = cpu_s(self.proc.pid)
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = cpu_s(self.proc.pid)
            if now - before < 0.05:
                return
            before = now
        print(f"(server still busy after {START_WAIT_S:.0f} s; measuring anyway)")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def serve_and_measure(data_dir: Path, port: int, n: int, gap: float) -> int:
    server = Server(data_dir, port)
    rows: list[tuple[str, list[Connect], str, str]] = []
    ok = True
    try:
        server.wait_ready()
        parts = urlsplit(server.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or port
        for label, resume in (("new, cold", False), ("new, warm", False), ("resume", True)):
            at_start = load()
            results = await run_pass(host, port, n, resume, gap)
            ok = summary(results, f"{label}, {server.url}") and ok
            rows.append((label, results, at_start, load()))
    finally:
        server.stop()
    print(f"\nfirst decodable frame, ms ({n} connects a pass; load average 1/5/15 min"
          f" at the pass's start -> end; server log {server.log})")
    print(f"  {'pass':<10} {'p50':>7} {'p99':>7} {'max':>7}  load")
    for label, results, a, b in rows:
        values = [c.first_frame_ms for c in results]
        print(f"  {label:<10} {pct(values, 50):7.1f} {pct(values, 99):7.1f}"
              f" {max(values):7.1f}  {a} -> {b}")
    return 0 if ok else 1


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server")
    parser.add_argument("--serve", type=Path, metavar="DATA_DIR",
                        help="start a fresh server on this data dir and run every pass on it")
    parser.add_argument("--port", type=int, default=0, help="with --serve (default: a free one)")
    parser.add_argument("-n", type=int, default=50, help="connects")
    parser.add_argument("--resume", action="store_true",
                        help="reconnect one listener (resume) instead of a new one each time")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between connects")
    args = parser.parse_args()
    if args.serve is not None:
        return await serve_and_measure(args.serve.expanduser().resolve(),
                                       args.port or free_port(), args.n, args.gap)
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    results = await run_pass(host, port, args.n, args.resume, args.gap)
    label = "resume" if args.resume else "new listener each"
    return 0 if summary(results, f"{label}, {args.url}") else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
