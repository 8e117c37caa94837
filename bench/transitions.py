"""Loudness around every transition of a real programme, as a listener hears it.

Renders N minutes of one listener's station straight from the renderer (the demo data dir by
default; run `dj demo` once first) and prints, per transition, the integrated loudness of the
tracks either side and the range of short-term (3 s) and momentary (400 ms) loudness from 8 s
before to 12 s after the new track becomes audible; then per-track integrated loudness and true
peak of the whole programme.

    python bench/transitions.py --data-dir DIR [--listener alice] [--minutes 10] [--agc-range 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys

import numpy as np
import pyloudnorm

from dj.audio.analysis import true_peak_dbtp
from dj.config import HOUSE_SAMPLE_RATE as SR
from dj.config import load_config
from dj.server.wiring import build_station


def windowed(meter, x: np.ndarray, start_s: float, end_s: float, win_s: float) -> np.ndarray:
    out = []
    for t in np.arange(start_s, end_s - win_s, 0.1):
        seg = x[:, int(t * SR) : int((t + win_s) * SR) + 1].T
        out.append(meter.integrated_loudness(seg) if seg.shape[0] else -70.0)
    return np.maximum(np.array(out), -70.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--listener", default="alice")
    ap.add_argument("--persona", default=None)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--agc-range", type=float, default=None, help="override audio.agc_range_db")
    ap.add_argument("--agc-window", type=float, default=None, help="override audio.agc_window_s")
    ap.add_argument("--agc-speed", type=float, default=None, help="override audio.agc_speed_db_s")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(data_dir=args.data_dir)
    audio = config.audio
    for name, value in (
        ("agc_range_db", args.agc_range),
        ("agc_window_s", args.agc_window),
        ("agc_speed_db_s", args.agc_speed),
    ):
        if value is not None:
            audio = dataclasses.replace(audio, **{name: value})
    config = config.replace(audio=audio)
    station = build_station(config)
    listener = station.listener(args.listener)
    session = station.open_session(listener, args.persona)
    session.programme.rng = random.Random(args.seed)  # the same programme for every setting
    session.programme._prepared = None
    blocks, starts, voices = [], [], []
    while session.renderer.frames_rendered < args.minutes * 60 * SR:
        audio, markers = session.renderer.render(SR // 2)
        blocks.append(audio)
        starts += [(m.frame / SR, m.key) for m in markers if m.kind == "track_start"]
        voices += [m.frame / SR for m in markers if m.kind == "voice_start"]
    station.shutdown()
    x = np.concatenate(blocks, axis=1)
    meter = pyloudnorm.Meter(SR)
    bounds = [s for s, _ in starts] + [x.shape[1] / SR]
    a = config.audio
    print(
        f"{args.minutes:.0f} min of {listener.id}'s programme, agc range/window/speed "
        f"{a.agc_range_db}/{a.agc_window_s}/{a.agc_speed_db_s}; voice-overs at "
        + ", ".join(f"{v:.0f}s" for v in voices)
    )
    print(
        f"{'transition into':38s} {'before':>7s} {'after':>7s} {'ST min':>7s} {'ST max':>7s}"
        f" {'M min':>7s} {'M max':>7s}  voice"
    )
    worst = 0.0
    for k in range(1, len(starts)):
        s, key = starts[k]
        if s + 15 > x.shape[1] / SR:
            break
        title = station.catalog.track(key).title
        before = meter.integrated_loudness(
            x[:, int(max(bounds[k - 1] + 4, s - 40) * SR) : int((s - 8) * SR)].T
        )
        after = meter.integrated_loudness(
            x[:, int((s + 12) * SR) : int(min(bounds[k + 1], s + 45) * SR)].T
        )
        st = windowed(meter, x, s - 8, s + 12, 3.0)
        mo = windowed(meter, x, s - 8, s + 12, 0.4)
        voiced = any(s - 8 <= v <= s + 12 for v in voices)
        ref = min(before, after)
        if not voiced:
            worst = max(worst, ref - st.min(), st.max() - max(before, after))
        print(
            f"{title[:38]:38s} {before:7.1f} {after:7.1f} {st.min():7.1f} {st.max():7.1f}"
            f" {mo.min():7.1f} {mo.max():7.1f}  {'yes' if voiced else ''}"
        )
    print(f"largest short-term departure at transitions without a voice: {worst:.1f} LU")
    print(f"\n{'track':38s} {'LUFS':>7s}")
    for k, (s, key) in enumerate(starts[:-1]):
        seg = x[:, int((s + 6) * SR) : int((bounds[k + 1] - 6) * SR)].T
        print(f"{station.catalog.track(key).title[:38]:38s} {meter.integrated_loudness(seg):7.2f}")
    print(f"programme true peak: {true_peak_dbtp(x):.2f} dBTP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
