"""How far the server's ear is off a real browser's: headless Chromium plays a listener's stream
from a running `dj serve` through its own player page, and every ~200 ms one in-page call reads
`audio.currentTime` and fetches `now-playing`. Lead = position_s - currentTime (positive: the
server thinks the listener is further on than they are).

    python bench/ear_lead.py --url http://127.0.0.1:8000 [--listener NAME] [--seconds 60]

The listener must be new to the server (no session to resume), so that programme time 0 is the
first audio byte and `currentTime` is the ear; the default is a fresh name. Needs Debian's
chromium (or --chromium PATH) and the `playwright` package (the test extra); Playwright's own
browser download is not used. To remove a consistent bias, add the median lead to the
server's `stream.client_delay_s`. The page's pushed now-playing events (server-sent) are
timed too: the lead of each, position_s - currentTime as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time

from playwright.async_api import async_playwright

WARMUP_S = 2.0  # samples before this much programme time are not counted

EVENTS_JS = """
window.__ear_events = {};
document.addEventListener("DOMContentLoaded", () => {
  const a = document.querySelector("audio");
  for (const e of ["loadstart", "loadedmetadata", "canplay", "playing"])
    a.addEventListener(e, () => { window.__ear_events[e] ??= performance.now(); });
  window.__ear_events.waiting = [];  // stalls after the start: the player ran dry
  a.addEventListener("waiting", () => {
    if (a.currentTime > 0) window.__ear_events.waiting.push([performance.now(), a.currentTime]);
  });
});
"""

# Every now-playing event the page is pushed, with the audio clock as it arrives.
PUSHED_JS = """
window.__ear_pushed = [];
const EarEventSource = window.EventSource;
window.EventSource = class extends EarEventSource {
  constructor(url, init) {
    super(url, init);
    this.addEventListener("now-playing", (e) => {
      const a = document.querySelector("audio"), np = JSON.parse(e.data);
      window.__ear_pushed.push({c: a ? a.currentTime : 0, position_s: np.position_s,
                                play_id: np.play_id, ai_voice: np.ai_voice});
    });
  }
};
"""

# One instant in the page: currentTime just before and just after the now-playing fetch (the
# server computed position_s in between), so the reading is the midpoint of the two.
SAMPLE_JS = """
async (listener) => {
  const a = document.querySelector("audio");
  const c0 = a.currentTime, t0 = performance.now();
  const r = await fetch(`/api/listeners/${encodeURIComponent(listener)}/now-playing`,
                        {cache: "no-store"});
  const c1 = a.currentTime, t1 = performance.now();
  const np = r.ok ? await r.json() : null;
  const buf = a.buffered.length ? a.buffered.end(a.buffered.length - 1) : 0;
  return {status: r.status, c0, c1, t_ms: (t0 + t1) / 2, rtt_ms: t1 - t0, paused: a.paused,
          ended: a.ended, error: a.error && a.error.code, buffered_ahead_s: buf - c1,
          ready: a.readyState, position_s: np && np.position_s, play_id: np && np.play_id,
          title: np && np.title, ai_voice: np && np.ai_voice};
}
"""


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def chromium_args() -> list[str]:
    # --mute-audio rather than a muted element: no sound, but the clock runs as if playing
    args = ["--autoplay-policy=no-user-gesture-required", "--mute-audio"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


def leads_of(samples: list[dict], warmup_s: float = WARMUP_S) -> list[float]:
    """position_s − currentTime for each sample past the warm-up with a position."""
    return [
        s["position_s"] - (s["c0"] + s["c1"]) / 2
        for s in samples
        if s["c0"] >= warmup_s and s["position_s"] is not None
    ]


async def measure(
    url: str,
    listener: str,
    seconds: float,
    *,
    chromium: str,
    interval: float = 0.2,
    start_timeout_s: float = 30.0,
    progress: bool = False,
) -> tuple[list[dict], dict]:
    """Play ``listener``'s stream in headless Chromium through the app's player page for
    ``seconds`` after playback starts; returns the samples and the page's media event times."""
    samples: list[dict] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=chromium_args()
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(EVENTS_JS)
            await page.add_init_script(PUSHED_JS)
            await page.goto(f"{url.rstrip('/')}/?listener={listener}")  # tunes straight in
            deadline = time.monotonic() + start_timeout_s
            while await page.evaluate("document.querySelector('audio').currentTime") <= 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the browser never started playing")
                await asyncio.sleep(0.05)
            t_start = time.monotonic()
            next_report = 10.0
            while (wall := time.monotonic() - t_start) < seconds:
                sample = await page.evaluate(SAMPLE_JS, listener)
                sample["wall_s"] = wall
                samples.append(sample)
                if progress and wall >= next_report:
                    print(
                        f"  {wall:4.0f} s: currentTime {sample['c1']:.2f}, "
                        f"position_s {sample['position_s']}",
                        file=sys.stderr,
                    )
                    next_report += 10
                await asyncio.sleep(interval)
            events = await page.evaluate("window.__ear_events")
            events["pushed"] = await page.evaluate("window.__ear_pushed || []")
        finally:
            await browser.close()
    return samples, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    ap.add_argument(
        "--listener",
        default=f"ear-lead-{int(time.time())}",
        help="a listener id new to the server (default: a fresh one)",
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of playback sampled")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--dump", help="write every sample to this file (JSON lines)")
    ap.add_argument(
        "--chromium",
        default=shutil.which("chromium") or shutil.which("chromium-browser"),
        help="the browser binary (default: chromium on PATH)",
    )
    args = ap.parse_args()
    if not args.chromium:
        sys.exit("no chromium on PATH: apt-get install chromium, or pass --chromium")

    print(f"playing {args.url} as {args.listener!r} for {args.seconds:.0f} s", file=sys.stderr)
    try:
        samples, events = asyncio.run(
            measure(args.url, args.listener, args.seconds, chromium=args.chromium,
                    interval=args.interval, progress=True)
        )
    except RuntimeError as exc:
        sys.exit(str(exc))
    if args.dump:
        with open(args.dump, "w") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")
            f.write(json.dumps({"events": events}) + "\n")
    failed = [s for s in samples if s["status"] != 200 or s["position_s"] is None]
    counted = [s for s in samples if s not in failed and s["c0"] >= WARMUP_S]
    if not counted:
        sys.exit(f"no usable samples ({len(failed)} failed now-playing calls)")
    leads = leads_of(counted)
    if abs(statistics.median(leads)) > 10:
        print(
            "warning: a lead this large means the listener was not new (a resumed session "
            "does not start at programme time 0)",
            file=sys.stderr,
        )
    drift = statistics.linear_regression([s["wall_s"] for s in counted], leads).slope
    rate = statistics.linear_regression(
        [s["t_ms"] / 1000 for s in counted], [(s["c0"] + s["c1"]) / 2 for s in counted]
    ).slope
    startup = events.get("playing", 0) - events.get("loadstart", 0)
    pushed = [p["position_s"] - p["c"] for p in events.get("pushed", []) if p["c"] >= WARMUP_S]
    rows = [
        ("median", f"{statistics.median(leads):+.3f} s"),
        ("p5", f"{pct(leads, 0.05):+.3f} s"),
        ("p95", f"{pct(leads, 0.95):+.3f} s"),
        ("max abs lead", f"{max(abs(x) for x in leads):.3f} s"),
        ("mean", f"{statistics.fmean(leads):+.3f} s"),
        ("stdev", f"{statistics.pstdev(leads):.3f} s"),
        ("drift", f"{drift * 60 * 1000:+.1f} ms/min"),
        ("playback rate", f"{rate:.5f} x the page clock"),
        ("stalls (waiting)", f"{len(events.get('waiting', []))}"),
        ("samples", f"{len(leads)}"),
        ("failed fetches", f"{len(failed)}"),
        ("paused samples", f"{sum(bool(s['paused']) for s in samples)}"),
        ("untitled samples", f"{sum(not s['title'] for s in counted)}"),
        ("AI-voice samples", f"{sum(bool(s['ai_voice']) for s in counted)}"),
        ("playback advanced", f"{samples[-1]['c1']:.1f} s"),
        ("loadstart->playing", f"{startup / 1000:.3f} s"),
        ("median fetch", f"{statistics.median(s['rtt_ms'] for s in samples):.1f} ms"),
        ("pushed events timed", f"{len(pushed)}"),
    ]
    if pushed:
        rows += [("pushed: median lead", f"{statistics.median(pushed):+.3f} s"),
                 ("pushed: max abs lead", f"{max(abs(x) for x in pushed):.3f} s")]
    print("\nlead = position_s - audio.currentTime (Chromium)\n")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
