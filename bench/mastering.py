"""Mastering benchmark: CPU seconds per minute of audio for track_curve, apply_curve and
limit_window.

A track is real music from ../shared/data/audio (decoded, pushed 6 dB over the target so the
limiter works, and tiled to --track-minutes) or, without it, a hot noise swell. Transition
windows are two mastered stretches crossfaded with a square-wave "voice" on top, so the window
limiter has real peaks to hold.

    python bench/mastering.py [--track-minutes 3.5] [--repeat 3] [--audio DIR]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dj.audio.analysis import integrated_loudness, true_peak_dbtp
from dj.audio.mastering import apply_curve, ceiling_db, limit_window, track_curve
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
SR = HOUSE_SAMPLE_RATE


def load_track(audio_dir: Path, minutes: float) -> tuple[np.ndarray, str]:
    n = int(minutes * 60 * SR)
    path = audio_dir / "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.hq.ogg"
    if path.exists():
        from dj.audio.decode import decode_file, to_house

        audio = to_house(*decode_file(path))
        name = path.name
    else:
        rng = np.random.default_rng(0)
        audio = rng.normal(0, 0.2, (2, 60 * SR)).astype(np.float32)
        audio *= (0.5 + 0.5 * np.sin(np.arange(60 * SR) / SR)).astype(np.float32)
        name = "noise swell (no ../shared audio)"
    audio = np.tile(audio, (1, n // audio.shape[1] + 1))[:, :n]
    return np.ascontiguousarray(audio), name


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Least CPU time of ``repeat`` runs: the cost without the noise of a busy machine."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--track-minutes", type=float, default=3.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    args = ap.parse_args()

    config = AudioConfig()
    ceiling = ceiling_db(config)
    track, name = load_track(args.audio, args.track_minutes)
    gain = config.target_lufs - integrated_loudness(track[:, : 60 * SR], SR) + 6.0
    print(f"track: {name}, {track.shape[1] / SR / 60:.2f} min, gain {gain:+.1f} dB\n")

    rows: list[tuple[str, float, float]] = []
    minutes = track.shape[1] / SR / 60
    secs = best_of(args.repeat, lambda: track_curve(track, gain_db=gain, config=config))
    rows.append(("track_curve", secs, secs / minutes))
    curve = track_curve(track, gain_db=gain, config=config)
    secs = best_of(args.repeat, lambda: apply_curve(track, curve, 0))
    rows.append(("apply_curve (whole body)", secs, secs / minutes))
    body = apply_curve(track, curve, 0)
    body_tp = true_peak_dbtp(body)

    rng = np.random.default_rng(1)
    for window_s in (5.0, 10.0, 15.0):
        n = int(window_s * SR)
        a, b = (int(v) for v in rng.integers(0, track.shape[1] - n, 2))
        fade = np.linspace(0.0, 1.0, n, dtype=np.float32)
        mix = body[:, a : a + n] * (1 - fade) + body[:, b : b + n] * fade
        t = np.arange(n) / SR
        voice = np.sign(np.sin(2 * np.pi * 140 * t)) * (np.sin(2 * np.pi * 4 * t) > 0) * 0.4
        mix = (mix + voice.astype(np.float32)).astype(np.float32)
        secs = best_of(max(args.repeat, 5), lambda mix=mix: limit_window(mix, ceiling))
        out = limit_window(mix, ceiling)
        rows.append(
            (
                f"limit_window {window_s:.0f} s (tp {true_peak_dbtp(mix) - ceiling:+.1f}"
                f" -> {true_peak_dbtp(out) - ceiling:+.3f} dB)",
                secs,
                secs / (window_s / 60),
            )
        )

    print(f"mastered body true peak: {body_tp - ceiling:+.3f} dB re ceiling ({ceiling:.1f} dBTP)\n")
    print(f"{'stage':<46}{'CPU s':>9}{'s / min audio':>15}{'ms / s audio':>14}")
    for label, secs, per_min in rows:
        print(f"{label:<46}{secs:>9.3f}{per_min:>15.3f}{per_min * 1000 / 60:>14.2f}")


if __name__ == "__main__":
    main()
