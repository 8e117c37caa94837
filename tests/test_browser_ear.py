"""A real browser's ear against the server's model of it.

Headless Chromium plays a brand-new listener's paced stream through the app's own player page,
and every ~200 ms one in-page call reads ``audio.currentTime`` and fetches ``now-playing``. For a
new listener programme time 0 is the first audio byte, so ``currentTime`` is what the listener
hears, and ``position_s`` should match it: lead = position_s - currentTime (positive: the server
thinks the listener is further on than they are).

Needs Debian's chromium and the ``playwright`` package (test extra). Playwright's own browser
download is never used: the system binary is launched directly. ``bench/ear_lead.py`` makes the
same measurement against a running server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time

import pytest

async_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PLAY_S = 20.0  # wall seconds of sampling once playback has started
WARMUP_S = 2.0  # samples before this much programme time are not counted
SAMPLE_EVERY_S = 0.2
TITLE_AFTER_S = 0.5  # from this much playback on, now-playing must name the track

# Media events, timed in the page, to tell the browser's own start-up delay.
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
  return {status: r.status, c0, c1, rtt_ms: t1 - t0, paused: a.paused, ended: a.ended,
          error: a.error && a.error.code, position_s: np && np.position_s,
          play_id: np && np.play_id, title: np && np.title, ai_voice: np && np.ai_voice};
}
"""


def chromium_args() -> list[str]:
    # --mute-audio rather than a muted element: no sound, but the clock runs as if playing
    args = ["--autoplay-policy=no-user-gesture-required", "--mute-audio"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def measure(base: str, listener: str, seconds: float) -> tuple[list[dict], dict]:
    """Play ``listener``'s stream in headless Chromium through the app's player page for
    ``seconds`` after playback starts; returns the samples and the page's media event times."""
    samples: list[dict] = []
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=chromium_args()
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(EVENTS_JS)
            await page.goto(f"{base}/?listener={listener}")  # a named link tunes straight in
            deadline = time.monotonic() + 15
            while await page.evaluate("document.querySelector('audio').currentTime") <= 0:
                assert time.monotonic() < deadline, "the browser never started playing"
                await asyncio.sleep(0.05)
            t_start = time.monotonic()
            while time.monotonic() - t_start < seconds:
                sample = await page.evaluate(SAMPLE_JS, listener)
                sample["wall_s"] = time.monotonic() - t_start
                samples.append(sample)
                await asyncio.sleep(SAMPLE_EVERY_S)
            events = await page.evaluate("window.__ear_events")
        finally:
            await browser.close()
    return samples, events


def leads_of(samples: list[dict]) -> list[float]:
    return [
        s["position_s"] - (s["c0"] + s["c1"]) / 2
        for s in samples
        if s["c0"] >= WARMUP_S and s["position_s"] is not None
    ]


async def test_browser_currenttime_matches_the_servers_ear(paced):
    t_test = time.monotonic()
    listener = f"browser-ear-{os.getpid()}-{time.time_ns() % 10**9}"
    async with asyncio.timeout(PLAY_S + 25):  # browser start, playback start, sampling
        samples, events = await measure(f"http://127.0.0.1:{paced.port}", listener, PLAY_S)

    assert all(s["status"] == 200 for s in samples), "now-playing failed while playing"
    assert not any(s["paused"] or s["ended"] or s["error"] for s in samples), "playback stopped"
    # the first tick (0.1 s) of playback may come before the ear has entered the first track
    untitled = [s for s in samples if not s["title"] and s["c0"] >= TITLE_AFTER_S]
    assert not untitled, (
        f"now-playing had no title in {len(untitled)} of {len(samples)} samples, e.g. "
        f"{untitled[:3]}"
    )
    advanced = samples[-1]["c1"]
    assert advanced > 15, f"playback advanced only {advanced:.1f} s"
    leads = leads_of(samples)
    assert len(leads) >= 40, f"only {len(leads)} samples"

    med, abs_leads = statistics.median(leads), [abs(x) for x in leads]
    startup = events.get("playing", 0) - events.get("loadstart", 0)
    print(
        f"\nbrowser ear lead (position_s - currentTime), {len(leads)} samples: "
        f"median {med:+.3f} s, p5 {pct(leads, 0.05):+.3f}, p95 {pct(leads, 0.95):+.3f}, "
        f"max |lead| {max(abs_leads):.3f} s, stdev {statistics.pstdev(leads):.3f} s; "
        f"loadstart->playing {startup / 1000:.3f} s; playback advanced {advanced:.1f} s; "
        f"stalls at currentTime {[round(w[1], 2) for w in events.get('waiting', [])]}; "
        f"voice samples {sum(bool(s['ai_voice']) for s in samples)}; "
        f"median fetch {statistics.median(s['rtt_ms'] for s in samples):.1f} ms; "
        f"wall {time.monotonic() - t_test:.1f} s"
    )
    assert statistics.median(abs_leads) < 0.5, (
        f"the server's ear is {med:+.3f} s off Chromium's currentTime (median; "
        f"loadstart->playing {startup / 1000:.3f} s): the start-up buffer the ear assumes for "
        f"browsers (PLAYER_BUFFER_S['Mozilla/'] in dj.stream.ear) is off by that much"
    )
