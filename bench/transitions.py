"""Loudness around every transition of a real programme, as a listener hears it.

Renders N minutes of one listener's station straight from the renderer (the demo data dir by
default; run `dj demo` once first) and prints, per transition, the integrated loudness of the
tracks either side and the range of short-term (3 s) and momentary (400 ms) loudness from 8 s
before to 12 s after the new track becomes audible; then per-track integrated loudness and true
peak of the whole programme.

    python bench/transitions.py --data-dir DIR [--listener alice] [--minutes 10] [--agc-range 6]
        [--plot transitions.png]

``--plot`` draws every transition (waveform, momentary and short-term loudness, and the band of
±3 LU around the tracks either side) to one PNG; it needs matplotlib.
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
    ap.add_argument("--intro-ride", type=float, default=None, help="override audio.intro_ride_db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None, help="write the transitions to this PNG")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(data_dir=args.data_dir)
    audio = config.audio
    for name, value in (
        ("agc_range_db", args.agc_range),
        ("agc_window_s", args.agc_window),
        ("agc_speed_db_s", args.agc_speed),
        ("intro_ride_db", args.intro_ride),
    ):
        if value is not None:
            audio = dataclasses.replace(audio, **{name: value})
    config = config.replace(audio=audio)
    station = build_station(config)
    listener = station.listener(args.listener)
    session = station.open_session(listener, args.persona)
    session.programme.rng = random.Random(args.seed)  # the same programme for every setting
    session.programme._prepared = None
    blocks, starts, voices, ends = [], [], [], []
    while session.renderer.frames_rendered < args.minutes * 60 * SR:
        audio, markers = session.renderer.render(SR // 2)
        blocks.append(audio)
        starts += [(m.frame / SR, m.key) for m in markers if m.kind == "track_start"]
        voices += [m.frame / SR for m in markers if m.kind == "voice_start"]
        ends += [(m.frame / SR, m.key) for m in markers if m.kind == "track_end"]
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
        f" {'M min':>7s} {'M max':>7s} {'overlap':>7s} {'M overlap':>13s} {'M beside':>13s}  voice"
    )
    worst = worst_m = 0.0
    plots = []
    for k in range(1, len(starts)):
        s, key = starts[k]
        if s + 15 > x.shape[1] / SR:
            break
        title = station.catalog.track(key).title
        if s - bounds[k - 1] < 14 or bounds[k + 1] - s < 16:
            print(f"{title[:38]:38s} (a track too short on one side to measure against)")
            continue
        b0, a1 = max(bounds[k - 1] + 4, s - 40), min(bounds[k + 1], s + 45)
        before = meter.integrated_loudness(x[:, int(b0 * SR) : int((s - 8) * SR)].T)
        after = meter.integrated_loudness(x[:, int((s + 12) * SR) : int(a1 * SR)].T)
        # the overlap (both tracks sounding) against 8 s of each track alone beside it: does the
        # transition itself jump, whatever the music's own dynamics (a pulsing intro) do
        o1 = next((e for e, key in ends if key == starts[k - 1][1] and e > s), s + 4)
        over = windowed(meter, x, s - 0.5, o1 + 0.5, 0.4)
        beside = np.concatenate(
            [windowed(meter, x, s - 8.5, s - 0.5, 0.4), windowed(meter, x, o1 + 0.5, o1 + 8.5, 0.4)]
        )
        b5, b95 = np.percentile(beside, [5, 95])
        st = windowed(meter, x, s - 8, s + 12, 3.0)
        mo = windowed(meter, x, s - 8, s + 12, 0.4)
        voiced = any(s - 8 <= v <= s + 12 for v in voices)
        plots.append((title, s, before, after, st, mo, voiced))
        ref = min(before, after)
        m5, m95 = np.percentile(over, [5, 95])
        if not voiced:
            worst = max(worst, ref - st.min(), st.max() - max(before, after))
            worst_m = max(worst_m, b5 - m5, m95 - b95)
        print(
            f"{title[:38]:38s} {before:7.1f} {after:7.1f} {st.min():7.1f} {st.max():7.1f}"
            f" {mo.min():7.1f} {mo.max():7.1f} {o1 - s:6.1f}s {m5:6.1f}/{m95:6.1f}"
            f" {b5:6.1f}/{b95:6.1f}"
            f"  {'yes' if voiced else ''}"
        )
    print(
        "largest departure at transitions without a voice: short-term from the tracks' loudness"
        f" {worst:.1f} LU; momentary over the overlap (5-95%) from the tracks beside it"
        f" {worst_m:.1f} LU"
    )
    print(f"\n{'track':38s} {'LUFS':>7s}")
    for k, (s, key) in enumerate(starts[:-1]):
        if bounds[k + 1] - s < 20:
            continue  # mostly transitions: not the track's own level
        seg = x[:, int((s + 6) * SR) : int((bounds[k + 1] - 6) * SR)].T
        print(f"{station.catalog.track(key).title[:38]:38s} {meter.integrated_loudness(seg):7.2f}")
    print(f"programme true peak: {true_peak_dbtp(x):.2f} dBTP")
    if args.plot:
        plot(args.plot, x, plots)
    return 0


def plot(path: str, x: np.ndarray, transitions: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(transitions), 1, figsize=(11, 2.6 * len(transitions)))
    rows = zip(np.atleast_1d(axes), transitions, strict=True)
    for ax, (title, s, before, after, st, mo, voiced) in rows:
        t = np.arange(-8, 12, 1 / 100)
        seg = x[0, int((s - 8) * SR) : int((s - 8) * SR) + t.size * SR // 100 : SR // 100]
        ax2 = ax.twinx()
        ax2.plot(t[: seg.size], seg, color="0.8", lw=0.5)
        ax2.set_ylim(-1.2, 1.2)
        ax2.set_yticks([])
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        lo, hi = min(before, after) - 3, max(before, after) + 3
        ax.axhspan(lo, hi, color="tab:green", alpha=0.12)
        ax.plot(-8 + 0.1 * np.arange(mo.size), mo, lw=0.8, label="momentary (400 ms)")
        ax.plot(-8 + 0.1 * np.arange(st.size) + 1.3, st, lw=1.5, label="short-term (3 s)")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_ylim(-30, -6)
        ax.set_ylabel("LUFS")
        ax.set_title(f"into {title}" + (" (voice-over)" if voiced else ""), fontsize=9)
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("seconds from the new track's start")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
