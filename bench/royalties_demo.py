"""Royalties from real listening: the demo station plays to N listeners, then `dj report royalties`.

    python bench/royalties_demo.py [--data-dir /tmp/roydata] [--port 8795] [--listeners 12]
        [--heavy 2] [--minutes 24] [--light-minutes 2:6] [--revenue 1000] [--currency EUR]
        [--in-place] [--seed 1]

DIR must hold the demo catalog; if it has none, it is made first as `dj demo --data-dir DIR`
does (the demo server is stopped once it is on the air). Unless --in-place, the run works on a
copy of DIR's database (media and caches are shared by symbolic links, the models copied), so
that this month's report holds this run's plays only and DIR stays as it was; the copy is kept
and its path printed (`dj report ... --data-dir COPY` for more reports).

`python -m dj.cli serve --data-dir COPY --no-pacing --port P` is started and, once it says it is
on the air, N anonymous listeners (``anon-<run>-<i>``) connect at once to /stream/<name>.mp3. The
first --heavy of them read --minutes programme minutes each; the others read a few (uniformly
from --light-minutes, seeded). Programme time is bytes at 128 kbps, 16,000 bytes per second: an
unpaced client that keeps reading is credited what it read. Each listener then disconnects; the
server is stopped with SIGTERM (it closes open plays), and the script prints what each listener
heard (``wait s``: the longest the server kept it waiting for data) and `dj report royalties
--period <this month> --revenue R --currency C --model both`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

BYTES_PER_S = 16_000  # 128 kbps
ON_AIR = "is on the air"
START_TIMEOUT_S = 600.0  # a first start may master and encode every track body
STOP_TIMEOUT_S = 60.0


@dataclass
class Heard:
    name: str
    target_min: float
    bytes_read: int = 0
    seconds: float = 0.0
    longest_wait_s: float = 0.0  # the longest the server kept this reader waiting for data
    error: str = ""


def dj_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dj.cli", *args]


def has_catalog(data_dir: Path) -> bool:
    db = data_dir / "dj.sqlite3"
    if not db.exists():
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False


def start_server(args: list[str], log: Path, stall_s: float | None = None
                 ) -> subprocess.Popen[bytes]:
    """Start ``dj <args>`` with its output in ``log``; return once it is on the air."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if stall_s is not None:
        env["DJ_STREAM__STALL_S"] = str(stall_s)
    with log.open("wb") as out:
        proc = subprocess.Popen(dj_command(*args), stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ON_AIR in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"dj {args[0]} exited ({proc.returncode}) before it was on the air;"
                             f" see {log}")
        time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"dj {args[0]} was not on the air after {START_TIMEOUT_S:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM, as an operator stops the station; returns how long it took."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()  # only the process this script started
        proc.wait()
        raise SystemExit(f"the server did not stop within {STOP_TIMEOUT_S:.0f} s of"
                         " SIGTERM") from None
    return time.monotonic() - began


def working_copy(data_dir: Path) -> Path:
    """A data dir with a copy of ``data_dir``'s database (an online backup: consistent even with
    a WAL), its models copied and its media and caches linked."""
    work = Path(tempfile.mkdtemp(prefix="dj-royalties-"))
    src = sqlite3.connect(f"file:{data_dir / 'dj.sqlite3'}?mode=ro", uri=True)
    dst = sqlite3.connect(work / "dj.sqlite3")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    for name in ("media", "cache"):
        if (data_dir / name).exists():
            (work / name).symlink_to((data_dir / name).resolve(), target_is_directory=True)
    if (data_dir / "models").exists():
        shutil.copytree(data_dir / "models", work / "models")
    return work


async def listen(session: aiohttp.ClientSession, base: str, heard: Heard) -> None:
    quota = int(heard.target_min * 60 * BYTES_PER_S)
    began = time.monotonic()
    try:
        async with session.get(f"{base}/stream/{heard.name}.mp3") as resp:
            if resp.status != 200:
                heard.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                return
            last = time.monotonic()
            async for chunk in resp.content.iter_chunked(1 << 16):
                now = time.monotonic()
                heard.longest_wait_s = max(heard.longest_wait_s, now - last)
                last = now
                heard.bytes_read += len(chunk)
                if heard.bytes_read >= quota:
                    break  # leaving: what was read is what was heard
    except (TimeoutError, aiohttp.ClientError) as exc:
        heard.error = f"{type(exc).__name__}: {exc}"
    finally:
        heard.seconds = time.monotonic() - began


async def listen_all(base: str, listeners: list[Heard]) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(listen(session, base, h) for h in listeners))


def what_was_heard(db: Path, names: list[str]) -> list[tuple[str, int, int, str]]:
    """Per listener: plays started, qualifying plays, and the artists of those."""
    out = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for name in names:
            rows = conn.execute("SELECT artist_id, (qualified = 1 OR played_s >= 30) FROM plays"
                                " WHERE listener_id = ?", (name,)).fetchall()
            artists = Counter(a for a, q in rows if q)
            top = ", ".join(f"{a} x{n}" for a, n in artists.most_common(3))
            out.append((name, len(rows), sum(artists.values()), top))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/roydata"))
    parser.add_argument("--port", type=int, default=8795)
    parser.add_argument("--listeners", type=int, default=12)
    parser.add_argument("--heavy", type=int, default=2, help="how many read --minutes")
    parser.add_argument("--minutes", type=float, default=24.0,
                        help="programme minutes each heavy listener reads")
    parser.add_argument("--light-minutes", default="2:6", metavar="LOW:HIGH",
                        help="programme minutes each other listener reads, uniform in the range")
    parser.add_argument("--revenue", default="1000")
    parser.add_argument("--currency", default="EUR")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stall-s", type=float, default=300.0,
        help="the server's stall limit for this run (its default is 30 s). Unpaced, N listeners"
             " reach their first DJ break at the same moment and can wait longer than 30 s for"
             " the server, which then drops them as stalled though they read all it sent")
    parser.add_argument("--in-place", action="store_true",
                        help="play on DIR itself (its earlier plays this month count too)")
    args = parser.parse_args(argv)
    low, high = (float(x) for x in args.light_minutes.split(":"))

    data_dir = args.data_dir
    if not has_catalog(data_dir):
        print(f"making the demo catalog in {data_dir} (dj demo) ...", flush=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        demo = start_server(["demo", "--data-dir", str(data_dir), "--port", str(args.port)],
                            data_dir / "demo.log")
        stop(demo)
    work = data_dir if args.in_place else working_copy(data_dir)

    rng = random.Random(args.seed)
    run = secrets.token_hex(2)
    listeners = [Heard(f"anon-{run}-{i:02d}",
                       args.minutes if i < args.heavy else round(rng.uniform(low, high), 2))
                 for i in range(args.listeners)]
    period = datetime.now(UTC).strftime("%Y-%m")
    print(f"data dir {work}; {len(listeners)} listeners, {args.heavy} reading {args.minutes:g}"
          f" min, the others {low:g}-{high:g} min; period {period}", flush=True)

    server = start_server(["serve", "--data-dir", str(work), "--no-pacing", "--port",
                           str(args.port)], work / "serve.log", stall_s=args.stall_s)
    began = time.monotonic()
    try:
        asyncio.run(listen_all(f"http://127.0.0.1:{args.port}", listeners))
    finally:
        wall = time.monotonic() - began
        took = stop(server)
    print(f"listened for {wall:.1f} s of wall time; the server stopped {took:.1f} s after"
          " SIGTERM\n")

    failed = [h for h in listeners if h.error]
    heard = {name: rest for name, *rest in what_was_heard(work / "dj.sqlite3",
                                                          [h.name for h in listeners])}
    print(f"{'listener':<14} {'target min':>10} {'read min':>8} {'wait s':>6} {'plays':>5}"
          f" {'qualifying':>10}  artists of the qualifying plays (top 3)")
    for h in listeners:
        started, qualifying, top = heard[h.name]
        read_min = h.bytes_read / BYTES_PER_S / 60
        print(f"{h.name:<14} {h.target_min:>10.2f} {read_min:>8.2f} {h.longest_wait_s:>6.1f}"
              f" {started:>5} {qualifying:>10}  {top}{'  ERROR ' + h.error if h.error else ''}")
    print(flush=True)

    report = subprocess.run(
        dj_command("report", "royalties", "--period", period, "--revenue", args.revenue,
                   "--currency", args.currency, "--model", "both", "--data-dir", str(work)),
        capture_output=True, text=True)
    print(report.stdout, end="")
    if report.returncode:
        print(report.stderr, end="", file=sys.stderr)
    summary = {"data_dir": str(work), "period": period, "listeners": len(listeners),
               "failed": len(failed), "wall_s": round(wall, 1)}
    print("\n" + json.dumps(summary))
    return 1 if failed or report.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
