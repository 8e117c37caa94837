"""Soak: listeners joining and leaving a real `dj serve` for a while; prints the server's memory
over time and its slope (goal: flat within noise once the caches are full).

    python bench/soak.py --data-dir DIR [--minutes 30] [--listeners 20] [--port 8765]
                         [--log FILE] [--no-tuning]

DIR is a data dir with a catalog (e.g. the one `dj demo --data-dir DIR` made). Each listener
reads a paced stream for 20-90 s, leaves, and a new listener id takes its place, so sessions are
opened, resumed and released all the time. The resume window is shortened to 30 s so released
sessions show up within the run.

Each row has RSS (and its anonymous part), the shared caches from /healthz (track bodies,
transition pieces) and, from the server's `memory:` log lines (dj/server/memory.py), the voice
cache and malloc's own account: heap in use and free memory malloc keeps. RSS minus the caches
("rest") is what must stay flat; a cache filling up toward its bound is not a leak. The server's
log goes to --log (default: a file in the temp dir, printed at the start). --no-tuning runs the
server with malloc as glibc has it (DJMEM_TUNING=0), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from scipy.stats import linregress

REPORT_S = 15  # how often the server logs its heap and voice-cache levels


def proc_mb(pid: int) -> dict[str, float]:
    """VmRSS and RssAnon of ``pid``, in MB."""
    out = {"VmRSS": float("nan"), "RssAnon": float("nan")}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_report(log: Path) -> dict[str, float]:
    """The latest `memory:` line the server logged, as numbers (empty if none yet)."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    for line in reversed(tail.splitlines()):
        _, marker, rest = line.partition(" memory: ")
        if marker:
            fields = (p.partition("=") for p in rest.split())
            return {k: float(v) for k, _, v in fields if v}
    return {}


async def listener(base: str, n: int, stop: float, counts: dict[str, int]) -> None:
    rng = random.Random(n)
    async with aiohttp.ClientSession() as client:
        i = 0
        while time.monotonic() < stop:
            # some come back (a resume), most are new
            name = f"soak-{n}-{i if rng.random() > 0.3 else max(0, i - 1)}"
            i += 1
            until = time.monotonic() + rng.uniform(20, 90)
            try:
                async with client.get(f"{base}/stream/{name}.mp3") as resp:
                    while time.monotonic() < min(until, stop):
                        if not await resp.content.read(16384):
                            break
                counts["sessions"] += 1
            except aiohttp.ClientError:
                counts["errors"] += 1
            await asyncio.sleep(rng.uniform(0.5, 5))


async def wait_healthy(base: str, server: subprocess.Popen, log: Path) -> None:
    """Until /healthz answers 200 (any other answer, or none, is waited out), at most 120 s."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"dj serve exited with {server.returncode}; see {log}")
            try:
                async with client.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"dj serve did not come up in 120 s; see {log}")


COLUMNS = (("minute", 6, ".1f"), ("cpu%", 4, ".0f"), ("rss", 6, ".1f"), ("anon", 6, ".1f"),
           ("live", 4, "d"), ("resum", 5, "d"), ("done", 5, "d"), ("body", 5, ".1f"),
           ("trans", 5, ".1f"), ("voice", 5, ".1f"), ("vn", 3, ".0f"), ("h_used", 6, ".1f"),
           ("h_free", 6, ".1f"), ("mmap", 5, ".1f"), ("rest", 6, ".1f"))


def row(values: dict[str, float]) -> str:
    out = []
    for name, width, fmt in COLUMNS:
        v = values.get(name)
        out.append(f"{'-':>{width}}" if v is None or v != v else f"{v:{width}{fmt}}")
    return " ".join(out)


def fit(samples: list[dict[str, float]], key: str, after: float) -> str:
    points = [(s["minute"], s[key]) for s in samples
              if s["minute"] >= after and s.get(key) == s.get(key)]
    if len(points) < 3:
        return f"{key}: too few samples after {after:g} min"
    f = linregress([p[0] for p in points], [p[1] for p in points])
    return (f"{key:>6} slope {f.slope:+.2f} MB/min (± {f.stderr:.2f}) over minutes "
            f"{points[0][0]:.1f}-{points[-1][0]:.1f}: {points[0][1]:.1f} -> {points[-1][1]:.1f}")


async def soak(args: argparse.Namespace) -> None:
    log: Path = args.log or Path(tempfile.gettempdir()) / f"dj-soak-{args.port}.log"
    env = dict(os.environ, DJ_STREAM__RESUME_WINDOW_S="30", DJ_PORT=str(args.port),
               DJMEM_REPORT_S=str(REPORT_S))
    if args.no_tuning:
        env["DJMEM_TUNING"] = "0"
    print(f"server log: {log}; malloc tuning {'off' if args.no_tuning else 'on'}", flush=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(args.data_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{args.port}"
    try:
        await wait_healthy(base, server, log)
        start = time.monotonic()
        stop = start + args.minutes * 60
        counts = {"sessions": 0, "errors": 0}
        tasks = [asyncio.create_task(listener(base, n, stop, counts))
                 for n in range(args.listeners)]
        samples: list[dict[str, float]] = []
        print("MB throughout; cpu%: the server's over the interval; body/trans: /healthz caches;"
              " voice/vn: voice cache MB/renders;\n"
              "h_used/h_free/mmap: malloc's account; rest = rss - body - trans - voice")
        print(" ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))
        cpu_at = (time.monotonic(), cpu_s(server.pid))
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < stop and server.poll() is None:
                await asyncio.sleep(min(args.every, max(0.0, stop - time.monotonic())))
                try:
                    async with client.get(f"{base}/healthz") as r:
                        health = await r.json() if r.status == 200 else {}
                except aiohttp.ClientError:
                    health = {}
                mem, report = proc_mb(server.pid), last_report(log)
                now = (time.monotonic(), cpu_s(server.pid))
                cpu, cpu_at = 100 * (now[1] - cpu_at[1]) / (now[0] - cpu_at[0]), now
                shared = health.get("shared", {})
                s = {"minute": (now[0] - start) / 60, "cpu%": cpu, "rss": mem["VmRSS"],
                     "anon": mem["RssAnon"], "live": health.get("sessions", -1),
                     "resum": health.get("resumable", -1), "done": counts["sessions"],
                     "body": shared.get("body_mb", float("nan")),
                     "trans": shared.get("transition_mb", float("nan")),
                     "voice": report.get("voice", float("nan")),
                     "vn": report.get("voice_n", float("nan")),
                     "h_used": report.get("heap_used", float("nan")),
                     "h_free": report.get("heap_free", float("nan")),
                     "mmap": report.get("mmapped", float("nan"))}
                s["rest"] = s["rss"] - s["body"] - s["trans"] - (s["voice"] if s["voice"] == s[
                    "voice"] else 0.0)
                samples.append(s)
                print(row(s), flush=True)
        if server.poll() is not None:
            print(f"dj serve exited with {server.returncode} during the soak; see {log}")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(f"{counts['sessions']} sessions, {counts['errors']} client errors; "
              f"failures: {health.get('failures', {})}")
        for key in ("rss", "rest", "h_used", "h_free"):
            print(fit(samples, key, args.warmup))
        if len(samples) >= 6:  # the second half alone: after every cache has had time to fill
            print(fit(samples, "rss", samples[len(samples) // 2]["minute"]))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--listeners", type=int, default=20)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=3.0, help="minutes before the slope counts")
    p.add_argument("--log", type=Path, help="the server's log (default: in the temp dir)")
    p.add_argument("--no-tuning", action="store_true", help="serve without the malloc tuning")
    asyncio.run(soak(p.parse_args()))


if __name__ == "__main__":
    main()
