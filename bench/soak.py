"""Soak: listeners joining and leaving a real `dj serve` for a while; prints the server's memory
over time and its slope (goal: flat within noise once the caches are full).

    python bench/soak.py --data-dir DIR [--minutes 30] [--listeners 20] [--port 8765]

DIR is a data dir with a catalog (e.g. the one `dj demo --data-dir DIR` made). Each listener
reads a paced stream for 20-90 s, leaves, and a new listener id takes its place, so sessions are
opened, resumed and released all the time. The resume window is shortened to 30 s so released
sessions show up within the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from scipy.stats import linregress


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


async def soak(args: argparse.Namespace) -> None:
    env = dict(os.environ, DJ_STREAM__RESUME_WINDOW_S="30", DJ_PORT=str(args.port))
    server = subprocess.Popen(
        [sys.executable, "-m", "dj.cli", "serve", "--data-dir", str(args.data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(600):
                try:
                    async with client.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise SystemExit("dj serve did not come up")
        start = time.monotonic()
        stop = start + args.minutes * 60
        counts = {"sessions": 0, "errors": 0}
        tasks = [asyncio.create_task(listener(base, n, stop, counts))
                 for n in range(args.listeners)]
        samples: list[tuple[float, float]] = []
        print(f"{'minute':>7} {'rss MB':>8} {'live':>5} {'resumable':>9} {'done':>5}")
        while time.monotonic() < stop:
            await asyncio.sleep(args.every)
            async with aiohttp.ClientSession() as client, client.get(f"{base}/healthz") as r:
                health = await r.json()
            minute = (time.monotonic() - start) / 60
            samples.append((minute, rss_mb(server.pid)))
            print(f"{minute:7.1f} {samples[-1][1]:8.1f} {health['sessions']:5d} "
                  f"{health['resumable']:9d} {counts['sessions']:5d}", flush=True)
        await asyncio.gather(*tasks)
        settled = [s for s in samples if s[0] >= args.warmup]
        if len(settled) >= 3:
            fit = linregress([s[0] for s in settled], [s[1] for s in settled])
            print(f"RSS slope after {args.warmup:g} min: {fit.slope:+.2f} MB/min "
                  f"(± {fit.stderr:.2f}); {counts['sessions']} sessions, "
                  f"{counts['errors']} client errors")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--listeners", type=int, default=20)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=3.0, help="minutes before the slope counts")
    asyncio.run(soak(p.parse_args()))


if __name__ == "__main__":
    main()
