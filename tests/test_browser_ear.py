"""A real browser's ear against the server's model of it.

Headless Chromium plays a brand-new listener's paced stream through the app's own player page,
and every ~200 ms one in-page call reads ``audio.currentTime`` and fetches ``now-playing``. For a
new listener programme time 0 is the first audio byte, so ``currentTime`` is what the listener
hears, and ``position_s`` should match it: lead = position_s - currentTime (positive: the server
thinks the listener is further on than they are).

Needs Debian's chromium and the ``playwright`` package (test extra). Playwright's own browser
download is never used: the system binary is launched directly. The measurement is
``bench/ear_lead.py``'s, which makes it against a running server; this test asserts on it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PLAY_S = 20.0  # wall seconds of sampling once playback has started
TITLE_AFTER_S = 0.5  # from this much playback on, now-playing must name the track


def _ear_lead():
    path = Path(__file__).resolve().parents[1] / "bench" / "ear_lead.py"
    spec = importlib.util.spec_from_file_location("ear_lead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ear_lead = _ear_lead()


async def test_browser_currenttime_matches_the_servers_ear(paced):
    t_test = time.monotonic()
    listener = f"browser-ear-{os.getpid()}-{time.time_ns() % 10**9}"
    async with asyncio.timeout(PLAY_S + 25):  # browser start, playback start, sampling
        samples, events = await ear_lead.measure(
            f"http://127.0.0.1:{paced.port}", listener, PLAY_S, chromium=CHROMIUM,
            start_timeout_s=15,
        )

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
    leads = ear_lead.leads_of(samples)
    assert len(leads) >= 40, f"only {len(leads)} samples"

    med, abs_leads = statistics.median(leads), [abs(x) for x in leads]
    startup = events.get("playing", 0) - events.get("loadstart", 0)
    print(
        f"\nbrowser ear lead (position_s - currentTime), {len(leads)} samples: "
        f"median {med:+.3f} s, p5 {ear_lead.pct(leads, 0.05):+.3f}, "
        f"p95 {ear_lead.pct(leads, 0.95):+.3f}, "
        f"max |lead| {max(abs_leads):.3f} s, stdev {statistics.pstdev(leads):.3f} s; "
        f"loadstart->playing {startup / 1000:.3f} s; playback advanced {advanced:.1f} s; "
        f"stalls at currentTime {[round(w[1], 2) for w in events.get('waiting', [])]}; "
        f"voice samples {sum(bool(s['ai_voice']) for s in samples)}; "
        f"median fetch {statistics.median(s['rtt_ms'] for s in samples):.1f} ms; "
        f"wall {time.monotonic() - t_test:.1f} s"
    )
    assert statistics.median(abs_leads) < 0.5, (
        f"the server's ear is {med:+.3f} s off Chromium's currentTime (median; "
        f"loadstart->playing {startup / 1000:.3f} s): the delay the player page declares "
        f"(PLAY_DELAY_S in dj/server/player.html) or, where it plays the stream URL itself, the "
        f"start-up buffer the ear assumes for browsers (PLAYER_BUFFER_S['Mozilla/'] in "
        f"dj.stream.ear) is off by that much"
    )
